"""``noisymix``: NoisyMix against a baseline, AugMix and AugMix + JSD, on the corruption benchmark.

Each recipe trains with the same initial weights, batches and budget (:func:`workbench.lib.robustness.suite.run_suite`);
evaluation covers clean accuracy (full test set), the 15 (+4) corruptions × 5 severities (mean corruption accuracy,
mCE vs the baseline, ECE under corruption), noise curves, ECE (15 bins) with its reliability table and flip
probabilities. Claims (:func:`workbench.lib.robustness.claims.noisymix_claims`): NoisyMix has the best mean
corruption accuracy; it is better calibrated than standard training (clean and under corruption); the stability
(JSD) loss lowers ECE (AugMix + JSD against AugMix alone, the ablation that isolates the loss); its clean accuracy
improves on the baseline's, and is not worse by more than ``margin``.
"""
from __future__ import annotations

from workbench.core.context import RunContext
from workbench.core.params import Config, Param
from workbench.core.registry import Experiment, register
from workbench.lib.data import needs_dataset
from workbench.lib.robustness.claims import noisymix_claims
from workbench.lib.robustness.params import (AugMixParams, ClassifierParams, MixingParams, SuiteParams,
                                             check_augmix_recipes)
from workbench.lib.robustness.recipes import (NOISYMIX_PAPER, NOISYMIX_RECIPES, augmix_preview,
                                              noisymix_recipe)
from workbench.lib.robustness.suite import KEY_METRICS, SUITE_NOTE, run_suite, summarise

#: NoisyMix's mixing and noise levels (α = 1, σ_add = σ_mult = 0.5, sparsity 0.65)
NoisyMixMixing = MixingParams.with_defaults(alpha=1.0, add_noise=0.5, mult_noise=0.5, sparsity=0.65)


#: NoisyMix's code standardises with mean = std = 0.5
NoisyMixModel = ClassifierParams.with_defaults(
    normalise="fixed", docs={"normalise": "inputs standardised inside the model, (x − mean)/std: with mean = std = 0.5 "
                                          "(NoisyMix's code), per channel with the training set's mean and std, or "
                                          "not at all"})


class NoisyMixConfig(NoisyMixMixing, AugMixParams, NoisyMixModel, SuiteParams, Config):
    variants: tuple = Param(NOISYMIX_RECIPES, choices=NOISYMIX_RECIPES, multiple=True,
                            doc="recipes trained and compared")

    def check(self) -> None:
        super().check()
        check_augmix_recipes(self.dataset, self.variants)


def run(cfg: NoisyMixConfig, ctx: RunContext) -> dict[str, float]:
    result = run_suite(cfg, ctx, {n: noisymix_recipe(n, cfg, cfg) for n in cfg.variants})
    if {"augmix", "augmix_jsd", "noisymix"} & set(cfg.variants):
        from workbench.lib import data

        image = data.tensors(cfg.dataset, "test", seed=cfg.seed)[0][0]
        ctx.artifact("augmix_preview", augmix_preview(image, cfg, ctx.rng("augmix_preview")), kind="json")
    for claim in noisymix_claims(result, cfg.dataset, cfg.margin, lambda name: ctx.rng(f"claims/{name}")):
        ctx.claim(claim)
    return summarise(result.summary, ("clean_accuracy", "mean_corruption_accuracy", "mce", "ece", "noise_accuracy"))


#: NoisyMix's CIFAR-10 setting, for a GPU (the shared recipe's protocol)
PAPER = NOISYMIX_PAPER
#: The paper's protocol at a size two shared CPU cores train to convergence in about half an hour (see ``nfm``).
CPU_CLAIMS = {"dataset": "fashion_mnist", "train_size": 5000, "arch": "resnet", "width": 8, "blocks": 1,
              "augment": "crop_flip", "steps": 2000, "lr": 0.1, "schedule": "cosine", "eval_every": 100,
              "eval_limit": 2000, "corruption_set": "all"}

EXPERIMENT = register(Experiment(
    name="noisymix",
    title="NoisyMix",
    description=__doc__ or "",
    config=NoisyMixConfig,
    run=run,
    smoke={"steps": 3, "batch_size": 32, "width": 8, "eval_limit": 16, "corruption_set": "standard", "eval_every": 3,
           "curve_images": 32},
    demo={"steps": 300},
    paper=PAPER,
    key_metrics=KEY_METRICS,
    distributed=True,  # data-parallel suite (workbench.lib.robustness.suite): exact under torchrun
    distributed_note=SUITE_NOTE,
    ddp_smoke={"arch": "mlp", "augment": "crop_flip"},  # BN-free: batch statistics are per rank on CPU
    preflight=needs_dataset,
))
