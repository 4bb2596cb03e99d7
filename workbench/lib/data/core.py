"""``load`` (a Hugging Face ``datasets.Dataset``) and ``tensors`` (the one torch adapter).

Splits, for every dataset:
- ``test``: the official test split; datasets without one (digits, two_moons) keep a stratified
  ``test_fraction`` of their examples as test, chosen with the fixed seed :data:`TEST_SEED`, so the
  test set never moves and never overlaps any training split whatever ``seed`` is.
- ``holdout``: a stratified fraction ``holdout`` of the remaining (official) train examples, chosen by ``seed``.
- ``train``: the rest; ``train`` and ``holdout`` are disjoint and together make ``train+holdout``.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from . import sources
from .catalog import DataNotFound, DatasetSpec, spec as get_spec
from .splits import stratified_split

SPLITS = ("train", "holdout", "test", "train+holdout")
TEST_SEED = 0
DEFAULT_HOLDOUT = 0.1
#: Options of the synthetic two_moons dataset and their defaults.
TWO_MOONS_OPTIONS = {"n_samples": 1000, "noise": 0.1, "data_seed": 0}

_lock = threading.RLock()
_official_cache: dict[tuple[Any, ...], tuple[str, sources.Splits]] = {}
_tensor_cache: OrderedDict[tuple[Any, ...], tuple[Any, Any]] = OrderedDict()
#: Tensor splits kept per process (least recently used dropped first): a notebook that runs many seeds or
#: datasets one after another must not keep every split of every one of them.
TENSOR_CACHE_SIZE = 8


def _check_options(spec: DatasetSpec, options: dict[str, Any]) -> dict[str, Any]:
    if spec.name != "two_moons":
        if options:
            raise ValueError(f"dataset {spec.name!r} takes no options; got {sorted(options)}")
        return {}
    unknown = sorted(set(options) - set(TWO_MOONS_OPTIONS))
    if unknown:
        raise ValueError(f"unknown two_moons option(s) {unknown}; known: {sorted(TWO_MOONS_OPTIONS)}")
    out = {**TWO_MOONS_OPTIONS, **options}
    if not (isinstance(out["n_samples"], int) and 10 <= out["n_samples"] <= 10_000_000):
        raise ValueError(f"two_moons n_samples = {out['n_samples']!r} is out of range; allowed integers [10, 10000000]")
    if not (isinstance(out["noise"], (int, float)) and 0.0 <= out["noise"] <= 10.0):
        raise ValueError(f"two_moons noise = {out['noise']!r} is out of range; allowed [0, 10]")
    out["noise"] = float(out["noise"])
    return out


def _two_moons(n_samples: int, noise: float, data_seed: int) -> sources.Splits:
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=n_samples, noise=noise, random_state=data_seed)
    return {"train": (x.astype(np.float32), y.astype(np.int64))}


def _not_found(spec: DatasetSpec, root: str | os.PathLike[str] | None, reasons: list[str]) -> DataNotFound:
    where = sources.local_dir(spec.name, root)
    todo = [f"put train-*.parquet and test-*.parquet files in {where}"]
    if spec.install_hint:
        todo.append(spec.install_hint)
    if spec.hub_id:
        todo.append(f"go online (unset HF_HUB_OFFLINE) to download {spec.hub_id}")
    line = f"dataset {spec.name!r} is not available here ({'; '.join(reasons)}): " + ", or ".join(todo)
    lines = [f"dataset {spec.name!r} is not available here: " + "; ".join(reasons) + ".", "To use it, either:"]
    lines.append(
        f"  - put hub-layout parquet files (train-*.parquet and test-*.parquet) in {where}"
        + ("" if root is not None else " (set WORKBENCH_DATA to use another directory, or pass root=...)")
        + (f", e.g. `hf download {spec.hub_id} --repo-type dataset --local-dir {where}` on a machine with network"
           if spec.hub_id else "")
        + ", or write them with workbench.lib.data.export(name, directory) where the data is available;"
    )
    if spec.install_hint:
        lines.append(f"  - install it: {spec.install_hint};")
    if spec.hub_id:
        lines.append(f"  - go online (unset HF_HUB_OFFLINE) so that it downloads from the hub ({spec.hub_id}).")
    return DataNotFound(line, "\n".join(lines))


def official_splits(name: str, root: str | os.PathLike[str] | None = None, **options: Any) -> tuple[str, sources.Splits]:
    """(source description, official splits as numpy arrays), from the first source that can serve them. Cached."""
    spec = get_spec(name)
    opts = _check_options(spec, options)
    local = sources.local_dir(spec.name, root)
    key = (spec.name, str(local), tuple(sorted(opts.items())))
    with _lock:
        if key in _official_cache:
            return _official_cache[key]
        reasons: list[str] = []
        found: tuple[str, sources.Splits] | None = None
        if spec.sources == ("synthetic",):
            found = (f"synthetic (make_moons {opts})", _two_moons(**opts))
        else:
            local_splits = sources.from_local(spec, root)
            if local_splits is not None:
                found = (f"local parquet {local}", local_splits)
            elif root is not None:
                raise _not_found(spec, root, [f"no train-*.parquet files under root={str(root)!r}"])
            else:
                reasons.append(f"no parquet files in {local}")
            if found is None and "package" in spec.sources:
                packaged = sources.from_package(spec)
                if packaged is not None:
                    found = ("installed package", packaged)
                else:
                    reasons.append(f"not installed ({spec.install_hint})")
            if found is None and "hub" in spec.sources:
                hub, why = sources.from_hub(spec)
                if hub is not None:
                    found = (f"hub {spec.hub_id}", hub)
                else:
                    reasons.append(f"the hub: {why}")
        if found is None:
            raise _not_found(spec, root, reasons)
        _check_arrays(spec, found)
        _official_cache[key] = found
        return found


def _check_arrays(spec: DatasetSpec, found: tuple[str, sources.Splits]) -> None:
    source, splits = found
    for split, (x, y) in splits.items():
        if x.shape[1:] != spec.shape or len(x) != len(y):
            raise ValueError(f"{spec.name} {split} from {source}: shape {x.shape}, {len(y)} labels; expected N×{spec.shape}")
        if len(y) and (y.min() < 0 or y.max() >= spec.num_classes):
            raise ValueError(f"{spec.name} {split} from {source}: labels outside [0, {spec.num_classes - 1}]")


def arrays(
    name: str,
    split: str = "train",
    seed: int = 0,
    root: str | os.PathLike[str] | None = None,
    holdout: float = DEFAULT_HOLDOUT,
    **options: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) numpy arrays of one split; see the module docstring for how splits are made."""
    if split not in SPLITS:
        raise ValueError(f"split = {split!r} is not allowed; allowed: {', '.join(SPLITS)}")
    if not (isinstance(seed, (int, np.integer)) and seed >= 0):
        raise ValueError(f"seed = {seed!r} must be an integer >= 0")
    if not (isinstance(holdout, (int, float)) and 0.0 <= holdout <= 0.9):
        raise ValueError(f"holdout = {holdout!r} is out of range; allowed [0, 0.9]")
    if split == "holdout" and holdout == 0.0:
        raise ValueError("split = 'holdout' needs holdout > 0 (the fraction of train carved off); allowed (0, 0.9]")
    spec = get_spec(name)
    _, splits = official_splits(name, root, **options)
    if "test" in splits:
        pool, test = splits["train"], splits["test"]
    else:
        x_all, y_all = splits["train"]
        keep, carved = stratified_split(y_all, spec.test_fraction, TEST_SEED)
        pool, test = (x_all[keep], y_all[keep]), (x_all[carved], y_all[carved])
    if split == "test":
        return test
    if split == "train+holdout":
        return pool
    keep, carved = stratified_split(pool[1], float(holdout), int(seed))
    idx = keep if split == "train" else carved
    return pool[0][idx], pool[1][idx]


