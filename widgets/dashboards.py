"""A dashboard per experiment: parameter form + run controls + live curves + the method's own views.

The run trains in a background thread (the kernel stays idle, so sliders and Stop respond) of the shared
:class:`~widgets.controller.RunController`; a monitor thread draws what it reports. Because the
monitor reads only the store, the same dashboard follows a run it did not start (a ``torchrun`` job,
another kernel): :func:`follow`. A smoke run is labelled as one in the status line and the legend.

One output per thing: in a live notebook the dashboard is where the curves, the views and the claims are shown
(live, then as static copies when the run ends); :meth:`Dashboard.run` and :meth:`Dashboard.wait` return the
result and show nothing more (the static copies are filed for ``%wb_export`` only). Headless (a report, the
tests) nobody sees the widget, so they display the static figures in the cell.
"""
from __future__ import annotations

import contextvars
import html
import re
import threading
import time
from typing import Any

import ipywidgets as W

from workbench.core.params import ConfigError

from .controller import RunController
from .curves import LiveCurves
from .labels import SMOKE, run_label
from .render import headless as _headless
from .render import output, setup_renderer
from .views import render

MAX_POLL_FAILURES = 40  # consecutive failed reads of the store before a dashboard gives up following a run


def headless() -> bool:
    """True when no person watches (``workbench report``, tests, ``WORKBENCH_HEADLESS=1``)."""
    return _headless()


def _show(obj: Any) -> None:
    from IPython.display import display

    from .render import setup_renderer

    setup_renderer()
    display(obj)


