"""``noisymix``: NoisyMix against a baseline, AugMix and AugMix + JSD, on the corruption benchmark.

Each recipe trains with the same initial weights, batches and budget; evaluation covers clean accuracy (full
test set), the 15 (+4) corruptions × 5 severities (mean corruption accuracy, mCE vs the baseline), noise
curves, ECE (15 bins) with its reliability table and flip probabilities. Claims: NoisyMix has the best mean
corruption accuracy; the stability (JSD) loss lowers ECE (AugMix + JSD against AugMix alone, the ablation
that isolates the loss); clean accuracy stays within a margin of the baseline.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from workbench.core.context import RunContext
from workbench.lib.data import needs_dataset
from workbench.methods.noisymix.augmix import augmix, augmix_chains
from workbench.methods.noisymix.losses import augmix_jsd_loss, augmix_loss, noisymix_loss
from workbench.core.params import ConfigError, Param, ParamGroup
from workbench.core.registry import Experiment, register
from workbench.lib.robustness.mixing import mixing_params
from workbench.lib.robustness.suite import (KEY_METRICS, NORMALISE, SUITE_NOTE, Results, SuiteConfig,
                                        clean_within_margin, fmt, run_suite, summarise)
from workbench.lib.robustness.training import Recipe

RECIPES = ("baseline", "augmix", "augmix_jsd", "noisymix")
#: NoisyMix's mixing and noise levels (σ_add = σ_mult = 0.5, sparsity 0.65), declared once.
NoisyMixMixing = mixing_params("NoisyMix mixing", add_noise=0.5, mult_noise=0.5, sparsity=0.65)


class AugMixParams(ParamGroup):
    """AugMix (Hendrycks et al. 2020) and its Jensen–Shannon stability loss, shared by ``noisymix`` and
    ``robustness_compare``; :meth:`check_augmix` is their common cross-check."""

    title = "AugMix"
    augmix_severity: int = Param(3, bounds=(1, 10), doc="AugMix op severity")
    augmix_width: int = Param(3, bounds=(1, 8), doc="AugMix chains per image")
    augmix_depth: int = Param(-1, bounds=(-1, 3), doc="ops per chain (-1: uniform in 1..3)")
    all_ops: bool = Param(False, doc="also use colour/contrast/brightness/sharpness (overlap the test corruptions)")
    jsd_weight: float = Param(12.0, bounds=(0.0, 100.0), soft=(0.0, 30.0), doc="γ, weight of the Jensen–Shannon stability loss")

    def check_augmix(self) -> None:
        if self.augmix_depth == 0:  # type: ignore[attr-defined]
            raise ConfigError("parameter 'augmix_depth' = 0 is not allowed; allowed: -1 (random) or 1..3",
                              "augmix_depth")
        augmix_recipes = {"augmix", "augmix_jsd", "noisymix"} & set(self.variants)  # type: ignore[attr-defined]
        if self.dataset == "two_moons" and augmix_recipes:  # type: ignore[attr-defined]
            raise ConfigError(f"parameter 'variants': {', '.join(sorted(augmix_recipes))} need an image dataset, "
                              "not two_moons", "variants")


class NoisyMixConfig(NoisyMixMixing, AugMixParams, SuiteConfig):  # type: ignore[misc, valid-type]
    variants: tuple = Param(RECIPES, choices=RECIPES, multiple=True, doc="recipes trained and compared")
    normalise: str = Param("fixed", choices=NORMALISE,
                           doc="inputs standardised inside the model, (x − mean)/std: with mean = std = 0.5 "
                               "(NoisyMix's code), per channel with the training set's mean and std, or not at all")

    def check(self) -> None:
        super().check()
        self.check_augmix()


def augmix_views(x: torch.Tensor, cfg: Any, gen: torch.Generator, n: int = 2) -> tuple[torch.Tensor, ...]:
    """``n`` independent AugMix views of a batch (one batched call on the CPU; returned on x's device)."""
    xc = x.detach().float().cpu()
    kw = dict(severity=cfg.augmix_severity, width=cfg.augmix_width, depth=cfg.augmix_depth, all_ops=cfg.all_ops)
    views = augmix(torch.cat([xc] * n), generator=gen, **kw).to(x.device, x.dtype)
    return tuple(views.split(len(xc)))


def noisymix_recipe(name: str, cfg: Any, *, add_noise: float | None = None, mult_noise: float | None = None) -> Recipe:
    """One recipe: ``baseline`` (CE), ``augmix`` (CE on one AugMix view), ``augmix_jsd`` or ``noisymix``; the
    AugMix views are the recipe's ``views`` (prepared ahead of the step by the suite)."""
    import torch.nn.functional as F

    if name not in RECIPES:
        raise ValueError(f"recipe must be one of {', '.join(RECIPES)}, got {name!r}")
    add = cfg.add_noise if add_noise is None else add_noise
    mult = cfg.mult_noise if mult_noise is None else mult_noise

    def loss_fn(model, x, y, gen, *views):  # type: ignore[no-untyped-def]
        if name == "baseline":
            logits = model(x)
            return F.cross_entropy(logits, y), logits
        if name == "augmix":
            return augmix_loss(model, views[0], y)
        if name == "augmix_jsd":
            return augmix_jsd_loss(model, x, y, views[0], views[1], cfg.jsd_weight)
        return noisymix_loss(model, x, y, views[0], views[1], cfg.alpha, add, mult, cfg.sparsity, cfg.jsd_weight,
                             True, gen)

    n_views = {"baseline": 0, "augmix": 1}.get(name, 2)
    views = (lambda x, gen: augmix_views(x, cfg, gen, n_views)) if n_views else None
    return Recipe(loss=loss_fn, views=views)


def preview(ctx: RunContext, cfg: Any, image: torch.Tensor, seed: int = 0) -> None:
    """Store one training image, its AugMix chains and their mixture (``augmix_preview``) for the views."""
    img = image.detach().float().cpu()[None]
    kw = dict(severity=cfg.augmix_severity, width=cfg.augmix_width, depth=cfg.augmix_depth, all_ops=cfg.all_ops)
    chains = augmix_chains(img, generator=torch.Generator().manual_seed(seed), **kw)
    mixed = augmix(img, generator=torch.Generator().manual_seed(seed), **kw)
    panels = [img[0]] + [c[0] for c in chains] + [mixed[0]]
    ctx.artifact("augmix_preview", {"severity": cfg.augmix_severity,
                                    "names": ["clean"] + [f"chain {i + 1}" for i in range(len(chains))] + ["AugMix"],
                                    "images": np.stack([p.numpy() for p in panels]).astype(np.float32)}, kind="json")


def check_claims(ctx: RunContext, cfg: SuiteConfig, res: Results) -> None:
    """NoisyMix's claims: the best mean corruption accuracy; the stability (JSD) loss lowers ECE (AugMix + JSD
    against AugMix without it); clean accuracy kept."""
    if "noisymix" in res and "mean_corruption_accuracy" in res["noisymix"] and len(res) > 1:
        names = list(res)
        best = max(names, key=lambda n: res[n]["mean_corruption_accuracy"])
        ctx.claim("NoisyMix has the best mean corruption accuracy", fmt(res, "mean_corruption_accuracy", names),
                  best == "noisymix", f"15 standard corruptions × 5 severities (best: {best}); dataset {cfg.dataset}")
    if "augmix_jsd" in res and "augmix" in res:
        a, b = res["augmix_jsd"]["ece"], res["augmix"]["ece"]
        ctx.claim("The stability (JSD) loss lowers ECE", f"augmix_jsd {a:.4f} vs augmix {b:.4f}", a < b,
                  "15-bin ECE on the full clean test set: AugMix + JSD against AugMix alone (same batches and budget)")
    clean_within_margin(ctx, cfg, res, "noisymix")


def run(cfg: NoisyMixConfig, ctx: RunContext) -> dict[str, float]:
    res = run_suite(cfg, ctx, {n: noisymix_recipe(n, cfg) for n in cfg.variants})
    if {"augmix", "augmix_jsd", "noisymix"} & set(cfg.variants):
        from workbench.lib import data

        preview(ctx, cfg, data.tensors(cfg.dataset, "test", seed=cfg.seed)[0][0])
    check_claims(ctx, cfg, res)
    return summarise(res, ("clean_accuracy", "mean_corruption_accuracy", "mce", "ece", "noise_accuracy"))


#: NoisyMix's CIFAR-10 setting (for a GPU; its ``cifar.py``): PreActResNet-18, 200 epochs of the 45,000-image
#: training part, SGD (Nesterov) lr 0.1 with cosine decay, weight decay 5e-4, random crop + flip before AugMix
#: (severity 3, width 3, depth 1–3), inputs normalised with mean = std = 0.5, γ = 12, α = 1, σ_add = σ_mult = 0.5,
#: sparsity 0.65.
PAPER = {"dataset": "cifar10", "arch": "resnet", "width": 64, "blocks": 2, "normalise": "fixed", "augment": "crop_flip",
         "steps": 70_200, "batch_size": 128, "lr": 0.1, "schedule": "cosine", "momentum": 0.9, "weight_decay": 5e-4,
         "eval_every": 351, "curve_images": 10_000, "eval_limit": 0, "corruption_set": "all",
         "augmix_severity": 3, "augmix_width": 3, "augmix_depth": -1, "jsd_weight": 12.0,
         "alpha": 1.0, "add_noise": 0.5, "mult_noise": 0.5, "sparsity": 0.65}
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
    distributed_note=SUITE_NOTE,
    preflight=needs_dataset,
))
