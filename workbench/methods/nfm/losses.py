"""Noisy Feature Mixup (Lim, Erichson, Utrera, Xu, Mahoney, ICLR 2022): the training objective.

Per batch: pick a mixing point k uniformly among {input, output of each stage except the last},
λ ~ Beta(α, α) and a permutation π; apply :func:`mix_features` (Eq. (2)) at k and train on the mixed
cross-entropy (Eq. (3)):  λ·CE(f(x̃), y) + (1−λ)·CE(f(x̃), y[π]).

The named special cases of Section 3 are entries of :data:`VARIANTS`:

=================== ============ ========= =====================
variant             mixing point mixing    noise (σ_add, σ_mult)
=================== ============ ========= =====================
baseline            —            no        no
input_mixup         input        λ~Beta    0
manifold_mixup      any          λ~Beta    0
noisy_input_mixup   input        λ~Beta    yes
noise_only          any          λ = 1     yes
nfm                 any          λ~Beta    yes
=================== ============ ========= =====================
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.lib.robustness.mixing import (
    choose_mixing_point,
    mix_features,
    mixup_cross_entropy,
    sample_mixing,
    staged_forward,
)

__all__ = ["NFMVariant", "VARIANTS", "mixup_cross_entropy", "nfm_loss", "choose_mixing_point"]


@dataclass(frozen=True)
class NFMVariant:
    """Which parts of NFM are on: mixing (λ ~ Beta vs λ = 1), noise, and where it may happen."""

    name: str
    mix: bool
    noise: bool
    where: str  # "none" | "input" | "any"


VARIANTS: dict[str, NFMVariant] = {
    v.name: v
    for v in (
        NFMVariant("baseline", mix=False, noise=False, where="none"),
        NFMVariant("input_mixup", mix=True, noise=False, where="input"),
        NFMVariant("manifold_mixup", mix=True, noise=False, where="any"),
        NFMVariant("noisy_input_mixup", mix=True, noise=True, where="input"),
        NFMVariant("noise_only", mix=False, noise=True, where="any"),
        NFMVariant("nfm", mix=True, noise=True, where="any"),
    )
}


def nfm_loss(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    variant: str = "nfm",
    alpha: float = 1.0,
    add_noise_level: float = 0.4,
    mult_noise_level: float = 0.2,
    sparsity: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """The training loss of one NFM variant on a batch; returns ``(loss, logits)``.

    ``variant`` is a key of :data:`VARIANTS`. Noise levels are ignored by the noise-free variants, α by
    the mixing-free ones, so one config serves every special case.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    spec = VARIANTS[variant]
    if spec.where == "none":
        logits = model(x)
        return F.cross_entropy(logits, y), logits
    n = x.shape[0]
    lam, perm = sample_mixing(n, alpha if spec.mix else 0.0, generator)
    perm = perm.to(x.device)
    k = choose_mixing_point(model, spec.where, generator)
    add = add_noise_level if spec.noise else 0.0
    mult = mult_noise_level if spec.noise else 0.0

    def mix(h: Tensor) -> Tensor:
        return mix_features(h, perm, lam, add, mult, sparsity, generator)

    logits = staged_forward(model, x, k, mix)
    return mixup_cross_entropy(logits, y, perm, lam), logits
