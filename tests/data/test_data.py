"""workbench.lib.data: schema, splits, sources (package, local parquet, idx), offline errors."""
from __future__ import annotations

import gzip
import io
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.lib import data


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "data_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data.clear_cache()
    yield
    data.clear_cache()


def test_registry_describes_every_dataset():
    assert set(data.DATASETS) == {"digits", "fashion_mnist", "mnist", "cifar10", "two_moons"}
    assert data.input_shape("digits") == (1, 8, 8)
    assert data.input_shape("cifar10") == (3, 32, 32)
    assert data.input_shape("two_moons") == (2,)
    assert data.num_classes("fashion_mnist") == 10 and data.num_classes("two_moons") == 2
    assert data.class_names("cifar10")[0] == "airplane"
    with pytest.raises(ValueError, match="unknown dataset 'svhn'.*digits"):
        data.load("svhn")


def test_digits_schema_and_tensors():
    ds = data.load("digits", "train")
    assert ds.column_names == ["image", "label"]
    assert ds.features["label"].names == [str(i) for i in range(10)]
    assert ds[0]["image"].shape == (1, 8, 8) and ds[0]["image"].dtype == np.float32
    X, y = data.tensors("digits", "train")
    assert X.dtype == torch.float32 and y.dtype == torch.int64 and X.shape == (len(ds), 1, 8, 8)
    assert 0.0 <= X.min() and X.max() <= 1.0 and X.max() == 1.0
    # the Dataset and the torch adapter hold the same examples
    Xd, yd = data.as_tensors(ds)
    assert torch.equal(Xd, X) and torch.equal(yd, y)
    assert data.tensors("digits", "train") [0] is X  # cached per process


def test_digits_read_from_sklearns_file_equal_load_digits_without_importing_sklearn():
    """The bundled file read directly gives scikit-learn's own arrays, and a process that loads digits does not
    import ``sklearn`` (about a second per process: each demo child, each notebook kernel)."""
    import subprocess
    import sys

    from sklearn.datasets import load_digits

    from workbench.lib.data.sources import _sklearn_digits

    x, y = _sklearn_digits()["train"]
    bunch = load_digits()
    assert np.array_equal(x, (bunch.images.astype(np.float32) / np.float32(16.0))[:, None])
    assert np.array_equal(y, bunch.target.astype(np.int64)) and x.flags["C_CONTIGUOUS"]
    code = ("import sys\nfrom workbench.lib import data\nX, y = data.tensors('digits', 'train')\n"
            "assert len(X) > 1000 and 'sklearn' not in sys.modules, sorted(m for m in sys.modules if 'sklearn' in m)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_digits_splits_partition_and_are_stratified():
    n_total = 1797
    Xtr, ytr = data.tensors("digits", "train", seed=3)
    Xho, yho = data.tensors("digits", "holdout", seed=3)
    Xte, yte = data.tensors("digits", "test", seed=3)
    assert len(ytr) + len(yho) + len(yte) == n_total
    assert abs(len(yte) - 0.2 * n_total) <= 10 and abs(len(yho) - 0.1 * (n_total - len(yte))) <= 10
    rows = lambda X: {x.numpy().tobytes() for x in X}  # noqa: E731
    # digits has a few duplicate images; the index sets are disjoint, so the overlap of contents is tiny
    assert len(rows(Xtr) & rows(Xte)) <= 5 and len(rows(Xtr) & rows(Xho)) <= 5
    counts = torch.bincount(yte, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: 20% of ~180 per class
    # train+holdout is the union
    Xall, _ = data.tensors("digits", "train+holdout", seed=3)
    assert len(Xall) == len(Xtr) + len(Xho)


def test_splits_are_deterministic_given_seed_and_test_never_moves():
    a = data.arrays("digits", "train", seed=1)
    b = data.arrays("digits", "train", seed=1)
    c = data.arrays("digits", "train", seed=2)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert np.array_equal(data.arrays("digits", "test", seed=1)[0], data.arrays("digits", "test", seed=2)[0])
    assert len(data.arrays("digits", "train", holdout=0.0)[1]) == len(data.arrays("digits", "train+holdout")[1])


def test_bad_arguments_name_the_parameter():
    with pytest.raises(ValueError, match="split = 'valid'.*allowed: train, holdout, test"):
        data.load("digits", "valid")
    with pytest.raises(ValueError, match="holdout = 0.95 is out of range"):
        data.load("digits", "train", holdout=0.95)
    with pytest.raises(ValueError, match="needs holdout > 0"):
        data.load("digits", "holdout", holdout=0.0)
    with pytest.raises(ValueError, match="takes no options"):
        data.load("digits", noise=0.1)
    with pytest.raises(ValueError, match="two_moons noise = -1"):
        data.load("two_moons", noise=-1)


def test_two_moons():
    ds = data.load("two_moons", "train", n_samples=500, noise=0.0)
    assert ds.column_names == ["x", "label"] and ds[0]["x"].shape == (2,)
    X, y = data.tensors("two_moons", "test", n_samples=500, noise=0.0)
    assert X.shape == (100, 2) and set(y.tolist()) == {0, 1}
    # noise 0: every point lies exactly on its unit half circle, centred (0, 0) for class 0 and (1, 0.5) for class 1
    centre = torch.where(y[:, None] == 0, torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.5]))
    assert torch.allclose((X - centre).norm(dim=1), torch.ones(len(X)), atol=1e-5)
    Xn, _ = data.tensors("two_moons", "test", n_samples=500, noise=0.3)
    assert not torch.allclose(Xn, X)
    assert torch.equal(Xn, data.tensors("two_moons", "test", n_samples=500, noise=0.3)[0])


