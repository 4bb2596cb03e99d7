"""``workbench serve``: the workbench's own Panel app on 127.0.0.1, offline.

- ``/``: the index: the registered experiments (links to their pages) and the most recent runs;
- ``/runs``: the runs browser: filter stored runs by method and status, pick several, compare their curves
  (one panel per metric, runs overlaid);
- ``/sweeps``: the store's sweeps (id, method, trials, best objective); ``/sweeps?id=SWEEP_ID`` one sweep's live
  view (:func:`widgets.sweep.sweep_view`: figures, trials table, Stop), each trial's run id a link to
  ``/sweeps?id=SWEEP_ID&run=RUN_ID`` (that run: status, config, curves, the method's views);
- ``/<experiment>``: its description (Markdown), the declared parameters as Panel widgets (the same mapping as
  the notebook form: :mod:`widgets.declared`; one card per parameter group, each doc a Markdown tooltip), Run
  and Stop, a progress bar and status line, the live curves and, when the run ends, the method's views and its
  claims. Descriptions are shown whole (reST inline markup rendered), never cut.

Training runs in a background thread; a periodic callback on the server's event loop follows the run through
the store (:class:`workbench.store.follow.RunFollower`) and redraws. Every resource is served by this server
(Bokeh/Panel JS and CSS, plotly.js): no request leaves 127.0.0.1.
"""
from __future__ import annotations

import html
import os
import re
import socket
from typing import Any

from workbench.core.params import Config, ConfigError, Param
from workbench.store.store import STATUSES

from .declared import ENGINE, ControlSpec, control_spec, sections
from .controller import RunController
from .labels import SMOKE, run_label, summary_text

