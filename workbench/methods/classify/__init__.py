"""The classification baseline: ``workbench run classify``; the pieces a researcher may reuse."""
from .augment import Augmenter, crop_padding, random_crop, random_flip
from .schedules import SCHEDULES, lr_factor

__all__ = ["Augmenter", "crop_padding", "random_crop", "random_flip", "SCHEDULES", "lr_factor"]
