"""The recipes the robustness experiments train, as :class:`~workbench.lib.robustness.training.Recipe` objects.

- :func:`nfm_recipe`: NFM or one of its special cases (:data:`~workbench.lib.robustness.losses.VARIANTS`);
- :func:`noisymix_recipe`: the baseline, AugMix (no JSD), AugMix + JSD or NoisyMix, with the AugMix views of
  each batch as the recipe's ``views`` (prepared a step ahead by the trainer);
- :func:`augmix_views`, :func:`augmix_preview` (one image, its AugMix chains and their mixture, for the views).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.core.context import Shard
from workbench.lib.robustness.augmix import augmix, augmix_mix, augmix_parts
from workbench.lib.robustness.losses import VARIANTS, augmix_jsd_loss, augmix_loss, nfm_loss, noisymix_loss
from workbench.lib.robustness.params import AugMixParams, MixingParams
from workbench.lib.robustness.training import Recipe

__all__ = ["NFM_RECIPES", "NOISYMIX_RECIPES", "nfm_recipe", "noisymix_recipe", "augmix_views", "augmix_preview"]

#: NFM and its special cases (NFM §3)
NFM_RECIPES: tuple[str, ...] = tuple(VARIANTS)
#: the recipes of the NoisyMix experiment: the baseline and the AugMix family
NOISYMIX_RECIPES = ("baseline", "augmix", "augmix_jsd", "noisymix")


def nfm_recipe(name: str, alpha: float, add_noise: float, mult_noise: float, sparsity: float = 0.0) -> Recipe:
    """The recipe of one NFM variant: ``nfm_loss`` with these levels, drawing λ, π, k and the noise from the
    recipe's generator."""
    if name not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {name!r}")

    def loss(model: nn.Module, x: Tensor, y: Tensor, gen: torch.Generator,
             shard: Shard | None = None) -> tuple[Tensor, Tensor]:
        return nfm_loss(model, x, y, name, alpha, add_noise, mult_noise, sparsity, gen, shard=shard)

    return Recipe(loss=loss)


def augmix_views(x: Tensor, aug: AugMixParams, gen: torch.Generator, n: int = 2,
                 shard: Shard | None = None) -> tuple[Tensor, ...]:
    """``n`` independent AugMix views of a batch (one batched call on the CPU; returned on x's device); ``shard``:
    ``x`` is this rank's rows of the global batch (the global batch's draws, this rank's views)."""
    xc = x.detach().float().cpu()
    views = augmix(torch.cat([xc] * n), severity=aug.augmix_severity, width=aug.augmix_width,
                   depth=aug.augmix_depth, all_ops=aug.all_ops, generator=gen,
                   shard=None if shard is None else shard.repeat(n)).to(x.device, x.dtype)
    return tuple(views.split(len(xc)))


def noisymix_recipe(name: str, aug: AugMixParams, mixing: MixingParams) -> Recipe:
    """``baseline`` (CE), ``augmix`` (CE on one AugMix view), ``augmix_jsd`` (AugMix Eq. (1)) or ``noisymix``
    (NoisyMix Eq. (4)–(5) with ``mixing``'s α, σ_add, σ_mult and sparsity)."""
    if name not in NOISYMIX_RECIPES:
        raise ValueError(f"recipe must be one of {', '.join(NOISYMIX_RECIPES)}, got {name!r}")
    gamma = aug.jsd_weight
    alpha, add, mult, sparsity = mixing.alpha, mixing.add_noise, mixing.mult_noise, mixing.sparsity

    def loss(model: nn.Module, x: Tensor, y: Tensor, gen: torch.Generator, *views: Tensor,
             shard: Shard | None = None) -> tuple[Tensor, Tensor]:
        if name == "baseline":
            logits = model(x)
            return F.cross_entropy(logits, y), logits
        if name == "augmix":
            return augmix_loss(model, views[0], y)
        if name == "augmix_jsd":
            return augmix_jsd_loss(model, x, y, views[0], views[1], gamma)
        return noisymix_loss(model, x, y, views[0], views[1], alpha, add, mult, sparsity, gamma, True, gen,
                             shard=shard)

    n_views = {"baseline": 0, "augmix": 1}.get(name, 2)
    if not n_views:
        return Recipe(loss=loss)

    def views(x: Tensor, gen: torch.Generator, shard: Shard | None = None) -> tuple[Tensor, ...]:
        return augmix_views(x, aug, gen, n_views, shard)

    return Recipe(loss=loss, views=views)


def augmix_preview(image: Tensor, aug: AugMixParams, generator: torch.Generator) -> dict[str, Any]:
    """One image, the AugMix chains drawn for it and their mixture (the same draws: the mixture is made of
    the chains shown), as ``{"severity", "names", "images"}`` (the ``augmix_preview`` artifact)."""
    img = image.detach().float().cpu()[None]
    chains, w, m = augmix_parts(img, aug.augmix_severity, aug.augmix_width, aug.augmix_depth, 1.0, aug.all_ops,
                                generator)
    mixed = augmix_mix(img, chains, w, m)
    panels = [img[0]] + [c[0] for c in chains] + [mixed[0]]
    return {"severity": aug.augmix_severity,
            "names": ["clean"] + [f"chain {i + 1}" for i in range(len(chains))] + ["AugMix"],
            "images": np.stack([p.numpy() for p in panels]).astype(np.float32)}


#: NoisyMix's CIFAR-10 protocol (for a GPU; its ``cifar.py``): PreActResNet-18, 200 epochs of the 45,000-image
#: training part, SGD lr 0.1 with cosine decay, weight decay 5e-4, random crop + flip before AugMix (severity 3,
#: width 3, depth 1–3), inputs normalised with mean = std = 0.5, γ = 12, α = 1, σ_add = σ_mult = 0.5, sparsity 0.65;
#: the ``paper`` preset of ``noisymix`` and, with NFM's noise levels, of ``robustness_compare``.
NOISYMIX_PAPER = {
    "dataset": "cifar10", "arch": "resnet", "width": 64, "blocks": 2, "normalise": "fixed", "augment": "crop_flip",
    "steps": 70_200, "batch_size": 128, "lr": 0.1, "schedule": "cosine", "momentum": 0.9, "weight_decay": 5e-4,
    "eval_every": 351, "curve_images": 10_000, "eval_limit": 0, "corruption_set": "all",
    "augmix_severity": 3, "augmix_width": 3, "augmix_depth": -1, "jsd_weight": 12.0,
    "alpha": 1.0, "add_noise": 0.5, "mult_noise": 0.5, "sparsity": 0.65}
