"""``nfm``: Noisy Feature Mixup against its special cases, evaluated under test-time noise and corruptions.

Trains the chosen variants (default: baseline, input mixup, manifold mixup, noisy input mixup, NFM) with the
same initial weights, batches and budget, then measures clean accuracy, accuracy along white-noise and
salt-and-pepper levels (NFM §5), the corruption benchmark and ECE. On ``two_moons`` (with ``label_noise``)
it stores decision boundaries instead. Claims: NFM keeps the highest accuracy as noise grows; clean
accuracy stays within a margin of the baseline.
"""
from __future__ import annotations

from workbench.context import RunContext
from workbench.data import needs_dataset
from workbench.nfm.losses import VARIANTS, nfm_loss
from workbench.params import Param
from workbench.registry import Experiment, register
from workbench.robustness.mixing import mixing_params
from workbench.robustness.suite import (KEY_METRICS, SUITE_NOTE, LossFn, Results, SuiteConfig, clean_within_margin,
                                        fmt, run_suite, summarise)

DEFAULT_VARIANTS = ("baseline", "input_mixup", "manifold_mixup", "noisy_input_mixup", "nfm")
#: NFM's mixing and noise levels (§5: σ_add = 0.4, σ_mult = 0.2), declared once; robustness_compare reuses them.
NFMMixing = mixing_params("NFM mixing", add_noise=0.4, mult_noise=0.2, sparsity=0.0)


class NFMConfig(NFMMixing, SuiteConfig):  # type: ignore[misc, valid-type]
    variants: tuple = Param(DEFAULT_VARIANTS, choices=tuple(VARIANTS), multiple=True, doc="recipes trained and compared")


def nfm_recipe(name: str, alpha: float, add_noise: float, mult_noise: float, sparsity: float) -> LossFn:
    """The loss function of one NFM variant (see :data:`workbench.nfm.VARIANTS`)."""

    def loss_fn(model, x, y, gen):  # type: ignore[no-untyped-def]
        return nfm_loss(model, x, y, name, alpha, add_noise, mult_noise, sparsity, gen)

    return loss_fn


def check_claims(ctx: RunContext, cfg: SuiteConfig, res: Results) -> None:
    """NFM's claims: the highest accuracy as test-time noise grows, among the mixup family; clean accuracy kept."""
    family = [n for n in ("baseline", "input_mixup", "manifold_mixup", "noisy_input_mixup", "noise_only", "nfm")
              if n in res]
    if "nfm" in res and len(family) > 1:
        best = max(family, key=lambda n: res[n]["noise_accuracy"])
        ctx.claim("NFM keeps the highest accuracy as test-time noise grows", fmt(res, "noise_accuracy", family),
                  best == "nfm",
                  ("mean accuracy over the Gaussian input-noise levels " if cfg.dataset == "two_moons" else
                   "mean accuracy over the white-noise and salt-and-pepper levels ")
                  + f"against the mixup family (best: {best}); dataset {cfg.dataset}")
    clean_within_margin(ctx, cfg, res, "nfm")


def run(cfg: NFMConfig, ctx: RunContext) -> dict[str, float]:
    recipes = {n: nfm_recipe(n, cfg.alpha, cfg.add_noise, cfg.mult_noise, cfg.sparsity) for n in cfg.variants}
    res = run_suite(cfg, ctx, recipes)
    check_claims(ctx, cfg, res)
    return summarise(res, ("clean_accuracy", "noise_accuracy", "mean_corruption_accuracy", "ece"))


EXPERIMENT = register(Experiment(
    name="nfm",
    title="Noisy Feature Mixup",
    description=__doc__ or "",
    config=NFMConfig,
    run=run,
    smoke={"steps": 3, "batch_size": 32, "width": 8, "eval_limit": 16, "corruption_set": "noise", "eval_every": 3,
           "variants": ("baseline", "input_mixup", "nfm")},
    demo={"steps": 300},
    key_metrics=KEY_METRICS,
    distributed_note=SUITE_NOTE,
    preflight=needs_dataset,
))
