"""A small registry of per-method views: functions of stored run data that return a plotly Figure.

A method's module ``widgets/views/<method>.py`` registers its views::

    from widgets.views import view

    @view("nfm", "robustness heatmap")
    def robustness_heatmap(run_id: str) -> go.Figure | None:
        grid = runs.artifact(run_id, "robustness")   # read only stored data
        ...

A view takes a run id and returns a ``plotly.graph_objects.Figure`` or an :class:`HTMLView` (a table, text),
or ``None`` when the run has not stored what it needs yet (e.g. a live run early on). Because views read only
the run store, the same view draws a finished run, a live run, a run from another process and a run in an
exported report.

Every method gets the generic view ``claims`` for free: the claims its run checked (statement, method vs arm,
effect ± uncertainty with its interval and seeds, the rule, the outcome coloured by kind with its reason), as a
complete HTML table (:func:`widgets.labels.claims_html`), last in :func:`render`'s list.
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
        """The view of ``run_id`` in the house style (:func:`widgets.style.house`), or what the view returned."""
        return styled(self.fn(run_id))


def styled(fig: Any) -> Any:
    """``fig`` in the house style when it is a plotly figure (full width, legend outside, axes that fit)."""
    if fig is not None and hasattr(fig, "to_plotly_json") and hasattr(fig, "layout"):
        from ..style import house

        house(fig)
    return fig


_VIEWS: dict[str, dict[str, View]] = {}
CLAIMS = "claims"


class HTMLView:
    """A view drawn as HTML (a table, text) rather than a plotly figure; shows itself in notebooks
    (``_repr_html_``, ``show()``), dashboards, the Panel app and reports alike."""

    def __init__(self, html: str, title: str = "") -> None:
        self.html, self.title = html, title

    def _repr_html_(self) -> str:
        return self.html

    def show(self) -> None:
        from IPython.display import HTML, display

        display(HTML(self.html))

    def __repr__(self) -> str:
        return f"<HTMLView {self.title!r}>"


def claims_view(run_id: str) -> HTMLView | None:
    """The generic claims view: every claim the run checked, in full (effect ± uncertainty, rule, outcome and
    reason); a smoke run is labelled and its claims say "not evaluated"."""
    from workbench import runs

    from ..labels import claims_html

    try:
        record, claims = runs.get(run_id), runs.claims(run_id)
    except KeyError:  # not a stored run
        return None
    if not claims:
        return None
    smoke = bool(record.get("smoke"))
    return HTMLView(claims_html(claims, smoke=smoke), title=CLAIMS)


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
    after the experiment's method folder (``workbench/methods/<folder>/experiment.py`` → ``<folder>``)."""
    names = [method]
    try:
        from workbench.core.registry import get

        exp = get(method)
        parts = getattr(exp.run, "__module__", "").split(".") if exp is not None else []
        if len(parts) > 3 and parts[:2] == ["workbench", "methods"]:
            names.append(parts[2])
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


def render(method: str, run_id: str, key_only: bool = False, claims: bool = True) -> list[tuple[str, Any]]:
    """``[(title, figure or HTMLView)]`` for every view of ``method`` that can draw ``run_id`` now, then
    (``claims=True``) the generic claims table.

    A view that returns ``None`` (nothing stored yet) is skipped; a view that raises is logged and
    shown as an empty titled figure, so one broken view never hides the others.
    """
    out: list[tuple[str, Any]] = []
    generic = [View(method, CLAIMS, claims_view)] if claims and CLAIMS not in _VIEWS.get(method, {}) else []
    for v in views_for(method) + generic:
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
    fig.update_layout(height=200, xaxis_visible=False, yaxis_visible=False, autosize=True)
    return fig