def to_dataset(x: np.ndarray, y: np.ndarray, spec: DatasetSpec, description: str = "") -> Any:
    """Build the canonical ``datasets.Dataset`` (numpy format): ``image`` Array3D float32 C×H×W (``x``:
    2 floats for point datasets) and ``label`` ClassLabel. Built from Arrow buffers, without Python loops."""
    import datasets
    import pyarrow as pa
    from datasets.table import InMemoryTable

    x = np.ascontiguousarray(x, dtype=np.float32)
    labels = pa.array(np.asarray(y, dtype=np.int64))
    label_feature = datasets.ClassLabel(names=list(spec.classes))
    if spec.is_image:
        storage: pa.Array = pa.array(x.reshape(-1))
        for d in reversed(spec.shape):
            n = len(storage) // d
            storage = pa.ListArray.from_arrays(pa.array(np.arange(0, n * d + 1, d, dtype=np.int32)), storage)
        ext = datasets.features.features.Array3DExtensionType(spec.shape, "float32")
        column = pa.ExtensionArray.from_storage(ext, storage)
        features = datasets.Features({"image": datasets.Array3D(shape=spec.shape, dtype="float32"), "label": label_feature})
        table = pa.table({"image": column, "label": labels})
    else:
        d = spec.shape[0]
        column = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), d)
        features = datasets.Features({"x": datasets.Sequence(datasets.Value("float32"), length=d), "label": label_feature})
        table = pa.table({"x": column, "label": labels})
    info = datasets.DatasetInfo(features=features, description=description)
    return datasets.Dataset(InMemoryTable(table).cast(features.arrow_schema), info=info).with_format("numpy")


