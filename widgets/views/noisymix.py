"""Views of the ``noisymix`` experiment (heatmaps, reliability, AugMix previewer...): see ``robustness``."""
from .robustness import augmix_preview_figure, heatmap_figure, previewer, reliability_figure  # noqa: F401
