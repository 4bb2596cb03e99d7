"""The corruption benchmark for any classifier (a ``classify`` run's model, your own ``nn.Module``...).

``evaluate_classifier(model, "digits")`` returns ONE clean accuracy (the full test set) with its ECE (15 bins)
and reliability table, and, on the first ``limit`` test images: accuracy per corruption × severity on the
cached DATASET-C, mean corruption accuracy (15 standard corruptions), mean accuracy of the 4 extra ones,
NFM's noise curves (white noise in the normalised space, salt and pepper; :mod:`~workbench.lib.robustness.noise`)
and flip probabilities over a noise and a shift sequence.
``baseline_table(ctx.read_run(run_id))`` fetches a stored run's corruption table, to normalise mCE to a chosen baseline run.
Beside the scalars it returns the per-image evidence a claim's bootstrap resamples: correctness and probabilities
on the clean test set, and per image the fraction of the noise table levels and of the standard corruption ×
severity pairs it gets right.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from torch import Tensor, nn

from workbench.lib.metrics import expected_calibration_error, reliability
from workbench.lib.robustness.corruptions import EXTRA, STANDARD
from workbench.lib.robustness.dataset_c import load_c_all
from workbench.lib.robustness.metrics import ece_columns, flip_rate, mean_corruption_accuracy, predict
from workbench.lib.robustness.noise import NamedRng, noise_evaluation, table_accuracy

__all__ = ["evaluate_classifier", "corruption_rows", "corruption_table", "corruption_summary", "baseline_table",
           "BENCHMARK"]

#: the corruptions of the benchmark: 15 standard + 4 extra (NFM's noises are measured by their own protocol)
BENCHMARK: tuple[str, ...] = tuple(STANDARD) + tuple(EXTRA)


def corruption_table(models: dict[str, nn.Module], dataset: str, corruptions: Iterable[str], y: Tensor,
                     limit: int | None = None, seed: int = 0, root: str | Path | None = None,
                     ) -> tuple[dict[str, list[dict]], dict[str, tuple[Tensor, Tensor]]]:
    """({model name: rows {corruption, severity, accuracy, error, ece}}, {model name: (confidence, correct), each
    (N, M): per image, its max probability and correctness under each of the M standard corruption × severity
    pairs evaluated}) on the cached DATASET-C (first ``limit`` test images, labels ``y``): each corruption file
    is read once and each severity converted to float once, for every model, so memory holds one corruption at a
    time whatever the number of models."""
    out: dict[str, list[dict]] = {m: [] for m in models}
    conf: dict[str, list[Tensor]] = {m: [] for m in models}
    hit: dict[str, list[Tensor]] = {m: [] for m in models}
    for c in corruptions:
        images, _ = load_c_all(dataset, c, root=root, limit=limit, seed=seed)
        for s in range(1, 6):
            xc = torch.from_numpy(images[s - 1].astype(np.float32) / 255.0)
            for m, model in models.items():
                top, pred = predict(model, xc).max(-1)
                correct = pred == y
                acc = float(correct.float().mean())
                ece = float(ece_columns(top, correct)[0])
                out[m].append({"corruption": c, "severity": s, "accuracy": acc, "error": 1 - acc, "ece": ece})
                if c in STANDARD:
                    conf[m].append(top)
                    hit[m].append(correct)
            del xc
    empty = (torch.zeros(len(y), 0), torch.zeros(len(y), 0, dtype=torch.bool))
    return out, {m: (torch.stack(conf[m], 1), torch.stack(hit[m], 1)) if conf[m] else empty for m in models}


def corruption_rows(models: dict[str, nn.Module], dataset: str, corruptions: Iterable[str], y: Tensor,
                    limit: int | None = None, seed: int = 0, root: str | Path | None = None) -> dict[str, list[dict]]:
    """The rows of :func:`corruption_table`: {model name: rows {corruption, severity, accuracy, error}}."""
    return corruption_table(models, dataset, corruptions, y, limit, seed, root)[0]


def corruption_summary(rows: list[dict]) -> dict[str, float]:
    """Mean corruption accuracy (and mean ECE, when the rows carry one) over the 15 standard corruptions, and
    mean accuracy of the 4 extra ones (each when all of its corruptions are in ``rows``)."""
    present = {r["corruption"] for r in rows}
    summary: dict[str, float] = {}
    if set(STANDARD) <= present:
        summary["mean_corruption_accuracy"] = mean_corruption_accuracy(rows, STANDARD)
        eces = [float(r["ece"]) for r in rows if r["corruption"] in STANDARD and "ece" in r]
        if eces:
            summary["ece_corrupted"] = float(np.mean(eces))
    if set(EXTRA) <= present:
        summary["mean_extra_accuracy"] = mean_corruption_accuracy(rows, EXTRA)
    return summary


def evaluate_classifier(
    model: nn.Module,
    dataset: str,
    corruptions: Iterable[str] = BENCHMARK,
    limit: int | None = None,
    seed: int = 0,
    corrupted: dict[tuple[str, int], torch.Tensor] | None = None,
    root: str | Path | None = None,
    *,
    noise: bool = True,
    std: Tensor | float | None = None,
    test: tuple[Tensor, Tensor] | None = None,
    rows: list[dict] | None = None,
    rng: NamedRng | None = None,
) -> dict[str, Any]:
    """{"summary": scalars, "rows": corruption × severity accuracies, "noise_rows": NFM noise curves,
    "reliability": 15 bin rows, "subset_clean_error": the clean error on the first ``limit`` images (what
    relative mCE subtracts; not a second clean accuracy), and the per-image evidence: "correct" and "probs" (full
    clean test set), "noise_hits" (per image of the first ``limit``: the fraction of the six noise table levels
    right; None without ``noise``)}. Among the scalars, ``confidence_gap`` is the mean confidence minus the
    accuracy on the clean test set (> 0: over-confident, < 0: under-confident; ECE is its unsigned, binned form).

    The corruption accuracies come from ``rows`` when given (:func:`corruption_table`, several models at once),
    else from ``corrupted`` (images already loaded, keyed by (corruption, severity)), else from the DATASET-C
    cache at ``root`` (see :func:`~workbench.lib.robustness.dataset_c.c_root`; ``seed`` names the cached copy).
    ``std``: the per-channel std of the space the white noise is added in (default: the model's own ``std``
    buffer when it standardises its inputs, else 1, i.e. the [0, 1] pixel space). ``test``: the test set
    (default: ``data.tensors(dataset, "test")``). ``rng(name)``: the generator of each named noise draw (noise
    levels, the flip sequence; ``ctx.rng`` in a run; default: fresh ``torch.Generator()``s).
    """
    if test is None:
        from workbench.lib import data

        test = data.tensors(dataset, "test")
    xt, yt = test
    xs, ys = (xt[:limit], yt[:limit]) if limit else (xt, yt)
    if rows is None:
        if corrupted is None:
            rows = corruption_rows({"model": model}, dataset, corruptions, ys, limit, seed, root)["model"]
        else:
            rows = []
            for (c, s), xc in corrupted.items():
                top, pred = predict(model, xc).max(-1)
                acc = float((pred == ys).float().mean())
                rows.append({"corruption": c, "severity": s, "accuracy": acc, "error": 1 - acc,
                             "ece": float(ece_columns(top, pred == ys)[0])})
    probs = predict(model, xt)
    correct = probs.argmax(-1) == yt
    fn = lambda images: predict(model, images)  # noqa: E731
    make = rng or (lambda name: torch.Generator())
    summary: dict[str, float] = {
        "clean_accuracy": float(correct.float().mean()),
        "ece": expected_calibration_error(probs, yt, 15),
        "confidence_gap": float(probs.max(-1).values.mean()) - float(correct.float().mean()),
        "flip_noise": flip_rate(fn, xs, "noise", n_steps=8, max_sigma=0.3, generator=make("flip_noise")),
        "flip_shift": flip_rate(fn, xs, "shift", max_shift=2),
    }
    noise_rows: list[dict[str, Any]] = []
    noise_hits = None
    if noise:
        if std is None:
            std = getattr(model, "std", None)
            std = std.detach().cpu() if isinstance(std, Tensor) else 1.0
        noise_rows, noise_hits = noise_evaluation(fn, xs, ys, std, rng)
        summary["noise_accuracy"] = table_accuracy(noise_rows)
        summary["white_noise_accuracy"] = table_accuracy(noise_rows, ("white_noise",))
        summary["salt_pepper_accuracy"] = table_accuracy(noise_rows, ("salt_and_pepper",))
    summary.update(corruption_summary(rows))
    return {"summary": summary, "rows": rows, "noise_rows": noise_rows, "reliability": reliability(probs, yt, 15),
            "subset_clean_error": 1.0 - float(correct[: len(xs)].float().mean()), "correct": correct,
            "probs": probs, "noise_hits": noise_hits}


def baseline_table(run: Any, variant: str = "baseline") -> tuple[list[dict[str, Any]], float | None]:
    """(corruption rows, clean error) of ``variant`` in a stored robustness run (or its only variant).

    ``run`` is anything with ``artifact(name)``: ``ctx.read_run(run_id)`` in a method, a
    :class:`~workbench.core.context.RunView` elsewhere."""
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
