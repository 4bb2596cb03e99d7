"""Standard image augmentation as batched tensor functions: random crop with zero padding, horizontal flip.

Random draws are made for the *global* batch and then sharded like the indices, so a torchrun run with
N processes sees exactly the augmentations of a 1-process run.
"""
from __future__ import annotations

import torch


def crop_padding(shape: tuple[int, ...]) -> int:
    """Padding of the random crop: 1/8 of the side (4 px on 32×32, 3 on 28×28, 1 on 8×8)."""
    return max(1, round(min(shape[-2:]) / 8))


def random_crop(x: torch.Tensor, pad: int, offsets: torch.Tensor) -> torch.Tensor:
    """Zero-pad ``x`` (B×C×H×W) by ``pad`` and cut the H×W window starting at ``offsets`` (B×2, in [0, 2·pad])."""
    b, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = offsets[:, 0, None] + torch.arange(h, device=x.device)  # B×H
    cols = offsets[:, 1, None] + torch.arange(w, device=x.device)  # B×W
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


def random_flip(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Mirror left–right the images where ``flip`` (B bools) is set."""
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


class Augmenter:
    """Crop (and flip, when ``flip``) a rank's shard of the global batch. Stateless: each call draws from the
    generator it is given (in a run ``ctx.rng("augment", step)``), so there is nothing to checkpoint."""

    def __init__(self, shape: tuple[int, ...], flip: bool, rank: int = 0, world_size: int = 1):
        self.pad, self.flip = crop_padding(shape), flip
        self.rank, self.world_size = rank, world_size

    def __call__(self, x: torch.Tensor, global_batch: int, generator: torch.Generator) -> torch.Tensor:
        offsets = torch.randint(0, 2 * self.pad + 1, (global_batch, 2), generator=generator)
        flips = torch.rand(global_batch, generator=generator) < 0.5
        shard = slice(self.rank, None, self.world_size)
        offsets, flips = offsets[shard][: len(x)].to(x.device), flips[shard][: len(x)].to(x.device)
        x = random_crop(x, self.pad, offsets)
        return random_flip(x, flips) if self.flip else x
