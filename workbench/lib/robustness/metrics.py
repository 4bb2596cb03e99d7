"""Robustness metrics (Hendrycks & Dietterich, ICLR 2019, §3–4).

- corruption error E^f_{s,c} = 1 − accuracy of classifier f under corruption c at severity s;
- mean corruption accuracy = mean over (c, s) of accuracy;
- CE^f_c = Σ_s E^f_{s,c} / Σ_s E^base_{s,c}  and  mCE = mean_c CE^f_c (Eq. in §4, "corruption error"),
  relative CE^f_c = Σ_s (E^f_{s,c} − E^f_clean) / Σ_s (E^base_{s,c} − E^base_clean);
- flip probability (ImageNet-P, §4 "perturbation robustness"): for a sequence x₁ … x_n of perturbed images,
  FP = 1/(m(n−1)) Σ_i Σ_{j=2}^{n} 1[f(x_j⁽ⁱ⁾) ≠ f(x_{j−1}⁽ⁱ⁾)] for temporally related sequences (shifts), and
  1[f(x_j⁽ⁱ⁾) ≠ f(x_1⁽ⁱ⁾)] with x₁ the clean image for noise sequences; mFR normalises by a baseline.

Expected calibration error and the reliability table come from :mod:`workbench.lib.metrics`.
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from workbench.lib.metrics import predict as logits
from workbench.lib.robustness.corruptions import STANDARD, corrupt

__all__ = [
    "predict",
    "accuracy_table",
    "mean_corruption_accuracy",
    "corruption_errors",
    "mce",
    "flip_probability",
    "noise_sequence",
    "shift_sequence",
    "flip_rate",
    "ece_columns",
]

Row = dict[str, object]


def predict(model: nn.Module, x: Tensor, batch_size: int | None = None, device: torch.device | str | None = None
            ) -> Tensor:
    """Softmax probabilities of ``model`` on ``x``: :func:`workbench.lib.metrics.predict`'s logits (eval mode,
    batched, the training flag restored, float32 on the CPU) through a softmax."""
    return torch.softmax(logits(model, x, batch_size, device), -1)


def accuracy_table(
    probs_for: Callable[[Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    corruptions: Iterable[str],
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    seed: int = 0,
) -> list[Row]:
    """Accuracy under each corruption × severity: rows {corruption, severity, accuracy, error}.

    ``probs_for(images) -> probabilities``; images are corrupted with seed ``seed + 1000·c + s`` so that
    every model sees the same corrupted set.
    """
    rows: list[Row] = []
    y = torch.as_tensor(y)
    for ci, name in enumerate(corruptions):
        for s in severities:
            xc = corrupt(x, name, int(s), seed=seed + 1000 * ci + int(s))
            acc = float((probs_for(xc).argmax(-1) == y).float().mean())
            rows.append({"corruption": name, "severity": int(s), "accuracy": acc, "error": 1.0 - acc})
    return rows


def mean_corruption_accuracy(rows: Iterable[Row], names: Iterable[str] | None = None) -> float:
    """Mean accuracy over the rows whose corruption is in ``names`` (default: the 15 standard ones present)."""
    rows = list(rows)
    keep = set(names) if names is not None else set(STANDARD)
    vals = [float(r["accuracy"]) for r in rows if r["corruption"] in keep]
    if not vals:
        raise ValueError("no rows for the requested corruptions")
    return float(np.mean(vals))


def corruption_errors(rows: Iterable[Row]) -> dict[str, dict[int, float]]:
    """{corruption: {severity: error}} from accuracy-table rows."""
    out: dict[str, dict[int, float]] = defaultdict(dict)
    for r in rows:
        out[str(r["corruption"])][int(r["severity"])] = float(r.get("error", 1.0 - float(r["accuracy"])))
    return dict(out)


def mce(
    rows: Iterable[Row],
    baseline_rows: Iterable[Row],
    names: Iterable[str] | None = None,
    clean_error: float | None = None,
    baseline_clean_error: float | None = None,
) -> tuple[float, dict[str, float]]:
    """mCE normalised to a baseline: (mean_c CE_c, {c: CE_c}) with CE_c = Σ_s E_{s,c} / Σ_s E^base_{s,c}.

    With both clean errors given, the relative mCE (errors minus the clean error) is returned instead.
    """
    e, eb = corruption_errors(rows), corruption_errors(baseline_rows)
    common = [c for c in e if c in eb and (names is None or c in set(names))]
    if not common:
        raise ValueError("the model and baseline tables share no corruption")
    relative = clean_error is not None and baseline_clean_error is not None
    per: dict[str, float] = {}
    for c in common:
        sev = sorted(set(e[c]) & set(eb[c]))
        num = sum(e[c][s] - (clean_error if relative else 0.0) for s in sev)
        den = sum(eb[c][s] - (baseline_clean_error if relative else 0.0) for s in sev)
        per[c] = num / den if den != 0 else float("nan")
    finite = [v for v in per.values() if not math.isnan(v)]
    return (float(np.mean(finite)) if finite else float("nan")), per


def flip_probability(predictions: Tensor, reference: str = "previous") -> float:
    """ImageNet-P flip probability of predicted labels shaped (n_steps, N).

    reference="previous": compare each frame with the one before (temporal sequences, e.g. shifts);
    reference="first": compare each frame with frame 0 (noise sequences; frame 0 is the clean image).
    """
    p = torch.as_tensor(predictions)
    if p.dim() != 2 or p.shape[0] < 2:
        raise ValueError(f"predictions must be (n_steps >= 2, N), got shape {tuple(p.shape)}")
    if reference == "previous":
        flips = p[1:] != p[:-1]
    elif reference == "first":
        flips = p[1:] != p[:1]
    else:
        raise ValueError(f"reference must be 'previous' or 'first', got {reference!r}")
    return float(flips.float().mean())


def noise_sequence(x: Tensor, n_steps: int = 10, max_sigma: float = 0.3,
                   generator: torch.Generator | None = None) -> list[Tensor]:
    """Clean image then Gaussian noise of linearly increasing σ up to ``max_sigma`` (ImageNet-P noise); one noise
    draw from ``generator`` (default: a fresh ``torch.Generator()``, torch's fixed seed), scaled along the sequence."""
    if n_steps < 2:
        raise ValueError(f"n_steps must be >= 2, got {n_steps}")
    noise = torch.randn(x.shape, generator=generator if generator is not None else torch.Generator(), dtype=x.dtype)
    return [x] + [(x + noise * max_sigma * j / (n_steps - 1)).clamp(0, 1) for j in range(1, n_steps)]


def shift_sequence(x: Tensor, max_shift: int = 2) -> list[Tensor]:
    """Translations by −max_shift … +max_shift pixels along x then y (zero fill), a temporal sequence."""
    def shift(t: Tensor, dx: int, dy: int) -> Tensor:
        out = torch.zeros_like(t)
        h, w = t.shape[-2:]
        ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
        xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
        out[..., yd, xd] = t[..., ys, xs]
        return out

    seq = [shift(x, d, 0) for d in range(-max_shift, max_shift + 1)]
    seq += [shift(x, 0, d) for d in range(-max_shift, max_shift + 1)]
    return seq


def flip_rate(probs_for: Callable[[Tensor], Tensor], x: Tensor, kind: str = "noise", **kwargs: object) -> float:
    """Flip probability of a classifier over a noise (vs the clean frame) or shift (consecutive) sequence."""
    if kind == "noise":
        seq, ref = noise_sequence(x, **kwargs), "first"  # type: ignore[arg-type]
    elif kind == "shift":
        seq, ref = shift_sequence(x, **kwargs), "previous"  # type: ignore[arg-type]
    else:
        raise ValueError(f"kind must be 'noise' or 'shift', got {kind!r}")
    preds = torch.stack([probs_for(frame).argmax(-1) for frame in seq])
    return flip_probability(preds, ref)


def ece_columns(conf: Tensor, correct: Tensor, n_bins: int = 15) -> Tensor:
    """The ECE of every column of (N, M) confidences (max probabilities) and correctness: M values, each
    Σ_b |Σ_{i∈b} correct_i − Σ_{i∈b} conf_i| / N over ``n_bins`` equal-width bins ((m−1)/M, m/M] (the binning of
    :func:`workbench.lib.metrics.expected_calibration_error`), vectorised so a bootstrap can resample rows cheaply."""
    conf, correct = torch.as_tensor(conf, dtype=torch.float64), torch.as_tensor(correct).to(torch.float64)
    if conf.dim() == 1:
        conf, correct = conf[:, None], correct[:, None]
    if conf.shape != correct.shape or conf.dim() != 2 or conf.shape[0] == 0:
        raise ValueError(f"conf and correct must be (N >= 1, M) of one shape, got {tuple(conf.shape)}, "
                         f"{tuple(correct.shape)}")
    n, m = conf.shape
    idx = (torch.ceil(conf * n_bins).long() - 1).clamp(0, n_bins - 1) + n_bins * torch.arange(m).view(1, m)
    gap = torch.zeros(m * n_bins, dtype=torch.float64).index_add_(0, idx.reshape(-1), (correct - conf).reshape(-1))
    return gap.view(m, n_bins).abs().sum(1) / n

