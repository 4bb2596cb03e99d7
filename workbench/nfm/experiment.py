"""``nfm``: Noisy Feature Mixup against its special cases, evaluated under test-time noise and corruptions.

Trains the chosen variants (default: baseline, input mixup, manifold mixup, noisy input mixup, NFM) with the
same initial weights, batches and budget, then measures clean accuracy, accuracy along white-noise and
salt-and-pepper levels (NFM §5), the corruption benchmark and ECE. On ``two_moons`` (with ``label_noise``)
it stores decision boundaries instead. Claims: NFM keeps the highest accuracy as noise grows; clean
accuracy stays within a margin of the baseline.
"""
from __future__ import annotations

from typing import Any

from workbench.nfm.losses import VARIANTS, nfm_loss
from workbench.params import Param
from workbench.registry import Experiment, register
from workbench.robustness.suite import (
    KEY_METRICS,
    LossFn,
    SuiteConfig,
    check_claims,
    parse_recipes,
    run_suite,
    summarise,
)

DEFAULT_VARIANTS = "baseline,input_mixup,manifold_mixup,noisy_input_mixup,nfm"


class NFMConfig(SuiteConfig):
    variants: str = Param(DEFAULT_VARIANTS, doc=f"comma-separated recipes among {', '.join(VARIANTS)}")
    alpha: float = Param(1.0, bounds=(0.0, 10.0), doc="λ ~ Beta(α, α) mixing concentration (0: no mixing)")
    add_noise: float = Param(0.4, bounds=(0.0, 5.0), doc="σ_add, additive noise level")
    mult_noise: float = Param(0.2, bounds=(0.0, 5.0), doc="σ_mult, multiplicative noise level")
    sparsity: float = Param(0.0, bounds=(0.0, 1.0), doc="probability of dropping each noise element")

    def check(self) -> None:
        super().check()
        parse_recipes(self.variants, tuple(VARIANTS))


def nfm_recipe(name: str, alpha: float, add_noise: float, mult_noise: float, sparsity: float) -> LossFn:
    """The loss function of one NFM variant (see :data:`workbench.nfm.VARIANTS`)."""

    def loss_fn(model, x, y, gen):  # type: ignore[no-untyped-def]
        return nfm_loss(model, x, y, name, alpha, add_noise, mult_noise, sparsity, gen)

    return loss_fn


def run(cfg: NFMConfig, ctx: Any) -> dict[str, float]:
    names = parse_recipes(cfg.variants, tuple(VARIANTS))
    recipes = {n: nfm_recipe(n, cfg.alpha, cfg.add_noise, cfg.mult_noise, cfg.sparsity) for n in names}
    res = run_suite(cfg, ctx, recipes)
    check_claims(ctx, cfg, res, ("noise", "clean"))
    return summarise(res, ("clean_accuracy", "noise_accuracy", "mean_corruption_accuracy", "ece"))


EXPERIMENT = register(Experiment(
    name="nfm",
    title="Noisy Feature Mixup",
    description=__doc__ or "",
    config=NFMConfig,
    run=run,
    smoke={"steps": 3, "batch_size": 32, "width": 8, "eval_limit": 16, "corruption_set": "noise", "eval_every": 3,
           "variants": "baseline,input_mixup,nfm"},
    demo={"steps": 300},
    key_metrics=KEY_METRICS,
))
