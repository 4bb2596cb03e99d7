"""``workbench serve``: a Panel app with one page per registered experiment.

Each page has the experiment's declared parameters as Panel widgets (same bounds, choices and docs as the
notebook form), Run and Stop buttons, a progress bar and status line, the live curves as
``pn.pane.Plotly`` and, when the run ends, the method's views. Training runs in a background thread; a
periodic callback on the server's event loop reads the run store and redraws. Resources are inline (no CDN).
"""
from __future__ import annotations

import html
import os
import socket
import threading
import time
from typing import Any

from workbench.params import Config, ConfigError, Param

from .declared import engine_names, ordered


def panel_widget(param: Param, value: Any) -> Any:
    """The Panel widget for one declared parameter."""
    import panel as pn

    kind = param.kind
    lo, hi = param.bounds if param.bounds is not None else (None, None)
    label = param.name + (f" ({param.unit})" if param.unit else "")

    def make(cls: Any, **kw: Any) -> Any:
        if param.doc and "description" in cls.param:  # a tooltip where the widget has one
            kw["description"] = param.doc
        return cls(label=label, **kw)

    if kind is bool:
        return make(pn.widgets.Checkbox, value=bool(value))
    if param.choices is not None:
        return make(pn.widgets.Select, options=list(param.choices), value=value)
    if kind is int:
        if lo is not None and hi is not None and hi - lo <= 10_000:
            return make(pn.widgets.IntSlider, value=value, start=int(lo), end=int(hi), step=int(param.step or 1))
        return make(pn.widgets.IntInput, value=value, start=None if lo is None else int(lo),
                    end=None if hi is None else int(hi))
    if kind is float:
        if lo is not None and hi is not None and not param.log:
            return make(pn.widgets.FloatSlider, value=value, start=lo, end=hi, step=param.step or (hi - lo) / 100)
        return make(pn.widgets.FloatInput, value=value, start=lo, end=hi,
                    step=param.step or (value / 10 if value else 0.1), format="0.[000000]")
    return make(pn.widgets.TextInput, value=str(value))


