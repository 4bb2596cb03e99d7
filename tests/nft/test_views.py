"""The nft views draw a smoke run from stored data only; the figure functions show what they claim."""
import numpy as np
import plotly.graph_objects as go

from widgets.views import render, views_for
from widgets.views.nft import network_figure, permutation_figure, zoo_explorer


def test_every_view_draws_a_smoke_run(smoke_run):
    titles = {v.title for v in views_for("nft")}
    assert {"results", "zoo: predicted vs true accuracy", "zoo: a network's weights", "attention maps",
            "INR gallery", "permutation demo"} <= titles
    drawn = dict(render("nft", smoke_run.run_id, claims=False))
    assert set(drawn) == titles
    for title, fig in drawn.items():
        assert isinstance(fig, go.Figure) and len(fig.data) > 0, title
        assert not any("Error" in str(a.text) for a in fig.layout.annotations), title
    gallery = drawn["INR gallery"]
    assert len(gallery.data) == 3 * 4 and all(isinstance(t, go.Image) for t in gallery.data)  # 3 rows × 4 images


def test_views_return_none_before_anything_is_stored():
    import workbench
    from workbench import runs

    store_run = workbench.run("classify", {"steps": 1}, smoke=True, progress=False)  # a run with no nft artifacts
    assert store_run.status == "completed"
    for v in views_for("nft"):
        assert v(store_run.run_id) is None, v.title
    assert runs.get(store_run.run_id)


def test_network_figure_shows_weights_and_bias_per_layer():
    spec = {"dims": [2, 3, 1], "filters": [[], []]}
    flat = np.arange(2 * 3 + 3 + 3 + 1, dtype=float)
    fig = network_figure(flat, spec, "t")
    z0 = np.asarray(fig.data[0].z)
    assert z0.shape == (3, 3) and z0[:, :2].tolist() == [[0, 1], [2, 3], [4, 5]] and z0[:, 2].tolist() == [6, 7, 8]
    conv = {"dims": [1, 2, 1], "filters": [[3, 3], []]}
    flat = np.concatenate([np.ones(9 * 2), [0, 0], np.ones(2), [0]])
    z = np.asarray(network_figure(flat, conv, "t").data[0].z)
    assert np.allclose(z[:, 0], 3.0)  # a 3×3 filter of ones has L2 norm 3


def test_permutation_figure_marks_exact_zeros():
    demo = {"output_change": 0.0, "weight_change": 1.0, "permutations": 2, "network": 3, "source": "zoo",
            "true_accuracy": 0.5, "models": {"nft": {"original": [0.5], "permuted": [[0.5], [0.5]], "max_change": 0.0},
                                             "flat": {"original": [0.5], "permuted": [[0.4], [0.7]], "max_change": 0.2}}}
    fig = permutation_figure(demo)
    assert list(fig.data[0].text) == ["0 (exact)", "0 (exact)", "2.0e-01"]


def test_zoo_explorer_switches_networks(smoke_run):
    box = zoo_explorer(smoke_run.run_id)
    pick, fig = box.children
    first = np.asarray(fig.data[0].z).copy()
    pick.value = pick.options[0][1]
    assert not np.array_equal(np.asarray(fig.data[0].z), first)
