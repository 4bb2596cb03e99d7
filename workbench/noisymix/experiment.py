"""``noisymix``: NoisyMix against a baseline and AugMix + JSD, on the corruption benchmark.

Each recipe trains with the same initial weights, batches and budget; evaluation covers clean accuracy,
the 15 (+4) corruptions × 5 severities (mean corruption accuracy, mCE vs the baseline), noise curves,
ECE with its reliability table and flip probabilities. Claims: NoisyMix has the best mean corruption
accuracy; the stability (JSD) loss lowers ECE; clean accuracy stays within a margin of the baseline.
"""
from __future__ import annotations

from typing import Any

import torch

from workbench.noisymix.augmix import augmix
from workbench.noisymix.losses import augmix_jsd_loss, noisymix_loss
from workbench.params import ConfigError, Param
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

RECIPES = ("baseline", "augmix_jsd", "noisymix")


class AugMixParams:
    """The AugMix augmentation parameters (a mixin: ``Config`` collects the ``Param``s of every class it derives from).

    Shared by ``noisymix`` and ``robustness_compare``; :meth:`check_augmix` is their common cross-check.
    """

    augmix_severity: int = Param(3, bounds=(1, 10), doc="AugMix op severity")
    augmix_width: int = Param(3, bounds=(1, 8), doc="AugMix chains per image")
    augmix_depth: int = Param(-1, bounds=(-1, 3), doc="ops per chain (-1: uniform in 1..3)")
    all_ops: bool = Param(False, doc="also use colour/contrast/brightness/sharpness (overlap the test corruptions)")

    def check_augmix(self) -> None:
        if self.augmix_depth == 0:
            raise ConfigError("augmix_depth must be -1 (random) or 1..3", "augmix_depth")


class NoisyMixConfig(AugMixParams, SuiteConfig):
    variants: str = Param("baseline,augmix_jsd,noisymix", doc=f"comma-separated recipes among {', '.join(RECIPES)}")
    alpha: float = Param(1.0, bounds=(0.0, 10.0), doc="λ ~ Beta(α, α) mixing concentration")
    add_noise: float = Param(0.5, bounds=(0.0, 5.0), doc="σ_add (×1, ×2, ×3 on the clean and augmented thirds)")
    mult_noise: float = Param(0.5, bounds=(0.0, 5.0), doc="σ_mult, multiplicative noise level")
    sparsity: float = Param(0.65, bounds=(0.0, 1.0), doc="probability of dropping each noise element")
    jsd_weight: float = Param(12.0, bounds=(0.0, 100.0), doc="γ, weight of the Jensen–Shannon stability loss")

    def check(self) -> None:
        super().check()
        names = parse_recipes(self.variants, RECIPES)
        if self.dataset == "two_moons" and set(names) - {"baseline"}:
            raise ConfigError("AugMix recipes need an image dataset, not two_moons", "dataset")
        self.check_augmix()


def augmix_views(x: torch.Tensor, cfg: Any, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent AugMix views of a batch (computed on the CPU, returned on x's device)."""
    xc = x.detach().float().cpu()
    kw = dict(severity=cfg.augmix_severity, width=cfg.augmix_width, depth=cfg.augmix_depth, all_ops=cfg.all_ops)
    both = augmix(torch.cat([xc, xc]), generator=gen, **kw).to(x.device, x.dtype)  # one batched call
    return both[: len(xc)], both[len(xc):]


def noisymix_recipe(name: str, cfg: Any, *, add_noise: float | None = None, mult_noise: float | None = None) -> LossFn:
    """The loss of one recipe: ``baseline`` (CE), ``augmix_jsd`` or ``noisymix``."""
    import torch.nn.functional as F

    add = cfg.add_noise if add_noise is None else add_noise
    mult = cfg.mult_noise if mult_noise is None else mult_noise

    def loss_fn(model, x, y, gen):  # type: ignore[no-untyped-def]
        if name == "baseline":
            logits = model(x)
            return F.cross_entropy(logits, y), logits
        a1, a2 = augmix_views(x, cfg, gen)
        if name == "augmix_jsd":
            return augmix_jsd_loss(model, x, y, a1, a2, cfg.jsd_weight)
        return noisymix_loss(model, x, y, a1, a2, cfg.alpha, add, mult, cfg.sparsity, cfg.jsd_weight, True, gen)

    return loss_fn


def run(cfg: NoisyMixConfig, ctx: Any) -> dict[str, float]:
    names = parse_recipes(cfg.variants, RECIPES)
    res = run_suite(cfg, ctx, {n: noisymix_recipe(n, cfg) for n in names})
    check_claims(ctx, cfg, res, ("corruption", "ece", "clean"))
    return summarise(res, ("clean_accuracy", "mean_corruption_accuracy", "mce", "ece"))


EXPERIMENT = register(Experiment(
    name="noisymix",
    title="NoisyMix",
    description=__doc__ or "",
    config=NoisyMixConfig,
    run=run,
    smoke={"steps": 3, "batch_size": 32, "width": 8, "eval_limit": 16, "corruption_set": "standard", "eval_every": 3},
    demo={"steps": 300},
    key_metrics=KEY_METRICS,
))
