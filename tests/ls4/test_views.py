"""The ls4 views draw a finished smoke run and an early live run from stored data only; the sample explorer
re-samples from the stored weights."""
import numpy as np
import plotly.graph_objects as go
import pytest

import workbench
from widgets.views import render, views_for
from widgets.views.ls4 import metrics_html, resample, resample_figure, sample_explorer
from workbench import runs
from tests.common import StopAfter

TITLES = {"samples: real vs generated", "samples: overlay", "conditional generation", "training curves",
          "metric table", "scores", "time per step vs length", "jump distribution", "kernels", "latent trajectories"}


@pytest.fixture(scope="module")
def finished():
    res = workbench.run("ls4", {"methods": "ls4,latent_ode"}, smoke=True, progress=False)
    assert res.status == "completed", res.error
    return res.run_id


def test_every_view_draws_a_finished_run(finished):
    assert TITLES <= {v.title for v in views_for("ls4")}
    drawn = dict(render("ls4", finished))
    assert TITLES <= set(drawn)
    for title in TITLES:
        fig = drawn[title]
        assert isinstance(fig, go.Figure) and len(fig.data) > 0, title
        assert fig.layout.title.text, title
    table = drawn["metric table"].data[0]
    assert "LS4" in table.cells.values[0] and "Latent ODE" in table.cells.values[0]
    assert "<table" in metrics_html(runs.artifact(finished, "metrics").to_dict("records"))




def test_views_of_an_early_run_draw_what_is_stored_or_nothing():
    early = workbench.run("ls4", {"methods": "ls4", "steps": 5}, smoke=True, progress=False, control=StopAfter(1))
    assert early.status == "stopped"
    for v in views_for("ls4"):
        out = v(early.run_id)
        assert out is None or isinstance(out, go.Figure), v.title
    later = workbench.run("ls4", {"methods": "ls4", "steps": 5}, smoke=True, progress=False, control=StopAfter(2))
    drawn = dict(render("ls4", later.run_id))  # samples every 2 steps in smoke: the viewer already draws
    assert {"samples: real vs generated", "samples: overlay", "kernels", "training curves"} <= set(drawn)
    assert "metric table" not in drawn


def test_resampling_from_stored_weights(finished):
    a = resample(finished, "ls4", n=4, seed=3, temperature=0.5, horizon=20)
    b = resample(finished, "ls4", n=4, seed=3, temperature=0.5, horizon=20)
    assert a["x"].shape == (4, 20, 1) and np.array_equal(a["x"], b["x"])
    c = resample(finished, "latent_ode", n=2, seed=1, horizon=10, prefix=6)
    assert c["x"].shape == (2, 10, 1) and c["observed"].shape == (2, 6, 1)
    fig = resample_figure(c, method="latent_ode")
    assert any(t.name == "observed prefix" for t in fig.data) and len(fig.layout.shapes) == 1
    panel = sample_explorer(finished)
    sliders = {c.description: c for box in panel.children[0].children for c in box.children}
    assert {"samples", "seed", "prior temperature", "horizon (steps)", "observed prefix", "model"} <= set(sliders)
    fig_widget = panel.children[2]
    before = len(fig_widget.data)
    sliders["samples"].value = 3
    assert len(fig_widget.data) != before
