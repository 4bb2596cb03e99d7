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

from widgets.style import colour
from widgets.views import view
from widgets.views.common import reliability_figure
from workbench import runs

METHOD = "goldilocks"
#: the live-curve panels worth watching in a comparison (a dashboard's ``metrics=``; all metrics otherwise)
LIVE_METRICS = ["uniform/test_subset/accuracy", "rho_loss/test_subset/accuracy", "rho_loss/train/loss",
                "uniform/select/corrupted_share_recent", "rho_loss/select/corrupted_share_recent",
                "train_loss/select/corrupted_share_recent", "rho_loss/diag/confidence_gap_corrupted"]
#: the accuracy measured during training (a fixed test subset); older runs logged it as ``test/accuracy``
ACCURACY = "test_subset/accuracy"


def _colour(method: str, i: int = 0) -> str:
    """The method's colour in every view (:func:`widgets.style.colour`: uniform grey, RHO-LOSS red, ...)."""
    return colour(method)


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


def _accuracy_curves(metrics: pd.DataFrame) -> dict[str, pd.Series]:
    """Test accuracy during training per method: the test-subset curve, or (runs before it existed) the
    ``test/accuracy`` curve logged at every evaluation."""
    return _curves(metrics, ACCURACY) or _curves(metrics, "test/accuracy")


def _final(metrics: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """``{method: (step, accuracy on the whole test set)}`` where the run logged both curves."""
    if not len(_curves(metrics, ACCURACY)):
        return {}
    return {m: (float(s.index[-1]), float(s.iloc[-1])) for m, s in _curves(metrics, "test/accuracy").items()}


def _eval_points(run_id: str) -> str:
    """What the accuracy curves were measured on: the whole test set or a fixed subset of it."""
    ev = _artifact(run_id, "evaluation")
    if ev:
        if ev["points"] >= ev["test_points"]:
            return f"the whole test set ({ev['test_points']} points)"
        return f"a fixed subset of {ev['points']} of the {ev['test_points']} test points"
    return "the test set"


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


def curves_figure(curves: dict[str, pd.Series], target: float | None, x_title: str, title: str,
                  final: dict[str, tuple[float, float]] | None = None) -> go.Figure:
    """Test accuracy of every method on one plot, with the uniform baseline's best accuracy as a line and, when
    given, each method's accuracy on the whole test set at the end as a diamond (``final``: method -> (x, acc))."""
    fig = go.Figure()
    colours = {}
    for i, (method, s) in enumerate(curves.items()):
        dash = "dash" if method.startswith("replay") else None
        width = 3 if method in ("rho_loss", "uniform") else 1.5
        colours[method] = _colour(method, i)
        fig.add_trace(go.Scatter(x=s.index, y=s.values, mode="lines", name=method, legendgroup=method,
                                 line=dict(dash=dash, width=width, color=colours[method])))
    for method, (x, acc) in (final or {}).items():
        if method in colours:
            fig.add_trace(go.Scatter(x=[x], y=[acc], mode="markers", name=f"{method}: whole test set", legendgroup=method,
                                     showlegend=False, marker=dict(symbol="diamond", size=10, color=colours[method],
                                                                   line=dict(width=1, color="black")),
                                     hovertemplate=f"{method}, whole test set: %{{y:.4f}}<extra></extra>"))
    if target is not None:
        fig.add_hline(y=target, line_dash="dot", annotation_text=f"uniform best {target:.3f}")
        far = [m for m, s in curves.items() if len(s) and float(s.max()) < target - ZOOM]
        if far:  # a method far below (training-loss selection under noise) would squash the others into a line
            top = max(float(s.max()) for s in curves.values() if len(s))
            fig.update_yaxes(range=[max(0.0, target - ZOOM), min(1.0, top + 0.01)])
            fig.add_annotation(text=f"zoomed near the uniform baseline ({', '.join(far)} below the axis; "
                                    "double-click to see everything)", xref="paper", yref="paper", x=0, y=1.0,
                               xanchor="left", yanchor="bottom", showarrow=False, font=dict(size=11, color="#555"))
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title="test accuracy", height=420)
    return fig


