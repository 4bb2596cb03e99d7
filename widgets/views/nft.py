"""Views of the ``nft`` experiment: pure functions of stored run data → plotly figures, plus an ipywidgets zoo
explorer (:func:`zoo_explorer`: pick any network of the zoo, see its weight matrices and every model's
predicted accuracy).

Stored artifacts read here: ``predictions`` (true and predicted accuracy per held-out network and model),
``zoo`` / ``zoo/weights`` / ``zoo/spec`` (every network's hyperparameters, accuracy and flat weights),
``attention`` and ``inr/attention`` (NFT attention over the token sets of one network), ``inr/gallery``
(images, SIREN renders, Inr2Array reconstructions), ``permutation_demo`` and ``results``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from widgets.style import DARK, colour
from widgets.views import view

from .common import figure_output, stored, table

METHOD = "nft"
ORDER = ("nft", "np", "hnp", "stats", "flat", "inr2array")
LABELS = {"nft": "NFT", "np": "NFN-NP", "hnp": "NFN-HNP", "stats": "weight statistics", "flat": "flat MLP",
          "inr2array": "Inr2Array latent"}
#: the live-curve panels worth watching (a dashboard's ``metrics=``)
LIVE_METRICS = ["acc/nft/test/kendall_tau", "acc/np/test/kendall_tau", "acc/hnp/test/kendall_tau",
                "acc/stats/test/kendall_tau", "acc/flat/test/kendall_tau", "inr/nft/test/accuracy",
                "inr/np/test/accuracy", "inr/flat/test/accuracy", "inr/inr2array/test/accuracy",
                "inr2array/recon/test/loss"]


def _colour(model: str) -> str:
    return colour(model)


def _sorted(models: Any) -> list[str]:
    return sorted(set(models), key=lambda m: ORDER.index(m) if m in ORDER else len(ORDER))


# -- figures from plain data --------------------------------------------------------------------------------
def predictions_figure(rows: Any) -> go.Figure:
    """Predicted against true test accuracy of the held-out networks, one marker colour per model."""
    from workbench.methods.nft import kendall_tau, r2_score

    df = table(rows)
    fig = go.Figure()
    lo = float(min(df["true_accuracy"].min(), df["predicted_accuracy"].min()))
    hi = float(max(df["true_accuracy"].max(), df["predicted_accuracy"].max()))
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="perfect prediction",
                             line={"dash": "dash", "color": "#777"}))
    for m in _sorted(df["model"]):
        d = df[df["model"] == m]
        tau, r2 = kendall_tau(d["true_accuracy"], d["predicted_accuracy"]), r2_score(d["true_accuracy"],
                                                                                     d["predicted_accuracy"])
        fig.add_trace(go.Scatter(x=d["true_accuracy"], y=d["predicted_accuracy"], mode="markers",
                                 name=f"{LABELS.get(m, m)} (τ {tau:.2f}, R² {r2:.2f})",
                                 marker={"color": _colour(m), "size": 6, "opacity": 0.75},
                                 customdata=d["network"],
                                 hovertemplate="network %{customdata}: true %{x:.3f}, predicted %{y:.3f}"
                                               "<extra>" + LABELS.get(m, m) + "</extra>"))
    pad = 0.05 * (hi - lo + 1e-9)
    true_lo = max(0.0, float(df["true_accuracy"].min()) - pad)
    true_hi = min(1.0, float(df["true_accuracy"].max()) + pad)
    fig.update_layout(title={"text": "Zoo: predicted vs true test accuracy of held-out networks"}, height=460,
                      xaxis={"title": {"text": "true test accuracy"}, "range": [true_lo, true_hi]},
                      yaxis={"title": {"text": "predicted test accuracy"}})
    return fig


def _layers(flat: np.ndarray, spec: dict) -> list[tuple[np.ndarray, np.ndarray, bool]]:
    """A network's flat weights → per layer (matrix rows × cols, bias, is_filter); filters as their L2 norm."""
    out, at = [], 0
    dims, filters = spec["dims"], spec["filters"]
    for i in range(len(dims) - 1):
        rows, cols, k = dims[i + 1], dims[i], int(np.prod(filters[i])) if filters[i] else 1
        w = flat[at:at + k * rows * cols].reshape(k, rows, cols)
        at += k * rows * cols
        b = flat[at:at + rows]
        at += rows
        out.append((np.sqrt((w ** 2).sum(0)) if k > 1 else w[0], b, k > 1))
    return out


