"""Views of the goldilocks (RHO-LOSS) experiment: pure functions of stored run data -> plotly figures.

Each registered view reads the run store only (``runs.metrics`` / ``runs.artifact``), so it draws a live run
(the gallery and the scatter are replaced as training goes) as well as a finished one. The ``*_figure``
functions take plain data and can be used on their own.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from widgets.views import view
from workbench import runs

METHOD = "goldilocks"
#: the live-curve panels worth watching in a comparison (a dashboard's ``metrics=``; all metrics otherwise)
LIVE_METRICS = ["uniform/test/accuracy", "rho_loss/test/accuracy", "rho_loss/train/loss",
                "rho_loss/select/corrupted_share", "train_loss/select/corrupted_share"]
_ORDER = ("uniform", "rho_loss", "boltzmann", "train_loss", "grad_norm", "irreducible", "entropy", "bald",
          "replay_uniform", "replay")


def _artifact(run_id: str, name: str) -> Any | None:
    try:
        return runs.artifact(run_id, name)
    except KeyError:
        return None


def _records(table: Any) -> list[dict]:
    if table is None:
        return []
    if isinstance(table, pd.DataFrame):
        return table.to_dict("records")
    return list(table)


def _curves(metrics: pd.DataFrame, suffix: str) -> dict[str, pd.Series]:
    """``{method: Series(step -> value)}`` for the metrics named ``<method>/<suffix>``."""
    out: dict[str, pd.Series] = {}
    if metrics is None or metrics.empty:
        return out
    sub = metrics[metrics["name"].str.endswith("/" + suffix)]
    for name, frame in sub.groupby("name", sort=False):
        method = name[: -len(suffix) - 1]
        if method.startswith("il_model") or "@" in method:  # the irreducible model; replicates beyond the first
            continue
        out[method] = frame.drop_duplicates("step", keep="last").set_index("step")["value"].sort_index()
    return dict(sorted(out.items(), key=lambda kv: _ORDER.index(kv[0]) if kv[0] in _ORDER else len(_ORDER)))


# -- figures from plain data --------------------------------------------------------------------------------
def gallery_figure(gallery: dict, columns: int = 8, class_names: list[str] | None = None) -> go.Figure:
    """A grid of the most recently selected points: image, given / true label, corrupted flag, losses, score."""
    items = gallery.get("items", [])
    if not items:
        return go.Figure()
    columns = min(columns, len(items))
    rows = -(-len(items) // columns)

    def name(c: int) -> str:
        return class_names[c] if class_names and 0 <= c < len(class_names) else str(c)

    titles = []
    for it in items:
        flag = "✗ corrupted" if it.get("corrupted") else ""
        label = f"y={name(it['label'])}" + (f" (true {name(it['true_label'])})" if it.get("corrupted") else "")
        titles.append(f"{label} {flag}".strip())
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=titles, horizontal_spacing=0.01, vertical_spacing=0.12)
    for i, it in enumerate(items):
        r, c = divmod(i, columns)
        img = np.asarray(it["image"], dtype=np.uint8)
        score = it.get("score")
        hover = (f"index {it['index']}<br>given {name(it['label'])}, true {name(it['true_label'])}"
                 f"<br>train loss {it['train_loss']:.3f}<br>irreducible loss {it['irreducible_loss']:.3f}"
                 + ("" if score is None else f"<br>score {score:.3f}"))
        if img.ndim == 2:
            trace = go.Heatmap(z=img[::-1], colorscale="gray_r", showscale=False, zmin=0, zmax=255,
                               hovertemplate=hover + "<extra></extra>")
        else:
            trace = go.Image(z=img, hovertemplate=hover + "<extra></extra>")
        fig.add_trace(trace, row=r + 1, col=c + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    for i, ann in enumerate(fig.layout.annotations):
        if i < len(items):
            ann.font = dict(size=10, color="crimson" if items[i].get("corrupted") else "black")
    fig.update_layout(
        title=f"Most recently selected points ({gallery.get('method', '?')}, step {gallery.get('step', '?')})",
        height=150 * rows + 80, margin=dict(l=10, r=10, t=70, b=10),
    )
    return fig


def scatter_figure(scatter: dict) -> go.Figure:
    """Training loss against irreducible loss for one candidate batch, the selected points highlighted.

    Above the diagonal the reducible loss is positive: "learnable, worth learning, not yet learnt" sits at low
    irreducible loss and high training loss (top left); noisy labels have a high irreducible loss (right).
    """
    tl = np.asarray(scatter["train_loss"], dtype=float)
    il = np.asarray(scatter["irreducible_loss"], dtype=float)
    sel = np.asarray(scatter["selected"], dtype=bool)
    cor = np.asarray(scatter.get("corrupted") or [False] * len(tl), dtype=bool)
    fig = go.Figure()
    for mask, name, color, size in (
        (~sel & ~cor, "not selected", "lightgray", 6), (~sel & cor, "not selected (corrupted)", "lightsalmon", 6),
        (sel & ~cor, "selected", "royalblue", 9), (sel & cor, "selected (corrupted)", "crimson", 9),
    ):
        if mask.any():
            fig.add_trace(go.Scatter(x=il[mask], y=tl[mask], mode="markers", name=name,
                                     marker=dict(color=color, size=size, line=dict(width=0.5, color="white"))))
    hi = float(max(tl.max(initial=0), il.max(initial=0))) * 1.05 + 1e-6
    fig.add_trace(go.Scatter(x=[0, hi], y=[0, hi], mode="lines", name="reducible loss = 0",
                             line=dict(dash="dot", color="black", width=1)))
    fig.update_layout(
        title=f"Training loss vs irreducible loss ({scatter.get('method', '?')}, step {scatter.get('step', '?')})",
        xaxis_title="irreducible loss L[y|x; D_ho]", yaxis_title="training loss L[y|x; D_t]", height=450,
    )
    return fig


def curves_figure(curves: dict[str, pd.Series], target: float | None, x_title: str, title: str) -> go.Figure:
    """Test accuracy of every method on one plot, with the uniform baseline's best accuracy as a line."""
    fig = go.Figure()
    for method, s in curves.items():
        dash = "dash" if method.startswith("replay") else None
        width = 3 if method in ("rho_loss", "uniform") else 1.5
        fig.add_trace(go.Scatter(x=s.index, y=s.values, mode="lines", name=method, line=dict(dash=dash, width=width)))
    if target is not None:
        fig.add_hline(y=target, line_dash="dot", annotation_text=f"uniform best {target:.3f}")
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title="test accuracy", height=420)
    return fig


