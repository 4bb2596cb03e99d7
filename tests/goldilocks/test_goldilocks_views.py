"""The goldilocks views draw a smoke run from stored data only."""
import plotly.graph_objects as go

from widgets.views import render, views_for
from widgets.views.goldilocks import corrupted_share_figure, rl_histogram_figure, scatter_figure
from tests.common import smoke_group, smoke_run


@smoke_group("goldilocks")
def test_every_view_draws_a_smoke_run():
    res = smoke_run("goldilocks").result
    assert res.status == "completed", res.error
    titles = {v.title for v in views_for("goldilocks")}
    assert {"live gallery", "loss vs irreducible loss", "accuracy vs steps", "accuracy vs wall-clock", "speedup",
            "corrupted share", "diagnostics over training", "reducible loss: clean vs corrupted",
            "irreducible-loss model calibration"} <= titles
    drawn = dict(render("goldilocks", res.run_id, claims=False))
    assert set(drawn) == titles
    for title, fig in drawn.items():
        assert isinstance(fig, go.Figure) and len(fig.data) > 0, title
        assert "Error" not in str(fig.layout.annotations[:1]), title


def test_scatter_figure_splits_points_by_selection_and_corruption():
    fig = scatter_figure({"train_loss": [1.0, 2.0, 3.0, 0.5], "irreducible_loss": [0.1, 2.5, 0.2, 0.3],
                          "selected": [True, False, True, False], "corrupted": [False, True, False, False]})
    sizes = {t.name: len(t.x) for t in fig.data}
    assert sizes == {"not selected": 1, "not selected (corrupted)": 1, "selected": 2, "reducible loss = 0": 2}


def test_histogram_slider_shows_one_step_at_a_time_per_method():
    def hist(step, clean, corrupted):
        return {"step": step, "edges": [-1.0, 0.0, 1.0], "clean": clean, "corrupted": corrupted}

    frames = {"rho_loss": [hist(10, [3, 1], [0, 2]), hist(20, [1, 3], [2, 0])], "uniform": [hist(20, [2, 2], [1, 1])]}
    fig = rl_histogram_figure(frames)
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == ["10", "20"]
    # step 10: rho_loss's two groups only (uniform has nothing yet); step 20: both methods' groups
    assert sum(steps[0].args[0]["visible"]) == 2 and sum(steps[1].args[0]["visible"]) == 4
    shown = [t for t in fig.data if t.visible]
    assert len(shown) == 4  # the last step is shown first
    clean = next(t for t in shown if t.name == "clean" and t.xaxis == "x")
    assert list(clean.y) == [0.25, 0.75]  # counts as a density (bin width 1)


def test_corrupted_share_figure_draws_the_noise_rate():
    import pandas as pd

    fig = corrupted_share_figure({"rho_loss": pd.Series([0.05, 0.1], index=[10, 20])}, 0.2)
    assert fig.data[0].name == "rho_loss" and list(fig.data[0].y) == [0.05, 0.1]
    assert any("noise rate 20%" in (a.text or "") for a in fig.layout.annotations)