def network_figure(flat: np.ndarray, spec: dict, title: str) -> go.Figure:
    """One network's weight matrices as heatmaps (rows: output neurons, columns: input neurons; the bias is
    the last column). A convolution's 3×3 filter is shown by its L2 norm."""
    layers = _layers(np.asarray(flat, dtype=float), spec)
    titles = [f"layer {i}: {'‖filter‖ ' if f else 'W'} {w.shape[0]}×{w.shape[1]} | b" for i, (w, _, f) in
              enumerate(layers)]
    widths = [w.shape[1] + 1 for w, _, _ in layers]
    fig = make_subplots(rows=1, cols=len(layers), subplot_titles=titles, column_widths=widths,
                        horizontal_spacing=0.06)
    vmax = max(float(np.abs(np.concatenate([w.ravel(), b])).max()) for w, b, _ in layers) or 1.0
    for i, (w, b, is_filter) in enumerate(layers):
        z = np.concatenate([w, b[:, None]], axis=1)
        fig.add_trace(go.Heatmap(z=z, colorscale="RdBu", zmid=0, zmin=-vmax, zmax=vmax, showscale=i == len(layers) - 1,
                                 hovertemplate="out %{y}, in %{x}: %{z:.3f}<extra>layer " + str(i) + "</extra>"),
                      row=1, col=i + 1)
        fig.update_yaxes(autorange="reversed", title_text="output neuron" if i == 0 else None, row=1, col=i + 1)
        fig.update_xaxes(title_text="input neuron (last: bias)", row=1, col=i + 1)
    fig.update_layout(title={"text": title}, height=380)
    return fig


def attention_figure(art: dict, title: str) -> go.Figure:
    """Head-averaged attention of the first NFT block over each neuron layer's token set (rows attend to
    columns), and the global term over the layers' mean tokens."""
    panels = [lay for lay in art["layers"] if len(lay["labels"]) > 1] + [dict(neuron_layer="global", **art["global"])]
    n = len(panels)
    names = {0: "inputs", len(art["dims"]) - 1: "outputs"}
    fig = make_subplots(rows=1, cols=n, horizontal_spacing=0.07, subplot_titles=[
        ("global term<br>(layer means)" if p["neuron_layer"] == "global" else
         f"neuron layer {p['neuron_layer']}<br>({names.get(p['neuron_layer'], 'hidden')}, "
         f"{art['dims'][p['neuron_layer']]} neurons)") for p in panels])
    for i, p in enumerate(panels):
        labels = [lab.split(" (")[0] for lab in p["labels"]]
        fig.add_trace(go.Heatmap(z=np.asarray(p["attention"]), x=labels, y=labels, colorscale="Viridis", zmin=0,
                                 showscale=i == n - 1, hovertemplate="%{y} → %{x}: %{z:.3f}<extra></extra>"),
                      row=1, col=i + 1)
        fig.update_yaxes(autorange="reversed", showticklabels=len(labels) <= 24, tickfont={"size": 8}, row=1, col=i + 1)
        fig.update_xaxes(showticklabels=len(labels) <= 24, tickfont={"size": 8}, tickangle=60, row=1, col=i + 1)
    what = (f"zoo network {art['network']} (test accuracy {art['value']:.2f})" if art["source"] == "zoo"
            else f"SIREN of test image {art['network']} (label {int(art['value'])})")
    fig.update_layout(title={"text": f"{title}: {what}"}, height=470, margin={"b": 110, "t": 110})
    return fig


def gallery_figure(g: dict) -> go.Figure:
    """Rows: original image, its SIREN's render, the Inr2Array reconstruction (when trained); one column each."""
    rows = [("original", g["original"]), ("SIREN", g["siren"])]
    if g.get("reconstruction") is not None:
        rows.append(("Inr2Array", g["reconstruction"]))
    cols = len(g["original"])
    fig = make_subplots(rows=len(rows), cols=cols, horizontal_spacing=0.01, vertical_spacing=0.03,
                        column_titles=[f"label {lab}" for lab in g["labels"]])
    for r, (name, imgs) in enumerate(rows):
        for c in range(cols):
            img = np.clip(np.asarray(imgs[c], dtype=float), 0, 1)
            if img.shape[-1] == 1:
                img = np.repeat(img, 3, axis=-1)
            fig.add_trace(go.Image(z=(img * 255).round().astype(np.uint8), name=name,
                                   hovertemplate=name + " (%{x}, %{y}): %{z[0]}<extra></extra>"), row=r + 1, col=c + 1)
        fig.update_yaxes(title_text=name, row=r + 1, col=1)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
    psnr = float(np.mean(g["siren_psnr"])) if g.get("siren_psnr") else float("nan")
    fig.update_layout(title={"text": f"INR gallery: test images, their SIRENs' renders (mean PSNR {psnr:.1f} dB) "
                                     "and Inr2Array's reconstructions from the latent array"},
                      height=140 * len(rows) + 100, margin={"l": 70, "r": 20, "t": 90, "b": 10})
    return fig


