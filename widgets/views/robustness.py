"""Views of the robustness experiments (``nfm``, ``noisymix``, ``robustness_compare``).

Each ``*_figure`` function is a pure function of stored tables (DataFrames / dicts) returning a plotly
Figure; the ``@view`` wrappers read the run store only (so live, finished, remote and exported runs look the
same): the corruption and AugMix previews come from the run's ``corruption_preview`` and ``augmix_preview``
artifacts. The interactive :func:`previewer` (a notebook helper, not a view) computes corruptions and AugMix
chains of any dataset image at a chosen severity. The claims table is the generic one every method gets.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..style import colour, fraction_axis, house
from . import HTMLView, view
from .common import curves, from_stored, reliability_figure, table

METHODS = ("nfm", "noisymix", "robustness_compare")


# ---------------------------------------------------------------- pure figure builders
def heatmap_figure(corruption_table: Any, baseline: str | None = None) -> Any:
    """Accuracy per corruption × severity, one panel per recipe; with ``baseline`` the difference to it."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    df = table(corruption_table)
    if df.empty:  # corruption_set='noise': only the noise curves were measured
        return None
    variants = list(dict.fromkeys(df["variant"]))
    if baseline is not None:
        if baseline not in variants:
            return None
        variants = [v for v in variants if v != baseline]
        if not variants:
            return None
    corruptions = list(dict.fromkeys(df["corruption"]))
    cols = min(len(variants), 4)
    rows = (len(variants) + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=variants, shared_yaxes=True,
                        horizontal_spacing=0.03, vertical_spacing=0.08)
    base = None
    if baseline is not None:
        base = df[df["variant"] == baseline].pivot(index="corruption", columns="severity", values="accuracy")
    lim = 0.0
    for i, v in enumerate(variants):
        grid = df[df["variant"] == v].pivot(index="corruption", columns="severity", values="accuracy").reindex(corruptions)
        z = grid.to_numpy()
        if base is not None:
            z = z - base.reindex(index=corruptions, columns=grid.columns).to_numpy()
            lim = max(lim, float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 0.0)
        fig.add_trace(
            go.Heatmap(z=z, x=[f"s{s}" for s in grid.columns], y=corruptions, coloraxis="coloraxis",
                       hovertemplate="%{y} %{x}: %{z:.3f}<extra>" + v + "</extra>"),
            row=i // cols + 1, col=i % cols + 1,
        )
    if base is not None:
        lim = lim or 0.1
        coloraxis = {"colorscale": "RdBu", "cmin": -lim, "cmax": lim, "colorbar": {"title": {"text": "Δ acc"}}}
        title = f"accuracy minus {baseline}, per corruption × severity"
    else:
        coloraxis = {"colorscale": "Viridis", "cmin": 0, "cmax": 1, "colorbar": {"title": {"text": "accuracy"}}}
        title = "accuracy per corruption × severity"
    row_px = 18 * len(corruptions) + 70  # every corruption gets a readable row label
    fig.update_layout(title={"text": title}, coloraxis=coloraxis, height=max(360, row_px * rows + 90),
                      margin={"l": 130})
    fig.update_yaxes(autorange="reversed", tickmode="array", tickvals=corruptions,
                     ticktext=[c.replace("_", " ") for c in corruptions], tickfont={"size": 11})
    return fig


