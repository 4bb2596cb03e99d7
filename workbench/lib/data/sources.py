"""Where the arrays come from. Each source returns the *official* splits of a dataset as numpy arrays
``{"train": (X, y), "test": (X, y)}`` (or only ``"train"`` when the dataset has no test split), with
X float32 in the dataset's shape (images N×C×H×W in [0, 1]) and y int64, or ``None`` when it cannot
serve the dataset. The order in which they are tried lives in :mod:`workbench.lib.data.core`.
"""
from __future__ import annotations

import gzip
import io
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

from .catalog import DatasetSpec

Arrays = tuple[np.ndarray, np.ndarray]
Splits = dict[str, Arrays]

#: Column names accepted for the image and the label in a local or hub dataset.
IMAGE_COLUMNS = ("image", "img", "pixel_values", "x")
LABEL_COLUMNS = ("label", "labels", "fine_label")


# ---------------------------------------------------------------- local directory (hub layout, parquet)


def data_home() -> Path:
    """The local data directory: ``$WORKBENCH_DATA`` or ``~/.cache/workbench/data``."""
    env = os.environ.get("WORKBENCH_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "workbench" / "data"


def local_dir(name: str, root: str | os.PathLike[str] | None) -> Path:
    """The directory holding dataset ``name``: ``root/<name>`` if it exists, else ``root`` itself;
    without ``root``: ``data_home()/<name>``."""
    if root is None:
        return data_home() / name
    base = Path(root).expanduser()
    return base / name if (base / name).is_dir() else base


def parquet_files(directory: Path) -> dict[str, list[str]]:
    """Parquet files of each split in a hub-layout directory.

    Accepted names (searched recursively): ``<split>-00000-of-00001.parquet``, ``<split>.parquet``,
    ``<split>/*.parquet``, for split in train and test.
    """
    found: dict[str, list[str]] = {}
    if not directory.is_dir():
        return found
    for split in ("train", "test"):
        files = {
            *directory.rglob(f"{split}-*.parquet"),
            *directory.rglob(f"{split}.parquet"),
            *directory.rglob(f"{split}/*.parquet"),
        }
        if files:
            found[split] = sorted(map(str, files))
    return found


def from_local(spec: DatasetSpec, root: str | os.PathLike[str] | None) -> Splits | None:
    """Read hub-layout parquet files with ``datasets.load_dataset("parquet", data_files=...)``."""
    directory = local_dir(spec.name, root)
    files = parquet_files(directory)
    if "train" not in files:
        return None
    import datasets

    _check_parquet([f for split in files.values() for f in split], spec.name)
    loaded = datasets.load_dataset("parquet", data_files=files)
    return {split: normalise(loaded[split], spec) for split in files}


def _check_parquet(paths: list[str], name: str) -> None:
    """Raise :class:`~workbench.core.errors.DataCorrupt` naming the first file that is not readable parquet."""
    import pyarrow.parquet as pq

    from workbench.core.errors import DataCorrupt

    for path in paths:
        try:
            pq.read_metadata(path)
        except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a damaged file
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise DataCorrupt(f"dataset {name!r}: {path} is not a readable parquet file ({reason}); delete or "
                              "replace it (workbench.lib.data.export(name, directory) writes valid files)") from err


# ---------------------------------------------------------------- decoding any schema into the canonical arrays


def _column(ds: Any, candidates: tuple[str, ...], what: str, spec: DatasetSpec) -> str:
    for name in candidates:
        if name in ds.column_names:
            return name
    raise ValueError(
        f"dataset {spec.name!r}: no {what} column among {list(ds.column_names)} (expected one of {list(candidates)})"
    )


def _decode_image(value: Any) -> np.ndarray:
    """One image as a float32 array in the layout it came in; PIL images and PNG bytes are decoded."""
    if isinstance(value, dict):  # datasets Image(decode=False): {"bytes": ..., "path": ...}
        from PIL import Image

        if value.get("bytes") is not None:
            value = Image.open(io.BytesIO(value["bytes"]))
        else:
            value = Image.open(value["path"])
    if hasattr(value, "convert") and hasattr(value, "size"):  # a PIL image: H×W(×3) uint8
        return np.asarray(value, dtype=np.uint8)
    return np.asarray(value)


def to_chw(images: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Bring images to float32 N×C×H×W in [0, 1] from uint8 (0–255), H×W, H×W×C or already C×H×W."""
    x = np.asarray(images)
    scale = 255.0 if x.dtype == np.uint8 or (x.size and float(x.max()) > 1.0) else 1.0
    x = x.astype(np.float32) / np.float32(scale)
    c, h, w = shape
    if x.ndim == 3:  # N×H×W
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1:] == (h, w, c) and x.shape[1:] != (c, h, w):
        x = x.transpose(0, 3, 1, 2)
    if x.shape[1:] != (c, h, w):
        raise ValueError(f"images have shape {x.shape[1:]}, expected {(c, h, w)} (C×H×W) or H×W×C")
    return np.ascontiguousarray(x)


def normalise(ds: Any, spec: DatasetSpec) -> Arrays:
    """Turn a Hugging Face dataset in the hub's schema (PIL/PNG images) or ours (float arrays) into arrays."""
    import datasets

    label_col = _column(ds, LABEL_COLUMNS, "label", spec)
    y = np.asarray(ds.with_format("numpy")[:][label_col], dtype=np.int64)
    if not spec.is_image:
        col = _column(ds, ("x", "point", "features"), "point", spec)
        x = np.asarray(ds.with_format("numpy")[:][col], dtype=np.float32).reshape(len(ds), *spec.shape)
        return x, y
    col = _column(ds, IMAGE_COLUMNS, "image", spec)
    feature = ds.features[col]
    if isinstance(feature, datasets.Image):
        raw = ds.cast_column(col, datasets.Image(decode=False))[col]
        images = np.stack([_decode_image(v) for v in raw])
    else:
        images = np.asarray(ds.with_format("numpy")[:][col])
        if images.dtype == object:
            images = np.stack([_decode_image(v) for v in images])
    return to_chw(images, spec.shape), y


# ---------------------------------------------------------------- data shipped in installed packages


def from_package(spec: DatasetSpec) -> Splits | None:
    """``digits`` from scikit-learn's bundled copy; ``fashion_mnist`` from Debian's dataset-fashion-mnist."""
    if spec.name == "digits":
        return _sklearn_digits()
    if spec.name == "fashion_mnist":
        directory = fashion_mnist_dir()
        return None if directory is None else _idx_splits(directory, spec)
    return None


def _sklearn_digits() -> Splits | None:
    """The 1,797 8×8 digits scikit-learn ships (``sklearn/datasets/data/digits.csv.gz``: 64 pixel values 0..16 and the
    label per row), read from the file: importing ``sklearn.datasets`` alone takes about a second per process."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():
        return None
    with gzip.open(path, "rt") as fh:
        data = np.loadtxt(fh, delimiter=",")
    x = (data[:, :-1].reshape(-1, 1, 8, 8).astype(np.float32) / np.float32(16.0))  # pixel values are 0..16
    return {"train": (np.ascontiguousarray(x), data[:, -1].astype(np.int64))}


def _fashion_candidates() -> list[Path]:
    env = os.environ.get("FASHION_MNIST_DIR")
    prefixes = [sys.prefix, os.environ.get("CONDA_PREFIX", ""), "/usr", "/usr/local"]
    out = [Path(env)] if env else []
    out += [Path(p) / "share" / "datasets" / "fashion-mnist" for p in prefixes if p]
    return out


def fashion_mnist_dir() -> Path | None:
    """Where dataset-fashion-mnist's idx files are (``/usr/share/datasets/fashion-mnist``), or None."""
    for directory in _fashion_candidates():
        if _idx_path(directory, "train-images-idx3-ubyte") is not None:
            return directory
    return None


def _idx_path(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (LeCun's MNIST format: magic 0x0000 | type | ndim, big-endian int32 dims, data)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims} but holds {arr.size} values")
    return arr.reshape(dims)


def _idx_splits(directory: Path, spec: DatasetSpec) -> Splits | None:
    out: Splits = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = _idx_path(directory, f"{prefix}-images-idx3-ubyte")
        labels = _idx_path(directory, f"{prefix}-labels-idx1-ubyte")
        if images is None or labels is None:
            return None
        out[split] = (to_chw(read_idx(images), spec.shape), read_idx(labels).astype(np.int64))
    return out


# ---------------------------------------------------------------- the hub


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set to a true value."""
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on") for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def hub_reachable(timeout: float = 2.0) -> bool:
    """One quick TCP connection to the hub, bounded in time (DNS included); no retries."""
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection(("huggingface.co", 443), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(result and result[0])


def from_hub(spec: DatasetSpec) -> tuple[Splits | None, str]:
    """Download (or read the hub cache, when offline) with ``datasets.load_dataset(spec.hub_id)``.

    Returns (splits or None, why not). Offline it only looks in the local hub cache, which fails fast.
    """
    if spec.hub_id is None:
        return None, "not on the hub"
    offline = hub_offline()
    if not offline and not hub_reachable():
        return None, "the hub is unreachable (no network)"
    import datasets

    try:
        loaded = datasets.load_dataset(spec.hub_id)
    except Exception as exc:  # ConnectionError offline without cache, FileNotFoundError, ...
        why = "offline (HF_HUB_OFFLINE=1) and not in the hub cache" if offline else f"hub error: {exc}"
        return None, why
    return {split: normalise(loaded[split], spec) for split in ("train", "test") if split in loaded}, ""
