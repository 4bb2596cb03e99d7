"""Curves as a user of TensorBoard expects them: one panel per metric with methods/runs overlaid, smoothing,
a metric filter, panels that never overlap, and a live figure that only ever sends messages plotly.js accepts."""
from __future__ import annotations

import numpy as np
import pytest


def test_panels_overlay_the_same_metric_of_several_methods():
    from widgets.curves import panels

    names = ["uniform/test/accuracy", "rho_loss/test/accuracy", "rho_loss/train/loss", "il_model/train/loss",
             "il_model/best_train_part/loss", "train/loss", "test/ece"]
    got = panels(names)
    assert got["test/accuracy"] == [("uniform/test/accuracy", "uniform"), ("rho_loss/test/accuracy", "rho_loss")]
    assert [g for _, g in got["train/loss"]] == ["rho_loss", "il_model", ""]  # train/loss itself joins the panel
    assert got["il_model/best_train_part/loss"] == [("il_model/best_train_part/loss", "")]  # no sibling: own panel
    assert got["test/ece"] == [("test/ece", "")]
    assert len(got) == 4


def test_ema_is_tensorboards_debiased_average():
    from widgets.curves import ema

    y = np.array([1.0, 2.0, np.nan, 4.0])
    w = 0.6
    out = ema(y, w)
    # by hand: s1 = 0.4*1, debiased /0.4 -> 1; s2 = 0.6*0.4 + 0.4*2 = 1.04, /(1-0.36) = 1.625; nan passes; s3 = ...
    assert out[0] == pytest.approx(1.0) and out[1] == pytest.approx(1.04 / 0.64) and np.isnan(out[2])
    assert out[3] == pytest.approx((0.6 * 1.04 + 0.4 * 4.0) / (1 - 0.6 ** 3))
    assert np.array_equal(ema(y[:2], 0.0), y[:2])
    const = ema(np.full(50, 3.0), 0.9)
    assert np.allclose(const, 3.0)  # debiasing: a constant stays constant from the first point


@pytest.mark.parametrize("n, cols", [(1, 2), (3, 2), (7, 2), (13, 3)])
def test_grid_panels_never_overlap(n, cols):
    from widgets.curves import grid_domains

    domains, area = grid_domains(n, cols)
    assert len(domains) == n and area > 0
    for i, (xa, ya) in enumerate(domains):
        assert 0 <= xa[0] < xa[1] <= 1 and 0 <= ya[0] < ya[1] <= 1
        for xb, yb in domains[i + 1:]:
            overlap_x = min(xa[1], xb[1]) > max(xa[0], xb[0])
            overlap_y = min(ya[1], yb[1]) > max(ya[0], yb[0])
            assert not (overlap_x and overlap_y)


def _series():
    from widgets.curves import Series

    s = Series()
    for m, k in (("uniform", 1.0), ("rho_loss", 2.0)):
        s.add("run a", f"{m}/test/accuracy", range(10), np.linspace(0, 0.5 * k, 10))
        s.add("run a", f"{m}/train/loss", range(10), np.linspace(2, 1, 10))
    s.add("run a", "il_model/best/loss", [99], [0.3])  # logged once, at the end
    return s


def test_figure_spec_one_panel_per_metric_titles_and_legend():
    from widgets.curves import figure_spec, panel_titles

    traces, layout = figure_spec(_series())
    assert panel_titles(layout) == ["test/accuracy", "train/loss", "il_model/best/loss"]
    assert {t["legendgroup"] for t in traces} == {"uniform", "rho_loss", "run a"}
    assert sum(t["showlegend"] for t in traces) == 3 and layout["showlegend"]
    colours = {t["legendgroup"]: t["line"]["color"] for t in traces}
    assert colours["uniform"] != colours["rho_loss"]
    # the same method keeps its colour in every panel
    assert len({(t["legendgroup"], t["line"]["color"]) for t in traces}) == 3
    # a value logged once gets no panel of its own in a finished run's figure
    _, final = figure_spec(_series(), min_points=2)
    assert panel_titles(final) == ["test/accuracy", "train/loss"]
    # the filter: glob, regex or substring
    assert panel_titles(figure_spec(_series(), filter="*accuracy")[1]) == ["test/accuracy"]
    assert panel_titles(figure_spec(_series(), filter="loss$")[1]) == ["train/loss", "il_model/best/loss"]


def test_smoothing_adds_a_faint_raw_curve_behind_the_smoothed_one():
    from widgets.curves import ema, figure_spec

    traces, _ = figure_spec(_series(), smoothing=0.8, min_points=2)
    raw = [t for t in traces if t["meta"].endswith("::raw")]
    smooth = [t for t in traces if not t["meta"].endswith("::raw")]
    assert len(raw) == len(smooth) == 4 and all(t["opacity"] < 0.5 and not t["showlegend"] for t in raw)
    acc = next(t for t in smooth if t["meta"] == "run a::rho_loss/test/accuracy")
    assert np.allclose(acc["y"], ema(np.linspace(0, 1.0, 10), 0.8))


