"""A small registry of per-method views: functions of stored run data that return a plotly Figure.

A method's module ``widgets/views/<method>.py`` registers its views::

    from widgets.views import view

    @view("nfm", "robustness heatmap")
    def robustness_heatmap(run_id: str) -> go.Figure | None:
        grid = runs.artifact(run_id, "robustness")   # read only stored data
        ...

A view takes a run id and returns a ``plotly.graph_objects.Figure`` (or ``None`` when the run has not
stored what it needs yet, e.g. a live run early on). Because views read only the run store, the same view
draws a finished run, a live run, a run from another process and a run in an exported report.
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any, Callable

log = logging.getLogger(__name__)

ViewFn = Callable[[str], Any]


@dataclass(frozen=True)
class View:
    """One registered view: ``fn(run_id) -> plotly Figure | None``."""

    method: str
    title: str
    fn: ViewFn
    key: bool = True  # shown in the demo report ("key figures")

    def __call__(self, run_id: str) -> Any:
        return self.fn(run_id)


_VIEWS: dict[str, dict[str, View]] = {}


def view(method: str, title: str, key: bool = True) -> Callable[[ViewFn], ViewFn]:
    """Decorator: register ``fn(run_id) -> Figure | None`` as the view ``title`` of ``method``.

    ``key=False`` keeps a view out of the demo report's key figures (it still shows in dashboards).
    Re-registering the same (method, title) replaces the earlier view.
    """
    if not method or not title:
        raise ValueError("view(method, title): both must be non-empty strings")

    def decorate(fn: ViewFn) -> ViewFn:
        _VIEWS.setdefault(method, {})[title] = View(method, title, fn, key)
        return fn

    return decorate


def _candidates(method: str) -> list[str]:
    """View modules that may register ``method``'s views: ``widgets.views.<method>``, then the module named
    after the experiment's package (``robustness_compare`` lives in ``workbench/robustness/`` → ``robustness``)."""
    names = [method]
    try:
        from workbench.registry import experiments

        exp = experiments().get(method)
        parts = getattr(exp.run, "__module__", "").split(".") if exp is not None else []
        if len(parts) > 2 and parts[0] == "workbench":
            names.append(parts[1])
    except Exception:  # noqa: BLE001 - the registry is optional here (views can be used on their own)
        pass
    return list(dict.fromkeys(names))


def _import_views(method: str) -> None:
    """Import the view modules of ``method`` once (they register its views); a missing module means no views."""
    for name in _candidates(method):
        module = f"widgets.views.{name}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise


def views_for(method: str) -> list[View]:
    """The views registered for ``method``, in registration order (importing its module on first use)."""
    _import_views(method)
    return list(_VIEWS.get(method, {}).values())


def render(method: str, run_id: str, key_only: bool = False) -> list[tuple[str, Any]]:
    """``[(title, figure)]`` for every view of ``method`` that can draw ``run_id`` now.

    A view that returns ``None`` (nothing stored yet) is skipped; a view that raises is logged and
    shown as an empty titled figure, so one broken view never hides the others.
    """
    out: list[tuple[str, Any]] = []
    for v in views_for(method):
        if key_only and not v.key:
            continue
        try:
            fig = v(run_id)
        except Exception as err:  # noqa: BLE001 - a broken view must not break a dashboard
            log.warning("view %s/%s failed on run %s: %s", method, v.title, run_id, err)
            fig = _error_figure(f"{v.title}: {type(err).__name__}: {err}")
        if fig is not None:
            out.append((v.title, fig))
    return out


def _error_figure(message: str) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(height=200, xaxis_visible=False, yaxis_visible=False)
    return fig
