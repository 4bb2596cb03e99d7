"""One visual language: a colour per method name wherever it is drawn, legends outside the plots, log axes
without SI prefixes, accuracies in [0, 1], counting axes with integer ticks, figures without a fixed width; and
every view of the experiments, drawn on stored smoke runs, keeps to it."""
from __future__ import annotations

import re

import numpy as np
import plotly.graph_objects as go
import pytest


def _hex(c: str) -> str:
    m = re.match(r"rgba?\((\d+),\s*(\d+),\s*(\d+)", c)
    return "#%02x%02x%02x" % tuple(int(x) for x in m.groups()) if m else c.lower()


# -- colours ------------------------------------------------------------------------------------------------------
def _experiment_names() -> dict[str, tuple[str, ...]]:
    """The names each experiment draws side by side, read from the experiments themselves."""
    from workbench.lib.robustness.losses import VARIANTS
    from workbench.methods.goldilocks.experiment import METHODS as SELECTION
    from workbench.methods.kto.experiment import METHODS as ALIGNMENT
    from workbench.methods.ls4.experiment import MODELS
    from workbench.methods.nft.experiment import MODEL_KINDS
    from workbench.methods.robustness_compare.experiment import ALL_RECIPES
    from workbench.methods.sdebnn.experiment import BASELINES

    return {"kto": ("reference", *ALIGNMENT, "kto_drop"), "goldilocks": (*SELECTION, "replay", "replay_uniform"),
            "robustness": tuple(dict.fromkeys([*VARIANTS, *ALL_RECIPES])), "nft": (*MODEL_KINDS, "inr2array"),
            "ls4": (*MODELS, "real"), "sdebnn": ("sdebnn", *BASELINES), "gradvar": ("stl", "full", "kl")}


def test_every_name_an_experiment_draws_has_its_own_fixed_colour():
    from widgets.style import COLOURS, colour, key

    for group, names in _experiment_names().items():
        missing = [n for n in names if key(n) not in COLOURS]
        assert not missing, f"{group}: no fixed colour for {missing}"
        drawn = [colour(n) for n in names]
        assert len(set(drawn)) == len(names), f"{group}: two names share a colour: {dict(zip(names, drawn))}"
    # the labels views show map to the same colour as the names
    assert colour("Latent ODE") == colour("latent_ode") and colour("SDE-BNN") == colour("sdebnn")
    assert colour("ODE-net") == colour("odenet") and colour("Bayes-by-backprop") == colour("bbb")


def test_unknown_names_get_a_stable_colour_and_never_share_one_within_a_figure():
    from widgets.style import FALLBACK, colour, colours

    assert colour("my_new_method") == colour("my_new_method") and colour("my_new_method") in FALLBACK
    names = [f"variant {i}" for i in range(10)]
    got = colours(names + ["kto"])
    assert len(set(got[n] for n in names)) == 10 and got["kto"] == colour("kto")
    assert colours(names) == colours(names)  # deterministic


# -- axes, legends, titles, widths ---------------------------------------------------------------------------------
def test_log_axes_show_decimals_or_powers_of_ten_never_si_prefixes():
    from widgets.style import SI_FORMATS, house, log_ticks

    wide = log_ticks([1e-12, 1e-3, 1.0])
    assert wide["exponentformat"] == "power" and wide["dtick"] >= 1 and "tickvals" not in wide
    narrow = log_ticks([0.012, 0.03, 0.19])
    assert narrow["ticktext"] == ["0.02", "0.05", "0.1"]  # plain decimals, no bare "2" or "5", inside the span
    # a sweep slice plot's lr in [0.055, 0.086]: no 1-2-5 tick inside the span, so integer mantissas
    assert log_ticks([0.0554, 0.0856])["ticktext"] == ["0.06", "0.07", "0.08"]
    assert log_ticks([0.0351, 0.0362])["ticktext"] == ["0.035", "0.036"]  # the ends of a very narrow span
    assert log_ticks([0.0356])["ticktext"] == ["0.036"]  # one value: its own label
    fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[1e-9, 1e-6, 1e-3]), layout={"yaxis": {"type": "log"}})
    house(fig)
    assert fig.layout.yaxis.exponentformat not in (None, *SI_FORMATS) and fig.layout.yaxis.dtick >= 1