def noise_curves_figure(noise_curves: Any) -> Any:
    """Accuracy against test-time noise level, one line per recipe: NFM's white noise (σ in the normalised input
    space) and salt-and-pepper panels (two_moons: Gaussian noise on the points)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    df = table(noise_curves)
    kinds = list(dict.fromkeys(df["kind"]))
    titles = {"white_noise": "white noise (normalised input space)", "salt_and_pepper": "salt and pepper"}
    fig = make_subplots(rows=1, cols=len(kinds), subplot_titles=[titles.get(k, k.replace("_", " ")) for k in kinds],
                        shared_yaxes=True)
    for j, kind in enumerate(kinds):
        for v in dict.fromkeys(df["variant"]):
            d = df[(df["kind"] == kind) & (df["variant"] == v)].sort_values("level")
            fig.add_trace(go.Scatter(x=d["level"], y=d["accuracy"], mode="lines+markers", name=v, legendgroup=v,
                                     showlegend=j == 0, line={"color": colour(v)}), row=1, col=j + 1)
        fig.update_xaxes(title_text="σ" if kind == "white_noise" else "fraction γ of elements", row=1, col=j + 1)
    fig.update_yaxes(title_text="test accuracy", row=1, col=1)
    fig.update_yaxes(**fraction_axis(df["accuracy"]))
    images = df["images"].iloc[0] if "images" in df and len(df) else None
    title = "accuracy as test-time noise grows" + (f" ({int(images):,} test images)" if images is not None else "")
    fig.update_layout(title={"text": title}, height=380)
    return fig


LABELS = {"clean_accuracy": "clean accuracy (full test set)", "mean_corruption_accuracy": "mean corruption accuracy",
          "noise_accuracy": "noise accuracy (NFM table levels)", "ece": "ECE (15 bins)", "flip_noise": "flip probability (noise)"}


def summary_figure(summary_rows: Any) -> Any:
    """One panel per quantity (clean accuracy, mean corruption accuracy, noise accuracy, ECE), the recipes side by
    side in their colours, each bar labelled with its value."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    df = table(summary_rows)
    keys = [k for k in LABELS if k in df]
    if not keys or "variant" not in df:
        return None
    variants = [str(v) for v in df["variant"]]
    fig = make_subplots(rows=1, cols=len(keys), subplot_titles=[LABELS[k] for k in keys], horizontal_spacing=0.05)
    for j, k in enumerate(keys):
        fig.add_trace(go.Bar(x=variants, y=df[k], name=LABELS[k], showlegend=False,
                             marker_color=[colour(v) for v in variants], texttemplate="%{y:.3f}",
                             textposition="outside", cliponaxis=False,
                             hovertemplate="%{x}: %{y:.4f}<extra>" + LABELS[k] + "</extra>"), row=1, col=j + 1)
        fig.update_yaxes(range=[0, 1.1], tick0=0, dtick=0.2, row=1, col=j + 1)
        fig.update_xaxes(tickangle=-40, row=1, col=j + 1)
    fig.update_layout(title={"text": "recipes at a glance"}, height=420, margin={"b": 110})
    return fig


def settings_view(method: str) -> HTMLView | None:
    """The settings at which ``method``'s claims are checked on a CPU, against the paper's, as a table
    (setting, this scale, paper); ``None`` for a method without both."""
    import html
    import importlib

    try:
        module = importlib.import_module(f"workbench.methods.{method}.experiment")
    except ModuleNotFoundError:
        return None
    cpu, paper = getattr(module, "CPU_CLAIMS", None), getattr(module, "PAPER", None) or {}
    if not isinstance(cpu, dict) or not cpu:
        return None
    if not isinstance(paper, dict):
        paper = {}
    keys = list(dict.fromkeys([*cpu, *paper]))
    text = lambda v: "–" if v is None else html.escape(", ".join(map(str, v)) if isinstance(v, (tuple, list))  # noqa: E731
                                                         else str(v))
    rows = "".join(f"<tr><td>{html.escape(k.replace('_', ' '))}</td><td>{text(cpu.get(k))}</td>"
                   f"<td>{text(paper.get(k))}</td></tr>" for k in keys)
    return HTMLView("<table class='wb-table'><thead><tr><th>setting</th><th>claims on a CPU</th><th>paper</th>"
                    f"</tr></thead><tbody>{rows}</tbody></table>", title=f"{method} settings")


def _padded(values: Any, top: float = 0.1) -> list[float]:
    """An axis range around ``values`` with room for the point labels (``top``: the share added above)."""
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    span = max(hi - lo, 0.01)
    return [max(0.0, lo - 0.1 * span), min(1.05, hi + top * span)]  # accuracies: never beyond [0, 1.05]


