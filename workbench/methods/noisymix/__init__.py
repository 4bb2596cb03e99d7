"""NoisyMix (Erichson et al.): AugMix + Jensen–Shannon stability + noisy feature mixup.

The equations live in the shared robustness toolkit (``robustness_compare`` trains NoisyMix beside NFM, and a
method never imports another); this is NoisyMix's public API::

    from workbench.methods.noisymix import augmix, jensen_shannon, noisymix_loss, augmix_jsd_loss, augmix_loss
"""
from workbench.lib.robustness.augmix import ALL_OPS, OPS, apply_op, augmix, augmix_chains, augmix_mix, augmix_parts
from workbench.lib.robustness.losses import augmix_jsd_loss, augmix_loss, jensen_shannon, noisymix_loss
from workbench.lib.robustness.recipes import augmix_preview, augmix_views, noisymix_recipe

__all__ = ["augmix", "augmix_mix", "augmix_parts", "augmix_chains", "apply_op", "OPS", "ALL_OPS", "jensen_shannon",
           "noisymix_loss", "augmix_jsd_loss", "augmix_loss", "noisymix_recipe", "augmix_views", "augmix_preview"]
