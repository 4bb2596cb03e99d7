"""Deterministic, seeded, stratified splits."""
from __future__ import annotations

import numpy as np


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices 0..N-1 into (kept, carved) with about ``fraction`` of every class carved off.

    Each class c with n_c members gives round(fraction · n_c) indices to the carved part, chosen by a
    permutation from ``numpy.random.default_rng(seed)``; both parts are returned sorted, so the split
    is a pure function of (labels, fraction, seed).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"split fraction = {fraction!r} is out of range; allowed [0, 1)")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    carved: list[np.ndarray] = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        take = int(round(fraction * len(members)))
        carved.append(rng.permutation(members)[:take])
    carved_idx = np.sort(np.concatenate(carved)) if carved else np.zeros(0, dtype=np.int64)
    mask = np.ones(len(labels), dtype=bool)
    mask[carved_idx] = False
    return np.flatnonzero(mask), carved_idx.astype(np.int64)