def test_house_layout_fills_the_container_and_keeps_legends_off_the_plots():
    from widgets.style import house

    fig = go.Figure([go.Bar(x=["a", "b"], y=[0.5, 0.7], name=n) for n in ("clean", "noise", "corrupted")],
                    layout={"width": 700, "legend": {"orientation": "h", "y": -0.15},
                            "title": {"text": "a very long title " * 10}})
    house(fig)
    assert fig.layout.width is None and fig.layout.autosize is True
    leg = fig.layout.legend
    assert leg.y >= 1 and leg.yanchor == "bottom"  # above the plot: never over the x labels
    assert "<br>" in fig.layout.title.text  # wrapped, not cut
    assert fig.layout.margin.t >= 2 * 22 + 24  # room for two title lines and the legend
    # subplots with titles: the legend goes right of the panels, not over their titles
    from plotly.subplots import make_subplots

    sub = make_subplots(rows=1, cols=2, subplot_titles=["left", "right"])
    for i, n in enumerate(("baseline", "nfm", "augmix")):
        sub.add_trace(go.Scatter(y=[i, i + 1], name=n), row=1, col=1)
    house(sub)
    assert sub.layout.legend.x >= 1 and sub.layout.legend.xanchor == "left"


def test_accuracy_axes_stay_in_the_unit_interval_and_counting_axes_have_integer_ticks():
    from widgets.style import house, integer_axis, is_fraction

    fig = go.Figure(go.Bar(x=[0, 1, 2], y=[0.2, 0.9, 0.4]),
                    layout={"yaxis": {"title": {"text": "test accuracy"}, "range": [0, 1.9]},
                            "xaxis": {"title": {"text": "round"}}})
    house(fig)
    assert fig.layout.yaxis.range[1] <= 1.05 and fig.layout.xaxis.dtick == 1
    unset = house(go.Figure(go.Scatter(y=[0.1, 0.3]), layout={"yaxis": {"title": {"text": "accuracy"}}}))
    assert list(unset.layout.yaxis.range) == [0, 1.02]
    delta = house(go.Figure(go.Scatter(y=[-0.3, 0.2]), layout={"yaxis": {"title": {"text": "Δ accuracy"}}}))
    assert delta.layout.yaxis.range is None  # a difference of accuracies may be negative
    assert is_fraction("desirable rate of samples") and not is_fraction("learning rate")
    assert integer_axis([0, 1, 2, 3])["dtick"] == 1 and "dtick" not in integer_axis(range(0, 500, 50))


def test_curves_overlay_the_models_of_nft_and_sdebnn_in_one_panel_per_metric():
    from widgets.curves import panels

    nft = panels([f"acc/{m}/test/kendall_tau" for m in ("nft", "np", "hnp", "stats", "flat")]
                 + [f"inr/{m}/train/loss" for m in ("nft", "np")] + ["inr2array/recon/test/loss"])
    assert [g for _, g in nft["acc/test/kendall_tau"]] == ["nft", "np", "hnp", "stats", "flat"]
    assert [g for _, g in nft["inr/train/loss"]] == ["nft", "np"] and len(nft) == 3
    sde = panels(["cls/sdebnn/test/accuracy", "cls/odenet/test/accuracy", "gradvar/stl", "gradvar/full"])
    assert set(sde) == {"cls/test/accuracy", "gradvar"}
    cascades = panels(["accuracy/direct", "accuracy/tool", "train/loss"])
    assert [g for _, g in cascades["accuracy"]] == ["direct", "tool"]


def test_live_and_static_curves_colour_methods_as_everywhere_and_fit_accuracy_to_the_unit_interval():
    import pandas as pd

    from widgets.curves import LiveCurves, Series, static_figure
    from widgets.style import colour

    s = Series()
    for m in ("nft", "np"):
        s.add("run", f"acc/{m}/test/accuracy", range(3), [0.1, 0.2, 0.3])
    fig = static_figure(s)
    assert {t.name: t.line.color for t in fig.data} == {"nft": colour("nft"), "np": colour("np")}
    assert list(fig.layout.yaxis.range) == [0, 1.02] and fig.layout.xaxis.dtick == 1  # steps 0..2: integer ticks
    assert fig.layout.width is None and fig.layout.legend.x >= 1
    live = LiveCurves(min_interval=0.0)
    live.add_frame("run", pd.DataFrame({"step": range(5), "name": "train/loss", "value": np.logspace(0, -6, 5)}))
    live.log_toggle.value = True
    assert live.figure.layout.width is None and live.figure.layout.autosize is True
    assert live.figure.layout.yaxis.exponentformat == "power"


