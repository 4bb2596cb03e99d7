"""The sweep view: best-so-far against trials, parallel coordinates, parameter importances and slices (Optuna's
own plotly figures, in the house style), and a trials table (status, params, objective, run id).

Every figure is a function of the stored study and runs, so a live sweep, a finished one and one on another
machine look the same::

    from widgets.sweep import sweep_figures, sweep_table, sweep_view
    figs = sweep_figures(sweep_id)          # {"history", "parallel", "importance", "slice"}: plotly figures
    sweep_table(sweep_id)                   # a DataFrame, one row per trial
    SweepDashboard(sweep_id).follow()       # the notebook's live view (ipywidgets; %wb_sweep shows it): Stop,
                                            # figures, trials table, a selection that opens a trial's run
    sweep_view(sweep_id)                    # the same as a Panel layout (the app's /sweeps page), run ids linked
    show_sweep(sweep_id)                    # static figures and table as notebook outputs (reports)
    sweep_report(sweep_id)                  # reports/sweep-<id>.html: the same, one offline page

``sweep_report`` is registered under the ``workbench.reports`` entry point (name ``sweep``), so ``workbench sweep``
writes it without the core importing this layer.
"""
from __future__ import annotations

import html
import threading
import time
from pathlib import Path
from typing import Any

from workbench.core.sweep import study as studies

#: a trial's status in words when its driver recorded none (Optuna's state names)
STATES = {"COMPLETE": "completed", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}
FIGURES = ("history", "parallel", "importance", "slice")
TITLES = {"history": "Best so far against trials", "parallel": "Parameters against the objective",
          "importance": "Parameter importances", "slice": "Objective against each parameter"}


def sweep_table(sweep_id: str, store: Any = None):
    """Trials as a DataFrame: trial, state, status, objective(s), params, run id, seconds, error."""
    return studies.trials(sweep_id, store)


