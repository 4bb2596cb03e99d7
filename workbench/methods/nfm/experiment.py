"""``nfm``: Noisy Feature Mixup against its special cases, evaluated under test-time noise and corruptions.

Trains the chosen variants (default: baseline, input mixup, manifold mixup, noisy input mixup, NFM) with the
same initial weights, batches and budget (:func:`workbench.lib.robustness.suite.run_suite`), then measures clean
accuracy (full test set), accuracy along NFM's test-time noise levels (§5: white noise in the normalised input
space, salt and pepper), the corruption benchmark and ECE. On ``two_moons`` (with ``label_noise``) it stores
decision boundaries instead. Claims (:func:`workbench.lib.robustness.claims.nfm_claims`): NFM is more robust to
test-time noise than standard training, than input and manifold mixup, and than every special case trained; its
clean accuracy is not worse than the baseline's by more than ``margin``.
"""
from __future__ import annotations

from workbench.core.context import RunContext
from workbench.core.params import Config, Param
from workbench.core.registry import Experiment, register
from workbench.lib.data import needs_dataset
from workbench.lib.robustness.claims import nfm_claims
from workbench.lib.robustness.params import MixingParams, SuiteParams
from workbench.lib.robustness.recipes import NFM_RECIPES, nfm_recipe
from workbench.lib.robustness.suite import KEY_METRICS, SUITE_NOTE, run_suite, summarise

DEFAULT_VARIANTS = ("baseline", "input_mixup", "manifold_mixup", "noisy_input_mixup", "nfm")
#: NFM's mixing and noise levels (§5: α = 1, σ_add = 0.4, σ_mult = 0.2, no sparsity)
NFMMixing = MixingParams.with_defaults(alpha=1.0, add_noise=0.4, mult_noise=0.2, sparsity=0.0)


class NFMConfig(NFMMixing, SuiteParams, Config):
    variants: tuple = Param(DEFAULT_VARIANTS, choices=NFM_RECIPES, multiple=True, doc="recipes trained and compared")


def run(cfg: NFMConfig, ctx: RunContext) -> dict[str, float]:
    recipes = {n: nfm_recipe(n, cfg.alpha, cfg.add_noise, cfg.mult_noise, cfg.sparsity) for n in cfg.variants}
    result = run_suite(cfg, ctx, recipes)
    for claim in nfm_claims(result, cfg.dataset, cfg.margin, lambda name: ctx.rng(f"claims/{name}")):
        ctx.claim(claim)
    return summarise(result.summary, ("clean_accuracy", "noise_accuracy", "mean_corruption_accuracy", "ece"))


#: NFM §5 on CIFAR-10 (for a GPU): PreActResNet-18, 200 epochs of the 45,000-image training part (351 steps of
#: 128), SGD lr 0.1 ×0.1 at epochs 100, 150 and 180, weight decay 5e-4, random crop + flip, inputs normalised,
#: α = 1, σ_add = 0.4, σ_mult = 0.2; every test image for the noise curves and the corruption benchmark.
PAPER = {"dataset": "cifar10", "arch": "resnet", "width": 64, "blocks": 2, "normalise": "dataset", "augment": "crop_flip",
         "steps": 70_200, "batch_size": 128, "lr": 0.1, "schedule": "step", "momentum": 0.9, "weight_decay": 5e-4,
         "eval_every": 351, "curve_images": 10_000, "eval_limit": 0, "corruption_set": "all",
         "alpha": 1.0, "add_noise": 0.4, "mult_noise": 0.2, "sparsity": 0.0}
#: The paper's protocol at a size two shared CPU cores train to convergence in about 20 minutes: fashion_mnist
#: (5,000 training images), PreActResNet of width 8 with one block per stage, 2,000 steps (51 epochs).
CPU_CLAIMS = {"dataset": "fashion_mnist", "train_size": 5000, "arch": "resnet", "width": 8, "blocks": 1,
              "augment": "crop_flip", "steps": 2000, "lr": 0.1, "schedule": "step", "eval_every": 100,
              "eval_limit": 2000, "corruption_set": "noise"}

#: A few minutes on 2 CPU cores: the same protocol on 2,000 training images and 400 steps (the noise curves already
#: separate the recipes that inject noise from the others).
DEMO = {**CPU_CLAIMS, "train_size": 2000, "steps": 400, "eval_every": 50, "eval_limit": 1000}

EXPERIMENT = register(Experiment(
    name="nfm",
    title="Noisy Feature Mixup",
    description=__doc__ or "",
    config=NFMConfig,
    run=run,
    smoke={"steps": 3, "batch_size": 32, "width": 8, "eval_limit": 16, "corruption_set": "noise", "eval_every": 3,
           "curve_images": 32, "variants": ("baseline", "input_mixup", "nfm")},
    demo=DEMO,
    paper=PAPER,
    key_metrics=KEY_METRICS,
    distributed=True,  # data-parallel suite (workbench.lib.robustness.suite): exact under torchrun
    distributed_note=SUITE_NOTE,
    ddp_smoke={"arch": "mlp", "augment": "crop_flip"},  # BN-free: batch statistics are per rank on CPU
    preflight=needs_dataset,
))