# -- every view on stored smoke runs -------------------------------------------------------------------------------
#: the experiments whose smoke runs are quick; the others' figures are checked from constructed data below and all
#: of them in Chromium (tests/browser/test_browser_report.py)
QUICK = ("goldilocks", "nfm", "kto", "sdebnn")


@pytest.fixture(scope="module")
def smoke_views(tmp_path_factory):
    """``{method: [(title, figure)]}``: every view of a smoke run of each quick experiment (run once)."""
    import os

    import workbench
    from widgets.views import render

    old = os.environ.get("WORKBENCH_HOME")
    os.environ["WORKBENCH_HOME"] = str(tmp_path_factory.mktemp("style") / "home")
    try:
        out = {}
        for method in QUICK:
            rid = workbench.run(method, smoke=True, progress=False).run_id
            out[method] = render(method, rid, claims=False)
        yield out
    finally:
        if old is None:
            os.environ.pop("WORKBENCH_HOME", None)
        else:
            os.environ["WORKBENCH_HOME"] = old


def _problems(title: str, fig) -> list[str]:
    """What in ``fig`` breaks the house style."""
    from widgets.style import SI_FORMATS, _legend_entries, is_fraction

    out = []
    L = fig.layout
    if L.width is not None:
        out.append(f"{title}: fixed width {L.width}")
    leg = L.legend
    legend_shown = L.showlegend is True or (L.showlegend is None and _legend_entries(fig) > 1)
    if legend_shown and not ((leg.x or 0) >= 1 or (leg.y or 0) >= 1):
        out.append(f"{title}: legend inside the plots (x={leg.x}, y={leg.y})")
    for name in L:
        if not re.match(r"^[xy]axis\d*$", name):
            continue
        axis = L[name]
        if axis.type == "log" and axis.exponentformat in (None, *SI_FORMATS):
            out.append(f"{title}: {name} is a log axis with SI-prefix ticks")
        text = (axis.title.text if axis.title is not None else "") or ""
        if is_fraction(text) and axis.range is not None and (axis.range[0] < -0.1 or axis.range[1] > 1.1):
            out.append(f"{title}: {name} ({text}) spans {axis.range}")
    texts = [L.title.text or ""] + [a.text or "" for a in L.annotations or ()]
    if any(re.search(r"\{'|':", t) for t in texts):
        out.append(f"{title}: a raw dict in its text")
    return out


def test_every_view_keeps_to_the_house_style(smoke_views):
    problems = []
    for method, figures in smoke_views.items():
        plotted = [(t, f) for t, f in figures if hasattr(f, "to_plotly_json")]
        assert len(plotted) >= 3, (method, [t for t, _ in figures])
        for title, fig in plotted:
            problems += _problems(f"{method}/{title}", fig)
    assert problems == []


def test_a_name_has_the_same_colour_in_every_figure_of_a_run(smoke_views):
    from widgets.style import COLOURS, colour, key

    for method, figures in smoke_views.items():
        seen: dict[str, set[str]] = {}
        for _title, fig in figures:
            for t in getattr(fig, "data", ()):
                name = next((n for n in (getattr(t, "legendgroup", None), getattr(t, "name", None))
                             if n and key(n) in COLOURS), None)
                line = getattr(getattr(t, "line", None), "color", None)
                marker = getattr(getattr(t, "marker", None), "color", None)
                c = line if isinstance(line, str) else marker if isinstance(marker, str) else None
                if name and c:
                    seen.setdefault(key(name), set()).add(_hex(c))
        assert seen, method
        for name, found in seen.items():
            assert found == {colour(name)}, (method, name, found)


# -- figures of the slower experiments, from constructed data -------------------------------------------------------
def test_star_rounds_integer_rounds_and_accuracy_in_the_unit_interval(monkeypatch):
    from widgets.views import cascades, styled

    rows = [{"round": r, "arm": arm, "accuracy": a, "rationales": 3 * r}
            for r in range(3) for arm, a in (("star", 0.3 + 0.1 * r), ("control", 0.3))]
    monkeypatch.setattr(cascades, "stored", lambda run_id, name: rows if name == "star" else None)
    fig = styled(cascades.star_rounds("any"))
    acc = fig.layout.yaxis2  # the accuracies: their own ticks 0, 0.2, …, 1 (not synced to the bars: 1.02, 0.816)
    assert list(acc.range) == [0, 1.02] and acc.dtick == 0.2 and acc.tickmode == "linear"
    assert fig.layout.xaxis.dtick == 1 and fig.layout.xaxis.tickformat == "d"  # rounds 0, 1, 2
    assert _problems("STaR rounds", fig) == []


