"""Robustness toolkit shared by NFM, NoisyMix and their comparison, usable on any classifier.

    from workbench.lib.robustness import corrupt, CORRUPTIONS, evaluate_classifier, mce, expected_calibration_error

- :mod:`~workbench.lib.robustness.corruptions`: ``corrupt(images, name, severity, seed)`` — 15 standard + 4 extra
  corruptions (CIFAR-10-C constants, rescaled for small images) and NFM's white noise / salt-and-pepper;
- :mod:`~workbench.lib.robustness.dataset_c`: cached DATASET-C for any registered image dataset (in a folder the
  caller gives: ``ctx.cache_dir("dataset-c")`` in a run);
- :mod:`~workbench.lib.robustness.metrics`: accuracy tables, mean corruption accuracy, mCE, flip probability, ECE
  of many columns at once;
- :mod:`~workbench.lib.robustness.noise`: NFM's test-time noise protocol (white noise in the normalised space, salt and pepper);
- :mod:`~workbench.lib.robustness.benchmark`: the whole benchmark for one model (or several, each corruption read once);
- :mod:`~workbench.lib.robustness.mixing`: the noisy feature mixing step (NFM Eq. (2)) shared by NFM and NoisyMix;
- :mod:`~workbench.lib.robustness.augmix`: AugMix (Hendrycks et al. 2020), batched;
- :mod:`~workbench.lib.robustness.losses`: NFM and its special cases, NoisyMix, AugMix ± JSD (the objectives);
- :mod:`~workbench.lib.robustness.inputs`: input standardisation inside the model, crop + flip;
- :mod:`~workbench.lib.robustness.training`: one recipe's training step, its batch (AugMix views) prepared a step ahead;
- :mod:`~workbench.lib.robustness.recipes`: the recipes the experiments train (NFM variants, the AugMix family);
- :mod:`~workbench.lib.robustness.params`: the declared parameter groups (protocol, mixing, AugMix);
- :mod:`~workbench.lib.robustness.suite`: train several recipes on one budget, save and evaluate them all;
- :mod:`~workbench.lib.robustness.claims`: NFM's and NoisyMix's claims, decided on the per-image evidence.

Names load on first use, so ``import workbench.methods.nfm`` (which needs only the mixing step) stays light.
"""
from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "expected_calibration_error": "workbench.lib.metrics", "reliability": "workbench.lib.metrics",
    **{n: "workbench.lib.robustness.benchmark" for n in ("evaluate_classifier", "baseline_table", "corruption_rows",
                                                       "corruption_table", "corruption_summary", "BENCHMARK")},
    **{n: "workbench.lib.robustness.noise" for n in ("noise_curves", "noise_evaluation", "table_accuracy",
                                                   "white_noise_normalised", "salt_and_pepper_extremes", "TABLE_LEVELS")},
    **{n: "workbench.lib.robustness.inputs" for n in ("Standardised", "channel_stats", "crop_flip")},
    **{n: "workbench.lib.robustness.training" for n in ("Recipe", "RecipeTrainer")},
    **{n: "workbench.lib.robustness.corruptions" for n in ("CORRUPTIONS", "EXTRA", "NOISE", "SALT_PEPPER_LEVELS",
                                                         "STANDARD", "WHITE_NOISE_LEVELS", "corrupt",
                                                         "salt_and_pepper", "white_noise")},
    "build_c": "workbench.lib.robustness.dataset_c", "load_c": "workbench.lib.robustness.dataset_c",
    "load_c_all": "workbench.lib.robustness.dataset_c",
    **{n: "workbench.lib.robustness.metrics" for n in ("accuracy_table", "flip_probability", "flip_rate", "mce",
                                                     "mean_corruption_accuracy", "noise_sequence", "shift_sequence",
                                                     "ece_columns")},
    "mix_features": "workbench.lib.robustness.mixing", "staged_forward": "workbench.lib.robustness.mixing",
    **{n: "workbench.lib.robustness.augmix" for n in ("augmix", "augmix_chains", "augmix_parts", "augmix_mix")},
    **{n: "workbench.lib.robustness.losses" for n in ("VARIANTS", "nfm_loss", "noisymix_loss", "jensen_shannon",
                                                    "augmix_jsd_loss", "augmix_loss")},
    **{n: "workbench.lib.robustness.recipes" for n in ("nfm_recipe", "noisymix_recipe", "augmix_views",
                                                     "augmix_preview")},
    **{n: "workbench.lib.robustness.params" for n in ("SuiteParams", "MixingParams", "NFMNoiseParams",
                                                    "AugMixParams")},
    **{n: "workbench.lib.robustness.suite" for n in ("run_suite", "SuiteResult", "Evidence", "robust_classifier")},
    **{n: "workbench.lib.robustness.claims" for n in ("nfm_claims", "noisymix_claims")},
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'workbench.lib.robustness' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
