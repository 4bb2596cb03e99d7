"""What the robustness recipes do to inputs before the model: standardisation and the standard augmentation.

The NFM and NoisyMix papers (and their reference code) train on *normalised* images, ``(x − mean)/std`` per
channel, and NFM's test-time white noise is added in that normalised space (NFM §5; its ``evaluate.py`` adds
``σ·N(0, 1)`` to the normalised test batch, without clipping). Images in the workbench are in [0, 1]; the
robustness suite therefore wraps its classifiers in :class:`Standardised`, which standardises inside
``forward`` so that corruptions (defined on [0, 1] images) and every evaluation keep working on [0, 1] images,
while NFM's input mixing point (k = 0, :func:`~workbench.lib.robustness.mixing.staged_forward`) sees the
standardised input, as in the papers.

- :func:`channel_stats`: per-channel mean and std of a training set;
- :func:`crop_flip`: the papers' augmentation of every recipe (random crop after zero padding, random
  horizontal flip), per image, as tensor ops over the batch (its draws come from ``ctx.rng(name, step)``).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from workbench.core.context import Shard
from workbench.lib.nn.base import StagedClassifier

__all__ = ["Standardised", "channel_stats", "crop_flip", "crop_padding"]


class Standardised(StagedClassifier):
    """``x ↦ inner((x − mean)/std)`` with the inner classifier's own ``stages`` and ``head``; ``mean`` and ``std``
    broadcast against a batch (1×C×1×1 for images, 1×D for points: what :func:`channel_stats` returns).

    ``standardise`` is what :func:`~workbench.lib.robustness.mixing.staged_forward` applies before mixing point 0,
    so input mixing and input noise happen in the standardised space (NFM Eq. (2) on normalised data).
    """

    def __init__(self, inner: nn.Module, mean: Tensor, std: Tensor):
        super().__init__()
        if not hasattr(inner, "stages") or not hasattr(inner, "head"):
            raise TypeError("inner must expose .stages and .head (see workbench.lib.nn)")
        self.stages, self.head = inner.stages, inner.head
        self.register_buffer("mean", mean.detach().float().clone())
        self.register_buffer("std", std.detach().float().clone())
        if bool((self.std <= 0).any()):
            raise ValueError("std must be > 0 in every channel")

    def standardise(self, x: Tensor) -> Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(self.standardise(x))


def channel_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and (population) std of images N×C×H×W (shaped 1×C×1×1), or per-feature ones of
    points N×D (shaped 1×D)."""
    dims = (0, 2, 3) if x.dim() == 4 else (0,)
    std, mean = torch.std_mean(x.float(), dims, unbiased=False, keepdim=True)  # no float64 copy of a large set
    return mean, std.clamp_min(1e-6)


def crop_padding(height: int) -> int:
    """Zero padding of the random crop: 4 pixels at 32×32 (the papers' CIFAR setting), H/8 in general, ≥ 1."""
    return max(1, round(height / 8))


def crop_flip(x: Tensor, generator: torch.Generator, pad: int | None = None, flip: bool = True,
              shard: Shard | None = None) -> Tensor:
    """Random crop of the zero-padded image (offsets uniform in [−pad, pad] per image and axis) and, with
    ``flip``, a horizontal flip with probability ½ — torchvision's ``RandomCrop(H, padding=pad)`` and
    ``RandomHorizontalFlip()``, one draw per image, as one gather over the batch.

    ``shard``: ``x`` is this rank's rows of a global batch; the draws are made for the global batch and sliced,
    so the ranks together crop and flip exactly as one process would."""
    if x.dim() != 4:
        raise ValueError(f"images must be N×C×H×W, got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    pad = crop_padding(h) if pad is None else int(pad)
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    draws = n if shard is None else shard.size
    dy = torch.randint(-pad, pad + 1, (draws,), generator=generator)
    dx = torch.randint(-pad, pad + 1, (draws,), generator=generator)
    mirror = torch.rand(draws, generator=generator) < 0.5 if flip else torch.zeros(draws, dtype=torch.bool)
    if shard is not None:
        dy, dx, mirror = shard.take(dy), shard.take(dx), shard.take(mirror)
    rows = torch.arange(h).view(1, h, 1) + dy.view(n, 1, 1)                          # source row of each output row
    cols = torch.arange(w).view(1, 1, w).expand(n, 1, w)
    cols = torch.where(mirror.view(n, 1, 1), w - 1 - cols, cols) + dx.view(n, 1, 1)   # flip, then shift
    valid = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)                       # (n, h, w)
    flat = (rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)).reshape(n, 1, h * w).to(x.device)
    out = x.reshape(n, c, h * w).gather(2, flat.expand(n, c, h * w)).view(n, c, h, w)
    return out * valid.view(n, 1, h, w).to(device=x.device, dtype=x.dtype)