def test_two_runs_are_labelled_by_method_and_run():
    from widgets.curves import Series, figure_spec

    s = Series()
    s.add("run a", "x/loss", [0, 1], [1, 0.5])
    s.add("run a", "y/loss", [0, 1], [1, 0.7])
    s.add("run b", "x/loss", [0, 1], [2, 0.1])
    traces, layout = figure_spec(s)
    assert {t["name"] for t in traces} == {"x · run a", "y · run a", "x · run b"}


def _messages(fig):
    """Record what a FigureWidget sends to the browser."""
    sent = []
    fig._send_relayout_msg = lambda data, source_view_id=None: sent.append(("relayout", dict(data)))
    fig._send_update_msg = lambda **kw: sent.append(("update", dict(kw["relayout_data"]), dict(kw["restyle_data"])))
    fig._send_addTraces_msg = lambda data: sent.append(("add", len(data)))
    fig._send_deleteTraces_msg = lambda idx: sent.append(("delete", list(idx)))
    return sent


def _no_parent_and_child(keys):
    keys = list(keys)
    for k in keys:
        for other in keys:
            assert not (other != k and other.startswith(k + ".")), f"{k} and {other} in one message"


def test_live_figure_sends_only_messages_plotly_js_accepts():
    """The bug a user saw: 'cannot set xaxis5.domain and a parent attribute simultaneously' (a relayout with
    an axis and one of its attributes). A rebuild sends whole objects; growing curves send only restyles."""
    import pandas as pd

    from widgets.curves import LiveCurves, panel_titles

    c = LiveCurves(min_interval=0.0)
    sent = _messages(c.figure)
    frame = lambda names, steps: pd.DataFrame([(s, n, float(s)) for s in steps for n in names],  # noqa: E731
                                              columns=["step", "name", "value"])
    c.add_frame("run", frame(["a/loss", "b/loss"], range(3)))
    assert c.draw()
    c.add_frame("run", frame(["a/loss", "b/loss"], range(3, 6)))
    assert c.draw()
    c.add_frame("run", frame(["a/acc", "b/acc", "c/x", "d/y", "e/z"], range(6)))  # new panels: a rebuild
    assert c.draw()
    c.filter.value = "acc"  # fewer panels: stale axes removed
    for message in sent:
        if message[0] in ("relayout", "update"):
            _no_parent_and_child(message[1])
    updates = [m for m in sent if m[0] == "update"]
    assert updates and all(m[1] == {} for m in updates)  # growing curves: restyle only
    removed = [m[1] for m in sent if m[0] == "relayout" and any(v is None for v in m[1].values())]
    assert removed and all(k.startswith(("xaxis", "yaxis")) for k in removed[-1])
    assert panel_titles(c.figure.layout) == ["acc"]
    assert len(c.figure.data) == 2 and {t.name for t in c.figure.data} == {"a", "b"}
    # every draw ends with a relayout of its own (datarevision): plotly.js then re-measures the output area, so a
    # figure drawn before it was on the page (plotly's 700 px) takes the page's width at the next draw
    nudges = [m[1] for m in sent if m[0] == "relayout" and "datarevision" in m[1]]
    assert len(nudges) == c.draws and c.figure.layout.width is None and c.figure.layout.autosize


def test_live_curves_controls_redraw():
    import pandas as pd

    from widgets.curves import LiveCurves

    c = LiveCurves(min_interval=0.0)
    c.add_frame("run", pd.DataFrame({"step": range(20), "name": "train/loss", "value": np.linspace(1, 0, 20)}))
    c.draw(force=True)
    c.smoothing.value = 0.5
    assert len(c.figure.data) == 2 and c.figure.data[0].opacity == pytest.approx(0.25)
    c.log_toggle.value = True
    assert c.figure.layout.yaxis.type == "log"


def test_an_empty_plot_says_it_waits_instead_of_drawing_default_axes():
    """Before the first metric the live figure shows one note and no axes (not plotly's empty −1…6 frame); the
    first curves bring the panels back."""
    from widgets.curves import LiveCurves

    live = LiveCurves()
    assert live.figure.layout.xaxis.visible is False and live.figure.layout.yaxis.visible is False
    assert [a.text for a in live.figure.layout.annotations] == ["waiting for the first metrics…"]
    live.draw(force=True)  # still nothing logged
    assert live.figure.layout.xaxis.visible is False and "waiting" in live.figure.layout.annotations[0].text
    import pandas as pd

    live.add_frame("r", pd.DataFrame({"step": [0, 1], "name": ["train/loss"] * 2, "value": [1.0, 0.5]}))
    live.draw(force=True)
    assert live.figure.layout.xaxis.visible is not False
    assert all("waiting" not in (a.text or "") for a in live.figure.layout.annotations)
