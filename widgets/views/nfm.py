"""Views of the ``nfm`` experiment (noise curves, decision boundaries, heatmaps...): see ``robustness``."""
from .robustness import decision_boundary_figure, noise_curves_figure  # noqa: F401  (registers the views)