def test_nft_results_and_sdebnn_metrics_fit_their_quantities():
    from widgets.views import nft, sdebnn, styled

    rows = [{"task": "INR classification", "model": m, "metric": "test_accuracy", "value": v}
            for m, v in (("nft", 0.9), ("np", 0.8))]
    fig = styled(nft.results_figure(rows))
    assert fig.layout.yaxis.range[1] <= 1.1 and fig.data[0].marker.color[0] == nft._colour("nft")
    metrics = styled(sdebnn.metrics_figure([{"model": "sdebnn", "accuracy": 0.95, "nll": 0.2, "ece": 0.03},
                                            {"model": "odenet", "accuracy": 0.9, "nll": 0.3, "ece": 0.05}]))
    assert metrics.layout.yaxis.range[1] <= 1.1 and metrics.layout.yaxis3.range[1] <= 1.1  # accuracy, ECE
    assert _problems("sdebnn metrics", metrics) == []


def test_recipes_at_a_glance_colours_recipes_and_keeps_its_labels_clear():
    from widgets.style import colour
    from widgets.views import styled
    from widgets.views.robustness import summary_figure

    names = ["baseline", "input_mixup", "manifold_mixup", "noisy_input_mixup", "nfm", "augmix", "augmix_jsd",
             "noisymix"]
    fig = styled(summary_figure([{"variant": v, "clean_accuracy": 0.9, "noise_accuracy": 0.5, "ece": 0.05}
                                 for v in names]))
    assert list(fig.data[0].marker.color) == [colour(v) for v in names]
    assert all(t.showlegend is False for t in fig.data)  # the recipes are on the axis: no legend to scroll
    assert _problems("recipes at a glance", fig) == []


def test_settings_view_is_a_table_not_a_dict():
    from widgets.views import HTMLView
    from widgets.views.robustness import settings_view

    view = settings_view("noisymix")
    assert isinstance(view, HTMLView) and "<table" in view.html and "{'" not in view.html
    assert "claims on a CPU" in view.html and "paper" in view.html
    assert settings_view("no_such_method") is None


def test_explorers_draw_full_width_figures():
    from widgets.render import PLOTLY_MIME
    from widgets.views.common import figure_output

    out = figure_output()
    out.show(go.Figure(go.Scatter(y=[1, 2]), layout={"width": 700}))
    (shown,) = out.outputs
    assert PLOTLY_MIME in shown["data"] and "width" not in shown["data"][PLOTLY_MIME]["layout"]
    assert len(out.data) == 1


# -- run summaries ---------------------------------------------------------------------------------------------------
def test_run_summary_is_a_table_with_units():
    from widgets.labels import summary_html, summary_rows, summary_text

    summary = {"uniform/test/accuracy": 0.83123, "rho_loss/train/loss": 0.5, "params": 12345,
               "rho_loss/speedup_wallclock": 2.5, "seconds_per_step": 0.25, "mystery": "x"}
    rows = summary_rows(summary)
    assert rows[0] == {"name": "uniform/test/accuracy", "value": "0.8312", "unit": "fraction (0–1)"}
    assert [r["unit"] for r in rows[1:]] == ["nats", "parameters", "× faster", "s", ""]
    assert rows[2]["value"] == "12,345"
    html = summary_html(summary, keys=["params", "uniform/test/accuracy"])
    assert html.count("<tr>") == 3 and "<th>unit</th>" in html and "class='value'>12,345<" in html
    assert summary_html({}) == "" and summary_text(summary, limit=1) == "uniform/test/accuracy=0.8312"


def test_names_that_share_a_legend_never_share_a_colour():
    """SDE-BNN's live curves put its models and its gradient estimators in one legend: all distinct."""
    from widgets.style import colours

    names = ["sdebnn", "odenet", "bbb", "resnet", "stl", "full"]
    assert len(set(colours(names).values())) == len(names)
