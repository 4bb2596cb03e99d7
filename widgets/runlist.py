"""The runs table (filter by method and status, select runs to compare) and the compare view."""
from __future__ import annotations

import html
from typing import Any, Iterable

import ipywidgets as W

from .curves import LiveCurves, Series, static_figure

COLUMNS = ("id", "method", "status", "created_at", "summary")


def _summary_text(summary: Any, limit: int = 3) -> str:
    if not isinstance(summary, dict) or not summary:
        return ""
    items = list(summary.items())[:limit]
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items)


def compare_figure(run_ids: Iterable[str], names: list[str] | None = None, log_y: bool = False) -> Any:
    """A static figure overlaying the chosen runs' metrics (one panel per metric, one colour per run)."""
    from workbench import runs

    from .dashboards import _label

    series = Series()
    for rid in run_ids:
        record = runs.get(rid)
        series.add_frame(_label(record), runs.metrics(record["id"], names=names))
    return static_figure(series, metrics=names, log_y=log_y, title="compare")


def compare(*run_ids: str, names: list[str] | None = None) -> Any:
    """Overlay the curves of ``run_ids`` (a plotly Figure; the notebook shows it)."""
    from .render import setup_renderer

    setup_renderer()
    return compare_figure(run_ids, names)


class RunsTable:
    """A filterable table of stored runs; tick runs and press Compare to overlay their curves."""

    def __init__(self, method: str | None = None, status: str | None = None) -> None:
        from workbench.registry import experiments

        methods = sorted(set(experiments()) | ({method} if method else set()))
        self.method = W.Dropdown(options=[("all", None)] + [(m, m) for m in methods], value=method,
                                 description="method")
        self.status = W.Dropdown(options=[("all", None)] + [(s, s) for s in
                                 ("running", "completed", "stopped", "failed", "crashed")],
                                 value=status, description="status")
        self.refresh_button = W.Button(description="Refresh", icon="refresh")
        self.compare_button = W.Button(description="Compare", icon="line-chart", disabled=True,
                                       tooltip="overlay the ticked runs")
        self.rows = W.VBox([])
        self.checks: dict[str, W.Checkbox] = {}
        self.curves: LiveCurves | None = None  # created on the first Compare (a FigureWidget is heavy)
        self.plot_box = W.VBox([])
        self.method.observe(lambda _c: self.refresh(), names="value")
        self.status.observe(lambda _c: self.refresh(), names="value")
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.compare_button.on_click(lambda _b: self.compare())
        self.widget = W.VBox([W.HBox([self.method, self.status, self.refresh_button, self.compare_button]),
                              self.rows, self.plot_box])
        self.refresh()

    def _ipython_display_(self) -> None:
        from .dashboards import display_widget

        df = self.frame()
        if len(df):
            df = df[["id", "method", "status", "created_at"]].assign(
                summary=[_summary_text(s) for s in self.frame()["summary"]])
            fallback = df.to_html(index=False, border=0, classes="wb-runs")
        else:
            fallback = "<p><i>no runs</i></p>"
        display_widget(self.widget, fallback)

    def frame(self) -> Any:
        from workbench import runs

        return runs.list(method=self.method.value, status=self.status.value)

    def refresh(self) -> None:
        df = self.frame()
        self.checks = {}
        header = W.HTML("<b>" + " · ".join(COLUMNS) + "</b>")
        rows: list[W.Widget] = [header]
        for rec in df.to_dict("records")[::-1]:
            box = W.Checkbox(value=False, indent=False, layout=W.Layout(width="24px"))
            box.observe(self._ticked, names="value")
            self.checks[rec["id"]] = box
            text = (f"<code>{html.escape(rec['id'])}</code> {html.escape(str(rec['method']))} "
                    f"<b>{html.escape(str(rec['status']))}</b> {str(rec['created_at'])[:19]} "
                    f"<span style='color:#555'>{html.escape(_summary_text(rec['summary']))}</span>")
            rows.append(W.HBox([box, W.HTML(text)]))
        if len(rows) == 1:
            rows.append(W.HTML("<i>no runs match</i>"))
        self.rows.children = rows
        self._ticked(None)

    @property
    def selected(self) -> list[str]:
        return [rid for rid, box in self.checks.items() if box.value]

    def select(self, *run_ids: str) -> None:
        for rid in run_ids:
            self.checks[rid].value = True

    def _ticked(self, _change: Any) -> None:
        self.compare_button.disabled = len(self.selected) < 1

    def compare(self, run_ids: Iterable[str] | None = None) -> Any:
        """Overlay the selected runs (or ``run_ids``) in the table's plot; returns the static figure."""
        from workbench import runs

        from .dashboards import _label

        ids = list(run_ids) if run_ids is not None else self.selected
        if self.curves is None:
            self.curves = LiveCurves(min_interval=0.0)
            self.plot_box.children = [self.curves.widget]
        self.curves.reset()
        for rid in ids:
            record = runs.get(rid)
            self.curves.add_frame(_label(record), runs.metrics(record["id"]))
        self.curves.draw(force=True)
        return self.curves.static(title="compare")


def runs_table(method: str | None = None, status: str | None = None) -> RunsTable:
    return RunsTable(method, status)
