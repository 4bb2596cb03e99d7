"""Dashboards driven from Python: set values, click buttons, observe (no browser)."""
from __future__ import annotations

import time

import pytest


def _wait_for(predicate, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_start_runs_to_completion_and_draws(tiny):
    from widgets.dashboards import Dashboard
    from workbench import runs

    dash = Dashboard("wbtiny", steps=12, poll=0.02)
    dash.start_button.click()
    dash.wait(timeout=30, show=False)
    assert dash.run_status == "completed"
    rec = runs.get(dash.run_id)
    assert rec["status"] == "completed" and rec["config"]["steps"] == 12
    # the curves hold exactly what the store holds
    stored = runs.metrics(dash.run_id)
    loss = stored[stored.name == "train/loss"]
    (label,) = dash.curves.series.runs
    x, y = dash.curves.series.arrays(label, "train/loss")
    assert list(x) == list(loss.step) and list(y) == pytest.approx(list(loss.value))
    assert {t.meta.split("::")[1] for t in dash.curves.figure.data} == {"train/loss", "test/accuracy"}
    assert dash.progress.value == dash.progress.max == 12
    assert "completed" in dash.status.value
    assert [_title(o) for o in dash.views_box.outputs] == ["bars", "claims"]
    assert "loss decreases" in dash.views_box.outputs[1]["data"]["text/html"]  # the generic claims view
    assert not dash.start_button.disabled and dash.stop_button.disabled


def test_stop_mid_run_keeps_metrics(tiny):
    from widgets.dashboards import Dashboard
    from workbench import runs

    dash = Dashboard("wbtiny", steps=10_000, delay=0.005, poll=0.02)
    assert dash.start()
    assert _wait_for(lambda: dash.run_id is not None and len(runs.metrics(dash.run_id)) >= 10)
    assert dash.form.controls["steps"].disabled  # the form is locked while training
    dash.stop_button.click()
    dash.wait(timeout=30, show=False)
    assert dash.run_status == "stopped" and runs.get(dash.run_id)["status"] == "stopped"
    kept = runs.metrics(dash.run_id)
    steps = kept[kept.name == "train/loss"].step
    assert len(steps) >= 10 and steps.max() < 9_999
    assert list(steps) == list(range(len(steps)))  # nothing lost in between
    assert "stopped" in dash.status.value


def test_pause_and_resume(tiny):
    from widgets.dashboards import Dashboard

    dash = Dashboard("wbtiny", steps=10_000, delay=0.002, poll=0.02)
    dash.start()
    assert _wait_for(lambda: dash.control.steps_done > 3)
    dash.pause_button.value = True
    assert dash.control.paused and dash.pause_button.description == "Resume"
    time.sleep(0.1)
    held = dash.control.steps_done
    time.sleep(0.2)
    assert dash.control.steps_done <= held + 1
    dash.pause_button.value = False
    assert _wait_for(lambda: dash.control.steps_done > held + 3)
    dash.stop()
    dash.wait(timeout=30, show=False)
    assert dash.run_status == "stopped"


def test_invalid_value_is_shown_not_raised(tiny):
    from widgets.dashboards import Dashboard

    dash = Dashboard("wbtiny")
    dash.form.set(shape="inv", lr=0.9)  # cross-parameter check fails
    assert "needs lr &lt;= 0.5" in dash.form.messages["lr"].value
    assert dash.start_button.disabled
    assert dash.start() is False and "not started" in dash.status.value
    dash.form.set(lr=0.2)
    assert dash.form.messages["lr"].value == "" and not dash.start_button.disabled


def test_follow_a_run_started_elsewhere(tiny):
    import threading

    import workbench
    from widgets.dashboards import follow
    from workbench.core.engine import Control

    ctl = Control()
    t = threading.Thread(target=workbench.run, args=("wbtiny", {"steps": 10_000, "delay": 0.003}),
                         kwargs={"control": ctl, "progress": False})
    t.start()
    assert ctl.started.wait(10)
    dash = follow(ctl.run_id, poll=0.02)
    assert _wait_for(lambda: dash.curves.series.metrics)
    dash.stop_button.click()  # an external run is stopped through the store
    dash.wait(timeout=30, show=False)
    t.join(30)
    assert dash.run_status == "stopped"
    assert len(dash.curves.series.data) == 2


def test_compare_overlays_runs(tiny):
    import workbench
    from widgets.dashboards import Dashboard

    a = workbench.run("wbtiny", {"steps": 5}, progress=False).run_id
    b = workbench.run("wbtiny", {"steps": 8, "lr": 0.5}, progress=False).run_id
    dash = Dashboard("wbtiny")
    dash.compare(a, b)
    assert len(dash.curves.series.runs) == 2
    assert len(dash.curves.figure.data) == 4


def test_runs_table_filters_and_compares(tiny):
    import workbench
    from widgets.dashboards import Dashboard
    from widgets.runlist import RunsTable, compare_figure

    a = workbench.run("wbtiny", {"steps": 5}, progress=False).run_id
    dash = Dashboard("wbtiny", steps=10_000, delay=0.005, poll=0.02)
    dash.start()
    assert _wait_for(lambda: dash.run_id is not None)
    dash.stop()
    dash.wait(timeout=30, show=False)
    b = dash.run_id
    table = RunsTable()
    assert set(table.checks) == {a, b}
    table.status.value = "stopped"
    assert set(table.checks) == {b}
    table.status.value = None
    assert table.compare_button.disabled
    table.select(a, b)
    assert not table.compare_button.disabled
    table.compare_button.click()
    assert len(table.curves.series.runs) == 2
    plot = table.curves.figure
    table.compare([a])
    assert table.curves.figure is plot and len(table.curves.series.runs) == 1  # one plot widget, reused
    fig = compare_figure([a, b], names=["train/loss"])
    assert len(fig.data) == 2 and {len(t.x) for t in fig.data} == {5, len(runs_rows(b))}


def runs_rows(run_id):
    from workbench import runs

    df = runs.metrics(run_id)
    return df[df.name == "train/loss"]


def _title(output):
    data = output["data"]
    if "application/vnd.plotly.v1+json" not in data:  # an HTML view (the claims table)
        return data["text/plain"].strip("<>")
    return data["application/vnd.plotly.v1+json"]["layout"]["title"]["text"]


def test_views_and_static_copies_are_plain_plotly_outputs(tiny):
    from widgets.dashboards import Dashboard

    dash = Dashboard("wbtiny", steps=4, poll=0.02)
    dash.run(show=False)
    assert [_title(o) for o in dash.views_box.outputs] == ["bars", "claims"]
    assert dash.run_status == "completed" and dash.static_out.layout.display is None
    assert [_title(o) for o in dash.static_out.outputs] == [f"wbtiny {dash.run_id}", "bars", "claims"]
    assert dash.live_box.layout.display == "none"  # the live plots give way to the static copies
    first = dash.run_id
    dash.start(steps=6)
    assert dash.live_box.layout.display is None and dash.static_out.outputs == ()
    dash.wait(show=False)
    assert dash.run_id != first and len(dash.curves.series.runs) == 2  # both runs overlaid
