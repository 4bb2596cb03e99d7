"""Feedback data through Hugging Face ``datasets``: unpaired (prompt, completion, label) rows and
paired (prompt, chosen, rejected) rows, conversions between them, and subsampling.

KTO learns from unpaired binary feedback; paired preference data splits into unpaired data by
labelling every chosen completion desirable and every rejected one undesirable (as in the paper's
experiments). The DPO-family needs pairs, which are rebuilt from unpaired rows by matching a
desirable and an undesirable completion of the same prompt.
"""
from __future__ import annotations

import contextlib
import os
from collections import defaultdict
from typing import TYPE_CHECKING, Iterator, TypeVar

import torch

if TYPE_CHECKING:  # ``datasets`` (pyarrow, pandas) costs about half a second to import: only where rows are built
    from datasets import Dataset

PAIRED_COLUMNS = ("prompt", "chosen", "rejected")
UNPAIRED_COLUMNS = ("prompt", "completion", "label")
T = TypeVar("T")


def from_rows(rows: dict[str, list]) -> Dataset:
    """A ``datasets.Dataset`` of columns ``rows`` (imported here, not when the experiment registers)."""
    from datasets import Dataset

    return Dataset.from_dict(rows)


def load_feedback(source: str, split: str = "train") -> Dataset:
    """A feedback dataset from a local JSONL/JSON/Parquet/CSV file or a hub id (paired or unpaired).

    Raises :class:`~workbench.core.errors.DataNotFound` (no such file, and no hub dataset of that name here) or
    :class:`~workbench.core.errors.DataCorrupt` (unreadable file, wrong type, missing columns), each one line.
    """
    from datasets import load_dataset

    from workbench.core.errors import DataCorrupt, DataNotFound

    formats = ".jsonl, .json, .parquet or .csv"
    if os.path.exists(source):
        ext = source.rsplit(".", 1)[-1].lower()
        builder = {"jsonl": "json", "json": "json", "parquet": "parquet", "csv": "csv"}.get(ext)
        if builder is None:
            raise DataCorrupt(f"data = {source!r}: unsupported file type .{ext}; use {formats}")
        try:
            with _no_progress_bars():
                ds = load_dataset(builder, data_files=source, split="train")
        except Exception as err:  # noqa: BLE001 - pyarrow/json errors of many types: one line naming the file
            raise DataCorrupt(f"data = {source!r} cannot be read as {builder} ({_first_line(err)}); check or "
                              f"rewrite the file") from err
    else:
        from workbench.lib.data.sources import hub_offline, hub_reachable

        if not hub_offline() and not hub_reachable():
            raise DataNotFound(f"data = {source!r}: no such file, and the hub is not reachable from here; give a "
                               f"path to a {formats} file")
        try:
            ds = load_dataset(source, split=split)
        except Exception as err:  # noqa: BLE001
            raise DataNotFound(f"data = {source!r}: no such file, and no hub dataset of that name is available "
                               f"here ({_first_line(err)}); give a path to a {formats} file") from err
    kind = feedback_kind(ds)
    if kind is None:
        raise DataCorrupt(f"data = {source!r}: needs columns {', '.join(PAIRED_COLUMNS)} (paired) or "
                          f"{', '.join(UNPAIRED_COLUMNS)} (unpaired), found {', '.join(ds.column_names)}")
    if len(ds) == 0:
        raise DataCorrupt(f"data = {source!r} has no rows")
    check_rows(ds, kind, source)
    return ds


def check_rows(ds: Dataset, kind: str, source: str) -> None:
    """Every row has text in its text columns and (unpaired) a boolean label: true/false or 1/0. Raises
    :class:`~workbench.core.errors.DataCorrupt` naming the file and the row (1 = the first data row)."""
    from workbench.core.errors import DataCorrupt

    text_columns = PAIRED_COLUMNS if kind == "paired" else UNPAIRED_COLUMNS[:2]
    for column in text_columns:
        for i, value in enumerate(ds[column], 1):
            if not isinstance(value, str):
                raise DataCorrupt(f"data = {source!r} row {i}: column {column!r} = {value!r} is not text")
    if kind == "unpaired":
        for i, value in enumerate(ds["label"], 1):
            if not (isinstance(value, bool) or (isinstance(value, (int, float)) and value in (0, 1))):
                raise DataCorrupt(f"data = {source!r} row {i}: label = {value!r} is not a boolean (true/false or 1/0)")


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    """``datasets`` draws a progress bar on stderr while it converts a local file: none here (a method never prints)."""
    from datasets.utils import logging as ds_logging

    was = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            ds_logging.enable_progress_bar()


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__


def feedback_kind(ds: Dataset) -> str | None:
    """'paired', 'unpaired' or None from the column names."""
    cols = set(ds.column_names)
    if set(PAIRED_COLUMNS) <= cols:
        return "paired"
    if set(UNPAIRED_COLUMNS) <= cols:
        return "unpaired"
    return None


def paired_to_unpaired(ds: Dataset) -> Dataset:
    """Each (prompt, chosen, rejected) row → (prompt, chosen, True) and (prompt, rejected, False)."""
    prompts, completions, labels = [], [], []
    for row in ds:
        prompts += [row["prompt"], row["prompt"]]
        completions += [row["chosen"], row["rejected"]]
        labels += [True, False]
    return from_rows({"prompt": prompts, "completion": completions, "label": labels})


def unpaired_to_paired(ds: Dataset, generator: torch.Generator) -> Dataset:
    """Pair desirable with undesirable completions of the same prompt (shuffled by ``generator``, each used once)."""
    good: dict[str, list[str]] = defaultdict(list)
    bad: dict[str, list[str]] = defaultdict(list)
    for row in ds:
        (good if row["label"] else bad)[row["prompt"]].append(row["completion"])
    rows: dict[str, list[str]] = {"prompt": [], "chosen": [], "rejected": []}
    for prompt in sorted(good):
        g, b = _shuffled(good[prompt], generator), _shuffled(bad.get(prompt, []), generator)
        for c, r in zip(g, b):
            rows["prompt"].append(prompt)
            rows["chosen"].append(c)
            rows["rejected"].append(r)
    return from_rows(rows)


def _shuffled(items: list[T], generator: torch.Generator) -> list[T]:
    return [items[i] for i in torch.randperm(len(items), generator=generator).tolist()]


def subsample(ds: Dataset, desirable_share: float = 1.0, undesirable_share: float = 1.0, *,
              generator: torch.Generator) -> Dataset:
    """Keep a random (``generator``) ``desirable_share`` of the desirable rows and ``undesirable_share`` of the
    rest (at least one row of a class that had any)."""
    for name, share in (("desirable_share", desirable_share), ("undesirable_share", undesirable_share)):
        if not 0 < share <= 1:
            raise ValueError(f"{name} = {share} must be in (0, 1]")
    keep = []
    for label, share in ((True, desirable_share), (False, undesirable_share)):
        idx = [i for i, lab in enumerate(ds["label"]) if bool(lab) == label]
        if idx:
            keep += _shuffled(idx, generator)[: max(1, round(share * len(idx)))]
    return ds.select(sorted(keep))


def counts(ds: Dataset) -> tuple[int, int]:
    """(n_desirable, n_undesirable) of an unpaired dataset."""
    labels = [bool(x) for x in ds["label"]]
    return sum(labels), len(labels) - sum(labels)
