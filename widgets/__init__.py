"""The notebook layer: forms, live curves, run controls, dashboards, views, magics, the Panel app and reports.

``import widgets`` stays light (no ipywidgets, plotly or panel at import time); the heavy parts load on
first use, which also sets up plotly's renderer in a kernel (:func:`widgets.render.setup_renderer`: figures
carry no plotly.js in a live notebook)::

    %load_ext widgets          # registers %wb, %%wb, %wb_runs, %wb_compare, %wb_export
    from widgets import dashboard
    dashboard("classify", steps=200)
"""
from __future__ import annotations

from typing import Any

__all__ = ["dashboard", "Dashboard", "runs_table", "compare", "follow", "load_ipython_extension"]

_LAZY = {
    "Dashboard": ("widgets.dashboards", "Dashboard"),
    "dashboard": ("widgets.dashboards", "dashboard"),
    "follow": ("widgets.dashboards", "follow"),
    "runs_table": ("widgets.runlist", "runs_table"),
    "RunsTable": ("widgets.runlist", "RunsTable"),
    "compare": ("widgets.runlist", "compare"),
    "ParamForm": ("widgets.form", "ParamForm"),
    "LiveCurves": ("widgets.curves", "LiveCurves"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        from .render import setup_renderer

        setup_renderer()
        return value
    raise AttributeError(f"module 'widgets' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext widgets``: register the workbench magics on this IPython shell."""
    from .magics import WorkbenchMagics
    from .render import setup_renderer

    ipython.register_magics(WorkbenchMagics(ipython))
    from .record import install

    install(ipython)  # each cell's outputs, kept: %wb_export writes the live outputs, saved or not
    setup_renderer()  # no plotly.js per figure; %wb_export embeds it once: exported notebooks open offline