def permutation_figure(demo: dict) -> go.Figure:
    """Left: the largest change of the network's outputs and of each model's prediction over the random
    permutations of its hidden neurons (log scale; exact zeros drawn at 1e-17). Right: each model's prediction
    for every permuted copy (scalar predictions; class probabilities: of the original's top class)."""
    models = _sorted(demo["models"])
    names = ["network outputs"] + [LABELS.get(m, m) for m in models]
    changes = [demo["output_change"]] + [demo["models"][m]["max_change"] for m in models]
    floor = 1e-17
    fig = make_subplots(rows=1, cols=2, column_widths=[0.5, 0.5], horizontal_spacing=0.12, subplot_titles=[
        "largest change under the permutations (dotted: 1e-9)", "prediction for each permuted copy (bar: original)"])
    fig.add_trace(go.Bar(x=names, y=[max(c, floor) for c in changes], showlegend=False,
                         marker={"color": [DARK] + [_colour(m) for m in models]},
                         text=[("0 (exact)" if c == 0 else f"{c:.1e}") for c in changes], textposition="outside",
                         hovertemplate="%{x}: %{text}<extra></extra>"), row=1, col=1)
    fig.add_hline(y=1e-9, line_dash="dot", row=1, col=1)
    fig.update_yaxes(type="log", range=[-18, 1.5], title_text="max |change|", exponentformat="power",
                     dtick=3, row=1, col=1)
    for m in models:
        r = demo["models"][m]
        p0 = np.asarray(r["original"], dtype=float).ravel()
        top = int(np.argmax(p0)) if p0.size > 1 else 0
        ys = [float(np.asarray(p, dtype=float).ravel()[top]) for p in r["permuted"]]
        fig.add_trace(go.Scatter(x=[LABELS.get(m, m)] * len(ys), y=ys, mode="markers", name=LABELS.get(m, m),
                                 marker={"color": _colour(m), "size": 9, "opacity": 0.6}, showlegend=False),
                      row=1, col=2)
        fig.add_trace(go.Scatter(x=[LABELS.get(m, m)], y=[float(p0[top])], mode="markers", showlegend=False,
                                 marker={"color": "black", "symbol": "line-ew-open", "size": 26}), row=1, col=2)
    scalar = np.asarray(demo["models"][models[0]]["original"]).size == 1 if models else True
    fig.update_yaxes(title_text="predicted test accuracy" if scalar else "probability of the top class", row=1, col=2)
    src = (f"zoo network {demo['network']} (true accuracy {demo.get('true_accuracy', float('nan')):.2f})"
           if demo.get("source") == "zoo" else f"SIREN of test image {demo['network']}")
    fig.update_layout(title={"text": f"Permutation demo: {demo['permutations']} random permutations of {src}; "
                                     f"weights moved by up to {demo['weight_change']:.2f}"}, height=430)
    return fig


def results_figure(rows: Any) -> go.Figure:
    """One panel per metric: Kendall τ and R² of accuracy prediction, INR test accuracy; models as bars."""
    df = table(rows)
    panels = [("accuracy prediction", "kendall_tau", "Kendall τ (accuracy prediction)"),
              ("accuracy prediction", "r2", "R² (accuracy prediction)"),
              ("INR classification", "test_accuracy", "INR classification: test accuracy")]
    panels = [p for p in panels if ((df["task"] == p[0]) & (df["metric"] == p[1])).any()]
    fig = make_subplots(rows=1, cols=max(len(panels), 1), subplot_titles=[p[2] for p in panels],
                        horizontal_spacing=0.08)
    for i, (task, metric, _) in enumerate(panels):
        d = df[(df["task"] == task) & (df["metric"] == metric)]
        models = _sorted(d["model"])
        vals = [float(d[d["model"] == m]["value"].iloc[0]) for m in models]
        fig.add_trace(go.Bar(x=[LABELS.get(m, m) for m in models], y=vals, showlegend=False,
                             marker={"color": [_colour(m) for m in models]}, text=[f"{v:.3f}" for v in vals],
                             textposition="outside", cliponaxis=False), row=1, col=i + 1)
        if metric == "test_accuracy":
            fig.update_yaxes(range=[0, 1.1], tick0=0, dtick=0.2, row=1, col=i + 1)
        elif metric == "kendall_tau":
            fig.update_yaxes(range=[min(0.0, min(vals) - 0.1), 1.1], row=1, col=i + 1)
    fig.update_layout(title={"text": "Results on held-out networks / SIRENs"}, height=420)
    return fig