NEVER = "never reached"


def _reached(r: dict, key: str) -> float | None:
    """The speedup of one row, or ``None`` when the method never reached the target (speedup 0, or nan when
    neither did; see ``workbench.goldilocks.speedup``)."""
    v = r.get(key)
    if v is None:
        return None
    v = float(v)
    return v if np.isfinite(v) and v > 0 else None


def speedup_figure(rows: list[dict]) -> go.Figure:
    """Speedup (steps and wall-clock) to the uniform baseline's best accuracy per method: the median over seeds as
    bars (a seed that never reached the target counts as 0), each seed as a dot; a method whose median is 0 is
    marked "never reached" rather than drawn as a zero bar. Replay is measured against uniform on the replay
    architecture."""
    rows = [r for r in rows if r["method"] not in ("uniform", "replay_uniform")]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig = go.Figure()
    never_at: set[str] = set()
    for key, name, color in (("speedup_steps", "in gradient steps", "royalblue"),
                             ("speedup_wallclock", "in wall-clock time", "darkorange")):
        per = {m: [_reached(r, key) for r in rows if r["method"] == m] for m in methods}
        medians = {m: float(np.median([v or 0.0 for v in per[m]])) for m in methods}
        ys = [medians[m] if medians[m] > 0 else None for m in methods]
        texts = [f"{medians[m]:.2f}×" if medians[m] > 0 else NEVER for m in methods]
        never_at |= {m for m in methods if medians[m] <= 0}
        fig.add_trace(go.Bar(x=methods, y=ys, name=name, marker_color=color, offsetgroup=key, text=texts,
                             textposition="outside", cliponaxis=False,
                             hovertemplate="%{x}: %{text}<extra>" + name + "</extra>"))
        if any(len(v) > 1 for v in per.values()):
            xs = [m for m in methods for v in per[m] if v is not None]
            fig.add_trace(go.Scatter(x=xs, y=[v for m in methods for v in per[m] if v is not None],
                                     mode="markers", name=f"{name} (each seed)", offsetgroup=key,
                                     marker=dict(color="black", size=5)))
    for m in methods:  # no zero bar: the words, where the bar would stand
        if m in never_at:
            fig.add_annotation(x=m, y=0, yref="y", text=f"<i>{NEVER}</i>", showarrow=False, yanchor="bottom",
                               font={"color": "#c0392b"})
    fig.add_hline(y=1.0, line_dash="dot", annotation_text="uniform")
    fig.update_layout(barmode="group", scattermode="group", title="Speedup to the uniform baseline's best accuracy",
                      yaxis_title="× faster (median over seeds)", height=400, yaxis_rangemode="tozero")
    return fig


def speedup_rows(run_id: str) -> pd.DataFrame | None:
    """The stored speedup table for display: speedups and steps to target as numbers, or "never reached"."""
    rows = _records(_artifact(run_id, "speedup"))
    if not rows:
        return None
    df = pd.DataFrame(rows)
    for key in ("speedup_steps", "speedup_wallclock"):
        if key in df:
            df[key] = [f"{v:.3f}" if v is not None else NEVER for v in (_reached(r, key) for r in rows)]
    for key in ("steps_to_target", "seconds_to_target"):
        if key in df:
            df[key] = [f"{float(v):.4g}" if v is not None and np.isfinite(float(v)) else NEVER for v in df[key]]
    return df.round(3)


