"""Views of the SDE-BNN experiment: pure functions of stored run data -> plotly figures, plus two ipywidgets helpers
that re-sample the STORED regression model with other settings (no retraining).

Registered views: the predictive band of the 1-D task, its std against the prior's (the band diagnosis), the weight
paths (prior against posterior), the reliability diagram (the shared one), the gradient variance of the KL
estimators, and the test metrics of the classifiers.
``band_explorer(run_id)`` (sliders: number of sampled paths, σ) and ``weight_explorer(run_id)`` (σ, which weight)
reload the saved model (``runs.load_model(run_id, "regression")``), re-sample it with the headless
:mod:`workbench.methods.sdebnn.playground` and draw again on every change.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from widgets.style import GREY, colour, rgba
from widgets.views import view

from .common import figure_output, reliability_figure, stored, table

METHOD = "sdebnn"
NAMES = {"sdebnn": "SDE-BNN", "odenet": "ODE-net", "bbb": "Bayes-by-backprop", "resnet": "residual net"}
ORDER = ("odenet", "sdebnn", "bbb", "resnet")
#: model and estimator colours (:mod:`widgets.style`), the same in every figure
COLOUR = {name: colour(name) for name in (*ORDER, "stl", "full", "kl")}
#: live-curve panels worth watching (a dashboard's ``metrics=``)
LIVE_METRICS = ["reg/sdebnn/loss", "reg/sdebnn/kl", "gradvar/stl", "gradvar/full", "cls/sdebnn/test/accuracy",
                "cls/odenet/test/accuracy", "cls/sdebnn/test/ece", "cls/odenet/test/ece"]


def _rgba(hex_colour: str, alpha: float) -> str:
    return rgba(hex_colour, alpha)


# -- figures from plain data --------------------------------------------------------------------------------------
def band_figure(band: dict[str, Any], title: str | None = None, show_samples: bool = True) -> go.Figure:
    """Predictive mean ± 2 std of every model over x, the data, cos x, and the gap shaded."""
    x = np.asarray(band["x"], dtype=float)
    fig = go.Figure()
    lo, hi = band.get("gap", (2.0, 6.0))
    fig.add_vrect(x0=lo, x1=hi, fillcolor="#eeeeee", line_width=0, layer="below",
                  annotation_text="gap (no data)", annotation_position="top left")
    fig.add_trace(go.Scatter(x=x, y=np.cos(x), mode="lines", name="cos x (truth)",
                             line={"color": "black", "dash": "dot", "width": 1}))
    models = band.get("models", {})
    for name in [n for n in ORDER if n in models]:
        m = models[name]
        mean, std = np.asarray(m["mean"], dtype=float), np.asarray(m["std"], dtype=float)
        colour, label = COLOUR[name], NAMES[name]
        if float(std.max(initial=0.0)) > 1e-6:
            fig.add_trace(go.Scatter(x=np.concatenate([x, x[::-1]]), y=np.concatenate([mean + 2 * std, (mean - 2 * std)[::-1]]),
                                     fill="toself", fillcolor=_rgba(colour, 0.18), line={"width": 0}, hoverinfo="skip",
                                     name=f"{label} ± 2σ", legendgroup=name))
        if show_samples and name == "sdebnn":
            for i, s in enumerate(m.get("samples", [])[:5]):
                fig.add_trace(go.Scatter(x=x, y=s, mode="lines", line={"color": _rgba(colour, 0.45), "width": 0.8},
                                         name=f"{label}: sampled paths", legendgroup=f"{name}-samples",
                                         showlegend=i == 0, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=x, y=mean, mode="lines", name=f"{label} mean", legendgroup=name,
                                 line={"color": colour, "width": 2.5 if name == "sdebnn" else 1.8,
                                       "dash": None if name in ("sdebnn", "bbb") else "dash"}))
    fig.add_trace(go.Scatter(x=band["train_x"], y=band["train_y"], mode="markers", name="training data",
                             marker={"color": "black", "size": 5}))
    if title is None:
        stats = band.get("stats", {}).get("sdebnn")
        title = "Predictive mean ± 2σ on the 1-D task"
        if stats:
            title += f" (SDE-BNN std in the gap / on the data = {stats['ratio']:.2f})"
    ys = [np.asarray(band["train_y"], dtype=float)]
    fig.update_layout(title={"text": title}, height=460, xaxis_title="x", yaxis_title="y",
                      yaxis_range=[min(-2.5, float(np.min(ys)) - 0.5), max(2.5, float(np.max(ys)) + 0.5)])
    return fig


def weight_paths_figure(paths: dict[str, Any]) -> go.Figure:
    """w(t) over depth of a few weights: sampled prior (OU) paths against posterior paths from the same w(0)."""
    names = paths["names"]
    t = np.asarray(paths["t"], dtype=float)
    prior, post = np.asarray(paths["prior"], dtype=float), np.asarray(paths["posterior"], dtype=float)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=[f"weight {n}" for n in names],
                        horizontal_spacing=0.06)
    for j in range(len(names)):
        for kind, arr, line in (("prior (OU)", prior, "#b0b0b0"), ("posterior", post, COLOUR["sdebnn"])):
            for i in range(arr.shape[0]):
                fig.add_trace(go.Scatter(x=t, y=arr[i, :, j], mode="lines", line={"color": line, "width": 1},
                                         opacity=0.8, name=kind, legendgroup=kind, showlegend=j == 0 and i == 0),
                              row=1, col=j + 1)
        fig.update_xaxes(title_text="depth t", row=1, col=j + 1)
    fig.update_yaxes(title_text="w(t)", row=1, col=1)
    fig.update_layout(title={"text": f"Weight paths w(t): OU prior against posterior, same w(0) and noise "
                                     f"(σ = {paths.get('sigma', '?')})"}, height=360)
    return fig


def gradvar_figure(rows: Any) -> go.Figure:
    """Total variance of per-sample gradients over training, one line per KL estimator (log scale)."""
    df = table(rows)
    fig = go.Figure()
    labels = {"stl": "sticking the landing", "full": "full Monte Carlo", "kl": "KL integral only"}
    for est in [e for e in ("full", "stl", "kl") if e in set(df["estimator"])]:  # KL-only last, dotted, on top
        d = df[df["estimator"] == est].sort_values("step")
        fig.add_trace(go.Scatter(x=d["step"], y=d["variance"], mode="lines+markers", name=labels[est],
                                 line={"color": COLOUR[est], "width": 3 if est == "stl" else 2,
                                       "dash": "dot" if est == "kl" else None}))
    fig.update_layout(title={"text": "Gradient variance of the posterior-drift parameters (same paths per estimator)"},
                      xaxis_title="training step", yaxis_title="tr Cov[∇φ loss]", yaxis_type="log", height=380)
    return fig


def metrics_figure(rows: Any) -> go.Figure:
    """Accuracy, NLL and ECE of every classifier: one panel per metric, the models side by side."""
    df = table(rows)
    metrics = [("accuracy", "test accuracy"), ("nll", "test NLL"), ("ece", "test ECE (15 bins)")]
    fig = make_subplots(rows=1, cols=3, subplot_titles=[m[1] for m in metrics], horizontal_spacing=0.08)
    for j, (key, _) in enumerate(metrics):
        fig.add_trace(go.Bar(x=[NAMES.get(m, m) for m in df["model"]], y=df[key], showlegend=False,
                             marker_color=[colour(m) for m in df["model"]],
                             text=[f"{v:.3f}" for v in df[key]], textposition="outside", cliponaxis=False),
                      row=1, col=j + 1)
        if key in ("accuracy", "ece"):  # fractions: the whole [0, 1], room above for the labels
            fig.update_yaxes(range=[0, 1.1], tick0=0, dtick=0.2, row=1, col=j + 1)
        else:
            top = float(df[key].max()) if len(df) else 1.0
            fig.update_yaxes(range=[0, top * 1.2 + 1e-9], rangemode="tozero", row=1, col=j + 1)
    fig.update_layout(title={"text": "Classification: Monte Carlo predictive of each model"}, height=400)
    return fig


def band_diagnosis_figure(rows: Any) -> go.Figure:
    """Predictive std over x of the trained SDE-BNN, of its prior (the drift g switched off: the OU prior from the
    same w(0) and paths) and of Bayes-by-backprop, with the gap shaded: where the spread comes from."""
    df = table(rows)
    fig = go.Figure()
    fig.add_vrect(x0=2.0, x1=6.0, fillcolor="#eeeeee", line_width=0, layer="below",
                  annotation_text="gap (no data)", annotation_position="top left")
    styles = {"posterior": (COLOUR["sdebnn"], None), "prior (g = 0)": (GREY, "dash"),
              "Bayes-by-backprop": (COLOUR["bbb"], None)}
    for name in [n for n in styles if n in set(df["model"])]:
        d = df[df["model"] == name]
        colour, dash = styles[name]
        label = "SDE-BNN " + name if name != "Bayes-by-backprop" else name
        fig.add_trace(go.Scatter(x=d["x"], y=d["std"], mode="lines", name=label,
                                 line={"color": colour, "dash": dash, "width": 2}))
    fig.update_layout(title={"text": "Predictive std over x: the trained SDE-BNN against its own prior (g = 0)"},
                      xaxis_title="x", yaxis_title="predictive std", height=380)
    return fig


# -- registered views (run id -> figure) ----------------------------------------------------------------------------
@view(METHOD, "predictive band")
def band(run_id: str) -> go.Figure | None:
    value = stored(run_id, "band")
    return None if value is None else band_figure(value)


@view(METHOD, "band: posterior vs prior")
def band_diagnosis(run_id: str) -> go.Figure | None:
    rows = stored(run_id, "band_diagnosis")
    return None if rows is None else band_diagnosis_figure(rows)


@view(METHOD, "weight paths")
def weight_paths(run_id: str) -> go.Figure | None:
    value = stored(run_id, "weight_paths")
    return None if value is None else weight_paths_figure(value)


@view(METHOD, "reliability diagram")
def reliability(run_id: str) -> go.Figure | None:
    rows = stored(run_id, "reliability")
    if rows is None:
        return None
    df = table(rows)
    df = df.assign(order=[ORDER.index(v) if v in ORDER else len(ORDER) for v in df["variant"]])
    df = df.sort_values("order", kind="stable").drop(columns="order")
    df["variant"] = [NAMES.get(v, v) for v in df["variant"]]
    return reliability_figure(df, title="Reliability of the classifiers")


@view(METHOD, "gradient variance")
def gradient_variance(run_id: str) -> go.Figure | None:
    rows = stored(run_id, "gradient_variance")
    return None if rows is None or not len(table(rows)) else gradvar_figure(rows)


@view(METHOD, "test metrics")
def test_metrics(run_id: str) -> go.Figure | None:
    rows = stored(run_id, "classification")
    return None if rows is None else metrics_figure(rows)


# -- re-sampling the saved model (notebook helpers; static views above stay the exported record) ------------------
def load_model(run_id: str) -> Any:
    """The run's trained 1-D SDE-BNN (``runs.load_model(run_id, "regression")``), in eval mode."""
    from workbench import runs

    return runs.load_model(run_id, "regression")


