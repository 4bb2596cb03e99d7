"""Scores of task (a), predicting a network's test accuracy from its weights (NFT paper §5.1, Table 1).

* Kendall's τ_b (Kendall 1945): over all pairs i < j, with C concordant pairs, D discordant ones, and T_x, T_y
  the pairs tied only in x or only in y,

      τ_b = (C − D) / √((C + D + T_x)(C + D + T_y))

  (pairs tied in both count nowhere). It only sees the ranking: a predictor that orders networks right scores 1.
* The coefficient of determination R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ)² (1 for perfect predictions, 0 for predicting
  the mean, negative below that).
"""
from __future__ import annotations

import numpy as np


def kendall_tau(x, y) -> float:
    """Kendall's τ_b of two equally long sequences (module docstring); NaN when either is constant."""
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"kendall_tau: lengths {x.size} and {y.size} differ")
    i, j = np.triu_indices(x.size, k=1)
    sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    concordant_minus_discordant = float((sx * sy).sum())
    untied_x, untied_y = float((sx != 0).sum()), float((sy != 0).sum())
    denom = np.sqrt(untied_x * untied_y)
    return float(concordant_minus_discordant / denom) if denom > 0 else float("nan")


def r2_score(y_true, y_pred) -> float:
    """R² = 1 − SS_res / SS_tot (module docstring); NaN when ``y_true`` is constant."""
    y, p = np.asarray(y_true, dtype=np.float64).ravel(), np.asarray(y_pred, dtype=np.float64).ravel()
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - p) ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")