def sweep_figures(sweep_id: str, store: Any = None) -> dict[str, Any]:
    """The sweep's figures (those its trials can draw yet: importances need two completed trials and a varied
    parameter); each titled, in the house style."""
    import optuna.visualization as vis

    from workbench.store import runs as runs_api

    from .style import house

    study, spec = studies.load(store or runs_api.store(), sweep_id)
    target = None if len(spec.objectives) == 1 else (lambda t: t.values[0])
    name = spec.objectives[0]
    makers = {"history": lambda: vis.plot_optimization_history(study, target=target, target_name=name),
              "parallel": lambda: vis.plot_parallel_coordinate(study, target=target, target_name=name),
              "importance": lambda: vis.plot_param_importances(study, target=target, target_name=name),
              "slice": lambda: vis.plot_slice(study, target=target, target_name=name)}
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    out = {}
    for key, make in makers.items():
        if not done or (key == "importance" and (len(done) < 2 or not _varied(done))):
            continue
        try:
            fig = make()
        except (ValueError, RuntimeError):  # too few trials for this figure yet
            continue
        fig.update_layout(title=f"{TITLES[key]} ({name}, sweep {sweep_id})")
        if key == "history":  # trials are whole numbers: no tick at trial 0.5
            fig.update_xaxes(tick0=0, dtick=max(1, -(-len(study.get_trials(deepcopy=False)) // 10)))
        out[key] = house(fig)
    return out


def _varied(trials: list[Any]) -> bool:
    return any(len({repr(t.params.get(k)) for t in trials}) > 1 for k in trials[0].params)


def _live() -> bool:
    """A server session (the app) or a running event loop (a notebook kernel): periodic refreshes can run."""
    import asyncio

    import panel as pn

    if pn.state.curdoc is not None:
        return True
    try:
        return asyncio.get_running_loop().is_running()
    except RuntimeError:
        return False


#: the trials table's look wherever it is shown (a notebook widget, a report, the app)
TABLE_CSS = ("<style>table.wb-sweep-trials{border-collapse:collapse;font-size:13px;margin:6px 0}"
             "table.wb-sweep-trials th,table.wb-sweep-trials td{border-bottom:1px solid #ddd;padding:3px 10px;"
             "text-align:left}table.wb-sweep-trials th{border-bottom:2px solid #bbb}</style>")


def trials_html(frame: Any, run_link: str | None = None) -> str:
    """The trials table as HTML (reports, static outputs): trial, status, objective(s), params, run id (a link to
    ``run_link + run_id`` when given), why it ended."""
    if not len(frame):
        return "<p><i>no trials yet</i></p>"
    skip = {"state", "seconds"}
    cols = [c for c in frame.columns if c not in skip and (c != "error" or frame["error"].notna().any())]
    head = "".join(f"<th>{html.escape(c.removeprefix('param/'))}</th>" for c in cols)
    rows = []
    for rec in frame.to_dict("records"):
        cells = []
        for c in cols:
            v = rec[c]
            text = "" if v is None or v != v else (f"{v:.4g}" if isinstance(v, float) else str(v))
            if c == "run_id" and text and run_link is not None:
                cells.append(f"<td><a href='{html.escape(run_link + text)}'><code>{html.escape(text)}</code></a></td>")
            else:
                cells.append(f"<td>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f"{TABLE_CSS}<table class='wb-sweep-trials'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def summary_html(sweep_id: str, store: Any = None) -> str:
    """One paragraph: the method, trials by status, the best trial(s) with their parameters and run."""
    from workbench.store import runs as runs_api

    study, spec = studies.load(store or runs_api.store(), sweep_id)
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        status = t.user_attrs.get("status") or STATES.get(t.state.name, t.state.name.lower())
        counts[status] = counts.get(status, 0) + 1
    bests = []
    for t in studies.best(study):
        values = ", ".join(f"{o} = {v:.4g}" for o, v in zip(spec.objectives, t.values))
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
        bests.append(f"<br>best trial {t.number}: {html.escape(values)} ({html.escape(params)}; run "
                     f"<code>{html.escape(str(t.user_attrs.get(studies.RUN_ATTR)))}</code>)")
    counted = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no trials yet"
    objective = ", ".join(f"{o} ({d})" for o, d in zip(spec.objectives, spec.directions))
    return (f"<p class='wb-sweep-summary'><b>{html.escape(spec.method)}</b>{' (smoke runs)' if spec.smoke else ''}: "
            f"{html.escape(counted)}; objective {html.escape(objective)}{''.join(bests)}</p>")


def run_parts(run_id: str, store: Any = None, trial: tuple[str, int] | None = None) -> tuple[str, list[Any]]:
    """One trial's run: a heading (which trial: ``(sweep_id, number)``, else from the run's ``sweep`` artifact;
    status and why it ended; config; summary) and its figures (curves, then the method's views: the same views
    its own dashboard shows)."""
    from workbench.store import runs as runs_api

    from .curves import static_figure
    from .labels import SMOKE, summary_text
    from .runlist import compare_series
    from .views import render

    store = store or runs_api.store()
    record = store.get(run_id)
    if trial is None:
        try:
            tag = store.load_artifact(run_id, studies.SWEEP_ARTIFACT)
            trial = (tag["sweep"], int(tag["trial"]))
        except KeyError:  # a run that no sweep started
            pass
    which = f"trial {trial[1]} of sweep {trial[0]} · " if trial else ""
    why = f" — {html.escape(record['error'])}" if record.get("error") else ""
    smoke = f", {SMOKE}" if record.get("smoke") else ""
    head = (f"<h4 class='wb-sweep-run-title'>{html.escape(which)}run <code>{html.escape(run_id)}</code> "
            f"({html.escape(record['method'])}, {html.escape(record['status'])}{smoke}){why}</h4>"
            f"<p><b>config</b> {html.escape(summary_text(record.get('config'), limit=None))}</p>"
            + (f"<p><b>summary</b> {html.escape(summary_text(record['summary'], limit=None))}</p>"
               if record.get("summary") else ""))
    figs: list[Any] = []
    series = compare_series([run_id], store=store)
    if series.metrics:
        figs.append(static_figure(series, title=f"{record['method']} {run_id}", min_points=2))
    figs += [fig for _title, fig in render(record["method"], run_id)]
    return head, figs


def run_panel(run_id: str, store: Any = None, trial: tuple[str, int] | None = None) -> Any:
    """:func:`run_parts` as a Panel column (the app)."""
    import panel as pn

    head, figs = run_parts(run_id, store, trial)
    panes: list[Any] = [pn.pane.HTML(head, sizing_mode="stretch_width")]
    for fig in figs:
        if not hasattr(fig, "to_plotly_json") and hasattr(fig, "_repr_html_"):
            panes.append(pn.pane.HTML(fig._repr_html_(), sizing_mode="stretch_width"))
        else:
            panes.append(pn.pane.Plotly(fig, sizing_mode="stretch_width"))
    return pn.Column(*panes, sizing_mode="stretch_width", css_classes=["wb-sweep-run"])


def sweep_view(sweep_id: str, store: Any = None, refresh_ms: int = 2000, run_link: str | None = None) -> Any:
    """A Panel layout of the sweep (figures and trials table), refreshed every ``refresh_ms`` while trials run;
    Stop asks every running trial's run to stop (the sweep's driver then ends them ``stopped``). Selecting a trial
    in the table opens its run below it (:func:`run_panel`); with ``run_link`` (the app: a URL prefix), each run id
    is also a link to ``run_link + run_id``."""
    import panel as pn

    from workbench.store import runs as runs_api

    store = store or runs_api.store()
    panes = {k: pn.pane.Plotly(None, sizing_mode="stretch_width") for k in FIGURES}
    formatters = {"run_id": {"type": "link", "urlPrefix": run_link, "target": "_self"}} if run_link else {}
    table = pn.widgets.Tabulator(sweep_table(sweep_id, store), disabled=True, sizing_mode="stretch_width",
                                 show_index=False, selectable=1, formatters=formatters,
                                 css_classes=["wb-sweep-trials"])
    stop = pn.widgets.Button(label="Stop", color="danger", css_classes=["wb-sweep-stop"])
    hint = pn.pane.HTML("<i>select a trial to open its run</i>", sizing_mode="stretch_width")
    opened = pn.Column(sizing_mode="stretch_width", css_classes=["wb-sweep-opened"])
    summary = pn.pane.HTML("", sizing_mode="stretch_width")

    drawn: list[Any] = [None]  # the trials frame last drawn

    def refresh() -> bool:
        """Redraw what changed (nothing when no trial did: no redraw moves the page under the user's pointer);
        returns whether a trial still runs."""
        frame = sweep_table(sweep_id, store)
        running = bool(len(frame)) and bool((frame["state"] == "RUNNING").any())
        if drawn[0] is not None and frame.equals(drawn[0]):
            return running
        drawn[0] = frame
        table.value = frame
        summary.object = summary_html(sweep_id, store)
        for key, fig in sweep_figures(sweep_id, store).items():
            panes[key].object = fig
        if len(frame) and not running:
            stop.disabled = True  # nothing left to stop (a resumed sweep is a new page)
        return running

    def tick() -> None:
        if not refresh() and callback is not None:
            callback.stop()

    def on_select(event: Any) -> None:
        rows = list(event.new or [])
        if not rows or rows[0] >= len(table.value):
            return
        row = table.value.iloc[rows[0]]
        run_id = row["run_id"]
        if not isinstance(run_id, str) or not run_id:
            opened.objects = [pn.pane.HTML(f"<i>trial {row['trial']} has no run yet</i>")]
            return
        opened.objects = [run_panel(run_id, store, (sweep_id, int(row["trial"])))]

    def on_stop(_: Any) -> None:
        frame = sweep_table(sweep_id, store)
        for run_id in frame.loc[frame["status"] == "running", "run_id"].dropna():
            store.request_stop(run_id)

    stop.on_click(on_stop)
    table.param.watch(on_select, "selection")
    callback = None
    running = refresh()
    if _live() and (running or not len(drawn[0])):  # a finished sweep is drawn once
        callback = pn.state.add_periodic_callback(tick, period=refresh_ms)
    layout = pn.Column(pn.pane.Markdown(f"### Sweep {sweep_id}"), summary, stop, panes["history"], panes["parallel"],
                       pn.Row(panes["importance"], panes["slice"]), table, hint, opened, sizing_mode="stretch_width")
    layout.table, layout.opened = table, opened  # for the app and tests: the trials table and the opened run
    return layout


class SweepDashboard:
    """The sweep in a notebook (ipywidgets, like the run dashboards): summary, Stop, the figures, the trials table
    and a selection that opens a trial's run (its curves and views) below; a monitor thread redraws while the
    sweep runs (until ``driver``, the sweep's thread, has ended and no trial runs)."""

    def __init__(self, sweep_id: str, store: Any = None, driver: Any = None, poll: float = 2.0) -> None:
        import ipywidgets as W

        from workbench.store import runs as runs_api

        self.sweep_id, self.store, self.driver, self.poll = sweep_id, store or runs_api.store(), driver, poll
        self.summary = W.HTML()
        self.stop_button = W.Button(description="Stop", button_style="danger", tooltip="stop every running trial")
        self.stop_button.on_click(lambda _b: self.stop())
        self.figures = W.Output()
        self.table = W.HTML()
        self.table.add_class("wb-sweep-trials")
        self.picker = W.Dropdown(description="open run", options=[("select a trial", "")], value="",
                                 layout=W.Layout(width="auto"), style={"description_width": "initial"})
        self.picker.add_class("wb-sweep-picker")
        self.picker.observe(lambda change: self.open(change["new"]), names="value")
        self.opened = W.Output()
        self.opened.add_class("wb-sweep-opened")
        self.widget = W.VBox([W.HTML(f"<h3 style='margin:4px 0'>Sweep {html.escape(sweep_id)}</h3>"), self.summary,
                              self.stop_button, self.figures, self.table, self.picker, self.opened])
        self.widget.add_class("wb-sweep")
        self._frame: Any = None
        self._trials: dict[str, int] = {}
        self._done = threading.Event()
        self.refresh()

    def _ipython_display_(self) -> None:
        from .dashboards import display_widget

        display_widget(self.widget, f"<p><b>Sweep {html.escape(self.sweep_id)}</b>: live view; "
                                    f"{summary_html(self.sweep_id, self.store)}</p>")

    def refresh(self) -> bool:
        """Redraw what changed since the last call; returns whether a trial still runs."""
        from .render import output

        frame = sweep_table(self.sweep_id, self.store)
        running = bool(len(frame)) and bool((frame["state"] == "RUNNING").any())
        if self._frame is not None and frame.equals(self._frame):
            return running
        self._frame = frame
        self.summary.value = summary_html(self.sweep_id, self.store)
        self.table.value = trials_html(frame)
        self.figures.outputs = tuple(output(fig) for fig in sweep_figures(self.sweep_id, self.store).values())
        options = [("select a trial", "")]
        self._trials = {}
        for rec in frame.to_dict("records"):
            if isinstance(rec["run_id"], str) and rec["run_id"]:
                options.append((f"trial {rec['trial']} · {rec['status']} · run {rec['run_id']}", rec["run_id"]))
                self._trials[rec["run_id"]] = int(rec["trial"])
        value = self.picker.value
        self.picker.options = options
        self.picker.value = value if any(v == value for _l, v in options) else ""
        return running

    def open(self, run_id: str) -> None:
        """Show ``run_id``'s run below the table (nothing for the empty choice)."""
        from .render import output

        if not run_id:
            self.opened.outputs = ()
            return
        head, figs = run_parts(run_id, self.store, (self.sweep_id, self._trials.get(run_id, -1)))
        self.opened.outputs = (({"output_type": "display_data", "metadata": {},
                                 "data": {"text/html": head, "text/plain": f"run {run_id}"}},)
                               + tuple(output(fig) for fig in figs))

    def stop(self) -> None:
        """Ask every running trial's run to stop (the driver then ends them ``stopped``)."""
        frame = sweep_table(self.sweep_id, self.store)
        for run_id in frame.loc[frame["status"] == "running", "run_id"].dropna():
            self.store.request_stop(run_id)

    def follow(self) -> None:
        """Redraw every ``poll`` s in a daemon thread until the sweep has ended."""
        import contextvars

        def watch() -> None:
            try:
                while True:
                    running = self.refresh()
                    alive = self.driver is not None and self.driver.is_alive()
                    if not running and not alive:
                        return
                    time.sleep(self.poll)
            finally:
                self.refresh()
                self.stop_button.disabled = True  # nothing left to stop
                self._done.set()

        ctx = contextvars.copy_context()
        threading.Thread(target=ctx.run, args=(watch,), daemon=True, name=f"wb-sweep-watch-{self.sweep_id}").start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the monitor has drawn the sweep's end; returns whether it has."""
        return self._done.wait(timeout)


def show_sweep(sweep_id: str, store: Any = None) -> None:
    """Display the sweep as static notebook outputs: its summary, every figure and the trials table (what a report
    keeps: plotly figures carry their HTML, plotly.js embedded once per notebook)."""
    from IPython.display import HTML, display

    from .render import setup_renderer

    setup_renderer()
    display(HTML(f"<h3>Sweep {html.escape(sweep_id)}</h3>" + summary_html(sweep_id, store)))
    for fig in sweep_figures(sweep_id, store).values():
        display(fig)
    display(HTML(trials_html(sweep_table(sweep_id, store))))


def sweep_report(sweep_id: str, store: Any = None, out: str | Path | None = None) -> Path:
    """Write the sweep (summary, figures, trials table) to one offline HTML page, ``reports/sweep-<id>.html`` by
    default, through the notebook report's exporter (plotly.js inlined once; nothing fetched). Returns its path."""
    import nbformat

    from .render import output
    from .report import to_html

    outputs = [{"output_type": "display_data", "metadata": {},
                "data": {"text/html": summary_html(sweep_id, store), "text/plain": f"sweep {sweep_id}"}}]
    outputs += [output(fig) for fig in sweep_figures(sweep_id, store).values()]
    outputs.append({"output_type": "display_data", "metadata": {},
                    "data": {"text/html": trials_html(sweep_table(sweep_id, store)), "text/plain": "trials"}})
    cell = nbformat.v4.new_code_cell("", outputs=[nbformat.from_dict(o) for o in outputs])
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# Sweep {sweep_id}"), cell],
                                  metadata={"title": f"Sweep {sweep_id}"})
    name = sweep_id if sweep_id.startswith("sweep-") else f"sweep-{sweep_id}"  # generated ids start with it
    path = Path(out) if out else Path("reports") / f"{name}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(to_html(nb, no_input=True), encoding="utf-8")
    tmp.replace(path)
    return path
