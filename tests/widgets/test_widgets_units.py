"""Units of the notebook layer: downsampling, throttling, the generated form, the views registry,
and that ``import widgets`` stays light."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest


# -- curves ---------------------------------------------------------------------------------------
def test_downsample_bounds_points_and_keeps_extremes():
    from widgets.curves import downsample

    x = np.arange(100_000, dtype=float)
    y = np.sin(x / 500.0)
    y[12_345], y[77_777] = 9.0, -9.0  # one-step spikes must survive
    xs, ys = downsample(x, y, 2000)
    assert len(xs) <= 2000
    assert xs[0] == 0 and xs[-1] == 99_999
    assert ys.max() == 9.0 and ys.min() == -9.0
    assert np.all(np.diff(xs) > 0)  # still a curve in x order
    # every kept point is a real point of the curve
    assert np.array_equal(ys, y[xs.astype(int)])
    short_x, short_y = downsample(x[:50], y[:50], 2000)
    assert short_x is x[:50] or np.array_equal(short_x, x[:50])


def test_downsample_handles_nan():
    from widgets.curves import downsample

    x = np.arange(10_000, dtype=float)
    y = np.full_like(x, np.nan)
    y[::7] = 1.0
    xs, ys = downsample(x, y, 100)
    assert len(xs) <= 100


def test_live_curves_throttle_and_batch():
    from widgets.curves import LiveCurves

    c = LiveCurves(min_interval=3600.0, max_points=500)
    frame = pd.DataFrame({"step": np.arange(100_000), "name": "train/loss", "value": np.linspace(1, 0, 100_000)})
    c.add_frame("run a", frame)
    assert c.draw()                 # the first draw goes through
    c.add_frame("run a", pd.DataFrame({"step": [100_000], "name": ["train/loss"], "value": [0.0]}))
    assert not c.draw()             # throttled: a redraw at most every min_interval seconds
    assert c.draw(force=True)       # the end of a run forces the last redraw
    assert not c.draw(force=False)  # nothing new: nothing sent
    (trace,) = c.figure.data
    assert len(trace.x) <= 500 and trace.x[-1] == 100_000
    c.add_frame("run b", frame.iloc[:10])
    c.draw(force=True)
    assert len(c.figure.data) == 2 and {t.name for t in c.figure.data} == {"run a", "run b"}
    c.log_toggle.value = True
    assert c.figure.layout.yaxis.type == "log"
    assert c.draws == 4


def test_static_figure_one_panel_per_metric_one_colour_per_run():
    from widgets.curves import Series, static_figure

    s = Series()
    s.add("a", "loss", [0, 1], [1.0, 0.5])
    s.add("a", "acc", [0, 1], [0.1, 0.9])
    s.add("b", "loss", [0, 1, 2], [2.0, 1.0, 0.1])
    fig = static_figure(s)
    assert [a.text for a in fig.layout.annotations] == ["<b>loss</b>", "<b>acc</b>"]
    axes = {(t.name, t.xaxis) for t in fig.data}
    assert axes == {("a", "x"), ("b", "x"), ("a", "x2")}
    colours = {t.name: t.line.color for t in fig.data}
    assert colours["a"] != colours["b"]
    assert sum(t.showlegend for t in fig.data) == 2  # one legend entry per run


# -- form -----------------------------------------------------------------------------------------
def test_form_controls_follow_the_declarations(tiny):
    import ipywidgets as W

    from widgets.form import ParamForm

    form = ParamForm(tiny.config, {"steps": 7})
    c = form.controls
    assert isinstance(c["steps"], W.IntText)          # 1..100000: a text box, not a slider
    assert isinstance(c["lr"], W.FloatLogSlider)      # log=True
    assert c["lr"].min == pytest.approx(-4) and c["lr"].max == pytest.approx(0)
    assert isinstance(c["scale"], W.FloatSlider) and c["scale"].step == pytest.approx(0.1)
    assert isinstance(c["shape"], W.Dropdown) and list(c["shape"].options) == ["exp", "inv"]
    assert isinstance(c["noisy"], W.Checkbox)
    assert c["steps"].tooltip == "steps to take"
    assert list(c)[:3] == ["steps", "lr", "delay"]   # the experiment's own parameters first
    assert form.values["steps"] == 7 and form.config().steps == 7


def test_form_shows_errors_beside_the_control(tiny):
    from widgets.form import ParamForm
    from workbench.core.params import ConfigError

    form = ParamForm(tiny.config)
    form.controls["steps"].value = 0
    assert "out of range" in form.messages["steps"].value and "[1, 100000]" in form.messages["steps"].value
    assert not form.valid
    with pytest.raises(ConfigError) as err:
        form.config()
    assert err.value.param == "steps"
    form.controls["steps"].value = 5
    assert form.valid and form.messages["steps"].value == ""
    with pytest.raises(ConfigError, match="unknown parameter 'nope'"):
        ParamForm(tiny.config, {"nope": 1})


# -- views ----------------------------------------------------------------------------------------
def test_views_registry_and_render():
    import plotly.graph_objects as go

    from widgets.views import render, view, views_for

    @view("wbunit", "ok")
    def ok(run_id):
        return go.Figure(layout={"title": {"text": run_id}})

    @view("wbunit", "not yet")
    def not_yet(run_id):
        return None

    @view("wbunit", "broken", key=False)
    def broken(run_id):
        raise RuntimeError("boom")

    assert [v.title for v in views_for("wbunit")] == ["ok", "not yet", "broken"]
    shown = render("wbunit", "r1")
    assert [t for t, _ in shown] == ["ok", "broken"]           # a view with nothing to draw is skipped
    # (no stored run "r1": the generic claims view has nothing to draw either)
    assert "boom" in shown[1][1].layout.annotations[0].text    # a broken view shows its error
    assert [t for t, _ in render("wbunit", "r1", key_only=True)] == ["ok"]
    assert views_for("no_such_method") == []
    with pytest.raises(ValueError):
        view("", "x")


def test_import_widgets_is_light():
    code = ("import sys, widgets, widgets.views; "
            "heavy = [m for m in ('ipywidgets', 'plotly', 'panel', 'torch', 'IPython') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- Panel app (no browser) ---------------------------------------------------------------------------
def test_panel_page_mirrors_the_declarations(tiny):
    import panel as pn

    from widgets.app import ExperimentPage, build_app

    page = ExperimentPage("wbtiny")
    assert isinstance(page.inputs["scale"], pn.widgets.FloatSlider)
    assert isinstance(page.inputs["shape"], pn.widgets.Select)
    assert isinstance(page.inputs["noisy"], pn.widgets.Checkbox)
    assert page.inputs["shape"].description == "curve shape"
    page.inputs["shape"].value = "inv"
    page.inputs["lr"].value = max(v for v in page.inputs["lr"].options.values() if v > 0.5)  # a log-slider stop
    assert page.alert.visible and "needs lr &lt;= 0.5" in page.alert.object and page.run_button.disabled
    page.inputs["lr"].value = 0.1
    assert not page.alert.visible and not page.run_button.disabled
    assert set(build_app(["wbtiny"])) == {"/", "runs", "sweeps", "wbtiny"}
    with pytest.raises(ValueError, match="unknown experiment"):
        build_app(["nosuch"])


def _registered():
    from workbench.core.registry import experiments

    return sorted(experiments())


@pytest.mark.parametrize("method", _registered())
def test_every_registered_experiment_gets_a_valid_form_and_page(method):
    """The generated forms (ipywidgets and Panel) accept every experiment's declared defaults."""
    from widgets.app import ExperimentPage
    from widgets.dashboards import Dashboard
    from workbench.core.registry import get

    exp = get(method)
    dash = Dashboard(method)
    assert dash.form.valid, dash.form.errors
    assert dash.form.config() == exp.config()
    smoke = Dashboard(method, smoke=True)
    assert smoke.form.config() == exp.make_config(smoke=True)
    page = ExperimentPage(method)
    assert page.validate() == exp.config()


def test_lazy_names_stay_functions_after_their_modules_load():
    import importlib

    importlib.import_module("widgets.dashboards")
    importlib.import_module("widgets.runlist")
    import widgets

    assert callable(widgets.dashboard) and callable(widgets.runs_table)
    from widgets import dashboard

    assert dashboard.__name__ == "dashboard"
