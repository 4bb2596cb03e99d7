"""``robustness_compare``: eight training recipes, one budget, one corruption benchmark.

baseline, input mixup, manifold mixup, noisy input mixup, NFM (Lim et al. 2022), AugMix, AugMix + JSD
(Hendrycks et al. 2020) and NoisyMix (Erichson et al.) are trained from the same initial weights on the same
batches for the same number of steps, then evaluated on clean data (full test set), the 19 corruptions × 5
severities, NFM's noise curves, ECE and flip probabilities. The recipes, the protocol and both methods' claims
come from the shared toolkit :mod:`workbench.lib.robustness` (a method never imports another), checked here on
the shared results (AugMix alone is the ablation NoisyMix's JSD claim needs).
"""
from __future__ import annotations

from workbench.core.context import RunContext
from workbench.core.params import Config, Param
from workbench.core.registry import Experiment, register
from workbench.lib.data import needs_dataset
from workbench.lib.robustness.claims import nfm_claims, noisymix_claims
from workbench.lib.robustness.params import (AugMixParams, MixingParams, NFMNoiseParams, SuiteParams,
                                             check_augmix_recipes)
from workbench.lib.robustness.recipes import (NOISYMIX_PAPER, NOISYMIX_RECIPES, augmix_preview, nfm_recipe,
                                              noisymix_recipe)
from workbench.lib.robustness.suite import KEY_METRICS, SUITE_NOTE, run_suite, summarise

ALL_RECIPES = ("baseline", "input_mixup", "manifold_mixup", "noisy_input_mixup", "nfm", "augmix", "augmix_jsd",
               "noisymix")
#: NoisyMix's mixing levels (one α for every mixing recipe); NFM's own noise levels are NFMNoiseParams
NoisyMixMixing = MixingParams.with_defaults(alpha=1.0, add_noise=0.5, mult_noise=0.5, sparsity=0.65)


class CompareConfig(NoisyMixMixing, NFMNoiseParams, AugMixParams, SuiteParams, Config):
    variants: tuple = Param(ALL_RECIPES, choices=ALL_RECIPES, multiple=True, doc="recipes trained and compared")

    def check(self) -> None:
        super().check()
        check_augmix_recipes(self.dataset, self.variants)


def run(cfg: CompareConfig, ctx: RunContext) -> dict[str, float]:
    recipes = {n: noisymix_recipe(n, cfg, cfg) if n in NOISYMIX_RECIPES and n != "baseline" else
               nfm_recipe(n, cfg.alpha, cfg.nfm_add_noise, cfg.nfm_mult_noise, 0.0) for n in cfg.variants}
    result = run_suite(cfg, ctx, recipes)
    if {"augmix", "augmix_jsd", "noisymix"} & set(cfg.variants):
        from workbench.lib import data

        image = data.tensors(cfg.dataset, "test", seed=cfg.seed)[0][0]
        ctx.artifact("augmix_preview", augmix_preview(image, cfg, ctx.rng("augmix_preview")), kind="json")
    rng = lambda name: ctx.rng(f"claims/{name}")  # noqa: E731
    for claim in nfm_claims(result, cfg.dataset, cfg.margin, rng) + noisymix_claims(result, cfg.dataset, cfg.margin,
                                                                                    rng):
        ctx.claim(claim)
    return summarise(result.summary, ("clean_accuracy", "mean_corruption_accuracy", "noise_accuracy", "ece", "mce"))


#: Every recipe in its papers' CIFAR-10 setting (for a GPU): PreActResNet-18, 200 epochs, cosine decay (one schedule
#: for all, as NoisyMix trains), random crop + flip, NFM's and NoisyMix's own noise levels, inputs normalised with
#: mean = std = 0.5 (NoisyMix's code).
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
    distributed=True,  # data-parallel suite (workbench.lib.robustness.suite): exact under torchrun
    distributed_note=SUITE_NOTE,
    ddp_smoke={"arch": "mlp", "augment": "crop_flip"},  # BN-free: batch statistics are per rank on CPU
    preflight=needs_dataset,
))