def _png(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_local_parquet_directory_in_hub_schema(tmp_path):
    """Hub layout with the hub's schema (PNG-encoded Image column) decodes into the same schema."""
    import datasets

    rng = np.random.default_rng(0)
    imgs = {s: rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8) for s, n in (("train", 40), ("test", 12))}
    labels = {s: rng.integers(0, 10, size=len(v)).astype(np.int64) for s, v in imgs.items()}
    root = tmp_path / "hubcopy"
    (root / "mnist" / "mnist").mkdir(parents=True)
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    for s in imgs:
        ds = datasets.Dataset.from_dict(
            {"image": [{"bytes": _png(a), "path": None} for a in imgs[s]], "label": labels[s]}, features=feats
        )
        ds.to_parquet(str(root / "mnist" / "mnist" / f"{s}-00000-of-00001.parquet"))
    assert "local parquet" in data.source("mnist", root=root)
    Xte, yte = data.tensors("mnist", "test", root=root)
    assert Xte.shape == (12, 1, 28, 28)
    assert torch.allclose(Xte[:, 0] * 255, torch.from_numpy(imgs["test"]).float(), atol=1e-3)
    assert torch.equal(yte, torch.from_numpy(labels["test"]))
    ds = data.load("mnist", "train", root=root)
    assert ds.column_names == ["image", "label"] and ds[0]["image"].shape == (1, 28, 28)
    assert len(ds) + len(data.load("mnist", "holdout", root=root)) == 40


def test_local_directory_via_env_and_export_roundtrip(tmp_path, monkeypatch):
    """export() writes our schema; $WORKBENCH_DATA then serves it ahead of the installed package."""
    out = data.export("digits", tmp_path / "exported")
    assert sorted(p.name for p in out.iterdir()) == ["train-00000-of-00001.parquet"]
    X_pkg, y_pkg = data.tensors("digits", "test")
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "exported"))
    data.clear_cache()
    assert "local parquet" in data.source("digits")
    X_loc, y_loc = data.tensors("digits", "test")
    assert torch.equal(X_loc, X_pkg) and torch.equal(y_loc, y_pkg)


def test_explicit_root_without_files_is_a_clear_error(tmp_path):
    with pytest.raises(data.DataNotFound, match="no train-.*parquet files under root"):
        data.load("digits", root=tmp_path / "empty")


def test_offline_without_source_raises_quickly_with_instructions(tmp_path):
    start = time.perf_counter()
    with pytest.raises(data.DataNotFound) as err:
        data.load("cifar10", "train")
    elapsed = time.perf_counter() - start
    msg = str(err.value)
    assert "cifar10" in msg and str(tmp_path / "data_home" / "cifar10") in msg
    assert "HF_HUB_OFFLINE" in msg and "uoft-cs/cifar10" in msg and "parquet" in msg
    assert elapsed < 20  # no network retry loop (generous: the machine is shared)


def _write_idx(path: Path, arr: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}i", *arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.astype(np.uint8).tobytes())


def test_idx_reader_on_a_written_file(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (30, 28, 28)), "train-labels-idx1-ubyte": rng.integers(0, 10, 30),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (7, 28, 28)), "t10k-labels-idx1-ubyte": rng.integers(0, 10, 7),
    }
    for stem, arr in arrays.items():
        _write_idx(tmp_path / f"{stem}.gz", arr)
    assert np.array_equal(data.read_idx(tmp_path / "t10k-images-idx3-ubyte.gz"), arrays["t10k-images-idx3-ubyte"])
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path))
    X, y = data.tensors("fashion_mnist", "test")
    assert X.shape == (7, 1, 28, 28) and torch.equal(y, torch.from_numpy(arrays["t10k-labels-idx1-ubyte"]))
    assert torch.allclose(X[:, 0] * 255, torch.from_numpy(arrays["t10k-images-idx3-ubyte"]).float(), atol=1e-3)


@pytest.mark.skipif(data.fashion_mnist_dir() is None, reason="Debian package dataset-fashion-mnist not installed")
def test_fashion_mnist_from_debian_package():
    X, y = data.tensors("fashion_mnist", "test")
    assert X.shape == (10_000, 1, 28, 28) and torch.bincount(y).tolist() == [1000] * 10
    assert data.source("fashion_mnist") == "installed package"
    assert len(data.tensors("fashion_mnist", "train")[1]) == 54_000