class ExperimentPage:
    """One page of the app: form, Run/Stop, progress, status, live curves, views."""

    def __init__(self, method: str, poll_ms: int = 400) -> None:
        import panel as pn

        from workbench.registry import get

        self.experiment = get(method)
        self.method = method
        params: dict[str, Param] = self.experiment.config.params()
        self.inputs = {name: panel_widget(params[name], params[name].default) for name in ordered(params)}
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
        self.control: Any = None
        self.run_id: str | None = None
        self.thread: threading.Thread | None = None
        self._series: Any = None
        self._last_row: int | None = None
        self._drawn = -1
        self._callback: Any = None
        self.poll_ms = poll_ms
        title = html.escape(self.experiment.title or method)
        base = engine_names()
        own = [w for n, w in self.inputs.items() if n not in base]
        engine = pn.Card(*[w for n, w in self.inputs.items() if n in base], title="engine", collapsed=True,
                         sizing_mode="stretch_width")
        self.layout = pn.Row(
            pn.Column(pn.pane.HTML(f"<h2>{title}</h2>"), *own, engine, self.alert,
                      pn.Row(self.run_button, self.stop_button), self.progress, self.status, width=340),
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
        return {name: w.value for name, w in self.inputs.items()}

    def validate(self) -> Config | None:
        try:
            cfg = self.experiment.config(**self.values())
        except ConfigError as err:
            self.alert.object, self.alert.visible = html.escape(str(err)), True
            self.run_button.disabled = True
            return None
        self.alert.visible = False
        self.run_button.disabled = self.thread is not None and self.thread.is_alive()
        return cfg

    def start(self) -> None:
        import panel as pn

        from workbench.engine import Control

        from .curves import Series

        cfg = self.validate()
        if cfg is None or (self.thread is not None and self.thread.is_alive()):
            return
        self.control, self.run_id, self._last_row = Control(), None, None
        self._series, self._drawn = Series(), -1
        self.views.objects = []
        self.run_button.disabled, self.stop_button.disabled = True, False
        self.status.object = "starting…"
        self.thread = threading.Thread(target=self._work, args=(cfg, self.control), daemon=True)
        self.thread.start()
        if self._callback is None:
            self._callback = pn.state.add_periodic_callback(self.refresh, period=self.poll_ms)

    def _work(self, cfg: Config, control: Any) -> None:
        import workbench

        try:
            workbench.run(self.method, cfg, control=control, progress=False)
        except Exception as err:  # noqa: BLE001 - shown on the page
            control.reason = f"{type(err).__name__}: {err}"
        finally:
            control.started.set()

    def stop(self) -> None:
        if self.control is not None:
            self.control.stop("stopped from the app")
        self.stop_button.disabled = True

    def refresh(self) -> None:
        """Periodic: read new metrics, redraw; when the run is over, draw views and stop polling."""
        from workbench import runs

        from .curves import static_figure
        from .dashboards import _clock, _label
        from .views import render

        ctl = self.control
        if ctl is None:
            return
        self.run_id = ctl.run_id
        done = self.thread is not None and not self.thread.is_alive()
        if self.run_id is not None:
            frame = runs.metrics(self.run_id, since=self._last_row)
            if len(frame):
                self._last_row = int(frame["id"].iloc[-1])
                self._series.add_frame(_label(runs.get(self.run_id)), frame)
            if self._series.version != self._drawn:
                self.plot.object = static_figure(self._series, title=f"{self.method} {self.run_id}")
                self._drawn = self._series.version
            status = runs.get(self.run_id)["status"]
            if ctl.total:
                self.progress.max = ctl.total
                self.progress.value = min(ctl.step + 1, ctl.total)
            elapsed = time.time() - ctl.started_at if ctl.started_at else 0.0
            self.status.object = (f"<b>{status}</b> · run <code>{self.run_id}</code> · step {ctl.step + 1}/{ctl.total}"
                                  f" · {ctl.steps_per_second():.1f} step/s · {_clock(elapsed)} elapsed")
        if done:
            import panel as pn

            if self.run_id is not None:
                self.views.objects = [pn.pane.Plotly(fig, sizing_mode="stretch_width")
                                      for _t, fig in render(self.method, self.run_id)]
            elif ctl.reason:
                self.status.object = f"<span style='color:#c0392b'>{html.escape(ctl.reason)}</span>"
            self.stop_button.disabled = True
            self.validate()
            if self._callback is not None:
                self._callback.stop()
                self._callback = None


def build_app(only: list[str] | None = None) -> dict[str, Any]:
    """``{route: page factory}`` for ``pn.serve``: an index page and one page per experiment."""
    import panel as pn

    from workbench.registry import experiments

    known = experiments()
    names = list(only) if only else list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown experiment(s) {', '.join(unknown)}; known: {', '.join(known)}")

    def index() -> Any:
        links = "".join(f"<li><a href='./{n}'>{html.escape(known[n].title or n)}</a> ({n})</li>" for n in names)
        return pn.pane.HTML(f"<h1>Workbench</h1><ul>{links}</ul>")

    routes: dict[str, Any] = {"index": index}
    for name in names:
        routes[name] = (lambda n: lambda: ExperimentPage(n).layout)(name)
    return routes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(port: int = 5006, only: list[str] | None = None, show: bool = False, threaded: bool = False) -> Any:
    """Serve the app on 127.0.0.1 with inline resources; prints the URL. Blocks unless ``threaded``."""
    os.environ["BOKEH_RESOURCES"] = "server"  # bokeh/panel JS and CSS served by this server, not a CDN
    import panel as pn

    port = port or free_port()
    routes = build_app(only)
    print(f"workbench app: http://127.0.0.1:{port}/  (pages: {', '.join(r for r in routes if r != 'index')})",
          flush=True)
    return pn.serve(routes, address="127.0.0.1", port=port, show=show, threaded=threaded, title="Workbench",
                    websocket_origin=[f"127.0.0.1:{port}", f"localhost:{port}"], print_url=False)
