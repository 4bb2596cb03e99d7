"""``robustness_compare``: seven training recipes, one budget, one corruption benchmark.

baseline, input mixup, manifold mixup, noisy input mixup, NFM (Lim et al. 2022), AugMix + JSD
(Hendrycks et al. 2020) and NoisyMix (Erichson et al.) are trained from the same initial weights on the same
batches for the same number of steps, then evaluated on clean data, the 21 corruptions × 5 severities,
the NFM noise curves, ECE and flip probabilities. The four claims of the issue are checked and logged.
This shared module imports the two method folders (they never import each other).
"""
from __future__ import annotations

from typing import Any

from workbench.nfm.experiment import nfm_recipe
from workbench.noisymix.experiment import AugMixParams, noisymix_recipe
from workbench.params import ConfigError, Param
from workbench.registry import Experiment, register
from workbench.robustness.suite import KEY_METRICS, SuiteConfig, check_claims, parse_recipes, run_suite, summarise

ALL_RECIPES = ("baseline", "input_mixup", "manifold_mixup", "noisy_input_mixup", "nfm", "augmix_jsd", "noisymix")


class CompareConfig(AugMixParams, SuiteConfig):
    variants: str = Param(",".join(ALL_RECIPES), doc=f"comma-separated recipes among {', '.join(ALL_RECIPES)}")
    alpha: float = Param(1.0, bounds=(0.0, 10.0), doc="λ ~ Beta(α, α) for every mixing recipe")
    nfm_add_noise: float = Param(0.4, bounds=(0.0, 5.0), doc="σ_add of NFM and noisy mixup")
    nfm_mult_noise: float = Param(0.2, bounds=(0.0, 5.0), doc="σ_mult of NFM and noisy mixup")
    add_noise: float = Param(0.5, bounds=(0.0, 5.0), doc="σ_add of NoisyMix (×1, ×2, ×3 per third)")
    mult_noise: float = Param(0.5, bounds=(0.0, 5.0), doc="σ_mult of NoisyMix")
    sparsity: float = Param(0.65, bounds=(0.0, 1.0), doc="NoisyMix noise sparsity")
    jsd_weight: float = Param(12.0, bounds=(0.0, 100.0), doc="γ of the Jensen–Shannon loss (AugMix, NoisyMix)")

    def check(self) -> None:
        super().check()
        names = parse_recipes(self.variants, ALL_RECIPES)
        if self.dataset == "two_moons" and {"augmix_jsd", "noisymix"} & set(names):
            raise ConfigError("AugMix recipes need an image dataset; drop augmix_jsd/noisymix for two_moons", "variants")
        self.check_augmix()


def run(cfg: CompareConfig, ctx: Any) -> dict[str, float]:
    names = parse_recipes(cfg.variants, ALL_RECIPES)
    recipes = {}
    for n in names:
        if n in ("augmix_jsd", "noisymix"):
            recipes[n] = noisymix_recipe(n, cfg)
        else:
            recipes[n] = nfm_recipe(n, cfg.alpha, cfg.nfm_add_noise, cfg.nfm_mult_noise, 0.0)
    res = run_suite(cfg, ctx, recipes)
    check_claims(ctx, cfg, res, ("noise", "corruption", "ece", "clean"))
    return summarise(res, ("clean_accuracy", "mean_corruption_accuracy", "noise_accuracy", "ece", "mce"))


EXPERIMENT = register(Experiment(
    name="robustness_compare",
    title="Robustness: seven recipes on the corruption benchmark",
    description=__doc__ or "",
    config=CompareConfig,
    run=run,
    smoke={"steps": 2, "batch_size": 16, "width": 8, "eval_limit": 16, "corruption_set": "noise", "eval_every": 2},
    demo={"steps": 200},
    key_metrics=KEY_METRICS,
))
