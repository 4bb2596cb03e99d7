"""The robustness views draw stored runs (plotly figures) and the previewers draw any image."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

import workbench
from widgets.views import views_for
from widgets.views import robustness as rv
from tests.common import shared, smoke_run


@pytest.fixture(scope="module")
@shared("smoke-noisymix")
def noisymix_run():
    res = smoke_run("noisymix").result
    assert res.status == "completed", res.error
    return res.run_id


def test_registered_for_all_three_methods():
    import widgets.views.nfm  # noqa: F401
    import widgets.views.noisymix  # noqa: F401

    for method in ("nfm", "noisymix", "robustness_compare"):
        titles = {v.title for v in views_for(method)}
        assert {"robustness heatmap", "accuracy vs noise level", "reliability diagram", "decision boundaries"} <= titles


def test_views_draw_a_stored_run(noisymix_run):
    drawn = {}
    for v in views_for("noisymix"):
        fig = v(noisymix_run)
        if fig is not None:
            assert isinstance(fig, go.Figure)
            drawn[v.title] = fig
    assert {"robustness heatmap", "robustness vs baseline", "accuracy vs noise level", "reliability diagram"} <= set(drawn)
    assert "decision boundaries" not in drawn  # image dataset: nothing stored → None
    heat = drawn["robustness vs baseline"]
    assert len(heat.data) == 3  # augmix, augmix_jsd and noisymix minus baseline


def test_decision_boundary_view():
    res = workbench.run("nfm", {"dataset": "two_moons", "variants": "baseline,nfm", "label_noise": 0.2}, smoke=True,
                        progress=False)
    fig = next(v for v in views_for("nfm") if v.title == "decision boundaries")(res.run_id)
    assert isinstance(fig, go.Figure) and sum(isinstance(t, go.Contour) for t in fig.data) == 2


def test_previewers():
    img = np.random.default_rng(0).random((3, 16, 16)).astype(np.float32)
    fig = rv.corruption_preview_figure(img, severity=2, names=("fog", "contrast"))
    assert len(fig.data) == 3
    fig = rv.augmix_preview_figure(img[:1], severity=3, seed=1)
    assert len(fig.data) == 5  # clean, three chains, mixture
