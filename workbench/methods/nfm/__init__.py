"""Noisy Feature Mixup (Lim et al., ICLR 2022): mixing + noise injection at a random layer.

The equations live in the shared robustness toolkit (``robustness_compare`` trains NFM beside NoisyMix, and a
method never imports another); this is NFM's public API::

    from workbench.methods.nfm import mix_features, nfm_loss, mixup_cross_entropy, VARIANTS
"""
from workbench.lib.robustness.losses import VARIANTS, NFMVariant, nfm_loss
from workbench.lib.robustness.mixing import (choose_mixing_point, mix_features, mixup_cross_entropy, sample_mixing,
                                             staged_forward)
from workbench.lib.robustness.recipes import nfm_recipe

__all__ = [
    "mix_features",
    "sample_mixing",
    "staged_forward",
    "nfm_loss",
    "nfm_recipe",
    "mixup_cross_entropy",
    "choose_mixing_point",
    "VARIANTS",
    "NFMVariant",
]
