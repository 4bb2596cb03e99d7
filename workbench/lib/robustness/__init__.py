"""Robustness toolkit shared by NFM and NoisyMix, usable on any classifier.

    from workbench.lib.robustness import corrupt, CORRUPTIONS, evaluate_classifier, mce, expected_calibration_error

- :mod:`~workbench.lib.robustness.corruptions`: ``corrupt(images, name, severity, seed)`` — 15 standard + 4 extra
  corruptions (CIFAR-10-C constants, rescaled for small images) and NFM's white noise / salt-and-pepper;
- :mod:`~workbench.lib.robustness.dataset_c`: cached DATASET-C for any registered image dataset;
- :mod:`~workbench.lib.robustness.metrics`: accuracy tables, mean corruption accuracy, mCE, flip probability;
- :mod:`~workbench.lib.robustness.noise`: NFM's test-time noise protocol (white noise in the normalised space, salt and pepper);
- :mod:`~workbench.lib.robustness.benchmark`: the whole benchmark for one model (or several, each corruption read once);
- :mod:`~workbench.lib.robustness.mixing`: the noisy feature mixing step shared by NFM and NoisyMix;
- :mod:`~workbench.lib.robustness.inputs`: input standardisation inside the model, crop + flip, per-step generators;
- :mod:`~workbench.lib.robustness.training`: one recipe's training step, its batch (AugMix views) prepared a step ahead;
- :mod:`~workbench.lib.robustness.suite`: train several recipes on one budget and evaluate them all.

Names load on first use, so ``import workbench.methods.nfm`` (which needs only the mixing step) stays light.
"""
from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "expected_calibration_error": "workbench.lib.metrics", "reliability": "workbench.lib.metrics",
    **{n: "workbench.lib.robustness.benchmark" for n in ("evaluate_classifier", "baseline_table", "corruption_rows",
                                                       "corruption_summary", "BENCHMARK")},
    **{n: "workbench.lib.robustness.noise" for n in ("noise_curves", "table_accuracy", "white_noise_normalised",
                                                   "salt_and_pepper_extremes", "TABLE_LEVELS")},
    **{n: "workbench.lib.robustness.inputs" for n in ("Standardised", "channel_stats", "crop_flip", "step_generator")},
    **{n: "workbench.lib.robustness.training" for n in ("Recipe", "RecipeTrainer")},
    **{n: "workbench.lib.robustness.corruptions" for n in ("CORRUPTIONS", "EXTRA", "NOISE", "SALT_PEPPER_LEVELS",
                                                         "STANDARD", "WHITE_NOISE_LEVELS", "corrupt",
                                                         "salt_and_pepper", "white_noise")},
    "build_c": "workbench.lib.robustness.dataset_c", "load_c": "workbench.lib.robustness.dataset_c",
    "load_c_all": "workbench.lib.robustness.dataset_c",
    **{n: "workbench.lib.robustness.metrics" for n in ("accuracy_table", "flip_probability", "flip_rate", "mce",
                                                     "mean_corruption_accuracy", "noise_sequence", "shift_sequence")},
    "mix_features": "workbench.lib.robustness.mixing", "staged_forward": "workbench.lib.robustness.mixing",
    "mixing_params": "workbench.lib.robustness.mixing",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'workbench.lib.robustness' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
