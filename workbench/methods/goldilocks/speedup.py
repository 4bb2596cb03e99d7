"""Speedup measures of the paper's Section 4: how many gradient steps (or seconds) a method needs to reach the
uniform-sampling baseline's best test accuracy, and their ratio ("epochs to target accuracy" in Table 2).
"""
from __future__ import annotations

import math
from typing import Sequence


def steps_to_target(steps: Sequence[float], accuracy: Sequence[float], target: float) -> float:
    """The first x (step count or seconds) at which ``accuracy`` reaches ``target``; ``inf`` if never."""
    if len(steps) != len(accuracy):
        raise ValueError(f"steps ({len(steps)}) and accuracy ({len(accuracy)}) must have the same length")
    for x, acc in zip(steps, accuracy):
        if acc >= target - 1e-12:
            return float(x)
    return math.inf


def speedup(baseline_steps: float, method_steps: float) -> float:
    """baseline / method (>1: the method is faster); 0 when the method never reaches the target, nan when
    neither does."""
    if math.isinf(method_steps):
        return math.nan if math.isinf(baseline_steps) else 0.0
    return baseline_steps / method_steps if method_steps > 0 else math.inf


def speedup_table(
    curves: dict[str, tuple[Sequence[float], Sequence[float], Sequence[float]]], baseline: str = "uniform"
) -> list[dict[str, float | str]]:
    """Rows per method from ``curves[name] = (steps, seconds, accuracy)``: best accuracy, steps and seconds to
    the baseline's best accuracy, and the speedups in steps and in wall-clock time."""
    if baseline not in curves:
        raise ValueError(f"the baseline {baseline!r} is not among the curves ({', '.join(curves)})")
    b_steps, b_secs, b_acc = curves[baseline]
    target = max(b_acc)
    base_s = steps_to_target(b_steps, b_acc, target)
    base_t = steps_to_target(b_secs, b_acc, target)
    rows: list[dict[str, float | str]] = []
    for name, (steps, secs, acc) in curves.items():
        s = steps_to_target(steps, acc, target)
        t = steps_to_target(secs, acc, target)
        rows.append({
            "method": name,
            "best_accuracy": max(acc) if len(acc) else math.nan,
            "final_accuracy": acc[-1] if len(acc) else math.nan,
            "target_accuracy": target,
            "steps_to_target": s,
            "seconds_to_target": t,
            "speedup_steps": speedup(base_s, s),
            "speedup_wallclock": speedup(base_t, t),
        })
    return rows