def load(
    name: str,
    split: str = "train",
    seed: int = 0,
    root: str | os.PathLike[str] | None = None,
    holdout: float = DEFAULT_HOLDOUT,
    **options: Any,
) -> Any:
    """One split of dataset ``name`` as a Hugging Face ``datasets.Dataset`` in numpy format.

    Columns: ``image`` (float32 C×H×W in [0, 1]) and ``label`` (int, ClassLabel) for image datasets;
    ``x`` (2 floats) and ``label`` for two_moons: the same schema whichever source served it.
    Sources, in order: the parquet directory ``root`` (or ``$WORKBENCH_DATA/<name>``), data shipped in an
    installed package, the hub (only when online, or from its cache). ``options`` are two_moons' ``n_samples``,
    ``noise`` and ``data_seed``. Raises :class:`DataNotFound` with what to do when nothing serves it.
    """
    x, y = arrays(name, split, seed, root, holdout, **options)
    source, _ = official_splits(name, root, **options)
    return to_dataset(x, y, get_spec(name), description=f"{name} / {split} (seed {seed}) from {source}")


def source(name: str, root: str | os.PathLike[str] | None = None, **options: Any) -> str:
    """Which source serves dataset ``name`` (loading it if needed)."""
    return official_splits(name, root, **options)[0]


def needs_dataset(cfg: Any) -> None:
    """An experiment's ``preflight``: the dataset ``cfg.dataset`` can be served here, or
    :class:`~workbench.core.errors.DataNotFound` / :class:`~workbench.core.errors.DataCorrupt` says what to do."""
    source(cfg.dataset)


def tensors(
    name: str,
    split: str = "train",
    seed: int = 0,
    root: str | os.PathLike[str] | None = None,
    holdout: float = DEFAULT_HOLDOUT,
    **options: Any,
) -> tuple[Any, Any]:
    """(X, y) torch tensors of one split: X float32 N×C×H×W in [0, 1] (two_moons: N×2), y int64.

    Cached per process (the :data:`TENSOR_CACHE_SIZE` most recently used splits): repeated calls return the same
    tensors, so treat them as read-only (clone before modifying in place).
    """
    import torch

    spec = get_spec(name)
    key = (spec.name, split, int(seed), str(sources.local_dir(spec.name, root)), float(holdout),
           tuple(sorted(_check_options(spec, options).items())))
    with _lock:
        if key not in _tensor_cache:
            x, y = arrays(name, split, seed, root, holdout, **options)
            _tensor_cache[key] = (torch.from_numpy(np.array(x, dtype=np.float32)), torch.from_numpy(np.array(y, dtype=np.int64)))
            while len(_tensor_cache) > TENSOR_CACHE_SIZE:
                _tensor_cache.popitem(last=False)
        _tensor_cache.move_to_end(key)
        return _tensor_cache[key]


def as_tensors(dataset: Any) -> tuple[Any, Any]:
    """Any dataset in the canonical schema (e.g. a ``load(...)`` result after ``.filter``/``.select``) as (X, y) tensors."""
    import torch

    rows = dataset.with_format("numpy")[:]
    column = "image" if "image" in rows else "x"
    x = np.asarray(rows[column], dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.asarray(rows["label"], dtype=np.int64))


def export(name: str, directory: str | os.PathLike[str], **options: Any) -> Path:
    """Write dataset ``name``'s official splits as hub-layout parquet under ``directory/<name>/``; returns that folder.

    Copy the folder to ``$WORKBENCH_DATA`` on a machine without network to serve it from there.
    """
    spec = get_spec(name)
    source_desc, splits = official_splits(name, **options)
    out = Path(directory) / spec.name
    out.mkdir(parents=True, exist_ok=True)
    for split, (x, y) in splits.items():
        to_dataset(x, y, spec, description=source_desc).to_parquet(str(out / f"{split}-00000-of-00001.parquet"))
    return out


def clear_cache() -> None:
    """Forget every cached dataset (tests use it after changing WORKBENCH_DATA)."""
    with _lock:
        _official_cache.clear()
        _tensor_cache.clear()
