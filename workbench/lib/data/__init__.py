"""Datasets: one schema whichever source serves them (local parquet, installed packages, the hub).

>>> from workbench.lib import data
>>> ds = data.load("digits", split="train")          # datasets.Dataset: image (1×8×8 float32), label
>>> X, y = data.tensors("digits", "test")            # torch: X float32 N×1×8×8 in [0, 1], y int64
"""
from .catalog import DATASETS, DataNotFound, DatasetSpec, ImageDataParams, image_datasets, class_names, input_shape, num_classes, spec
from .core import (
    DEFAULT_HOLDOUT,
    SPLITS,
    TEST_SEED,
    arrays,
    as_tensors,
    clear_cache,
    export,
    load,
    needs_dataset,
    official_splits,
    source,
    tensors,
    to_dataset,
)
from .sources import data_home, fashion_mnist_dir, read_idx
from workbench.core.errors import DataCorrupt

__all__ = [
    "DATASETS", "DataNotFound", "DataCorrupt", "DatasetSpec", "needs_dataset", "SPLITS", "TEST_SEED", "DEFAULT_HOLDOUT",
    "load", "tensors", "arrays", "as_tensors", "export", "source", "official_splits", "to_dataset",
    "num_classes", "input_shape", "ImageDataParams", "image_datasets", "class_names", "spec", "clear_cache", "data_home", "fashion_mnist_dir", "read_idx",
]
