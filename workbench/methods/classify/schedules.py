"""Learning-rate schedules as multiplicative factors of the base rate."""
from __future__ import annotations

import math

SCHEDULES = ("cosine", "step", "constant")


def lr_factor(schedule: str, step: int, total: int, warmup: int = 0) -> float:
    """Factor at ``step`` of ``total``: linear warm-up over ``warmup`` steps, then
    cosine: ½(1 + cos(π t)), t = progress in [0, 1] (Loshchilov & Hutter 2017, Eq. 5 without restarts, η_min = 0);
    step: 1, 0.1 after 50% and 0.01 after 75% of the steps; constant: 1."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule = {schedule!r} is not allowed; allowed: {', '.join(SCHEDULES)}")
    if warmup and step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))
    if schedule == "step":
        return 1.0 if t < 0.5 else 0.1 if t < 0.75 else 0.01
    return 1.0
