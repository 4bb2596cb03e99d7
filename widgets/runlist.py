"""The runs table (filter by method and status, select runs to compare) and the compare view.

Runs are read through :class:`workbench.store.follow.RunFollower` (the one way the notebook layer reads a run);
smoke runs are marked as such in the table and in the compare legend."""
from __future__ import annotations

import html
from typing import Any, Iterable

from workbench.store.store import STATUSES

from .curves import Series, static_figure
from .labels import SMOKE, run_label, summary_text, text_table

COLUMNS = ("id", "method", "status", "created_at", "summary")
_summary_text = summary_text


def read_run(run_id: str, names: list[str] | None = None, store: Any = None) -> tuple[dict, Any]:
    """``(record, metrics DataFrame)`` of a stored run (``names``: only these metrics)."""
    from workbench.store.follow import RunFollower

    update = RunFollower(run_id, store=store).poll()
    frame = update.metrics
    if names is not None:
        frame = frame[frame["name"].isin(list(names))]
    return update.record, frame


def compare_series(run_ids: Iterable[str], names: list[str] | None = None, store: Any = None) -> Series:
    """The metrics of the runs, one label per run (method, short id, "(smoke)")."""
    series = Series()
    for rid in run_ids:
        record, frame = read_run(rid, names, store)
        series.add_frame(run_label(record), frame)
    return series


def compare_figure(run_ids: Iterable[str], names: list[str] | None = None, log_y: bool = False,
                   store: Any = None, smoothing: float = 0.0) -> Any:
    """A static figure overlaying the chosen runs' metrics (one panel per metric, one colour per run)."""
    return static_figure(compare_series(run_ids, names, store), metrics=names, log_y=log_y, title="compare",
                         smoothing=smoothing, min_points=2)


def runs_text(method: str | None = None, status: str | None = None, store: Any = None) -> str:
    """The runs as a plain-text table (terminals, plain IPython)."""
    from workbench import runs

    df = runs.list(method=method, status=status, store=store)
    if not len(df):
        return "no runs"
    rows = [{"id": r["id"], "method": r["method"], "status": r["status"] + (f" ({SMOKE})" if r.get("smoke") else ""),
             "created": str(r["created_at"])[:19], "summary": summary_text(r["summary"])}
            for r in df.to_dict("records")]
    return text_table(rows, ["id", "method", "status", "created", "summary"])


def compare(*run_ids: str, names: list[str] | None = None) -> Any:
    """Overlay the curves of ``run_ids`` (a plotly Figure; the notebook shows it)."""
    from .render import setup_renderer

    setup_renderer()
    return compare_figure(run_ids, names)


class RunsTable:
    """A filterable table of stored runs; tick runs and press Compare to overlay their curves."""

    def __init__(self, method: str | None = None, status: str | None = None) -> None:
        import ipywidgets as W

        from workbench.core.registry import experiments

        methods = sorted(set(experiments()) | ({method} if method else set()))
        self.method = W.Dropdown(options=[("all", None)] + [(m, m) for m in methods], value=method,
                                 description="method")
        self.status = W.Dropdown(options=[("all", None)] + [(s, s) for s in STATUSES],
                                 value=status, description="status")
        self.refresh_button = W.Button(description="Refresh", icon="refresh")
        self.compare_button = W.Button(description="Compare", icon="line-chart", disabled=True,
                                       tooltip="overlay the ticked runs")
        self.rows = W.VBox([])
        self.checks: dict[str, Any] = {}
        self.curves: Any = None  # created on the first Compare (a FigureWidget is heavy)
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
            smoke = df["smoke"] if "smoke" in df else [False] * len(df)
            df = df[["id", "method", "status", "created_at"]].assign(
                status=[f"{s} ({SMOKE})" if k else s for s, k in zip(df["status"], smoke)],
                summary=[summary_text(s) for s in df["summary"]])
            fallback = df.to_html(index=False, border=0, classes="wb-runs")
        else:
            fallback = "<p><i>no runs</i></p>"
        display_widget(self.widget, fallback)

    def frame(self) -> Any:
        from workbench import runs

        return runs.list(method=self.method.value, status=self.status.value)

    def refresh(self) -> None:
        import ipywidgets as W

        df = self.frame()
        self.checks = {}
        header = W.HTML("<b>" + " · ".join(COLUMNS) + "</b>")
        rows: list[W.Widget] = [header]
        for rec in df.to_dict("records")[::-1]:
            box = W.Checkbox(value=False, indent=False, layout=W.Layout(width="24px"))
            box.observe(self._ticked, names="value")
            self.checks[rec["id"]] = box
            smoke = f" <span style='color:#8a6d3b'>({SMOKE})</span>" if rec.get("smoke") else ""
            text = (f"<code>{html.escape(rec['id'])}</code> {html.escape(str(rec['method']))} "
                    f"<b>{html.escape(str(rec['status']))}</b>{smoke} {str(rec['created_at'])[:19]} "
                    f"<span style='color:#555'>{html.escape(summary_text(rec['summary']))}</span>")
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
        from .curves import LiveCurves

        ids = list(run_ids) if run_ids is not None else self.selected
        if self.curves is None:
            self.curves = LiveCurves(min_interval=0.0)
            self.plot_box.children = [self.curves.widget]
        self.curves.reset()
        for rid in ids:
            record, frame = read_run(rid)
            self.curves.add_frame(run_label(record), frame)
        self.curves.draw(force=True)
        return self.curves.static(title="compare")


def runs_table(method: str | None = None, status: str | None = None) -> RunsTable:
    return RunsTable(method, status)
