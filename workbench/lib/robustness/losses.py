"""The training objectives of the robustness recipes: Noisy Feature Mixup and its special cases, NoisyMix and
the AugMix ablations (shared by the ``nfm``, ``noisymix`` and ``robustness_compare`` experiments).

**Noisy Feature Mixup** (Lim, Erichson, Utrera, Xu, Mahoney, ICLR 2022). Per batch: pick a mixing point k
uniformly among {input, output of each stage except the last}, λ ~ Beta(α, α) and a permutation π; apply
:func:`~workbench.lib.robustness.mixing.mix_features` (Eq. (2)) at k and train on the mixed cross-entropy (Eq. (3)):
λ·CE(f(x̃), y) + (1−λ)·CE(f(x̃), y[π]). The named special cases of Section 3 are entries of :data:`VARIANTS`:

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

**NoisyMix** (Erichson, Lim, Xu, Utrera, Cao, Mahoney): AugMix views + NFM + Jensen–Shannon stability.
Each example gives (x, AugMix(x), AugMix(x)); the three thirds go through ONE noisy-feature-mixup forward
pass sharing λ, π and the mixing point k, with the additive noise level scaled ×1, ×2, ×3 for the clean,
first and second augmented thirds and each noise element dropped with probability ``sparsity``.
Loss (NoisyMix Eq. (4)–(5), AugMix Eq. (1)):

    L = λ·CE(f(x̃), y) + (1−λ)·CE(f(x̃), y[π])   (clean third only)
        + γ·JS(p_clean, p_aug1, p_aug2),
    JS = (1/3)·Σᵢ KL(pᵢ ‖ M),  M = clamp((p_clean + p_aug1 + p_aug2)/3, 1e-7, 1).

Each third draws its own noise scales b₁, b₂ ~ Beta(2, 5) (the reference code perturbs the thirds one call
each). Ablations: :func:`augmix_jsd_loss` (no mixing, no noise) and :func:`augmix_loss` (AugMix without the
stability term: cross-entropy on one AugMix view, AugMix §4's "no JSD" setting).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.core.context import Shard
from workbench.lib.robustness.mixing import (
    choose_mixing_point,
    mix_features,
    mixup_cross_entropy,
    sample_mixing,
    staged_forward,
)

__all__ = ["NFMVariant", "VARIANTS", "nfm_loss", "jensen_shannon", "noisymix_loss", "augmix_jsd_loss", "augmix_loss"]


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
    shard: Shard | None = None,
) -> tuple[Tensor, Tensor]:
    """The training loss of one NFM variant on a batch; returns ``(loss, logits)``.

    ``variant`` is a key of :data:`VARIANTS`. Noise levels are ignored by the noise-free variants, α by
    the mixing-free ones, so one config serves every special case. ``shard`` (under torchrun): ``x`` is this
    rank's rows of the global batch; λ, π (of the global batch), k and the noise are the global batch's
    (:func:`~workbench.lib.robustness.mixing.mix_features`), the loss the mean over this rank's rows.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    spec = VARIANTS[variant]
    if spec.where == "none":
        logits = model(x)
        return F.cross_entropy(logits, y), logits
    n = x.shape[0] if shard is None else shard.size
    lam, perm = sample_mixing(n, alpha if spec.mix else 0.0, generator)
    perm = perm.to(x.device)
    k = choose_mixing_point(model, spec.where, generator)
    add = add_noise_level if spec.noise else 0.0
    mult = mult_noise_level if spec.noise else 0.0

    def mix(h: Tensor) -> Tensor:
        return mix_features(h, perm, lam, add, mult, sparsity, generator, shard=shard)

    logits = staged_forward(model, x, k, mix)
    return mixup_cross_entropy(logits, y, perm, lam, shard), logits


