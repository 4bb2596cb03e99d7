"""NoisyMix (Erichson et al.): AugMix + Jensen–Shannon stability + noisy feature mixup.

Public API::

    from workbench.methods.noisymix import augmix, jensen_shannon, noisymix_loss, augmix_jsd_loss, augmix_loss
"""
from workbench.methods.noisymix.augmix import ALL_OPS, OPS, apply_op, augmix, augmix_chains, augmix_mix
from workbench.methods.noisymix.losses import augmix_jsd_loss, augmix_loss, jensen_shannon, noisymix_loss

__all__ = ["augmix", "augmix_mix", "augmix_chains", "apply_op", "OPS", "ALL_OPS", "jensen_shannon", "noisymix_loss", "augmix_jsd_loss",
           "augmix_loss"]
