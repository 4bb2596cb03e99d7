"""The registry of datasets: what each one is, its shape, its classes and where it can come from."""
from __future__ import annotations

from dataclasses import dataclass, field

from workbench.core.params import Param, ParamGroup
from workbench.core.errors import DataNotFound  # noqa: F401  (re-exported: ``workbench.lib.data.DataNotFound``)


@dataclass(frozen=True)
class DatasetSpec:
    """One registered dataset.

    name: the short name used everywhere (``load("digits")``).
    sources: the kinds of source tried, in order (``local`` parquet directory, ``package`` data shipped
        in an installed package, ``hub`` the Hugging Face hub, ``synthetic`` generated here).
    shape: one example's shape: (C, H, W) for images, (D,) for points.
    classes: the class names, index = label.
    hub_id: the Hugging Face hub repository, when the hub can serve it.
    hub_image_column: the image column's name in the hub's schema.
    test_fraction: for datasets without an official test split, the stratified fraction kept as test.
    install_hint: one line on how to get the data without the hub (a package to install), or "".
    """

    name: str
    sources: tuple[str, ...]
    shape: tuple[int, ...]
    classes: tuple[str, ...]
    hub_id: str | None = None
    hub_image_column: str = "image"
    test_fraction: float = 0.2
    install_hint: str = ""
    doc: str = field(default="", compare=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3


_DIGITS = tuple(str(i) for i in range(10))

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "digits", ("local", "package"), (1, 8, 8), _DIGITS,
            install_hint="ships with scikit-learn (pip install scikit-learn)",
            doc="scikit-learn's bundled 8x8 handwritten digits (1797 images); no official test split",
        ),
        DatasetSpec(
            "fashion_mnist", ("local", "package", "hub"), (1, 28, 28),
            ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
            hub_id="zalando-datasets/fashion_mnist",
            install_hint="apt-get install dataset-fashion-mnist (Debian/Ubuntu idx files)",
            doc="Zalando's 28x28 grey clothing images, 60000 train / 10000 test",
        ),
        DatasetSpec(
            "mnist", ("local", "hub"), (1, 28, 28), _DIGITS, hub_id="ylecun/mnist",
            doc="LeCun's 28x28 handwritten digits, 60000 train / 10000 test",
        ),
        DatasetSpec(
            "cifar10", ("local", "hub"), (3, 32, 32),
            ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
            hub_id="uoft-cs/cifar10", hub_image_column="img",
            doc="32x32 colour images in 10 classes, 50000 train / 10000 test",
        ),
        DatasetSpec(
            "two_moons", ("synthetic",), (2,), ("upper", "lower"),
            doc="scikit-learn make_moons: two interleaved half circles in 2-D with Gaussian noise",
        ),
    )
}


def spec(name: str) -> DatasetSpec:
    """The registered :class:`DatasetSpec` called ``name``; a clear error listing the names otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; registered: {', '.join(DATASETS)}") from None


def num_classes(name: str) -> int:
    """Number of classes of dataset ``name``."""
    return spec(name).num_classes


def input_shape(name: str) -> tuple[int, ...]:
    """One example's shape: (C, H, W) for image datasets, (2,) for two_moons."""
    return spec(name).shape


def class_names(name: str) -> tuple[str, ...]:
    """Class names of dataset ``name``, index = label."""
    return spec(name).classes


def image_datasets() -> tuple[str, ...]:
    """The registered datasets whose examples are images (C, H, W), in catalog order."""
    return tuple(name for name, s in DATASETS.items() if s.is_image)


class ImageDataParams(ParamGroup):
    """Which image dataset a method trains on; the choices come from the catalog, so a newly registered image
    dataset is offered by every method that composes this group."""

    title = "data"
    dataset: str = Param("digits", choices=image_datasets(), doc="image dataset (digits: 8x8, offline, fastest)")
