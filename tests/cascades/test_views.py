"""The cascades views draw a smoke run from stored data only, and return None before anything is stored."""
import pytest

pytest.importorskip("plotly")

from widgets.views import cascades as cv  # noqa: E402
from widgets.views import views_for  # noqa: E402


def test_views_registered():
    titles = {v.title for v in views_for("cascades")}
    assert {"trace viewer", "accuracy vs K", "STaR rounds", "accuracy vs digits"} <= titles


def test_views_draw_a_run(cascades_smoke_run):
    rid = cascades_smoke_run.run_id
    fig = cv.trace_viewer(rid)
    steps = fig.layout.sliders[0].steps
    assert len(fig.data) == 2 * len(steps)  # edges + nodes per trace, one slider step each
    assert sum(bool(t.visible) for t in fig.data) == 2
    for i, step in enumerate(steps):
        vis = step.args[0]["visible"]
        assert vis[2 * i] and vis[2 * i + 1] and sum(vis) == 2
        assert "trace" in step.args[1]["title.text"]
    acc = cv.accuracy_vs_k(rid)
    names = {t.name for t in acc.data}
    assert {"self-consistency@K", "verifier-guided SMC, K particles", "tool use (calculator)"} <= names
    assert cv.star_rounds(rid) is not None and cv.accuracy_vs_digits(rid) is not None


def test_tree_layout_hangs_sites_under_their_parents():
    sites = [{"name": "line0", "parents": []}, {"name": "check0", "parents": ["line0"]},
             {"name": "line1", "parents": ["line0"]}, {"name": "answer", "parents": []}]
    layout = cv.tree_layout(sites)
    assert layout == [(0, 0, None), (1, 1, 0), (2, 1, 0), (3, 1, 2)]


def test_views_return_none_for_an_empty_run():
    from workbench import runs

    rid = runs.store().create_run("cascades", {}, device="cpu", world_size=1)
    assert cv.trace_viewer(rid) is None and cv.accuracy_vs_k(rid) is None
    assert cv.star_rounds(rid) is None and cv.accuracy_vs_digits(rid) is None


def test_playground_samples_and_scores(cascades_smoke_run):
    pytest.importorskip("ipywidgets")
    box = cv.playground(cascades_smoke_run.run_id, prompt="Q:12+3\n")
    buttons = [c for row in box.children if hasattr(row, "children") for c in row.children
               if type(c).__name__ == "Button"]
    sample_btn = next(b for b in buttons if b.description == "sample")
    sample_btn.click()
    out = box.children[-1].value
    assert "log p(completion | prompt)" in out and "Q:12+3" in out


def test_playground_shows_a_sample_in_a_static_report(cascades_smoke_run):
    pytest.importorskip("ipywidgets")
    box = cv.playground(cascades_smoke_run.run_id, prompt="Q:12+3\n")
    bundle = box._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle  # live in a notebook front end
    assert "log p(completion | prompt)" in bundle["text/html"] and "VBox" not in bundle["text/plain"]


def test_star_accuracy_is_drawn_above_the_rationale_bars(cascades_smoke_run):
    fig = cv.star_rounds(cascades_smoke_run.run_id)
    line = next(t for t in fig.data if t.type == "scatter")
    bars = next(t for t in fig.data if t.type == "bar")
    assert (line.yaxis, bars.yaxis) == ("y2", "y") and fig.layout.yaxis2.overlaying == "y"  # y2 is drawn on top
    assert fig.layout.yaxis2.range == (0, 1.02) and fig.layout.yaxis.rangemode == "tozero"
