"""Robustness toolkit shared by NFM and NoisyMix, usable on any classifier.

    from workbench.robustness import corrupt, CORRUPTIONS, evaluate_classifier, mce, expected_calibration_error

- :mod:`~workbench.robustness.corruptions`: ``corrupt(images, name, severity, seed)`` — 15 standard + 4 extra
  corruptions (CIFAR-10-C constants, rescaled for small images) and NFM's white noise / salt-and-pepper;
- :mod:`~workbench.robustness.dataset_c`: cached DATASET-C for any registered image dataset;
- :mod:`~workbench.robustness.metrics`: accuracy tables, mean corruption accuracy, mCE, flip probability;
- :mod:`~workbench.robustness.benchmark`: the whole benchmark for one model;
- :mod:`~workbench.robustness.mixing`: the noisy feature mixing step shared by NFM and NoisyMix.
"""
from workbench.metrics import expected_calibration_error, reliability
from workbench.robustness.benchmark import baseline_table, evaluate_classifier
from workbench.robustness.corruptions import (
    CORRUPTIONS,
    EXTRA,
    NOISE,
    SALT_PEPPER_LEVELS,
    STANDARD,
    WHITE_NOISE_LEVELS,
    corrupt,
    salt_and_pepper,
    white_noise,
)
from workbench.robustness.dataset_c import build_c, load_c
from workbench.robustness.metrics import (
    accuracy_table,
    flip_probability,
    flip_rate,
    mce,
    mean_corruption_accuracy,
    noise_sequence,
    shift_sequence,
)
from workbench.robustness.mixing import mix_features, staged_forward

__all__ = [
    "CORRUPTIONS", "STANDARD", "EXTRA", "NOISE", "WHITE_NOISE_LEVELS", "SALT_PEPPER_LEVELS",
    "corrupt", "white_noise", "salt_and_pepper", "build_c", "load_c",
    "accuracy_table", "mean_corruption_accuracy", "mce", "flip_probability", "flip_rate", "noise_sequence",
    "shift_sequence", "evaluate_classifier", "baseline_table", "mix_features", "staged_forward",
    "expected_calibration_error", "reliability",
]
