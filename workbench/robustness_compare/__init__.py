"""The seven-recipe robustness comparison (NFM's family, AugMix + JSD, NoisyMix), downstream of both methods:
``workbench.nfm`` and ``workbench.noisymix`` never import it, and ``workbench.robustness`` (the shared toolkit)
imports neither."""
