"""DATASET-C: a cached corrupted copy of any registered image dataset (like CIFAR-10-C).

The cache directory ``root`` always comes from the caller (``ctx.cache_dir("dataset-c")`` in a run, any folder
elsewhere): a toolkit never looks for the run store. ``build_c("digits", root=ctx.cache_dir("dataset-c"))``
writes ``<root>/digits-C/<split>/<corruption>.npz`` holding ``images``
(uint8, 5×N×C×H×W: severities 1–5, quantised like the published CIFAR-10-C files) and ``labels``; later
calls reuse the files. ``load_c`` reads one corruption × severity back as float32 tensors in [0, 1].
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from workbench.lib.robustness.corruptions import CORRUPTIONS, corrupt

__all__ = ["c_root", "build_c", "load_c", "load_c_all"]


def c_root(name: str, split: str = "test", root: str | os.PathLike[str] | None = None, limit: int | None = None) -> Path:
    """``<root>/<name>-C/<split>`` (``<split>-first<limit>`` for a truncated copy)."""
    if root is None:
        raise ValueError("root: the DATASET-C cache directory is required (ctx.cache_dir('dataset-c') in a run, "
                         "any folder elsewhere)")
    return Path(root) / f"{name}-C" / (split if not limit else f"{split}-first{limit}")


def _seed(seed: int, corruption: str, severity: int) -> int:
    return seed + 1000 * CORRUPTIONS.index(corruption) + severity


def build_c(
    name: str,
    split: str = "test",
    corruptions: Iterable[str] = CORRUPTIONS,
    seed: int = 0,
    limit: int | None = None,
    root: str | os.PathLike[str] | None = None,
) -> Path:
    """Make (or reuse) DATASET-C for ``name``; returns its directory. ``limit`` keeps the first N images."""
    from workbench.lib import data

    x, y = data.tensors(name, split)
    if x.dim() != 4:
        raise ValueError(f"dataset {name!r} is not an image dataset (tensors of shape {tuple(x.shape)})")
    if limit:
        x, y = x[:limit], y[:limit]
    out = c_root(name, split, root, limit)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"dataset": name, "split": split, "n": int(len(x)), "seed": seed}
    meta_path = out / "meta.json"
    if meta_path.exists() and json.loads(meta_path.read_text()) != meta:
        for f in out.glob("*.npz"):
            f.unlink()
    meta_path.write_text(json.dumps(meta))
    xn = x.numpy()
    for c in corruptions:
        if c not in CORRUPTIONS:
            raise ValueError(f"corruption must be one of {', '.join(CORRUPTIONS)}, got {c!r}")
        path = out / f"{c}.npz"
        if path.exists():
            continue
        imgs = np.stack([corrupt(xn, c, s, seed=_seed(seed, c, s)) for s in range(1, 6)])
        tmp = out / f".{c}.{os.getpid()}.npz"
        np.savez_compressed(tmp, images=np.round(imgs * 255).astype(np.uint8), labels=y.numpy())
        tmp.replace(path)
    return out


def load_c(
    name: str,
    corruption: str,
    severity: int,
    split: str = "test",
    root: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(X float32 N×C×H×W in [0, 1], y int64) of one corruption × severity, building the cache if needed."""
    if not 1 <= severity <= 5:
        raise ValueError(f"severity must be in [1, 5], got {severity}")
    path = c_root(name, split, root, limit) / f"{corruption}.npz"
    if not path.exists():
        build_c(name, split, corruptions=[corruption], seed=seed, limit=limit, root=root)
    with np.load(path) as f:
        return torch.from_numpy(f["images"][severity - 1].astype(np.float32) / 255.0), torch.from_numpy(f["labels"])


def load_c_all(
    name: str,
    corruption: str,
    split: str = "test",
    root: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, torch.Tensor]:
    """(uint8 array 5×N×C×H×W of severities 1–5, y int64) of one corruption, read once (the evaluation converts
    one severity at a time to float, so memory holds one corruption, not the whole DATASET-C)."""
    path = c_root(name, split, root, limit) / f"{corruption}.npz"
    if not path.exists():
        build_c(name, split, corruptions=[corruption], seed=seed, limit=limit, root=root)
    with np.load(path) as f:
        return f["images"], torch.from_numpy(f["labels"])
