"""The 1-D regression task with a gap: x ∈ [0, 2] ∪ [6, 8], y = cos x + 0.1·ε (the issue's setting; the paper shows
1-D toy regressions of this kind).

Inputs are scaled by ``scale_x`` (x ↦ (x − 4)/4, so the data lie in [−1, −0.5] ∪ [0.5, 1] and the plotted range
x ∈ [−2, 10] maps to [−1.5, 1.5]).
"""
from __future__ import annotations

import torch

DATA_RANGES = ((0.0, 2.0), (6.0, 8.0))
GAP = (2.0, 6.0)
PLOT_RANGE = (-2.0, 10.0)


def scale_x(x: torch.Tensor) -> torch.Tensor:
    """The model's input: (x − 4)/4."""
    return (x - 4.0) / 4.0


def gap_regression(n: int = 40, noise: float = 0.1, *,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points, half in each data range, y = cos x + noise·ε: (x (n, 1), y (n,)) float32, raw x; the draws
    come from ``generator`` (in a run, ``ctx.rng("reg/data")``)."""
    halves = [lo + (hi - lo) * torch.rand(k, generator=generator, dtype=torch.float64)
              for (lo, hi), k in zip(DATA_RANGES, (n - n // 2, n // 2))]
    x = torch.sort(torch.cat(halves)).values
    y = torch.cos(x) + noise * torch.randn(n, generator=generator, dtype=torch.float64)
    return x.float().unsqueeze(1), y.float()


def grid(points: int = 200) -> torch.Tensor:
    """Raw x over the plotted range, (points, 1)."""
    return torch.linspace(*PLOT_RANGE, points).unsqueeze(1)


def region_masks(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(on the data ranges, inside the gap) for raw x of shape (n,) or (n, 1)."""
    x = x.reshape(-1)
    on = torch.zeros_like(x, dtype=torch.bool)
    for lo, hi in DATA_RANGES:
        on |= (x >= lo) & (x <= hi)
    gap = (x > GAP[0]) & (x < GAP[1])
    return on, gap