def histogram_figure(hists: dict[str, dict]) -> go.Figure:
    """Score histograms of the candidates and of the selected points (latest interval), one panel per method."""
    names = list(hists)
    fig = make_subplots(rows=1, cols=max(len(names), 1), subplot_titles=names)
    for i, name in enumerate(names):
        h = hists[name]
        edges = np.asarray(h["edges"])
        centres = (edges[:-1] + edges[1:]) / 2
        fig.add_trace(go.Bar(x=centres, y=h["candidates"], name="candidates", marker_color="lightgray",
                             showlegend=i == 0), row=1, col=i + 1)
        fig.add_trace(go.Bar(x=centres, y=h["selected"], name="selected", marker_color="royalblue",
                             showlegend=i == 0), row=1, col=i + 1)
    fig.update_layout(barmode="overlay", title="Selection scores (candidates vs selected)", height=320)
    return fig


def corrupted_share_figure(curves: dict[str, pd.Series], noise_rate: float | None) -> go.Figure:
    fig = go.Figure()
    for method, s in curves.items():
        fig.add_trace(go.Scatter(x=s.index, y=s.values, mode="lines", name=method))
    if noise_rate is not None:
        fig.add_hline(y=noise_rate, line_dash="dot", annotation_text=f"noise rate {noise_rate:.0%}")
    fig.update_layout(title="Share of corrupted points among the selected (cumulative)", xaxis_title="step",
                      yaxis_title="corrupted share", yaxis_tickformat=".0%", height=380)
    return fig


def class_share_figure(tables: dict[str, list[dict]]) -> go.Figure:
    fig = go.Figure()
    for method, rows in tables.items():
        fig.add_trace(go.Bar(x=[r["class"] for r in rows], y=[r["selected_share"] for r in rows], name=method))
    if tables:
        rows = next(iter(tables.values()))
        fig.add_trace(go.Scatter(x=[r["class"] for r in rows], y=[r["data_share"] for r in rows], mode="markers",
                                 name="share in data", marker=dict(symbol="line-ew-open", size=20, color="black")))
    fig.update_layout(barmode="group", title="Per-class share of the selected points (true class)",
                      xaxis_title="class", yaxis_title="share", height=360)
    return fig


# -- registered views (run id -> figure) ---------------------------------------------------------------------
def _target(metrics: pd.DataFrame) -> float | None:
    curves = _curves(metrics, "test/accuracy")
    return float(curves["uniform"].max()) if "uniform" in curves else None


@view(METHOD, "live gallery")
def gallery(run_id: str) -> go.Figure | None:
    data = _artifact(run_id, "gallery")
    return None if not data else gallery_figure(data)


@view(METHOD, "loss vs irreducible loss")
def scatter(run_id: str) -> go.Figure | None:
    data = _artifact(run_id, "scatter")
    return None if not data else scatter_figure(data)


@view(METHOD, "accuracy vs steps")
def accuracy_steps(run_id: str) -> go.Figure | None:
    m = runs.metrics(run_id)
    curves = _curves(m, "test/accuracy")
    return curves_figure(curves, _target(m), "gradient steps", "Test accuracy vs steps") if curves else None


@view(METHOD, "accuracy vs wall-clock")
def accuracy_time(run_id: str) -> go.Figure | None:
    m = runs.metrics(run_id)
    acc, secs = _curves(m, "test/accuracy"), _curves(m, "time_s")
    curves = {k: pd.Series(acc[k].values, index=secs[k].reindex(acc[k].index).values) for k in acc if k in secs}
    return curves_figure(curves, _target(m), "training time (s)", "Test accuracy vs wall-clock") if curves else None


@view(METHOD, "speedup")
def speedups(run_id: str) -> go.Figure | None:
    rows = _records(_artifact(run_id, "speedup"))
    return speedup_figure(rows) if rows else None


@view(METHOD, "corrupted share", key=False)
def corrupted(run_id: str) -> go.Figure | None:
    curves = _curves(runs.metrics(run_id), "select/corrupted_share")
    if not curves:
        return None
    summary = runs.get(run_id).get("summary") or {}
    cfg = runs.get(run_id).get("config") or {}
    rate = summary.get("noise_rate", cfg.get("noise_rate") if cfg.get("noise", "none") != "none" else None)
    return corrupted_share_figure(curves, rate)


def _named(run_id: str, prefix: str) -> dict[str, Any]:
    names = list(dict.fromkeys(a["name"] for a in runs.artifacts(run_id)
                               if a["name"].startswith(prefix) and "@" not in a["name"]))  # first replicate only
    out = {n[len(prefix):]: _artifact(run_id, n) for n in names}
    return dict(sorted(out.items(), key=lambda kv: _ORDER.index(kv[0]) if kv[0] in _ORDER else len(_ORDER)))


@view(METHOD, "score histograms", key=False)
def histograms(run_id: str) -> go.Figure | None:
    hists = {k: v for k, v in _named(run_id, "scores/").items() if v}
    return histogram_figure(hists) if hists else None


@view(METHOD, "per-class share", key=False)
def class_share(run_id: str) -> go.Figure | None:
    tables = {k: _records(v) for k, v in _named(run_id, "class_share/").items() if v is not None}
    return class_share_figure(tables) if tables else None
