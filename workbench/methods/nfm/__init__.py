"""Noisy Feature Mixup (Lim et al., ICLR 2022): mixing + noise injection at a random layer.

Public API::

    from workbench.methods.nfm import mix_features, nfm_loss, mixup_cross_entropy, VARIANTS
"""
from workbench.methods.nfm.losses import VARIANTS, NFMVariant, choose_mixing_point, mixup_cross_entropy, nfm_loss
from workbench.lib.robustness.mixing import mix_features, sample_mixing, staged_forward

__all__ = [
    "mix_features",
    "sample_mixing",
    "staged_forward",
    "nfm_loss",
    "mixup_cross_entropy",
    "choose_mixing_point",
    "VARIANTS",
    "NFMVariant",
]