NEVER = "never reached"
#: the accuracy curves zoom to [uniform best − ZOOM, top] when a method stays entirely below that
ZOOM = 0.15


def _reached(r: dict, key: str) -> float | None:
    """The speedup of one row, or ``None`` when the method never reached the target (speedup 0, or nan when
    neither did; see ``workbench.methods.goldilocks.speedup``)."""
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


def corrupted_share_figure(curves: dict[str, pd.Series], noise_rate: float | None,
                           title: str = "Share of corrupted points among the selected, per evaluation interval") -> go.Figure:
    """One panel, methods overlaid: the share of corrupted points among the points each method selected in each
    interval between evaluations (so a share that starts low and rises shows as such), with the noise rate."""
    fig = go.Figure()
    for i, (method, s) in enumerate(curves.items()):
        fig.add_trace(go.Scatter(x=s.index, y=s.values, mode="lines+markers" if len(s) < 30 else "lines", name=method,
                                 line=dict(color=_colour(method, i), width=3 if method == "rho_loss" else 1.5,
                                           dash="dash" if method.startswith("replay") else None)))
    if noise_rate is not None:
        fig.add_hline(y=noise_rate, line_dash="dot", annotation_text=f"noise rate {noise_rate:.0%}")
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="corrupted share of the selected points",
                      yaxis_tickformat=".0%", yaxis_rangemode="tozero", height=400)
    return fig


DIAG_PANELS = (
    ("confidence_gap_corrupted", "confidence gap on corrupted points (target − IL model)", "~g"),
    ("reducible_loss_corrupted", "mean reducible loss, corrupted points", "~g"),
    ("reducible_loss_clean", "mean reducible loss, clean points", "~g"),
    ("rho_pick_corrupted_share", "corrupted share of RHO-LOSS's pick from the probe set", ".1%"),
)


def diagnostics_figure(panels: dict[str, dict[str, pd.Series]], il_confidence: float | None = None) -> go.Figure:
    """Four panels over training steps, methods overlaid (each method's own target model): the gap between the
    target's and the IL model's confidence (max probability) on corrupted points, the mean reducible loss
    (Eq. 3) of corrupted and of clean points, and the share of corrupted points RHO-LOSS's rule would pick from
    the probe set with that target. A positive gap goes with corrupted points' reducible loss rising."""
    fig = make_subplots(rows=2, cols=2, subplot_titles=[t for _, t, _ in DIAG_PANELS], vertical_spacing=0.16,
                        horizontal_spacing=0.1)
    methods = list(dict.fromkeys(m for curves in panels.values() for m in curves))
    for p, (key, _, fmt) in enumerate(DIAG_PANELS):
        r, c = divmod(p, 2)
        for i, m in enumerate(methods):
            s = panels.get(key, {}).get(m)
            if s is None:
                continue
            fig.add_trace(go.Scatter(x=s.index, y=s.values, mode="lines", name=m, legendgroup=m, showlegend=p == 0,
                                     line=dict(color=_colour(m, i), width=3 if m == "rho_loss" else 1.5,
                                               dash="dash" if m.startswith("replay") else None)),
                          row=r + 1, col=c + 1)
        fig.update_yaxes(tickformat=fmt, row=r + 1, col=c + 1)
        fig.update_xaxes(title_text="step", row=r + 1, col=c + 1)
    for row, col in ((1, 1), (1, 2), (2, 1)):
        fig.add_hline(y=0, line_dash="dot", line_color="black", row=row, col=col)
    title = "Why corrupted points are (not) selected: diagnostics on a fixed subset of the training part"
    if il_confidence is not None:
        title += f"<br><sup>IL model's mean confidence on corrupted points: {il_confidence:.2f}</sup>"
    fig.update_layout(title=title, height=640, margin=dict(t=110))
    return fig


