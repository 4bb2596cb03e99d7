"""Plotly renderer set-up for notebooks and reports: plotly.js at most once, never per figure.

- A live notebook (JupyterLab, VS Code) draws plotly's JSON mimetype natively, so figures carry only their JSON
  (``plotly_mimetype``) and the notebook carries no plotly.js at all: a saved notebook stays small.
- A headless kernel (``workbench report``, the tests: ``WORKBENCH_HEADLESS=1``) writes a report, so figures also
  carry HTML whose plotly.js is embedded once per notebook (``wb_notebook``: plotly's notebook renderer without
  its MathJax CDN ``<script>``; reports must not request anything from the network).
- :func:`for_export` gives a live notebook's figures their HTML and plotly.js (once) when ``%wb_export`` writes
  a report of it.
"""
from __future__ import annotations

import os
import re
from typing import Any

PLOTLY_MIME = "application/vnd.plotly.v1+json"
LIVE_RENDERER = "plotly_mimetype"
REPORT_RENDERER = "plotly_mimetype+wb_notebook"
RENDERER = REPORT_RENDERER  # what a headless kernel uses (kept for callers of the old name)
_MATHJAX_CDN = re.compile(r"<script[^>]*src=\"https?://[^\"]*mathjax[^\"]*\"[^>]*>\s*</script>", re.I)
_PLOTLYJS_MARK = "plotly.js v"  # in the licence header of the bundled plotly.js
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
    return {PLOTLY_MIME: {**json.loads(pio.to_json(fig, validate=False)), "config": {}},
            "text/plain": f"<plotly figure: {fig.layout.title.text or 'untitled'}>"}


def output(fig: Any) -> dict:
    """``fig`` (a plotly figure or an HTML view) as a ``display_data`` output of an ``ipywidgets.Output``."""
    return {"output_type": "display_data", "data": plotly_bundle(fig), "metadata": {}}


def headless() -> bool:
    """True when no person watches (``workbench report``, tests, ``WORKBENCH_HEADLESS=1``)."""
    return os.environ.get("WORKBENCH_HEADLESS", "") not in ("", "0", "false")


def setup_renderer() -> None:
    """Make figures render as described above (once per kernel): JSON only in a live notebook, JSON and HTML
    with plotly.js embedded once in a headless one. Outside an IPython kernel nothing changes."""
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
    pio.renderers.default = REPORT_RENDERER if headless() else LIVE_RENDERER
    _DONE = True


def plotlyjs_output() -> dict:
    """A ``display_data`` output defining ``window.Plotly`` (plotly.js, embedded: no network)."""
    from plotly.offline import get_plotlyjs

    script = ("<script type='text/javascript'>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>\n"
              f"<script type='text/javascript'>{get_plotlyjs()}</script>")
    return {"output_type": "display_data", "data": {"text/html": script}, "metadata": {}}


def figure_html(spec: dict) -> str:
    """The HTML of a plotly figure given as its mimetype JSON (plotly.js not included: see :func:`for_export`)."""
    import plotly.io as pio

    fig = {k: v for k, v in spec.items() if k != "config"}
    return strip_cdn(pio.to_html(fig, include_plotlyjs=False, full_html=False, default_width="100%",
                                 default_height=525, validate=False, include_mathjax=False,
                                 config=spec.get("config") or {}))


def for_export(nb: Any) -> int:
    """Give every plotly output of ``nb`` (a notebook node) that has only its JSON an HTML copy, and embed plotly.js
    once, before the first figure, unless the notebook already holds it; returns the figures converted."""
    import nbformat

    converted, first, has_js = 0, None, False
    for ci, cell in enumerate(nb.cells):
        for oi, out in enumerate(cell.get("outputs", [])):
            data = out.get("data", {})
            html = data.get("text/html", "")
            html = "".join(html) if isinstance(html, list) else html
            has_js = has_js or (_PLOTLYJS_MARK in html and len(html) > 1_000_000)
            if PLOTLY_MIME in data:
                if "text/html" not in data:
                    data["text/html"] = figure_html(dict(data[PLOTLY_MIME]))
                    converted += 1
                first = first or (ci, oi)
    if first is not None and not has_js:
        ci, oi = first
        nb.cells[ci].outputs.insert(oi, nbformat.from_dict(plotlyjs_output()))
    return converted