def tradeoff_figure(summary_rows: Any) -> Any:
    """Clean accuracy against robustness, one point per recipe (the papers' accuracy–robustness trade-off): noise
    accuracy (NFM's table levels) and, when measured, mean corruption accuracy; up and right is better."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    df = table(summary_rows)
    ys = [k for k in ("noise_accuracy", "mean_corruption_accuracy") if k in df]
    if "clean_accuracy" not in df or not ys:
        return None
    fig = make_subplots(rows=1, cols=len(ys), subplot_titles=[LABELS[k] for k in ys], horizontal_spacing=0.12)
    for j, k in enumerate(ys):
        for v, row in df.set_index("variant").iterrows():
            fig.add_trace(go.Scatter(x=[row["clean_accuracy"]], y=[row[k]], mode="markers+text", text=[v],
                                     textposition="top center", name=v, legendgroup=v, showlegend=False,
                                     marker={"size": 11, "color": colour(v)},
                                     hovertemplate=f"{v}: clean %{{x:.3f}}, {k.replace('_', ' ')} %{{y:.3f}}<extra></extra>"),
                          row=1, col=j + 1)
        fig.update_xaxes(title_text="clean accuracy (full test set)", range=_padded(df["clean_accuracy"]), row=1, col=j + 1)
        fig.update_yaxes(title_text=LABELS[k], range=_padded(df[k], top=0.18), row=1, col=j + 1)
    fig.update_layout(title={"text": "accuracy–robustness trade-off (up and right is better)"}, height=420)
    return fig


def decision_boundary_figure(boundary: dict[str, Any]) -> Any:
    """P(class 1) over the plane per recipe, with the (label-noisy) training points (two_moons)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    variants = list(boundary["probs"])
    fig = make_subplots(rows=1, cols=len(variants), subplot_titles=variants, shared_yaxes=True, horizontal_spacing=0.02)
    tr = boundary.get("train", {})
    for i, v in enumerate(variants):
        fig.add_trace(go.Contour(x=boundary["x"], y=boundary["y"], z=boundary["probs"][v], coloraxis="coloraxis",
                                 contours={"start": 0, "end": 1, "size": 0.1}, line={"width": 0.5}),
                      row=1, col=i + 1)
        if tr:
            fig.add_trace(go.Scatter(x=tr["x"], y=tr["y"], mode="markers", showlegend=False,
                                     marker={"size": 4, "color": tr["label"], "colorscale": [[0, "#1f3b73"], [1, "#f2c14e"]],
                                             "line": {"width": 0.3, "color": "white"}}), row=1, col=i + 1)
    fig.update_layout(title={"text": "decision boundaries (P(class 1)); points: training data with label noise"},
                      coloraxis={"colorscale": "RdBu", "cmin": 0, "cmax": 1}, height=360)
    return fig


def corruption_preview_figure(image: Any, severity: int = 3, seed: int = 0, names: tuple[str, ...] | None = None) -> Any:
    """One image (C×H×W or H×W in [0, 1]) under every corruption at ``severity``."""
    from plotly.subplots import make_subplots

    from workbench.lib.robustness import CORRUPTIONS, corrupt

    names = tuple(names or CORRUPTIONS)
    img = np.asarray(image, dtype=np.float32)
    img = img[None] if img.ndim == 2 else img
    panels = [("clean", img)] + [(n, corrupt(img[None], n, severity, seed=seed)[0]) for n in names]
    cols = 6
    rows = (len(panels) + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[p[0].replace("_", " ") for p in panels],
                        horizontal_spacing=0.01, vertical_spacing=0.06)
    for i, (_, p) in enumerate(panels):
        fig.add_trace(_image_trace(p), row=i // cols + 1, col=i % cols + 1)
    _image_axes(fig)
    fig.update_layout(title={"text": f"corruptions at severity {severity}"}, height=170 * rows + 60)
    return house(fig)


def augmix_preview_figure(image: Any, severity: int = 3, seed: int = 0, all_ops: bool = False) -> Any:
    """One image, its three AugMix chains and the AugMix mixture (same seed → same chains)."""
    import torch
    from plotly.subplots import make_subplots

    from workbench.methods.noisymix import augmix, augmix_chains

    img = torch.as_tensor(np.asarray(image, dtype=np.float32))
    img = img[None] if img.dim() == 2 else img
    chains = augmix_chains(img[None], severity=severity, all_ops=all_ops, generator=torch.Generator().manual_seed(seed))
    mixed = augmix(img[None], severity=severity, all_ops=all_ops, generator=torch.Generator().manual_seed(seed))
    panels = [("clean", img)] + [(f"chain {i + 1}", c[0]) for i, c in enumerate(chains)] + [("AugMix", mixed[0])]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p[0] for p in panels], horizontal_spacing=0.01)
    for i, (_, p) in enumerate(panels):
        fig.add_trace(_image_trace(p.numpy()), row=1, col=i + 1)
    _image_axes(fig)
    fig.update_layout(title={"text": f"AugMix (severity {severity}, seed {seed})"}, height=260)
    return house(fig)


