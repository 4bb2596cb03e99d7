"""``robustness_compare``: eight training recipes, one budget, one corruption benchmark.

baseline, input mixup, manifold mixup, noisy input mixup, NFM (Lim et al. 2022), AugMix, AugMix + JSD
(Hendrycks et al. 2020) and NoisyMix (Erichson et al.) are trained from the same initial weights on the same
batches for the same number of steps, then evaluated on clean data (full test set), the 19 corruptions × 5
severities, NFM's noise curves, ECE and flip probabilities. Each method checks its own claims on the shared
results (AugMix alone is the ablation NoisyMix's ECE claim needs).
"""
from __future__ import annotations

from workbench.core.context import RunContext
from workbench.lib.data import needs_dataset
from workbench.methods.nfm.experiment import check_claims as nfm_claims
from workbench.methods.nfm.experiment import nfm_recipe
from workbench.methods.noisymix.experiment import PAPER as NOISYMIX_PAPER
from workbench.methods.noisymix.experiment import AugMixParams, NoisyMixMixing, noisymix_recipe
from workbench.methods.noisymix.experiment import check_claims as noisymix_claims
from workbench.methods.noisymix.experiment import preview as augmix_preview
from workbench.core.params import Param
from workbench.core.registry import Experiment, register
from workbench.lib.robustness.mixing import mixing_params
from workbench.lib.robustness.suite import KEY_METRICS, SUITE_NOTE, SuiteConfig, run_suite, summarise

ALL_RECIPES = ("baseline", "input_mixup", "manifold_mixup", "noisy_input_mixup", "nfm", "augmix", "augmix_jsd",
               "noisymix")
#: NFM's noise levels beside NoisyMix's (one α for every mixing recipe, from NoisyMix's group).
NFMNoise = mixing_params("NFM mixing", prefix="nfm_", add_noise=0.4, mult_noise=0.2, alpha=False)


class CompareConfig(NoisyMixMixing, NFMNoise, AugMixParams, SuiteConfig):  # type: ignore[misc, valid-type]
    variants: tuple = Param(ALL_RECIPES, choices=ALL_RECIPES, multiple=True, doc="recipes trained and compared")

    def check(self) -> None:
        super().check()
        self.check_augmix()


def run(cfg: CompareConfig, ctx: RunContext) -> dict[str, float]:
    recipes = {}
    for n in cfg.variants:
        if n in ("augmix", "augmix_jsd", "noisymix"):
            recipes[n] = noisymix_recipe(n, cfg)
        else:
            recipes[n] = nfm_recipe(n, cfg.alpha, cfg.nfm_add_noise, cfg.nfm_mult_noise, 0.0)
    res = run_suite(cfg, ctx, recipes)
    if {"augmix", "augmix_jsd", "noisymix"} & set(cfg.variants):
        from workbench.lib import data

        augmix_preview(ctx, cfg, data.tensors(cfg.dataset, "test", seed=cfg.seed)[0][0])
    nfm_claims(ctx, cfg, res)
    noisymix_claims(ctx, cfg, res)
    return summarise(res, ("clean_accuracy", "mean_corruption_accuracy", "noise_accuracy", "ece", "mce"))


#: Every recipe in its papers' CIFAR-10 setting (for a GPU): PreActResNet-18, 200 epochs, cosine decay (one schedule
#: for all, as NoisyMix trains), random crop + flip, NFM's and NoisyMix's own noise levels.
PAPER = {**NOISYMIX_PAPER, "nfm_add_noise": 0.4, "nfm_mult_noise": 0.2}

EXPERIMENT = register(Experiment(
    name="robustness_compare",
    title="Robustness: eight recipes on the corruption benchmark",
    description=__doc__ or "",
    config=CompareConfig,
    run=run,
    smoke={"steps": 2, "batch_size": 16, "width": 8, "eval_limit": 16, "corruption_set": "noise", "eval_every": 2,
           "curve_images": 32},
    demo={"steps": 200},
    paper=PAPER,
    key_metrics=KEY_METRICS,
    distributed_note=SUITE_NOTE,
    preflight=needs_dataset,
))
