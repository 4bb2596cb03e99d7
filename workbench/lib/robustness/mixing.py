"""Noisy feature mixing: the step shared by NFM and NoisyMix.

Noisy Feature Mixup (Lim et al., ICLR 2022), Eq. (2)/(3): at a chosen layer k the hidden batch ``h`` becomes

    h̃ = (1 + σ_mult·b₁·U) ⊙ (λ·h + (1−λ)·h[π]) + σ_add·b₂·N,

with U ~ Uniform(−1, 1) and N ~ Normal(0, 1) elementwise, b₁, b₂ ~ Beta(2, 5) scalars per batch,
λ ~ Beta(α, α) and π a permutation of the batch. NoisyMix (Erichson et al.) reuses it with a per-sample
additive level (×1, ×2, ×3 for the clean and the two AugMix thirds) and a ``sparsity`` that drops noise
elements (additive → 0, multiplicative → 1).

This lives in the shared ``workbench.lib.robustness`` toolkit because both methods (and their comparison) need
it; ``workbench.methods.nfm`` re-exports it as the NFM public API. Its declared parameters are
:class:`~workbench.lib.robustness.params.MixingParams`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.core.context import Shard

__all__ = [
    "partners",
    "sample_beta",
    "sample_mixing",
    "mix_features",
    "mixing_points",
    "staged_forward",
    "mixup_cross_entropy",
    "choose_mixing_point",
]


def _check_generator(generator: torch.Generator | None) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


def sample_beta(a: float, b: float, generator: torch.Generator | None = None) -> float:
    """One draw from Beta(a, b), reproducible from a torch generator.

    torch's own Beta sampler takes no generator, so a 63-bit seed is drawn from ``generator`` and handed to
    numpy's Beta sampler. ``a = b = 0`` is not a distribution; callers treat α = 0 as "no mixing" (λ = 1).
    """
    if not (a > 0 and b > 0):
        raise ValueError(f"Beta parameters must be > 0, got a={a}, b={b}")
    _check_generator(generator)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    return float(np.random.default_rng(seed).beta(a, b))


def sample_mixing(
    batch_size: int, alpha: float, generator: torch.Generator | None = None
) -> tuple[float, Tensor]:
    """λ ~ Beta(α, α) (one per batch) and a random permutation π of the batch (NFM Eq. (3)).

    ``alpha == 0`` means no mixing: λ = 1 and π the identity.
    """
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if alpha == 0:
        return 1.0, torch.arange(batch_size)
    lam = sample_beta(alpha, alpha, generator)
    perm = torch.randperm(batch_size, generator=generator)
    return lam, perm


def _rand(kind: str, shape: Sequence[int], like: Tensor, generator: torch.Generator | None) -> Tensor:
    dev = generator.device if generator is not None else like.device
    dtype = like.dtype if like.dtype in (torch.float32, torch.float64) else torch.float32
    if kind == "normal":
        out = torch.randn(tuple(shape), generator=generator, device=dev, dtype=dtype)
    else:
        out = torch.rand(tuple(shape), generator=generator, device=dev, dtype=dtype)
    return out.to(like.device)


def _per_sample(level: float | Tensor, h: Tensor, name: str) -> Tensor | float:
    """A scalar level, or one level per sample broadcast over the feature dimensions."""
    if isinstance(level, Tensor):
        if level.dim() == 0:
            value = float(level)
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
            return value
        if level.dim() != 1 or level.shape[0] != h.shape[0]:
            raise ValueError(f"{name} must be a float or a 1-D tensor of length {h.shape[0]}, got shape {tuple(level.shape)}")
        if bool((level < 0).any()):
            raise ValueError(f"{name} must be >= 0 everywhere")
        return level.to(device=h.device, dtype=h.dtype).view(-1, *([1] * (h.dim() - 1)))
    level = float(level)
    if level < 0:
        raise ValueError(f"{name} must be >= 0, got {level}")
    return level


def _is_zero(level: float | Tensor) -> bool:
    return (not isinstance(level, Tensor) and level == 0.0) or (isinstance(level, Tensor) and not bool(level.ne(0).any()))


def mix_features(
    h: Tensor,
    index: Tensor,
    lam: float,
    add_noise_level: float | Tensor = 0.0,
    mult_noise_level: float | Tensor = 0.0,
    sparsity: float = 0.0,
    generator: torch.Generator | None = None,
    groups: int = 1,
    shard: Shard | None = None,
) -> Tensor:
    """Noisy feature mixup of a batch, NFM Eq. (2).

    h: (N, ...) features or inputs; index: permutation π (LongTensor of length N); lam: λ in [0, 1].
    add_noise_level: σ_add, a float or a per-sample (N,) tensor (NoisyMix's ×1/×2/×3 thirds).
    mult_noise_level: σ_mult, a float or a per-sample (N,) tensor.
    sparsity: probability that each noise element is dropped (additive → 0, multiplicative → 1).
    groups: the batch is ``groups`` equal consecutive blocks, each with its own b₁, b₂ ~ Beta(2, 5) (NoisyMix
    perturbs its clean and two AugMix thirds with separate draws, as its reference code calls the noise once
    per third); 1: one b₁, b₂ for the batch (NFM).

    With both noise levels 0 this is exactly ``lam * h + (1 - lam) * h[index]`` (no random numbers drawn).

    shard: under torchrun, ``h`` is this rank's rows of the global batch and ``index`` a permutation of the global
    batch: the partners h[π] come from every rank (a differentiable gather) and the noise is drawn for the global
    batch and sliced, so the ranks together compute Eq. (2) for the global batch exactly as one process does.
    """
    if not 0.0 <= float(lam) <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    index = torch.as_tensor(index, device=h.device)
    rows = h.shape[0] if shard is None else shard.size
    if index.dim() != 1 or index.shape[0] != rows:
        raise ValueError(f"index must be a 1-D tensor of length {rows}, got shape {tuple(index.shape)}")
    _check_generator(generator)
    if groups < 1 or h.shape[0] % groups:
        raise ValueError(f"groups must be >= 1 and divide the batch size {h.shape[0]}, got {groups}")
    add = _per_sample(add_noise_level, h, "add_noise_level")
    mult = _per_sample(mult_noise_level, h, "mult_noise_level")
    if shard is None:
        mixed = lam * h + (1.0 - lam) * h.index_select(0, index)
        shape = h.shape
    else:
        mixed = lam * h + (1.0 - lam) * partners(h, index, shard)
        shape = torch.Size((shard.size, *h.shape[1:]))  # draws for the global batch, this rank's rows kept

    def draw(kind: str) -> Tensor:
        out = _rand(kind, shape, h, generator)
        return out if shard is None else shard.take(out)

    mult_noise = add_noise = None  # drawn in place on fresh tensors (no autograd), the order of Eq. (2)
    if not _is_zero(mult):
        b1 = _beta_per_group(groups, h, generator)
        mult_noise = draw("uniform").mul_(2.0).sub_(1.0)  # U ~ Uniform(−1, 1)
        if sparsity > 0:
            mult_noise.mul_(draw("uniform") >= sparsity)  # kept elements (× a bool mask)
        mult_noise = mult_noise.mul_(mult * b1).add_(1.0)  # 1 + σ_mult·b₁·U (dropped elements: 1)
    if not _is_zero(add):
        b2 = _beta_per_group(groups, h, generator)
        add_noise = draw("normal")
        if sparsity > 0:
            add_noise.mul_(draw("uniform") >= sparsity)
        add_noise = add_noise.mul_(add * b2)  # σ_add·b₂·N (dropped elements: 0)
    if mult_noise is not None and add_noise is not None:
        return torch.addcmul(add_noise, mult_noise, mixed)
    if mult_noise is not None:
        return mult_noise * mixed
    if add_noise is not None:
        return mixed + add_noise
    return mixed


def partners(h: Tensor, index: Tensor, shard: Shard | None = None) -> Tensor:
    """h[π] for this rank's rows: ``h[index]`` in one process; under torchrun the rows π(i) of the global batch for
    this rank's rows i, gathered from every rank (with gradients: a partner's features train the rank that owns it)."""
    index = torch.as_tensor(index, device=h.device)
    if shard is None:
        return h.index_select(0, index)
    return shard.gather(h, grad=True).index_select(0, shard.take(index))


def _beta_per_group(groups: int, h: Tensor, generator: torch.Generator | None) -> float | Tensor:
    """b ~ Beta(2, 5) (NFM Eq. (2)): one float for the batch, or one draw per group broadcast over its rows."""
    if groups == 1:
        return sample_beta(2.0, 5.0, generator)
    draws = torch.tensor([sample_beta(2.0, 5.0, generator) for _ in range(groups)], dtype=h.dtype, device=h.device)
    return draws.repeat_interleave(h.shape[0] // groups).view(-1, *([1] * (h.dim() - 1)))


def mixing_points(model: nn.Module) -> int:
    """Number of places NFM may mix: the input and the output of every stage except the last."""
    stages = getattr(model, "stages", None)
    if stages is None or not hasattr(model, "head"):
        raise TypeError("model must expose .stages (nn.ModuleList) and .head (see workbench.lib.nn)")
    return len(stages)


def staged_forward(
    model: nn.Module,
    x: Tensor,
    k: int | None = None,
    mix: "callable[[Tensor], Tensor] | None" = None,
) -> Tensor:
    """``head(stages[-1](...stages[0](x)))`` with ``mix`` applied at point k.

    k = 0 mixes the input the first stage sees: after the model's own ``standardise`` when it has one
    (:class:`~workbench.lib.robustness.inputs.Standardised`; the papers mix and add noise to normalised images);
    k = j (1 ≤ j < len(stages)) mixes the output of ``stages[j-1]``. With ``mix`` None (or k None) this is the
    model's plain forward.
    """
    n = mixing_points(model)
    if k is not None and not 0 <= k < n:
        raise ValueError(f"mixing point k must be in [0, {n - 1}], got {k}")
    standardise = getattr(model, "standardise", None)
    h = standardise(x) if callable(standardise) else x
    if mix is not None and k == 0:
        h = mix(h)
    for i, stage in enumerate(model.stages):
        h = stage(h)
        if mix is not None and k == i + 1:
            h = mix(h)
    return model.head(h)


def mixup_cross_entropy(logits: Tensor, y: Tensor, index: Tensor, lam: float, shard: Shard | None = None) -> Tensor:
    """NFM Eq. (3) / mixup: λ·CE(logits, y) + (1−λ)·CE(logits, y[π]), batch mean (under torchrun: the mean over this
    rank's rows, with the partners' labels from the global batch; the ranks' average is the global batch mean)."""
    index = torch.as_tensor(index, device=y.device)
    partner = y[index] if shard is None else partners(y, index, shard)
    return lam * F.cross_entropy(logits, y) + (1.0 - lam) * F.cross_entropy(logits, partner)


def choose_mixing_point(model: nn.Module, where: str, generator: torch.Generator | None = None) -> int:
    """k uniform over {input, output of each stage but the last} (``where='any'``), or 0 (``'input'``)."""
    if where == "input":
        return 0
    if where != "any":
        raise ValueError(f"where must be 'input' or 'any', got {where!r}")
    return int(torch.randint(0, mixing_points(model), (1,), generator=generator).item())