def resample_band(run_id: str, samples: int = 32, sigma: float | None = None, seed: int = 0,
                  model: Any = None) -> dict[str, Any]:
    """The saved model's predictive band with ``samples`` paths and diffusion ``sigma`` (default: as trained),
    with the run's training data: :func:`workbench.methods.sdebnn.playground.band`."""
    from workbench.methods.sdebnn import playground

    model = load_model(run_id) if model is None else model
    out = playground.band(model, int(samples), sigma, seed=seed)
    stored_band = stored(run_id, "band") or {}
    return out | {"train_x": stored_band.get("train_x", []), "train_y": stored_band.get("train_y", [])}


def band_explorer(run_id: str, max_samples: int = 128) -> Any:
    """Sliders for the number of sampled paths and for σ; each change re-samples the saved model's band."""
    import ipywidgets as W

    model = load_model(run_id)
    trained = float(model.spec["sigma"])
    paths = W.IntSlider(value=32, min=1, max=max_samples, description="paths S", continuous_update=False)
    sigma = W.FloatSlider(value=trained, min=0.0, max=max(1.0, 4 * trained), step=0.01, description="σ",
                          continuous_update=False)
    fig = figure_output()

    def redraw(*_: Any) -> None:
        b = resample_band(run_id, paths.value, sigma.value, model=model)
        fig.show(band_figure(b, title=f"Saved SDE-BNN re-sampled: {paths.value} paths, σ = {sigma.value:.2f}"
                                          f"<br><sup>trained with σ = {trained}; predictive std in the gap / on the "
                                          f"data = {b['stats']['sdebnn']['ratio']:.2f}</sup>"))

    paths.observe(redraw, names="value")
    sigma.observe(redraw, names="value")
    redraw()
    return W.VBox([W.HBox([paths, sigma]), fig])


def weight_explorer(run_id: str, paths: int = 8) -> Any:
    """Pick a weight and σ: its prior (OU) and posterior paths w(t), re-sampled from the saved model
    (:func:`workbench.methods.sdebnn.playground.weight_paths`)."""
    import ipywidgets as W

    from workbench.methods.sdebnn import playground

    model = load_model(run_id)
    trained = float(model.spec["sigma"])
    names = model.layout.names()
    which = W.Dropdown(options=[(n, i) for i, n in enumerate(names)], value=0, description="weight")
    sigma = W.FloatSlider(value=trained, min=0.0, max=max(1.0, 4 * trained), step=0.01, description="σ",
                          continuous_update=False)
    fig = figure_output()

    def redraw(*_: Any) -> None:
        value = playground.weight_paths(model, paths, weights=[which.value], sigma=sigma.value, seed=1)
        fig.show(weight_paths_figure(value | {"sigma": round(sigma.value, 3)}))

    which.observe(redraw, names="value")
    sigma.observe(redraw, names="value")
    redraw()
    return W.VBox([W.HBox([which, sigma]), fig])
