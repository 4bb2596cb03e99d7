"""The corruption benchmark for any classifier (a ``classify`` run's model, your own ``nn.Module``...).

``evaluate_classifier(model, "digits")`` returns clean accuracy, ECE (15 bins), accuracy per corruption ×
severity on the cached DATASET-C, mean corruption accuracy (15 standard corruptions), mean accuracy of the
4 extra ones and of NFM's noise levels, and flip probabilities over a noise and a shift sequence.
``baseline_table(ctx.read_run(run_id))`` fetches a stored run's corruption table, to normalise mCE to a chosen baseline run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from workbench.metrics import expected_calibration_error, reliability
from workbench.robustness.corruptions import CORRUPTIONS, EXTRA, NOISE, STANDARD
from workbench.robustness.dataset_c import load_c
from workbench.robustness.metrics import flip_rate, mean_corruption_accuracy, predict

__all__ = ["evaluate_classifier", "baseline_table"]


def evaluate_classifier(
    model: nn.Module,
    dataset: str,
    corruptions: Iterable[str] = CORRUPTIONS,
    limit: int | None = None,
    seed: int = 0,
    corrupted: dict[tuple[str, int], torch.Tensor] | None = None,
    root: str | Path | None = None,
) -> dict[str, Any]:
    """{"summary": scalars, "rows": corruption × severity accuracies, "reliability": 15 bin rows}.

    ``corrupted`` holds the corrupted images already loaded; otherwise they come from the DATASET-C cache at
    ``root`` (see :func:`~workbench.robustness.dataset_c.c_root`)."""
    from workbench import data

    xt, yt = data.tensors(dataset, "test")
    if limit:
        xt, yt = xt[:limit], yt[:limit]
    names = tuple(corruptions)
    if corrupted is None:
        corrupted = {(c, s): load_c(dataset, c, s, limit=limit, seed=seed, root=root)[0]
                     for c in names for s in range(1, 6)}
    probs = predict(model, xt)
    clean = float((probs.argmax(-1) == yt).float().mean())
    rows = []
    for (c, s), xc in corrupted.items():
        acc = float((predict(model, xc).argmax(-1) == yt).float().mean())
        rows.append({"corruption": c, "severity": s, "accuracy": acc, "error": 1 - acc})
    fn = lambda images: predict(model, images)  # noqa: E731
    summary: dict[str, float] = {
        "clean_accuracy": clean,
        "ece": expected_calibration_error(probs, yt, 15),
        "flip_noise": flip_rate(fn, xt, "noise", n_steps=8, max_sigma=0.3, seed=seed),
        "flip_shift": flip_rate(fn, xt, "shift", max_shift=2),
    }
    present = {r["corruption"] for r in rows}
    if present & set(NOISE):
        summary["noise_accuracy"] = float(np.mean([r["accuracy"] for r in rows if r["corruption"] in NOISE]))
    if set(STANDARD) <= present:
        summary["mean_corruption_accuracy"] = mean_corruption_accuracy(rows, STANDARD)
    if set(EXTRA) <= present:
        summary["mean_extra_accuracy"] = mean_corruption_accuracy(rows, EXTRA)
    return {"summary": summary, "rows": rows, "reliability": reliability(probs, yt, 15)}


def baseline_table(run: Any, variant: str = "baseline") -> tuple[list[dict[str, Any]], float | None]:
    """(corruption rows, clean error) of ``variant`` in a stored robustness run (or its only variant).

    ``run`` is anything with ``artifact(name)``: ``ctx.read_run(run_id)`` in a method, a
    :class:`~workbench.context.RunView` elsewhere."""
    import pandas as pd

    df = pd.DataFrame(run.artifact("corruption_table"))
    if "variant" in df:
        pick = variant if variant in set(df["variant"]) else df["variant"].iloc[0]
        df = df[df["variant"] == pick]
    else:
        pick = None
    clean = None
    try:
        summ = pd.DataFrame(run.artifact("summary"))
        row = summ[summ["variant"] == pick] if pick is not None and "variant" in summ else summ
        clean = 1 - float(row["clean_accuracy"].iloc[0])
    except Exception:  # noqa: BLE001 - a table without a summary still normalises the plain mCE
        clean = None
    return df.to_dict("records"), clean