def jensen_shannon(logits_clean: Tensor, logits_aug1: Tensor, logits_aug2: Tensor) -> Tensor:
    """JS(p₁, p₂, p₃) = (1/3)·Σᵢ KL(pᵢ ‖ M), M = clamp(mean p, 1e-7, 1); batch mean (AugMix Eq. (1)).

    0 for identical inputs, symmetric in its arguments, at most log 3.
    """
    if not (logits_clean.shape == logits_aug1.shape == logits_aug2.shape):
        raise ValueError(
            f"logits must share a shape, got {tuple(logits_clean.shape)}, {tuple(logits_aug1.shape)}, {tuple(logits_aug2.shape)}"
        )
    ps = [F.softmax(z.float(), dim=-1) for z in (logits_clean, logits_aug1, logits_aug2)]
    log_m = torch.clamp((ps[0] + ps[1] + ps[2]) / 3.0, 1e-7, 1.0).log()
    kl = sum((torch.xlogy(p, p) - p * log_m).sum(-1) for p in ps)
    return (kl / 3.0).mean()


def noisymix_loss(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    x_aug1: Tensor,
    x_aug2: Tensor,
    alpha: float = 1.0,
    add_noise_level: float = 0.5,
    mult_noise_level: float = 0.5,
    sparsity: float = 0.65,
    jsd_weight: float = 12.0,
    manifold: bool = True,
    generator: torch.Generator | None = None,
    shard: Shard | None = None,
) -> tuple[Tensor, Tensor]:
    """NoisyMix loss on a batch; returns ``(loss, logits of the clean third)``.

    ``manifold=False`` restricts the mixing point to the input. α = 0 and zero noise give AugMix + JSD.
    ``shard`` (under torchrun): x, x_aug1, x_aug2 are this rank's rows of the global batch; λ, π, k and the noise
    are the global batch's, as in :func:`nfm_loss`.
    """
    if not (x.shape == x_aug1.shape == x_aug2.shape):
        raise ValueError("x, x_aug1 and x_aug2 must have the same shape")
    if jsd_weight < 0:
        raise ValueError(f"jsd_weight must be >= 0, got {jsd_weight}")
    n = x.shape[0]
    xs = torch.cat([x, x_aug1, x_aug2])
    total = n if shard is None else shard.size
    lam, perm = sample_mixing(total, alpha, generator)
    perm = perm.to(x.device)
    index = torch.cat([perm, perm + total, perm + 2 * total])
    k = choose_mixing_point(model, "any" if manifold else "input", generator)
    scale = torch.cat([torch.full((n,), float(i + 1)) for i in range(3)]).to(x.device)
    add = add_noise_level * scale if add_noise_level > 0 else 0.0

    def mix(h: Tensor) -> Tensor:
        return mix_features(h, index, lam, add, mult_noise_level, sparsity, generator, groups=3,
                            shard=None if shard is None else shard.repeat(3))

    logits = staged_forward(model, xs, k, mix)
    clean, aug1, aug2 = torch.split(logits, n)
    loss = mixup_cross_entropy(clean, y, perm, lam, shard) + jsd_weight * jensen_shannon(clean, aug1, aug2)
    return loss, clean


def augmix_jsd_loss(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    x_aug1: Tensor,
    x_aug2: Tensor,
    jsd_weight: float = 12.0,
) -> tuple[Tensor, Tensor]:
    """AugMix + JSD (AugMix Eq. (1)): CE on the clean view + γ·JS of the three views; no mixing, no noise."""
    n = x.shape[0]
    logits = model(torch.cat([x, x_aug1, x_aug2]))
    clean, aug1, aug2 = torch.split(logits, n)
    return F.cross_entropy(clean, y) + jsd_weight * jensen_shannon(clean, aug1, aug2), clean


def augmix_loss(model: nn.Module, x_aug: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """AugMix without the stability term: CE(f(AugMix(x)), y) on one augmented view (AugMix's ``--no-jsd``)."""
    logits = model(x_aug)
    return F.cross_entropy(logits, y), logits