# -- registered views (run id → figure) ---------------------------------------------------------------------
@view(METHOD, "results")
def results(run_id: str) -> go.Figure | None:
    rows = stored(run_id, "results")
    if rows is None:  # a live run: the predictions so far
        pred = stored(run_id, "predictions")
        if pred is None:
            return None
        from workbench.methods.nft import kendall_tau, r2_score

        df = table(pred)
        rows = [{"task": "accuracy prediction", "model": m, "metric": k, "value": f(d["true_accuracy"],
                                                                                      d["predicted_accuracy"])}
                for m, d in df.groupby("model") for k, f in (("kendall_tau", kendall_tau), ("r2", r2_score))]
    return results_figure(rows) if len(rows) else None


@view(METHOD, "zoo: predicted vs true accuracy")
def predictions(run_id: str) -> go.Figure | None:
    rows = stored(run_id, "predictions")
    return None if rows is None or not len(rows) else predictions_figure(rows)


def stored_network(run_id: str, index: int | None = None) -> tuple[np.ndarray, dict, dict] | None:
    """(flat weights, spec, zoo row) of network ``index`` (default: the median-accuracy held-out network)."""
    weights, spec, zoo = stored(run_id, "zoo/weights"), stored(run_id, "zoo/spec"), stored(run_id, "zoo")
    if weights is None or spec is None or zoo is None:
        return None
    df = table(zoo)
    if index is None:
        test = df[df["split"] == "test"] if "split" in df else df
        index = int(test.sort_values("test_accuracy").iloc[len(test) // 2]["network"])
    return np.asarray(weights)[index], spec, df[df["network"] == index].iloc[0].to_dict()


def _network_title(row: dict, preds: Any = None) -> str:
    hp = ", ".join(f"{k} {row[k]:.3g}" if isinstance(row[k], float) else f"{k} {row[k]}"
                   for k in ("activation", "lr", "weight_decay", "init_scale", "label_noise", "steps") if k in row)
    title = f"zoo network {int(row['network'])} ({row.get('split', '?')}): test accuracy {row['test_accuracy']:.3f}"
    if preds is not None and len(preds):
        title += "; predicted " + ", ".join(f"{LABELS.get(m, m)} {v:.3f}" for m, v in preds)
    return title + (f"<br><sub>{hp}</sub>" if hp else "")


def _predictions_for(run_id: str, index: int) -> list[tuple[str, float]]:
    rows = stored(run_id, "predictions")
    if rows is None:
        return []
    df = table(rows)
    d = df[df["network"] == index]
    return [(m, float(d[d["model"] == m]["predicted_accuracy"].iloc[0])) for m in _sorted(d["model"])]


@view(METHOD, "zoo: a network's weights")
def network(run_id: str, index: int | None = None) -> go.Figure | None:
    got = stored_network(run_id, index)
    if got is None:
        return None
    flat, spec, row = got
    return network_figure(flat, spec, _network_title(row, _predictions_for(run_id, int(row["network"]))))


@view(METHOD, "attention maps")
def attention(run_id: str) -> go.Figure | None:
    art = stored(run_id, "attention") or stored(run_id, "inr/attention")
    return None if art is None else attention_figure(art, "NFT attention (block 1, mean over heads)")


@view(METHOD, "INR attention maps", key=False)
def inr_attention(run_id: str) -> go.Figure | None:
    art = stored(run_id, "inr/attention")
    return None if art is None else attention_figure(art, "NFT attention on a SIREN (block 1, mean over heads)")


@view(METHOD, "INR gallery")
def gallery(run_id: str) -> go.Figure | None:
    g = stored(run_id, "inr/gallery")
    return None if g is None else gallery_figure(g)


@view(METHOD, "permutation demo")
def permutation(run_id: str) -> go.Figure | None:
    demo = stored(run_id, "permutation_demo")
    return None if demo is None else permutation_figure(demo)


# -- ipywidgets ---------------------------------------------------------------------------------------------
def zoo_explorer(run_id: str) -> Any:
    """Pick any network of the stored zoo (menu sorted by test accuracy, held-out networks marked) and see its
    weight matrices, hyperparameters and every model's predicted accuracy."""
    import ipywidgets as w

    zoo = stored(run_id, "zoo")
    if zoo is None:
        raise KeyError(f"run {run_id} has stored no zoo yet")
    df = table(zoo).sort_values("test_accuracy")
    options = [(f"#{int(r.network)} acc {r.test_accuracy:.3f}" + (" (held out)" if getattr(r, "split", "") == "test"
                                                                      else ""), int(r.network))
               for r in df.itertuples()]
    pick = w.Dropdown(options=options, value=options[len(options) // 2][1], description="network")
    fig = figure_output()

    def redraw(*_: Any) -> None:
        fig.show(network(run_id, pick.value))

    pick.observe(redraw, names="value")
    redraw()
    return w.VBox([pick, fig])
