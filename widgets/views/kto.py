"""Views of the ``kto`` experiment: alignment curves (loss, KL, implied rewards), the reward-rate vs
sampled-KL frontier of every method, and the sampled completions with the desirable ones highlighted.
Functions of stored data only (live, finished or remote runs)."""
from __future__ import annotations

from typing import Any

from ..style import COLOURS, colour, fraction_axis
from . import view
from .common import stored, table

#: the methods a run compares (each with its colour from :mod:`widgets.style`)
METHODS = ("reference", "kto", "dpo", "cdpo", "ipo", "slic", "csft", "ppo_offline", "sft", "kto_z0", "kto_drop")


def _metrics(run_id: str) -> Any:
    from workbench import runs

    return runs.metrics(run_id)


def _split(name: str) -> tuple[str, str] | None:
    """'kto/rewards/chosen' → ('kto', 'rewards/chosen'); None for names outside a method."""
    method, _, rest = name.partition("/")
    return (method, rest) if rest and method in METHODS else None


ALIGNMENT_PANELS = ("loss", "rewards/chosen", "rewards/rejected", "kl")


@view("kto", "alignment curves")
def alignment_curves(run_id: str) -> Any:
    """One panel per quantity with every method overlaid (one colour per method, click the legend to hide one):
    batch loss, the implied rewards β·log πθ/πref of chosen and rejected examples, and KTO's reference point z₀
    (Eq. 7), against the method's own alignment step. z₀ = max(0, batch KL estimate on mismatched pairs): when
    it stayed 0 the whole run, its panel is left out and the title says so."""
    from workbench import runs

    from ..curves import Series, static_figure

    frame = _metrics(run_id)
    if not len(frame):
        return None
    keep = frame["name"].map(lambda n: (_split(str(n)) or ("", ""))[1] in ALIGNMENT_PANELS)
    frame = frame[keep]
    if not len(frame):
        return None
    kl = frame[frame["name"].str.endswith("/kl")]["value"]
    note = ""
    if len(kl) and float(kl.abs().max()) == 0.0:
        frame = frame[~frame["name"].str.endswith("/kl")]
        note = (" · z₀ (KTO's reference point) stayed 0: its KL estimate on mismatched pairs was ≤ 0, "
                "and z₀ = max(0, ·)")
    series = Series()
    series.add_frame(runs.get(run_id)["id"], frame)
    fig = static_figure(series, title=f"alignment curves{note}", min_points=2)
    fig.update_xaxes(title_text="")
    import re

    for a in fig.layout.annotations:
        a.text = re.sub(r"<b>(\w+/)?kl</b>", "<b>z₀: KTO's reference point (Eq. 7)</b>", a.text or "")
    return fig


@view("kto", "reward rate vs KL")
def frontier(run_id: str) -> Any:
    """Desirable rate of sampled completions against the sampled KL(πθ‖πref), one path per method
    (evaluations during training; the last point is marked). The fair comparison: higher and further left."""
    import plotly.graph_objects as go

    frame = _metrics(run_id)
    if not len(frame):
        return None
    evals = frame[frame["name"].str.contains(r"/eval/(?:reward_rate|kl|kl_se)$")]
    if not len(evals):
        return None
    evals = evals.assign(method=evals["name"].str.split("/").str[0],
                         metric=evals["name"].str.split("/").str[-1])
    wide = evals.pivot_table(index=["method", "step"], columns="metric", values="value", aggfunc="last",
                             dropna=False).reset_index()
    if "reward_rate" not in wide or not wide["reward_rate"].notna().any():
        return None  # no reward function (user data without --reward): the held-out view measures alignment
    fig = go.Figure()
    for method, group in wide.groupby("method", sort=False):
        group = group.dropna(subset=["kl", "reward_rate"]).sort_values("step")
        if not len(group):
            continue
        c = colour(method)
        se = group["kl_se"].fillna(0) if "kl_se" in group else None
        fig.add_trace(go.Scatter(x=group["kl"], y=group["reward_rate"], mode="lines+markers", name=method,
                                 legendgroup=method, line={"color": c, "width": 1}, marker={"size": 5},
                                 error_x=None if se is None else {"type": "data", "array": se, "thickness": 1,
                                                                  "width": 2, "color": c},
                                 customdata=group["step"],
                                 hovertemplate=f"{method}<br>step %{{customdata}}<br>KL %{{x:.3g}} nats"
                                               "<br>desirable %{y:.1%}<extra></extra>"))
        last = group.iloc[-1]
        fig.add_trace(go.Scatter(x=[last["kl"]], y=[last["reward_rate"]], mode="markers+text", text=[method],
                                 textposition="top center", legendgroup=method, showlegend=False,
                                 marker={"color": c, "size": 11, "symbol": "diamond"}, hoverinfo="skip"))
    ref = stored(run_id, "frontier")
    if ref is not None:
        rows = table(ref)
        base = rows[rows["method"] == "reference"]
        if len(base):
            fig.add_hline(y=float(base["reward_rate"].iloc[0]), line={"dash": "dot", "color": COLOURS["reference"]},
                          annotation_text="reference", annotation_position="bottom right")
    fig.update_layout(title={"text": "desirable rate vs sampled KL(πθ‖πref) (bars: ± 1 standard error of the KL)"},
                      height=420, xaxis={"title": {"text": "sampled KL (nats per completion)"}},
                      yaxis={"title": {"text": "desirable rate of samples"}, **fraction_axis(wide["reward_rate"])})
    return fig


HELDOUT_PANELS = ("rewards/accuracy", "rewards/margins", "logps_change/chosen", "logps_change/rejected")


@view("kto", "held-out implied rewards")
def heldout_rewards(run_id: str) -> Any:
    """What alignment did to feedback rows never trained on, with no reward function: the implied-reward
    accuracy (desirable ranked above undesirable; 0.5 = chance), the reward margin, and how far each method moved
    the log-probability of held-out desirable and undesirable completions from the reference's."""
    from workbench import runs

    from ..curves import Series, static_figure

    frame = _metrics(run_id)
    if not len(frame):
        return None
    frame = frame[frame["name"].map(lambda n: any(str(n).endswith("/heldout/" + p) for p in HELDOUT_PANELS))]
    if not len(frame):
        return None
    series = Series()
    series.add_frame(runs.get(run_id)["id"], frame)
    return static_figure(series, title="held-out implied rewards (β·log πθ/πref) and log-prob changes", min_points=1)


@view("kto", "sampled completions")
def samples_table(run_id: str) -> Any:
    """Completions sampled from the reference and the current policy; desirable ones highlighted."""
    import plotly.graph_objects as go

    rows = stored(run_id, "samples")
    if rows is None:
        return None
    df = table(rows)
    if not len(df):
        return None
    fill = ["white" if d is None or d != d else ("#d9f2d9" if bool(d) else "#f7dede") for d in df["desirable"]]
    columns = ["source", "prompt", "completion", "score", "desirable"]
    values = [df[c].astype(str).tolist() for c in columns]
    fig = go.Figure(go.Table(header={"values": columns, "fill_color": "#eeeeee", "align": "left"},
                             cells={"values": values, "fill_color": [fill] * len(columns), "align": "left"},
                             columnwidth=[1.2, 1, 5, 0.8, 1]))
    judged = df["desirable"].map(lambda d: d is not None and d == d).any()
    title = "sampled completions (green: desirable)" if judged else "sampled completions (no reward function: not judged)"
    fig.update_layout(title={"text": title}, height=min(900, 120 + 26 * len(df)))
    return fig
