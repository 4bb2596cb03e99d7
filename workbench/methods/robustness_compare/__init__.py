"""The seven-recipe robustness comparison (NFM's family, AugMix + JSD, NoisyMix), downstream of both methods:
``workbench.methods.nfm`` and ``workbench.methods.noisymix`` never import it, and ``workbench.lib.robustness`` (the shared toolkit)
imports neither."""
