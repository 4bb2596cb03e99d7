"""NFM's test-time noise protocol (Lim et al., ICLR 2022, §5, Tables 1–2, and the reference ``evaluate.py``).

- White noise is added to the *normalised* image, ``z + σ·N(0, 1)`` with ``z = (x − mean)/std``, without
  clipping; on [0, 1] images seen by a :class:`~workbench.lib.robustness.inputs.Standardised` model this is
  ``x + σ·std·N(0, 1)`` (:func:`white_noise_normalised`).
- Salt and pepper sets a fraction γ of the elements to the image's minimum or maximum (half each; the
  reference code uses the normalised image's min and max, which standardisation maps to the [0, 1] image's),
  :func:`salt_and_pepper_extremes`.

The paper's tables report σ ∈ {0.1, 0.2, 0.3} and γ ∈ {0.02, 0.04, 0.1} (:data:`TABLE_LEVELS`); the curves
add intermediate levels. ``noise_accuracy`` is the mean accuracy over the table's six levels; per test image, the
fraction of those six noisy copies it classifies correctly (:func:`noise_evaluation`), whose mean is the same number,
is what a claim's bootstrap resamples.
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import torch
from torch import Tensor

__all__ = ["WHITE_SIGMAS", "SP_GAMMAS", "TABLE_LEVELS", "white_noise_normalised", "salt_and_pepper_extremes",
           "noise_curves", "noise_evaluation", "table_accuracy", "NamedRng"]

#: ``rng(name)``: a fresh generator for the named noise draw (``ctx.rng`` in a run; the same for every model)
NamedRng = Callable[[str], torch.Generator]

#: white-noise levels σ of the curves (normalised space); the paper's table uses 0.1, 0.2, 0.3
WHITE_SIGMAS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
#: salt-and-pepper fractions γ of the curves; the paper's table uses 0.02, 0.04, 0.1
SP_GAMMAS = (0.02, 0.04, 0.06, 0.08, 0.1)
#: the levels of NFM's tables, whose mean accuracy is ``noise_accuracy``
TABLE_LEVELS = {"white_noise": (0.1, 0.2, 0.3), "salt_and_pepper": (0.02, 0.04, 0.1)}


def white_noise_normalised(x: Tensor, sigma: float, std: Tensor | float, generator: torch.Generator) -> Tensor:
    """``x + σ·std·N(0, 1)``: white noise of level σ in the space ``(x − mean)/std`` the model standardises to
    (NFM's evaluation), not clipped."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return x + sigma * torch.as_tensor(std, dtype=x.dtype) * noise


def salt_and_pepper_extremes(x: Tensor, gamma: float, generator: torch.Generator) -> Tensor:
    """Each element replaced with probability γ by its image's minimum or maximum (half each)."""
    if not 0 <= gamma <= 1:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    dims = tuple(range(1, x.dim()))
    lo, hi = x.amin(dims, keepdim=True), x.amax(dims, keepdim=True)
    hit = torch.rand(x.shape, generator=generator) < gamma
    salt = torch.rand(x.shape, generator=generator) < 0.5
    return torch.where(hit, torch.where(salt, lo.expand_as(x), hi.expand_as(x)), x)


def noise_evaluation(probs_for: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, std: Tensor | float,
                     rng: NamedRng | None = None, white: Iterable[float] = WHITE_SIGMAS,
                     sp: Iterable[float] = SP_GAMMAS) -> tuple[list[dict[str, float | str]], Tensor]:
    """Accuracy under white noise (normalised space) and salt and pepper at each level, rows {kind, level,
    accuracy}, and per image the fraction of the six table levels (:data:`TABLE_LEVELS`) it gets right.

    Level ``v`` of ``kind`` draws its noise from ``rng(f"{kind}/{v}")`` (default: a fresh ``torch.Generator()``,
    torch's fixed seed), so every model is scored on the same noisy images."""
    levels = sorted(set(white) | set(TABLE_LEVELS["white_noise"]))
    gammas = sorted(set(sp) | set(TABLE_LEVELS["salt_and_pepper"]))
    make = rng or (lambda name: torch.Generator())
    rows: list[dict[str, float | str]] = []
    y = torch.as_tensor(y)
    hits = torch.zeros(len(y), dtype=torch.float64)
    for kind, values in (("white_noise", levels), ("salt_and_pepper", gammas)):
        table = {round(v, 6) for v in TABLE_LEVELS[kind]}
        for level in values:
            gen = make(f"{kind}/{float(level):g}")
            xn = white_noise_normalised(x, level, std, gen) if kind == "white_noise" else salt_and_pepper_extremes(x, level, gen)
            correct = probs_for(xn).argmax(-1) == y
            rows.append({"kind": kind, "level": float(level), "accuracy": float(correct.float().mean())})
            if round(float(level), 6) in table:
                hits += correct.double()
    n_table = sum(len(v) for v in TABLE_LEVELS.values())
    return rows, hits / n_table


def noise_curves(probs_for: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, std: Tensor | float,
                 rng: NamedRng | None = None, white: Iterable[float] = WHITE_SIGMAS,
                 sp: Iterable[float] = SP_GAMMAS) -> list[dict[str, float | str]]:
    """The rows of :func:`noise_evaluation`: {kind, level, accuracy} for every level."""
    return noise_evaluation(probs_for, x, y, std, rng, white, sp)[0]


def table_accuracy(rows: Iterable[dict], kinds: Iterable[str] = ("white_noise", "salt_and_pepper")) -> float:
    """Mean accuracy over the paper's table levels (:data:`TABLE_LEVELS`) of the ``kinds`` present."""
    want = {(k, float(v)) for k in kinds for v in TABLE_LEVELS[k]}
    vals = [float(r["accuracy"]) for r in rows if (r["kind"], round(float(r["level"]), 6)) in
            {(k, round(v, 6)) for k, v in want}]
    if not vals:
        raise ValueError("no rows at the table's noise levels")
    return float(np.mean(vals))
