"""The goldilocks views draw a smoke run from stored data only."""
import plotly.graph_objects as go

import workbench
from widgets.views import render, views_for
from widgets.views.goldilocks import scatter_figure


def test_every_view_draws_a_smoke_run():
    res = workbench.run("goldilocks", smoke=True, progress=False)
    assert res.status == "completed", res.error
    titles = {v.title for v in views_for("goldilocks")}
    assert {"live gallery", "loss vs irreducible loss", "accuracy vs steps", "accuracy vs wall-clock", "speedup"} <= titles
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
