"""Label-noise and data-quality settings of the paper's experiments (Section 5 / 6).

Each function is deterministic given its ``torch.Generator`` and records *which* points it changed, so an
experiment can measure the share of corrupted points a selection method picks.

- :func:`uniform_label_noise`: a fraction of the labels resampled uniformly, from the other classes or (as in the
  paper's code) from all classes, so that some resampled labels stay correct.
- :func:`structured_label_noise`: class-dependent noise, class c relabelled as ``mapping[c]`` (default c+1 mod C)
  for the same fraction of each class.
- :func:`make_ambiguous`: inputs blended half-and-half with an input of another class (label kept).
- :func:`duplicate_points`: points overwritten by copies of other points (redundant data).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

NOISE_KINDS = ("none", "uniform", "structured")


def _check_rate(rate: float, name: str = "noise_rate") -> None:
    if not (isinstance(rate, (int, float)) and 0.0 <= rate <= 1.0):
        raise ValueError(f"parameter '{name}' = {rate!r} is out of range; allowed range [0, 1]")


def _count(n: int, rate: float) -> int:
    return int(round(rate * n))


@dataclass
class NoisyData:
    """Training inputs and labels after the noise settings, with masks of the changed points."""

    x: Tensor
    y: Tensor  # the labels the learner sees
    true_y: Tensor  # the clean labels (the source's label for duplicates)
    corrupted: Tensor  # bool: y != true_y
    ambiguous: Tensor  # bool: input blended with another class
    duplicated: Tensor  # bool: overwritten by a copy of another point


def uniform_label_noise(
    y: Tensor, rate: float, num_classes: int, generator: torch.Generator, any_class: bool = False
) -> tuple[Tensor, Tensor]:
    """Resample the labels of exactly round(rate·N) points (chosen uniformly).

    ``any_class=False``: the new label is a uniformly random *other* class, so every resampled label is wrong.
    ``any_class=True``: the new label is uniform over all C classes, as in the paper's code (label noise draws
    ``randint(num_classes)``), so a resampled label stays correct with probability 1/C and the share of wrong
    labels is rate·(C−1)/C in expectation.
    Returns (noisy labels, corrupted mask); ``corrupted`` marks the labels that differ from the clean ones.
    """
    _check_rate(rate)
    if num_classes < 2:
        raise ValueError(f"parameter 'num_classes' = {num_classes} must be >= 2 for label noise")
    n = y.numel()
    chosen = torch.randperm(n, generator=generator)[: _count(n, rate)]
    noisy = y.clone()
    if any_class:
        noisy[chosen] = torch.randint(0, num_classes, (chosen.numel(),), generator=generator)
    else:
        shift = torch.randint(1, num_classes, (chosen.numel(),), generator=generator)
        noisy[chosen] = (y[chosen] + shift) % num_classes
    return noisy, noisy != y


def structured_label_noise(
    y: Tensor, rate: float, num_classes: int, generator: torch.Generator, mapping: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Class-dependent noise: in each class c, round(rate·N_c) points get label ``mapping[c]``.

    The default mapping c → (c + 1) mod C is a fixed permutation without fixed points, so the noise is
    systematic (a confusion between neighbouring classes) rather than uniform.
    """
    _check_rate(rate)
    if mapping is None:
        mapping = (torch.arange(num_classes) + 1) % num_classes
    mapping = torch.as_tensor(mapping, dtype=torch.long)
    if mapping.shape != (num_classes,) or bool((mapping == torch.arange(num_classes)).any()):
        raise ValueError("parameter 'mapping' must map each of the num_classes classes to a different class")
    noisy = y.clone()
    corrupted = torch.zeros(y.numel(), dtype=torch.bool)
    for c in range(num_classes):
        members = (y == c).nonzero().flatten()
        pick = members[torch.randperm(members.numel(), generator=generator)[: _count(members.numel(), rate)]]
        noisy[pick] = mapping[c]
        corrupted[pick] = True
    return noisy, corrupted


def make_ambiguous(x: Tensor, y: Tensor, rate: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Blend round(rate·N) inputs half-and-half with a random input of a different class; labels unchanged."""
    _check_rate(rate, "ambiguous_rate")
    n = y.numel()
    chosen = torch.randperm(n, generator=generator)[: _count(n, rate)]
    if chosen.numel() == 0:  # nothing to blend: no copy of the inputs
        return x, torch.zeros(n, dtype=torch.bool)
    out = x.clone()
    mask = torch.zeros(n, dtype=torch.bool)
    for i in chosen.tolist():
        others = (y != y[i]).nonzero().flatten()
        if others.numel() == 0:
            continue
        j = others[torch.randint(others.numel(), (1,), generator=generator)].item()
        out[i] = 0.5 * x[i] + 0.5 * x[j]
        mask[i] = True
    return out, mask


def duplicate_points(x: Tensor, y: Tensor, rate: float, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """Overwrite round(rate·N) points with copies of points that are kept (redundant data).

    Returns (x, y, duplicated mask); the size of the data set is unchanged.
    """
    _check_rate(rate, "duplicate_rate")
    n = y.numel()
    perm = torch.randperm(n, generator=generator)
    m = min(_count(n, rate), n - 1) if n > 1 else 0
    targets, sources = perm[:m], perm[m:]
    if m == 0:  # nothing to duplicate: no copy of the inputs
        return x, y, torch.zeros(n, dtype=torch.bool)
    src = sources[torch.randint(sources.numel(), (m,), generator=generator)]
    x2, y2 = x.clone(), y.clone()
    x2[targets] = x[src]
    y2[targets] = y[src]
    mask = torch.zeros(n, dtype=torch.bool)
    mask[targets] = True
    return x2, y2, mask


def apply_noise(
    x: Tensor,
    y: Tensor,
    num_classes: int,
    *,
    kind: str = "none",
    rate: float = 0.0,
    ambiguous_rate: float = 0.0,
    duplicate_rate: float = 0.0,
    any_class: bool = False,
    generator: torch.Generator,
) -> NoisyData:
    """Apply, in order, duplication, ambiguity and label noise (``kind`` in none|uniform|structured).

    Inputs are copied only by a setting that changes them (duplication, ambiguity); otherwise ``x`` is returned
    as given (treat it as read-only). ``any_class``: uniform noise may redraw the clean label (see
    :func:`uniform_label_noise`)."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"parameter 'noise' = {kind!r} is not allowed; allowed: {', '.join(NOISE_KINDS)}")
    x, y, duplicated = duplicate_points(x, y, duplicate_rate, generator)
    x, ambiguous = make_ambiguous(x, y, ambiguous_rate, generator)
    true_y = y.clone()
    if kind == "uniform":
        y, corrupted = uniform_label_noise(y, rate, num_classes, generator, any_class=any_class)
    elif kind == "structured":
        y, corrupted = structured_label_noise(y, rate, num_classes, generator)
    else:
        corrupted = torch.zeros(y.numel(), dtype=torch.bool)
    return NoisyData(x, y, true_y, corrupted, ambiguous, duplicated)