def rl_histogram_figure(frames: dict[str, list[dict]], max_frames: int = 40) -> go.Figure:
    """Reducible-loss distribution of clean and corrupted points over training, one panel per method (at most
    two: rho_loss and uniform first), a slider over the evaluation steps. Counts are normalised to a density per
    group, so the corrupted minority is visible next to the clean majority."""
    names = list(frames)[:2]
    steps = sorted({h["step"] for n in names for h in frames[n]})
    if len(steps) > max_frames:  # evenly spaced, always with the last one
        pick = np.linspace(0, len(steps) - 1, max_frames).round().astype(int)
        steps = [steps[i] for i in sorted(set(pick.tolist()))]
    by = {n: {h["step"]: h for h in frames[n]} for n in names}
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=[f"{n}'s target model" for n in names],
                        shared_yaxes=True, horizontal_spacing=0.06)
    owner: list[int] = []  # the slider position each trace belongs to
    for k, step in enumerate(steps):
        for j, n in enumerate(names):
            earlier = [s for s in by[n] if s <= step]
            if not earlier:
                continue
            h = by[n][max(earlier)]  # a method's latest histogram at or before this step
            edges = np.asarray(h["edges"], dtype=float)
            centres, width = (edges[:-1] + edges[1:]) / 2, float(edges[1] - edges[0])
            for group, fill in (("clean", "royalblue"), ("corrupted", "crimson")):
                counts = np.asarray(h[group], dtype=float)
                density = counts / max(counts.sum(), 1.0) / width
                fig.add_trace(go.Bar(x=centres, y=density, width=width, name=group, marker_color=fill, opacity=0.6,
                                     legendgroup=group, showlegend=j == 0, visible=k == len(steps) - 1,
                                     hovertemplate=f"{group}, step {step}: %{{y:.3f}} at %{{x:.1f}}<extra></extra>"),
                              row=1, col=j + 1)
                owner.append(k)
    sliders = [{"active": len(steps) - 1, "currentvalue": {"prefix": "step "}, "pad": {"t": 50},
                "steps": [{"label": str(st), "method": "update", "args": [{"visible": [o == k for o in owner]}]}
                          for k, st in enumerate(steps)]}]
    for j in range(len(names)):
        fig.add_vline(x=0, line_dash="dot", line_color="black", row=1, col=j + 1)
        fig.update_xaxes(title_text="reducible loss L[y|x; D_t] − L[y|x; D_ho] (nats)", row=1, col=j + 1)
    fig.update_yaxes(title_text="density", row=1, col=1)
    fig.update_layout(barmode="overlay", sliders=sliders, height=470,
                      title="Reducible loss of clean vs corrupted points over training (slider: evaluation step)")
    return fig


def class_share_figure(tables: dict[str, list[dict]]) -> go.Figure:
    fig = go.Figure()
    for method, rows in tables.items():
        fig.add_trace(go.Bar(x=[r["class"] for r in rows], y=[r["selected_share"] for r in rows], name=method,
                             marker_color=colour(method)))
    if tables:
        rows = next(iter(tables.values()))
        fig.add_trace(go.Scatter(x=[r["class"] for r in rows], y=[r["data_share"] for r in rows], mode="markers",
                                 name="share in data", marker=dict(symbol="line-ew-open", size=20, color="black")))
    fig.update_layout(barmode="group", title="Per-class share of the selected points (true class)",
                      xaxis={"title": {"text": "class"}, "type": "category"}, yaxis_title="share", height=360)
    return fig


# -- registered views (run id -> figure) ---------------------------------------------------------------------
def _target(metrics: pd.DataFrame) -> float | None:
    curves = _accuracy_curves(metrics)
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
    curves = _accuracy_curves(m)
    title = f"Test accuracy on {_eval_points(run_id)} vs steps (diamonds: the whole test set at the end)"
    return curves_figure(curves, _target(m), "gradient steps", title, _final(m)) if curves else None