_PAGE_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#222}
.wb-index table{border-collapse:collapse;font-size:13px} .wb-index td,.wb-index th{border-bottom:1px solid #ddd;
padding:3px 8px;text-align:left} .wb-index h1{margin:0 0 4px 0} .wb-smoke{color:#8a6d3b;font-weight:bold}
"""


_RST_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")


def rst_to_markdown(text: str) -> str:
    """A docstring's reST inline markup as Markdown: ````x```` → ```x```, ``:func:`~a.b``` → ```b```."""
    text = _RST_ROLE.sub(lambda m: f"`{m.group(1).rsplit('.', 1)[-1] if m.group(0).count('~') else m.group(1)}`",
                         text)
    return re.sub(r"``([^`]+)``", r"`\1`", text)


def markdown_html(text: str) -> str:
    """Markdown (from a docstring: reST inline markup converted) as HTML, for the app's pages."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").render(rst_to_markdown(text.strip()))


def first_paragraph(text: str) -> str:
    """The first paragraph of a description, whole (never cut mid-word)."""
    return re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0] if text else ""


def _numbro(digits: int) -> str:
    return "0." + "0" * digits if digits > 0 else "0"


def build_panel(spec: ControlSpec, value: Any) -> Any:
    """The Panel widget for ``spec`` (see :func:`widgets.declared.control_spec`), set to ``value``."""
    import panel as pn

    label = spec.label + (f" ({spec.unit})" if spec.unit else "")

    def make(cls: Any, **kw: Any) -> Any:
        if spec.tooltip and "description" in cls.param:  # a tooltip where the widget has one
            kw["description"] = spec.tooltip
        return cls(label=label, **kw)

    kind = spec.kind
    if kind == "checkboxes":  # one per line: a row of choices would be clipped by the sidebar
        return make(pn.widgets.CheckBoxGroup, options=list(spec.options), value=list(value), inline=False,
                    sizing_mode="stretch_width", css_classes=["wb-checkboxes"])
    if kind == "checkbox":
        return make(pn.widgets.Checkbox, value=bool(value))
    if kind == "dropdown":
        return make(pn.widgets.Select, options=list(spec.options), value=value)
    if kind == "int_slider":
        return make(pn.widgets.IntSlider, value=value, start=spec.lo, end=spec.hi, step=spec.step)
    if kind == "int_box":
        return make(pn.widgets.IntInput, value=value, start=None if spec.lo is None else int(spec.lo),
                    end=None if spec.hi is None else int(spec.hi))
    if kind == "log_slider":
        return make(pn.widgets.DiscreteSlider, options=log_options(spec, value), value=value)
    if kind == "float_slider":
        return make(pn.widgets.FloatSlider, value=value, start=spec.lo, end=spec.hi, step=spec.step,
                    format=_numbro(spec.digits))
    if kind == "float_box":
        return make(pn.widgets.FloatInput, value=value, start=spec.lo, end=spec.hi,
                    step=spec.step or (abs(value) / 10 if value else 0.1), format="0.[00000000]")
    return make(pn.widgets.TextInput, value=str(value))


def log_options(spec: ControlSpec, value: float) -> dict[str, float]:
    """Log-spaced slider stops from ``spec.lo`` to ``spec.hi`` (``spec.step`` decades apart), with ``value``
    among them, labelled at their precision ("0.0005", "1e-06")."""
    import math

    lo, hi, step = math.log10(spec.lo), math.log10(spec.hi), spec.step or 0.05
    n = max(1, int(round((hi - lo) / step)))
    stops = {float(f"{10 ** (lo + i * (hi - lo) / n):.3g}") for i in range(n + 1)} | {float(value)}
    return {f"{v:.3g}": v for v in sorted(stops)}


def panel_widget(param: Param, value: Any) -> Any:
    """The Panel widget for one declared parameter."""
    return build_panel(control_spec(param, value), value)


def widget_value(widget: Any) -> Any:
    value = widget.value
    return tuple(value) if isinstance(value, list) else value


class ExperimentPage:
    """One page of the app: form, Run/Stop, progress, status, live curves, views."""

    def __init__(self, method: str, poll_ms: int = 400) -> None:
        import panel as pn

        from workbench.core.registry import get

        self.experiment = get(method)
        self.method = method
        params: dict[str, Param] = self.experiment.config.params()
        groups = sections(params)
        self.inputs = {name: panel_widget(params[name], params[name].default)
                       for names in groups.values() for name in names}
        for w in self.inputs.values():
            w.param.watch(lambda _e: self.validate(), "value")
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False)
        self.run_button = pn.widgets.Button(label="Run", color="success", css_classes=["wb-run"])
        self.stop_button = pn.widgets.Button(label="Stop", color="danger", disabled=True,
                                             css_classes=["wb-stop"])
        self.progress = pn.indicators.Progress(value=0, max=1, width=260, bar_color="success")
        self.status = pn.pane.HTML("<i>ready</i>", css_classes=["wb-status"])
        self.plot = pn.pane.Plotly(self._empty(), sizing_mode="stretch_width", css_classes=["wb-curves"])
        self.views = pn.Column(sizing_mode="stretch_width")
        self.run_button.on_click(lambda _e: self.start())
        self.stop_button.on_click(lambda _e: self.stop())
        self.runner = RunController(method)
        self._series: Any = None
        self._drawn = -1
        self._callback: Any = None
        self.poll_ms = poll_ms
        title = html.escape(self.experiment.title or method)
        def shown(names: list[str]) -> list[Any]:  # a checkbox group shows no name of its own: a label above it
            out: list[Any] = []
            for n in names:
                if isinstance(self.inputs[n], pn.widgets.CheckBoxGroup):
                    out.append(pn.pane.HTML(f"<label title='{html.escape(params[n].doc, quote=True)}'>"
                                            f"{html.escape(n)}</label>", margin=(5, 10, 0, 10)))
                out.append(self.inputs[n])
            return out

        blocks: list[Any] = shown(groups.get("", []))
        for section, names in groups.items():
            if section in ("", ENGINE):
                continue
            blocks.append(pn.Card(*shown(names), title=section, sizing_mode="stretch_width"))
        if ENGINE in groups:
            blocks.append(pn.Card(*shown(groups[ENGINE]), title="engine", collapsed=True,
                                  sizing_mode="stretch_width"))
        nav = pn.pane.HTML("<a href='./'>all experiments</a> · <a href='./runs'>runs</a>")
        about = pn.pane.HTML(f"<div class='wb-about'>{markdown_html(self.experiment.description or '')}</div>",
                             sizing_mode="stretch_width", css_classes=["wb-description"])
        self.layout = pn.Row(
            pn.Column(nav, pn.pane.HTML(f"<h2>{title}</h2>"), about, *blocks, self.alert,
                      pn.Row(self.run_button, self.stop_button), self.progress, self.status, width=360),
            pn.Column(self.plot, self.views, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )

    @staticmethod
    def _empty() -> Any:
        import plotly.graph_objects as go

        return go.Figure(layout={"height": 320, "xaxis": {"visible": False}, "yaxis": {"visible": False},
                                 "annotations": [{"text": "press Run", "showarrow": False,
                                                  "xref": "paper", "yref": "paper"}]})

    def values(self) -> dict[str, Any]:
        return {name: widget_value(w) for name, w in self.inputs.items()}

    def validate(self) -> Config | None:
        try:
            cfg = self.experiment.config(**self.values())
        except ConfigError as err:
            self.alert.object, self.alert.visible = html.escape(str(err)), True
            self.run_button.disabled = True
            return None
        self.alert.visible = False
        self.run_button.disabled = self.runner.running
        return cfg

    @property
    def run_id(self) -> str | None:
        return self.runner.run_id

    def start(self) -> None:
        import panel as pn

        from .curves import Series

        cfg = self.validate()
        if cfg is None or self.runner.running:
            return
        self._series, self._drawn = Series(), -1
        self.views.objects = []
        self.runner.start(cfg)
        self.run_button.disabled, self.stop_button.disabled = True, False
        self.status.object = "starting…"
        if self._callback is None:
            self._callback = pn.state.add_periodic_callback(self.refresh, period=self.poll_ms)

    def stop(self) -> None:
        self.runner.stop("stopped from the app")
        self.stop_button.disabled = True

    def refresh(self) -> None:
        """Periodic: draw what the run controller read since the last call; when the run is over, the views."""
        from .curves import static_figure
        from .views import render

        if self.runner.control is None:
            return
        update = self.runner.poll()
        if update is not None:
            if len(update.metrics):
                self._series.add_frame(run_label(update.record), update.metrics)
            if self._series.version != self._drawn or update.final:
                self.plot.object = static_figure(self._series, title=f"{self.method} {self.run_id}",
                                                 min_points=2 if update.final else 1)
                self._drawn = self._series.version
            p = self.runner.progress()
            if p.total:
                self.progress.max, self.progress.value = p.total, min(p.step, p.total)
            self.status.object = self.runner.status_html(update.record)
        if not self.runner.running:
            if self.run_id is not None:
                self.views.objects = [_pane(fig) for _t, fig in render(self.method, self.run_id)]
            failure = self.runner.failure()
            if failure:
                prefix = self.status.object + " — " if self.run_id is not None else ""
                self.status.object = f"{prefix}<span style='color:#c0392b'>{html.escape(failure)}</span>"
            self.stop_button.disabled = True
            self.validate()
            if self._callback is not None:
                self._callback.stop()
                self._callback = None


def _pane(fig: Any) -> Any:
    import panel as pn

    if not hasattr(fig, "to_plotly_json") and hasattr(fig, "_repr_html_"):
        return pn.pane.HTML(fig._repr_html_(), sizing_mode="stretch_width")
    return pn.pane.Plotly(fig, sizing_mode="stretch_width")


class RunsBrowser:
    """The stored runs: filter by method and status, pick runs, compare their curves."""

    def __init__(self) -> None:
        import panel as pn

        from workbench.core.registry import experiments

        self.method = pn.widgets.Select(label="method", options=["all", *experiments()], value="all", width=180)
        self.status = pn.widgets.Select(label="status", options=["all", *STATUSES], value="all",
                                        width=140)
        self.picker = pn.widgets.MultiSelect(label="runs (pick several)", options={}, size=12,
                                             sizing_mode="stretch_width", css_classes=["wb-run-picker"])
        self.compare_button = pn.widgets.Button(label="Compare", color="primary", css_classes=["wb-compare"])
        self.table = pn.pane.HTML("", sizing_mode="stretch_width")
        self.plot = pn.Column(sizing_mode="stretch_width", css_classes=["wb-compare-plot"])
        for w in (self.method, self.status):
            w.param.watch(lambda _e: self.refresh(), "value")
        self.compare_button.on_click(lambda _e: self.compare())
        self.layout = pn.Column(
            pn.pane.HTML("<a href='./'>all experiments</a><h2>Runs</h2>"),
            pn.Row(self.method, self.status), self.picker, self.compare_button, self.plot, self.table,
            sizing_mode="stretch_width")
        self.refresh()

    def refresh(self) -> None:
        from workbench import runs

        df = runs.list(method=None if self.method.value == "all" else self.method.value,
                       status=None if self.status.value == "all" else self.status.value)
        records = df.to_dict("records")[::-1] if len(df) else []
        self.picker.options = {f"{r['id']}  {r['method']}  {r['status']}" + (f" ({SMOKE})" if r.get("smoke") else ""):
                               r["id"] for r in records}
        self.table.object = runs_html(records, limit=None)

    def compare(self, run_ids: list[str] | None = None) -> Any:
        import panel as pn

        from .runlist import compare_figure

        ids = list(run_ids if run_ids is not None else self.picker.value)
        if not ids:
            self.plot.objects = [pn.pane.HTML("<i>pick one or more runs</i>")]
            return None
        fig = compare_figure(ids)
        self.plot.objects = [pn.pane.Plotly(fig, sizing_mode="stretch_width")]
        return fig


def runs_html(records: list[dict], limit: int | None = 12) -> str:
    """An HTML table of runs (newest first): id, method, status (smoke marked), started, summary."""
    if not records:
        return "<p><i>no runs yet</i></p>"
    rows = []
    for r in records[:limit] if limit else records:
        smoke = f" <span class='wb-smoke'>{SMOKE}</span>" if r.get("smoke") else ""
        rows.append(f"<tr><td><code>{html.escape(str(r['id']))}</code></td><td>{html.escape(str(r['method']))}</td>"
                    f"<td>{html.escape(str(r['status']))}{smoke}</td><td>{str(r['created_at'])[:19]}</td>"
                    f"<td>{html.escape(summary_text(r.get('summary')))}</td></tr>")
    return ("<table><thead><tr><th>run</th><th>method</th><th>status</th><th>started</th><th>summary</th></tr></thead>"
            "<tbody>" + "".join(rows) + "</tbody></table>")


def sweeps_html(store: Any = None) -> str:
    """An HTML table of the store's sweeps (newest first): id (a link to its page), method, trials, best objective."""
    try:
        import optuna

        from workbench.core.sweep import study as studies
    except ImportError:  # the 'sweep' extra is not installed
        return "<p><i>sweeps need the 'sweep' extra (optuna)</i></p>"

    from workbench.store import runs as runs_api

    store = store or runs_api.store()
    summaries = optuna.get_all_study_summaries(studies.storage(store), include_best_trial=True)
    if not summaries:
        return "<p><i>no sweeps yet</i></p>"
    rows = []
    for s in reversed(summaries):
        spec = s.user_attrs.get("workbench") or {}
        objectives = spec.get("objectives") or ["objective"]
        best = "—"
        if s.best_trial is not None and s.best_trial.values:
            best = f"{objectives[0]} = {s.best_trial.values[0]:.4g} (trial {s.best_trial.number})"
        elif len(objectives) > 1:
            best = f"{len(objectives)} objectives: see the Pareto front"
        sid = html.escape(s.study_name)
        rows.append(f"<tr><td><a href='./sweeps?id={sid}'><code>{sid}</code></a></td>"
                    f"<td>{html.escape(str(spec.get('method', '?')))}</td><td>{s.n_trials}</td>"
                    f"<td>{html.escape(best)}</td></tr>")
    return ("<table><thead><tr><th>sweep</th><th>method</th><th>trials</th><th>best objective</th></tr></thead>"
            "<tbody>" + "".join(rows) + "</tbody></table>")


def sweeps_page(sweep_id: str | None = None, store: Any = None, run_id: str | None = None) -> Any:
    """``/sweeps``: the list of sweeps; with ``sweep_id`` (``/sweeps?id=...``), that sweep's live view, whose trials
    table links each run to its page, ``/sweeps?id=...&run=RUN_ID`` (the run's curves and views)."""
    import panel as pn

    if sweep_id is None and pn.state.curdoc:
        args = pn.state.session_args
        sweep_id = args["id"][0].decode() if args.get("id") else None
        run_id = args["run"][0].decode() if args.get("run") else None
    nav = "<a href='./'>all experiments</a> · <a href='./runs'>runs</a> · <a href='./sweeps'>sweeps</a>"
    if not sweep_id:
        return pn.pane.HTML(f"<style>{_PAGE_CSS}</style><div class='wb-index'>{nav}<h2>Sweeps</h2>"
                            f"{sweeps_html(store)}</div>", sizing_mode="stretch_width", css_classes=["wb-sweeps"])
    from workbench.core.params import ConfigError as _ConfigError

    from .sweep import run_panel, sweep_view

    sid = html.escape(sweep_id)
    if run_id:
        try:
            panel = run_panel(run_id, store)
        except (KeyError, ValueError) as err:
            panel = pn.pane.HTML(f"<p style='color:#c0392b'>{html.escape(str(err))}</p>")
        back = f"{nav} · <a href='./sweeps?id={sid}'>sweep <code>{sid}</code></a>"
        return pn.Column(pn.pane.HTML(back), panel, sizing_mode="stretch_width", css_classes=["wb-sweep-run-page"])
    try:
        view = sweep_view(sweep_id, store, run_link=f"./sweeps?id={sweep_id}&run=")
    except _ConfigError as err:  # no such sweep: one line naming the known ones
        return pn.pane.HTML(f"<style>{_PAGE_CSS}</style><div class='wb-index'>{nav}<h2>Sweeps</h2>"
                            f"<p style='color:#c0392b'>{html.escape(str(err))}</p>{sweeps_html(store)}</div>",
                            sizing_mode="stretch_width", css_classes=["wb-sweeps"])
    return pn.Column(pn.pane.HTML(nav), view, sizing_mode="stretch_width", css_classes=["wb-sweep"])


def index_page(names: list[str]) -> Any:
    """The workbench's index: experiments (links to their pages) and the most recent runs."""
    import panel as pn

    from workbench import runs
    from workbench.core.registry import experiments

    known = experiments()
    items = "".join(f"<li><a href='./{n}'><b>{html.escape(known[n].title or n)}</b></a> <code>{n}</code>"
                    f"<div class='wb-description' style='color:#555'>"
                    f"{markdown_html(first_paragraph(known[n].description or ''))}</div></li>" for n in names)
    df = runs.list()
    recent = runs_html(df.to_dict("records")[::-1] if len(df) else [], limit=12)
    return pn.pane.HTML(
        f"<style>{_PAGE_CSS}</style><div class='wb-index'><h1>Workbench</h1>"
        f"<p style='color:#666'>machine-learning methods from papers: run them, watch them, compare runs</p>"
        f"<h2>Experiments</h2><ul>{items}</ul><h2>Recent runs</h2>{recent}"
        f"<p><a href='./runs'>all runs: browse and compare</a> · <a href='./sweeps'>sweeps</a></p></div>",
        sizing_mode="stretch_width")


def build_app(only: list[str] | None = None) -> dict[str, Any]:
    """``{route: page factory}`` for ``pn.serve``: the index at ``/``, the runs browser, the sweeps, one page per
    experiment."""
    from workbench.core.registry import experiments

    known = experiments()
    names = list(only) if only else list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown experiment(s) {', '.join(unknown)}; known: {', '.join(known)}")
    routes: dict[str, Any] = {"/": lambda: index_page(names), "runs": lambda: RunsBrowser().layout,
                              "sweeps": lambda: sweeps_page()}
    for name in names:
        routes[name] = (lambda n: lambda: ExperimentPage(n).layout)(name)
    return routes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(port: int = 5006, only: list[str] | None = None, show: bool = False, threaded: bool = False) -> Any:
    """Serve the app on 127.0.0.1 with every resource local; prints the URL. Blocks unless ``threaded``."""
    os.environ["BOKEH_RESOURCES"] = "server"  # bokeh/panel JS and CSS served by this server, not a CDN
    import panel as pn

    pn.config.inline = True
    port = port or free_port()
    routes = build_app(only)
    pages = [r for r in routes if r not in ("/", "runs", "sweeps")]
    print(f"workbench app: http://127.0.0.1:{port}/  (experiments: {', '.join(pages)}; runs: /runs; sweeps: /sweeps)",
          flush=True)
    return pn.serve(routes, address="127.0.0.1", port=port, show=show, threaded=threaded, title="Workbench",
                    websocket_origin=[f"127.0.0.1:{port}", f"localhost:{port}"], print_url=False)