def stored_preview_figure(preview: dict[str, Any], title: str = "", cols: int = 6) -> Any:
    """The images of a stored preview (``{"severity", "names", "images": (n, C, H, W) in [0, 1]}``) in a grid,
    each titled by its name (the ``corruption_preview`` and ``augmix_preview`` artifacts)."""
    from plotly.subplots import make_subplots

    images = np.asarray(preview.get("images", []), dtype=np.float32)
    names = [str(n).replace("_", " ") for n in preview.get("names", [])]
    if images.ndim == 3:
        images = images[:, None]
    if not len(images):
        return None
    cols = min(cols, len(images))
    rows = (len(images) + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names[:len(images)], horizontal_spacing=0.01,
                        vertical_spacing=0.08 if rows > 1 else 0.0)
    for i, img in enumerate(images):
        fig.add_trace(_image_trace(img), row=i // cols + 1, col=i % cols + 1)
    _image_axes(fig)
    severity = preview.get("severity")
    text = title or "preview"
    if severity is not None:
        text += f" (severity {severity})"
    fig.update_layout(title={"text": text}, height=170 * rows + 70, margin={"t": 70})
    return fig


def _image_trace(chw: np.ndarray) -> Any:
    import plotly.graph_objects as go

    if chw.shape[0] == 1:
        return go.Heatmap(z=chw[0], colorscale="gray", zmin=0, zmax=1, showscale=False, hoverinfo="skip")
    return go.Image(z=np.clip(np.round(chw.transpose(1, 2, 0) * 255), 0, 255).astype(np.uint8), hoverinfo="skip")


def _image_axes(fig: Any) -> None:
    """Hide the axes of image panels and keep every panel's pixels square (each y axis anchored to its own x)."""
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    for name in fig.layout:
        if name.startswith("yaxis"):
            fig.layout[name].scaleanchor = "x" + name[len("yaxis"):]


def previewer(dataset: str = "digits", split: str = "test") -> Any:
    """An interactive previewer (ipywidgets): pick an image, slide the severity, see corruptions and AugMix."""
    import ipywidgets as w
    from IPython.display import display

    from workbench.lib import data

    x, y = data.tensors(dataset, split)
    index = w.IntSlider(0, 0, len(x) - 1, description="image")
    severity = w.IntSlider(3, 1, 5, description="severity")
    seed = w.IntSlider(0, 0, 99, description="seed")
    out = w.Output()

    def draw(*_: Any) -> None:
        with out:
            out.clear_output(wait=True)
            display(augmix_preview_figure(x[index.value], severity.value, seed.value))
            display(corruption_preview_figure(x[index.value], severity.value, seed.value))

    for s in (index, severity, seed):
        s.observe(draw, "value")
    draw()
    return w.VBox([w.HBox([index, severity, seed]), out])


# ---------------------------------------------------------------- registered views (read the run store)
def _views_for(method: str) -> None:
    view(method, "recipes at a glance")(from_stored("summary", summary_figure))
    view(method, "accuracy vs noise level")(from_stored("noise_curves", noise_curves_figure))
    view(method, "robustness heatmap")(from_stored("corruption_table", heatmap_figure))
    view(method, "robustness vs baseline", key=False)(from_stored("corruption_table", heatmap_figure, baseline="baseline"))
    view(method, "reliability diagram")(from_stored("reliability", reliability_figure,
                                                          title="reliability diagram (15 bins, clean test set)"))
    view(method, "decision boundaries")(from_stored("decision_boundary", decision_boundary_figure))

    view(method, "accuracy–robustness trade-off")(from_stored("summary", tradeoff_figure))

    @view(method, "training curves", key=False)
    def _train(run_id: str) -> Any:
        from workbench import runs

        names = set(runs.metrics(run_id)["name"].unique())
        loss = sorted(n for n in names if n.endswith("/train/loss"))
        acc = sorted(n for n in names if n.endswith("/test_subset/accuracy"))
        if not loss and not acc:
            return None
        return curves(run_id, loss + acc, title="training curves: loss, and clean accuracy on a fixed test subset "
                                                "(the result is the full-test clean accuracy)")

    view(method, "corruption previewer", key=False)(
        from_stored("corruption_preview", stored_preview_figure,
                    title="one test image under every corruption and NFM's noises (σ in the normalised space)"))
    view(method, "AugMix chains", key=False)(
        from_stored("augmix_preview", stored_preview_figure, title="one test image: AugMix chains and mixture"))


for _m in METHODS:
    _views_for(_m)
