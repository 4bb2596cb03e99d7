"""Plotly renderer set-up for notebooks and reports.

Figures carry their JSON (``plotly_mimetype``: JupyterLab draws it natively) plus HTML whose plotly.js is
embedded once per notebook (``notebook``), so an exported notebook shows its plots with no network. Our
``wb_notebook`` is plotly's notebook renderer without its MathJax CDN ``<script>`` (reports must not
request anything from the network).
"""
from __future__ import annotations

import re
from typing import Any

RENDERER = "plotly_mimetype+wb_notebook"
_MATHJAX_CDN = re.compile(r"<script[^>]*src=\"https?://[^\"]*mathjax[^\"]*\"[^>]*>\s*</script>", re.I)
_DONE = False


def strip_cdn(html: str) -> str:
    """Remove plotly's MathJax CDN script tag from a figure's HTML."""
    return _MATHJAX_CDN.sub("", html)


def plotly_bundle(fig: Any) -> dict:
    """The plotly mimetype bundle of ``fig`` (what JupyterLab renders natively), JSON-clean; an HTML view
    (anything with ``_repr_html_``) gives its HTML."""
    import json

    import plotly.io as pio

    if not hasattr(fig, "to_plotly_json") and hasattr(fig, "_repr_html_"):
        return {"text/html": fig._repr_html_(), "text/plain": f"<{getattr(fig, 'title', '') or 'table'}>"}
    return {"application/vnd.plotly.v1+json": {**json.loads(pio.to_json(fig, validate=False)), "config": {}},
            "text/plain": f"<plotly figure: {fig.layout.title.text or 'untitled'}>"}


def output(fig: Any) -> dict:
    """``fig`` (a plotly figure or an HTML view) as a ``display_data`` output of an ``ipywidgets.Output``."""
    return {"output_type": "display_data", "data": plotly_bundle(fig), "metadata": {}}


def setup_renderer() -> None:
    """Register ``wb_notebook`` and make ``plotly_mimetype+wb_notebook`` the default (once per kernel).

    Outside an IPython kernel nothing changes (the notebook renderer would print plotly.js to stdout).
    """
    global _DONE
    if _DONE:
        return
    try:
        from IPython import get_ipython
    except ImportError:
        return
    if get_ipython() is None:
        return
    import plotly.io as pio
    from plotly.io._base_renderers import NotebookRenderer

    class OfflineNotebookRenderer(NotebookRenderer):
        def to_mimebundle(self, fig_dict: Any) -> dict:
            bundle = super().to_mimebundle(fig_dict)
            bundle["text/html"] = strip_cdn(bundle["text/html"])
            return bundle

    pio.renderers["wb_notebook"] = OfflineNotebookRenderer()
    pio.renderers.default = RENDERER
    _DONE = True
