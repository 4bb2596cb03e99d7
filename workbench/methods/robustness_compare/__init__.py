"""The eight-recipe robustness comparison (NFM's family, AugMix, AugMix + JSD, NoisyMix) on one budget. It imports
neither method: the recipes, the protocol and both methods' claims come from the shared toolkit
``workbench.lib.robustness``."""