class Dashboard:
    """Form, Start/Stop/Pause, progress, status line, live curves and views for one experiment.

    ``Dashboard("classify", steps=200)`` starts from the experiment's defaults updated by the values.
    ``smoke=True`` starts from the experiment's smoke overrides (notebooks in smoke mode) and labels its runs
    as smoke runs (their claims are recorded as not evaluated). ``store``: a run store other than the default.
    """

    def __init__(self, method: str, values: dict[str, Any] | None = None, *, smoke: bool = False,
                 poll: float = 0.25, views_every: float = 5.0, metrics: list[str] | None = None,
                 store: Any = None, **kw: Any) -> None:
        from workbench.core.registry import get

        setup_renderer()  # figures in this kernel carry no plotly.js of their own
        self.experiment = get(method)
        self.method = method
        self.smoke, self.store = smoke, store
        self.poll, self.views_every = poll, views_every
        start = {**(self.experiment.smoke if smoke else {}), **(values or {}), **kw}
        from .form import ParamForm

        self.form = ParamForm(self.experiment.config, start)
        self.start_button = W.Button(description="Start", button_style="success", icon="play",
                                     tooltip="train with these parameters (in the background)")
        self.stop_button = W.Button(description="Stop", button_style="danger", icon="stop", disabled=True,
                                    tooltip="stop the run; its metrics so far are kept")
        self.pause_button = W.ToggleButton(description="Pause", icon="pause", disabled=True,
                                           tooltip="pause / resume the run")
        self.progress = W.IntProgress(value=0, min=0, max=1, description="", layout=W.Layout(width="260px"))
        self.status = W.HTML("<i>ready</i>")
        self.start_button.on_click(lambda _b: self.start())
        self.stop_button.on_click(lambda _b: self.stop())
        self.pause_button.observe(self._pause_toggled, names="value")
        self.form.on_change(lambda f: setattr(self.start_button, "disabled", self.running or not f.valid))
        self.start_button.disabled = not self.form.valid
        self.curves = LiveCurves(metrics=metrics)
        self.views_box = W.Output()
        title = html.escape(self.experiment.title or method)
        badge = (f" <span style='background:#fcf8e3;color:#8a6d3b;border:1px solid #e0c97f;border-radius:3px;"
                 f"padding:0 4px;font-size:12px' title='the smoke settings (seconds): claims are not evaluated'>"
                 f"{SMOKE} settings</span>" if smoke else "")
        header = W.HTML(f"<h3 style='margin:4px 0'>{title} <small style='color:#777'>({method})</small>{badge}</h3>")
        controls = W.VBox([W.HBox([self.start_button, self.pause_button, self.stop_button]), self.progress,
                           self.status])
        self.live_box = W.VBox([self.curves.widget, self.views_box])
        self.static_out = W.Output(layout=W.Layout(display="none"))
        self.static_out.add_class("wb-static")
        self.widget = W.VBox([header, W.HBox([self.form.widget, controls]), self.live_box, self.static_out])
        self.widget.add_class("wb-dashboard")
        self.runner = RunController(method, smoke=smoke, store=store)
        self._monitor: threading.Thread | None = None
        self._done = threading.Event()  # set once a run has ended and the dashboard has drawn its end
        self._done.set()
        self._last_views = 0.0

    # the run as the controller knows it ------------------------------------------------------
    control = property(lambda self: self.runner.control)
    run_id = property(lambda self: self.runner.run_id)
    result = property(lambda self: self.runner.result)
    error = property(lambda self: self.runner.error)
    run_status = property(lambda self: self.runner.run_status)
    record = property(lambda self: self.runner.record)

    # display ----------------------------------------------------------------------------------
    def _ipython_display_(self) -> None:
        display_widget(self.widget, f"<p><b>{html.escape(self.experiment.title or self.method)}</b> dashboard "
                                    f"(<code>{html.escape(self.method)}</code>): live controls; a report shows the "
                                    f"static figures below.</p>")

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    # actions ----------------------------------------------------------------------------------
    def start(self, **values: Any) -> bool:
        """Start a run with the form's values (after setting ``values``); False if the form is invalid."""
        if self.running:
            return False
        if values:
            self.form.set(**values)
        try:
            cfg = self.form.config()
        except ConfigError as err:
            self._set_status(f"<span style='color:#c0392b'>not started: {html.escape(str(err))}</span>")
            return False
        self.runner.start(cfg)
        self._done.clear()
        self._show_live()
        self._set_running_ui(True)
        self._set_status("starting…")
        self._start_monitor()
        return True

    def follow(self, run_id: str) -> "Dashboard":
        """Show a run this dashboard did not start (another process, an earlier run) as it goes."""
        if self.running:
            raise RuntimeError("this dashboard is busy with a run; stop it first")
        record = self.runner.follow(run_id)
        try:
            self.form.set(**{k: v for k, v in record["config"].items() if k in self.form.controls})
        except ConfigError:
            pass
        self._done.clear()
        self._show_live()
        self._set_running_ui(True)
        self._start_monitor()
        return self

    def stop(self) -> None:
        """Ask the run to stop at its next step (it ends as ``stopped``, metrics kept)."""
        self.runner.stop("stopped from the dashboard")
        self.stop_button.disabled = True
        self._set_status("stopping…")

    def pause(self) -> None:
        self.pause_button.value = True

    def resume(self) -> None:
        self.pause_button.value = False

    def _pause_toggled(self, change: dict) -> None:
        if self.control is None:
            return
        if change["new"]:
            self.runner.pause()
            self.pause_button.description, self.pause_button.icon = "Resume", "play"
        else:
            self.runner.resume()
            self.pause_button.description, self.pause_button.icon = "Pause", "pause"

    def wait(self, timeout: float | None = None, show: bool = True) -> Any:
        """Block until the run ends and return its result. ``show``: leave the static figures for a report: shown
        in the cell when headless; in a live notebook the dashboard shows them, so they are only filed for
        ``%wb_export`` (never a second copy on the page)."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"run {self.run_id} still running after {timeout} s")
        if show:
            self.leave_static()
        return self.result

    def wait_for_step(self, step: int, timeout: float | None = None) -> int:
        """Block until the run has taken ``step`` steps (or ended); returns the steps taken so far."""
        end = None if timeout is None else time.monotonic() + timeout
        while self.running and (self.control is None or self.control.steps_done < step):
            if end is not None and time.monotonic() > end:
                raise TimeoutError(f"run {self.run_id} did not reach step {step} in {timeout} s")
            time.sleep(0.05)
        return self.control.steps_done if self.control is not None else 0

    def run(self, show: bool = True, **values: Any) -> Any:
        """Start, wait and return the result (static figures as :meth:`wait` leaves them)."""
        if not self.start(**values):
            raise ConfigError(self.status.value)
        return self.wait(show=show)

    def compare(self, *run_ids: str) -> None:
        """Overlay other runs' curves on this dashboard's plot."""
        from workbench.store.follow import RunFollower

        for rid in run_ids:
            update = RunFollower(rid, store=self._store()).poll()
            self.curves.add_frame(run_label(update.record), update.metrics)
        self._show_live()
        self.curves.draw(force=True)

    # static output ------------------------------------------------------------------------------
    def static_figures(self) -> list[tuple[str, Any]]:
        """``[(title, figure)]``: the curves, then the method's views and the claims table, for the current run."""
        label = f"{self.method} {self.run_id or ''}".strip()
        if self.record is not None and self.record.get("smoke"):
            label += f" ({SMOKE})"
        out = [("curves", self.curves.static(title=label, min_points=2))]
        if self.run_id is not None:
            out += render(self.method, self.run_id)
        return out

    def _static_header(self) -> str:
        smoke = f" · <b>{SMOKE}</b>" if self.record is not None and self.record.get("smoke") else ""
        return (f"<p><b>{html.escape(self.method)}</b> run <code>{self.run_id}</code>: "
                f"<b>{html.escape(str(self.run_status))}</b>{smoke}</p>")

    def show_static(self) -> None:
        """Display the run's status line and static figures in the cell (headless runs, reports)."""
        from IPython.display import HTML

        if self.run_id is not None:
            _show(HTML(self._static_header()))
        for _title, fig in self.static_figures():
            _show(fig)

    def leave_static(self) -> None:
        """The static figures where a report finds them: displayed when headless; in a live notebook filed for
        ``%wb_export`` only (:func:`widgets.record.attach`), since the dashboard shows them already."""
        if headless():
            self.show_static()
            return
        from .record import attach

        if self.run_id is None:
            return
        head = {"output_type": "display_data", "data": {"text/html": self._static_header()}, "metadata": {}}
        attach([head] + [output(fig) for _title, fig in self.static_figures()])

    def _store(self) -> Any:
        return self.runner.store_()

    # background work ------------------------------------------------------------------------------
    def _start_monitor(self) -> None:
        ctx = contextvars.copy_context()  # output from the thread goes to the cell that started the run
        self._monitor = threading.Thread(target=ctx.run, args=(self._watch,), daemon=True,
                                         name=f"wb-watch-{self.method}")
        self._monitor.start()

    def _watch(self) -> None:
        try:
            self.runner.watch(lambda update: self._apply(update, final=update.final), interval=self.poll,
                              max_failures=MAX_POLL_FAILURES, on_error=lambda err: self._set_status(
                                  f"<i>reading the run store failed ({html.escape(str(err))}); retrying</i>"))
        finally:
            self._finish()

    def _apply(self, update: Any, final: bool) -> None:
        """Draw one update of the follower: new metrics, status and progress, views when something new arrived."""
        if len(update.metrics):
            self.curves.add_frame(run_label(update.record), update.metrics)
        self.curves.draw(force=final)
        self._update_progress(update.record)
        stale = time.monotonic() - self._last_views > self.views_every
        if final or (stale and (update.artifacts or len(update.metrics))):
            self._refresh_views()

    def _update_progress(self, record: dict) -> None:
        steps = [len(s[0]) and max(s[0]) for s in self.curves.series.data.values()]
        seen = int(max(steps, default=0)) + 1 if steps else 0
        p = self.runner.progress(seen)
        if p.total:
            self.progress.max, self.progress.value = max(p.total, 1), min(p.step, p.total)
        self._set_status(self.runner.status_html(record, seen))

    def _refresh_views(self) -> None:
        self._last_views = time.monotonic()
        if self.run_id is None or headless():  # nobody watches: views go to the static output at the end
            return
        # plain plotly outputs (JupyterLab draws them natively): no FigureWidget, so no plotly.js bundle per view
        self.views_box.outputs = tuple(output(fig) for _title, fig in render(self.method, self.run_id))

    def _finish(self) -> None:
        self._set_running_ui(False)
        self._show_static_in_widget()
        failure = self.runner.failure()
        if self.runner.error:
            self._set_status(f"<span style='color:#c0392b'>{html.escape(self.runner.error)}</span>")
        elif self.record is not None:
            extra = f" — {html.escape(failure)}" if failure else ""
            self._set_status(self.runner.status_html(self.record) + extra)
        self._done.set()

    def _show_static_in_widget(self) -> None:
        """At run end (live notebooks): the live plots give way to static copies inside the dashboard
        (plain plotly outputs, which a notebook saved with its widget state keeps)."""
        if headless() or self.run_id is None:
            return
        try:
            self.static_out.outputs = tuple(output(fig) for _title, fig in self.static_figures())
            self.live_box.layout.display = "none"
            self.static_out.layout.display = None
        except Exception as err:  # noqa: BLE001 - a static copy must never break the dashboard
            self.runner.error = self.runner.error or f"static figures: {type(err).__name__}: {err}"

    def _show_live(self) -> None:
        self.static_out.outputs = ()
        self.static_out.layout.display = "none"
        self.live_box.layout.display = None

    def _set_running_ui(self, running: bool) -> None:
        self.start_button.disabled = running or not self.form.valid
        self.stop_button.disabled = not running
        self.pause_button.disabled = not running or self.runner.external
        if not running:
            self.pause_button.value = False
        self.form.disable(running)

    def _set_status(self, text: str) -> None:
        self.status.value = text


def display_widget(widget: Any, fallback_html: str) -> None:
    """Display ``widget`` with an HTML fallback (shown by exports, where no widget manager runs)."""
    from IPython.display import display

    bundle = widget._repr_mimebundle_() or {}
    if isinstance(bundle, tuple):
        bundle = bundle[0]
    bundle = dict(bundle)
    bundle["text/html"] = fallback_html
    bundle["text/plain"] = re.sub(r"<[^>]+>", "", fallback_html)
    display(bundle, raw=True)


def dashboard(method: str, values: dict[str, Any] | None = None, *, smoke: bool = False, **kw: Any) -> Dashboard:
    """Build (and return) the dashboard of ``method``; the notebook displays it as the cell's value."""
    return Dashboard(method, values, smoke=smoke, **kw)


def follow(run_id: str, **kw: Any) -> Dashboard:
    """A dashboard following the stored run ``run_id`` (from another process or kernel) until it ends."""
    from workbench import runs

    record = runs.get(run_id, store=kw.get("store"))
    dash = Dashboard(record["method"], **kw)
    return dash.follow(record["id"])