@view(METHOD, "accuracy vs wall-clock")
def accuracy_time(run_id: str) -> go.Figure | None:
    m = runs.metrics(run_id)
    acc, secs = _accuracy_curves(m), _curves(m, "time_s")
    curves = {k: pd.Series(acc[k].values, index=secs[k].reindex(acc[k].index).values) for k in acc if k in secs}
    return curves_figure(curves, _target(m), "training time (s)",
                         f"Test accuracy on {_eval_points(run_id)} vs wall-clock") if curves else None


@view(METHOD, "speedup")
def speedups(run_id: str) -> go.Figure | None:
    rows = _records(_artifact(run_id, "speedup"))
    return speedup_figure(rows) if rows else None


def _noise_rate(run_id: str) -> float | None:
    record = runs.get(run_id)
    summary, cfg = record.get("summary") or {}, record.get("config") or {}
    if "noise_rate" in summary:
        return summary["noise_rate"]
    return cfg.get("noise_rate") if cfg.get("noise", "none") != "none" else None


@view(METHOD, "corrupted share")
def corrupted(run_id: str) -> go.Figure | None:
    m = runs.metrics(run_id)
    curves = _curves(m, "select/corrupted_share_recent")
    title = "Share of corrupted points among the selected, per evaluation interval"
    if not curves:  # runs from before the per-interval share: the cumulative share
        curves, title = _curves(m, "select/corrupted_share"), "Share of corrupted points among the selected (cumulative)"
    return corrupted_share_figure(curves, _noise_rate(run_id), title) if curves else None


@view(METHOD, "diagnostics over training")
def diagnostics(run_id: str) -> go.Figure | None:
    m = runs.metrics(run_id)
    panels = {key: _curves(m, f"diag/{key}") for key, _, _ in DIAG_PANELS}
    if not any(panels.values()):
        return None
    il = _curves(m, "diag/il_confidence_corrupted")
    il_conf = float(next(iter(il.values())).iloc[-1]) if il else None
    return diagnostics_figure(panels, il_conf)


@view(METHOD, "reducible loss: clean vs corrupted")
def rl_histograms(run_id: str) -> go.Figure | None:
    stored_steps: dict[str, list[int]] = {}
    for a in runs.artifacts(run_id):
        name = a["name"]
        if name.startswith("rl_hist/") and "@" not in name and a.get("step") is not None:
            stored_steps.setdefault(name[len("rl_hist/"):], []).append(int(a["step"]))
    first = ("rho_loss", "uniform")
    methods = sorted(stored_steps, key=lambda k: (first.index(k) if k in first else len(first),
                                                  _ORDER.index(k) if k in _ORDER else len(_ORDER)))[:2]
    frames = {m: [h for h in (_artifact_at(run_id, f"rl_hist/{m}", st) for st in sorted(set(stored_steps[m]))) if h]
              for m in methods}
    frames = {k: v for k, v in frames.items() if v}
    return rl_histogram_figure(frames) if frames else None


def _artifact_at(run_id: str, name: str, step: int) -> Any | None:
    try:
        return runs.artifact(run_id, name, step=step)
    except KeyError:
        return None


@view(METHOD, "irreducible-loss model calibration", key=False)
def il_calibration(run_id: str) -> go.Figure | None:
    rows = _records(_artifact(run_id, "il_model/reliability"))
    if not rows:
        return None
    table = ([{**r, "variant": "against the given (noisy) labels"} for r in rows]
             + [{**r, "accuracy": r["accuracy_clean_labels"], "variant": "against the clean labels"} for r in rows])
    m = runs.metrics(run_id)
    last = {n: float(f.sort_values("step")["value"].iloc[-1]) for n, f in m[m["name"].str.startswith("il_model/")]
            .groupby("name")} if len(m) else {}
    acc, acc_c = last.get("il_model/train_part/accuracy"), last.get("il_model/train_part/accuracy_clean_labels")
    title = "Irreducible-loss model on the training part"
    if acc is not None and acc_c is not None:
        title += f": accuracy {acc:.3f} (given labels), {acc_c:.3f} (clean labels)"
    return reliability_figure(table, title)


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
