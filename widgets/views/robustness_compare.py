"""Views of the ``robustness_compare`` experiment (seven recipes on one benchmark): see ``robustness``."""
from .robustness import heatmap_figure, summary_figure  # noqa: F401  (registers the views)
