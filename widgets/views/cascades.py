"""Views of the ``cascades`` experiment: the trace viewer (one trace's tree of variables at a time,
stepped through with a slider, accepted and rejected traces coloured, weights shown), accuracy against
the number of samples K per inference method, accuracy over STaR rounds (with its control arm) and against the
number of digits. Functions of stored data only; :func:`playground` is the notebook's prompt playground
(ipywidgets over :mod:`workbench.methods.cascades.playground`: edit a prompt, sample from the run's saved model,
see the scored completion).
"""
from __future__ import annotations

import html
import math
from typing import Any

from ..style import colour, fraction_axis, integer_axis
from . import view
from .common import stored, table

METHOD = "cascades"
LABELS = {"forward": "forward sampling (one sample)", "self_consistency": "self-consistency@K",
          "verifier_smc": "verifier-guided SMC, K particles",
          "verifier_rejection": "verifier-guided rejection, K tries",
          "tool": "tool use (calculator)", "direct": "direct answer (no scratchpad)",
          "selection_inference": "selection-inference", "scratchpad": "scratchpad (one sample)"}
ACCEPTED, REJECTED = "#2ca02c", "#d62728"
MAX_TRACES = 60
#: the trace viewer shows these methods first (the most structure to look at)
ORDER = ("verifier_smc", "verifier_rejection", "self_consistency", "tool", "selection_inference", "direct")
SHORT = {"verifier_smc": "smc", "verifier_rejection": "rej", "self_consistency": "sc", "tool": "tool",
         "selection_inference": "si", "direct": "dir"}


# --- the trace viewer ------------------------------------------------------------------------------
def _lp(value: Any) -> str:
    if value is None:
        return "log p n/a"
    if isinstance(value, str):
        return f"log p {value}"
    return f"log p {value:.3f}"


def tree_layout(sites: list[dict]) -> list[tuple[int, int, int | None]]:
    """(row, depth, parent row) of each site: a site hangs under its latest parent (the variables its
    prompt used), or under the site before it when it has none; the first site is the root."""
    index = {s["name"]: i for i, s in enumerate(sites)}
    out: list[tuple[int, int, int | None]] = []
    depth: list[int] = []
    for i, s in enumerate(sites):
        parents = [index[p] for p in s.get("parents") or [] if p in index and index[p] < i]
        parent = max(parents) if parents else (i - 1 if i > 0 else None)
        d = 0 if parent is None else depth[parent] + (1 if parents else 0)
        depth.append(d)
        out.append((i, d, parent))
    return out


def _short(value: Any, width: int = 28) -> str:
    text = repr(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= width else text[: width - 1] + "…'"


def trace_traces(record: dict, trace: dict, visible: bool) -> list[Any]:
    """Plotly traces drawing one trace as a tree: edges, then nodes labelled name = value (log p)."""
    import plotly.graph_objects as go

    sites = trace.get("sites", [])
    layout = tree_layout(sites)
    colour = ACCEPTED if trace.get("accepted") else REJECTED
    ex, ey = [], []
    for row, depth, parent in layout:
        if parent is not None:
            pd_ = layout[parent][1]
            ex += [pd_, pd_, depth, None]
            ey += [-parent, -row, -row, None]
    edges = go.Scatter(x=ex, y=ey, mode="lines", line={"color": "#bbbbbb", "width": 1}, hoverinfo="skip",
                       showlegend=False, visible=visible)
    symbols = {"sample": "circle", "observe": "diamond", "factor": "square", "reject": "x", "log": "triangle-right"}
    xs = [d for _, d, _ in layout]
    ys = [-r for r, _, _ in layout]
    text = [f"{s['name']} = {_short(s.get('value'))}  ({_lp(s.get('log_prob'))})" for s in sites]
    hover = [f"<b>{html.escape(s['name'])}</b> ({s['kind']}{', observed' if s.get('observed') else ''})<br>"
             f"value: {html.escape(repr(s.get('value')))}<br>{_lp(s.get('log_prob'))}"
             + (f"<br>prompt: …{html.escape(str((s.get('dist') or {}).get('prompt', ''))[-60:])!s}"
                if (s.get("dist") or {}).get("prompt") else "") for s in sites]
    nodes = go.Scatter(x=xs, y=ys, mode="markers+text", text=text, textposition="middle right",
                       textfont={"family": "monospace", "size": 11},
                       marker={"size": 11, "color": [colour if s["kind"] != "observe" else "#1f77b4" for s in sites],
                               "symbol": [symbols.get(s["kind"], "circle") for s in sites]},
                       hovertext=hover, hoverinfo="text", showlegend=False, visible=visible)
    return [edges, nodes]


def _title(record: dict, trace: dict, i: int, n: int) -> str:
    status = "accepted" if trace.get("accepted") else f"rejected{': ' + trace['reason'] if trace.get('reason') else ''}"
    weight = trace.get("weight", 0.0)
    return (f"{record['method']} (K={record['k']}) · {record['question']} = {record['truth']} · "
            f"trace {i + 1}/{n}: {status}, weight {weight:.3g}, answer {trace.get('value')!r}"
            f"{' ✓' if trace.get('correct') else ' ✗'} · method's answer {record.get('answer')!r}")


def trace_figure(problems: list[dict], limit: int = MAX_TRACES, active: int = 0) -> Any | None:
    """The stored traces, one at a time (slider; ``active`` shown first), each as a tree of its variables;
    methods in ``ORDER``, at most ``limit`` traces."""
    import plotly.graph_objects as go

    rank = {m: i for i, m in enumerate(ORDER)}
    problems = sorted(problems, key=lambda r: rank.get(r.get("method"), len(ORDER)))
    items = [(rec, tr) for rec in problems for tr in rec.get("traces", [])][:limit]
    if not items:
        return None
    active = min(max(0, active), len(items) - 1)
    fig = go.Figure()
    titles, depth, rows = [], 1, 1
    for i, (rec, tr) in enumerate(items):
        for t in trace_traces(rec, tr, visible=i == active):
            fig.add_trace(t)
        n = sum(1 for r, _ in items if r is rec)
        j = sum(1 for r, _ in items[:i] if r is rec)
        titles.append(_title(rec, tr, j, n))
        layout = tree_layout(tr.get("sites", []))
        depth = max(depth, max((d for _, d, _ in layout), default=0) + 1)
        rows = max(rows, len(layout))
    steps = []
    for i in range(len(items)):
        vis = [False] * (2 * len(items))
        vis[2 * i] = vis[2 * i + 1] = True
        rec = items[i][0]
        steps.append({"method": "update", "label": f"{SHORT.get(rec['method'], rec['method'][:4])} {i + 1}",
                      "args": [{"visible": vis}, {"title.text": titles[i]}]})
    fig.update_layout(
        title={"text": titles[active], "font": {"size": 13}}, height=max(320, 70 + 30 * rows),
        sliders=[{"active": active, "steps": steps, "currentvalue": {"prefix": "trace "}, "pad": {"t": 30}}],
        xaxis={"visible": False, "range": [-0.3, depth + 4.5]},
        yaxis={"visible": False, "range": [-rows + 0.4, 0.6]},
        margin={"l": 10, "r": 10, "t": 60, "b": 10}, plot_bgcolor="white",
        annotations=[{"text": "green: accepted · red: rejected · blue ◆: observation", "showarrow": False,
                      "xref": "paper", "yref": "paper", "x": 1, "y": 1.02, "xanchor": "right", "font": {"size": 11}}])
    return fig


@view(METHOD, "trace viewer")
def trace_viewer(run_id: str) -> Any | None:
    """The stored traces of the run (a few test problems per method), stepped through with the slider:
    each variable with its value and log-prob, under the variables its prompt used."""
    data = stored(run_id, "traces")
    if not data:
        return None
    return trace_figure(data.get("problems", []))


# --- accuracy figures --------------------------------------------------------------------------------
def accuracy_figure(rows: Any, title: str = "exact-match accuracy against K") -> Any | None:
    """Accuracy against K (samples, particles or tries) per inference method; single-sample methods as
    markers at K = 1."""
    import plotly.graph_objects as go

    df = table(rows)
    if not len(df):
        return None
    fig = go.Figure()
    for method, group in df.groupby("method", sort=False):
        group = group.drop_duplicates("k", keep="last").sort_values("k")
        c = colour(method)
        many = len(group) > 1
        fig.add_trace(go.Scatter(
            x=group["k"], y=group["accuracy"], mode="lines+markers" if many else "markers",
            name=LABELS.get(method, method), line={"color": c},
            marker={"size": 8 if many else 12, "symbol": "circle" if many else "diamond", "color": c},
            customdata=group["lm_rows"] if "lm_rows" in group else None,
            hovertemplate=f"{method}<br>K=%{{x}}: %{{y:.3f}}<br>LM rows %{{customdata}}<extra></extra>"))
    ks = sorted(set(int(k) for k in df["k"]))
    fig.update_layout(title={"text": title}, height=440,
                      xaxis={"title": {"text": "K (samples / particles / tries per problem)"}, "type": "log",
                             "tickmode": "array", "tickvals": ks, "ticktext": [str(k) for k in ks]},
                      yaxis={"title": {"text": "exact-match accuracy"}, **fraction_axis(df["accuracy"])})
    return fig


@view(METHOD, "accuracy vs K")
def accuracy_vs_k(run_id: str) -> Any | None:
    """The self-consistency curve and the verifier-guided curves (accuracy on held-out longer problems
    against K), with the single-sample methods (forward, direct, tool, selection-inference) at K = 1."""
    rows = stored(run_id, "accuracy")
    return None if rows is None else accuracy_figure(rows)


STAR_ARMS = {"star": "STaR (own rationales + ground truth)",
             "control": "control (ground truth only, same steps and lr)"}


@view(METHOD, "STaR rounds")
def star_rounds(run_id: str) -> Any | None:
    """Accuracy after each STaR round (round 0: before any) for STaR and for its control arm (the same steps,
    learning rate and ground-truth batches without the rationales), and the rationales collected so far as bars.
    The accuracies sit on the overlaying axis (drawn above the bars, never hidden by them), on the left with ticks
    0, 0.2, …, 1 of their own (never synced to the bars' counts); rounds are integers."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows = stored(run_id, "star")
    if rows is None:
        return None
    df = table(rows)
    if not len(df):
        return None
    if "arm" not in df:  # a run from before the control arm
        df = df.assign(arm="star")
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    star = df[df["arm"] == "star"]
    fig.add_trace(go.Bar(x=star["round"], y=star["rationales"], name="rationales collected (all rounds)",
                         marker={"color": "#c7dcef"}), secondary_y=False)
    for arm, label in STAR_ARMS.items():
        part = df[df["arm"] == arm]
        if len(part):
            fig.add_trace(go.Scatter(x=part["round"], y=part["accuracy"], mode="lines+markers",
                                     name=f"{label}: test accuracy (one sample)", legendgroup=arm,
                                     line={"color": colour(arm), "width": 3 if arm == "star" else 2,
                                           "dash": "solid" if arm == "star" else "dash"}), secondary_y=True)
    fig.update_layout(title={"text": "STaR against its control: accuracy over rounds"}, height=400,
                      xaxis={"title": {"text": "STaR round"}, **integer_axis(df["round"])})
    fig.update_yaxes(title_text="exact-match accuracy", range=[0, 1.02], tickmode="linear", tick0=0, dtick=0.2,
                     side="left", secondary_y=True)
    fig.update_yaxes(title_text="rationales", side="right", showgrid=False, rangemode="tozero", tickformat="d",
                     secondary_y=False)
    return fig


@view(METHOD, "accuracy vs digits", key=False)
def accuracy_vs_digits(run_id: str) -> Any | None:
    """Single-sample accuracy against the number of digits: direct answer, scratchpad, calculator (written as wide
    as the run writes them), and, as open diamonds, the tool-use claim's operands longer than any in training."""
    import plotly.graph_objects as go

    rows = stored(run_id, "digits")
    if rows is None:
        return None
    df = table(rows)
    if not len(df):
        return None
    fig = go.Figure()
    for name, group in df.groupby("format", sort=False):
        group = group.sort_values("digits")
        fig.add_trace(go.Scatter(x=group["digits"], y=group["accuracy"], mode="lines+markers",
                                 name=LABELS.get(name, name), line={"color": colour(name)}))
    long = stored(run_id, "long")  # the tool-use claim: operands longer than any in training, unpadded
    if long is not None and len(table(long)):
        for r in table(long).itertuples():
            fig.add_trace(go.Scatter(x=[r.digits], y=[r.accuracy], mode="markers",
                                     name=f"{LABELS.get(r.format, r.format)}: longer than training, unpadded",
                                     marker={"color": colour(r.format), "size": 12, "symbol": "diamond-open",
                                             "line": {"width": 2}}))
    fig.update_layout(title={"text": "one-sample accuracy against the number of digits"}, height=400,
                      xaxis={"title": {"text": "digits of both operands"}, **integer_axis(df["digits"])},
                      yaxis={"title": {"text": "exact-match accuracy"}, **fraction_axis(df["accuracy"])})
    return fig


# --- the prompt playground (notebook only) -------------------------------------------------------------
def completion_html(prompt: str, text: str, token_logps: list[tuple[str, float]], total: float) -> str:
    """The prompt in grey, then each completion character shaded by its probability, and the total."""
    spans = []
    for tok, lp in token_logps:
        p = math.exp(lp)
        shade = int(255 - 120 * p)
        spans.append(f"<span title='log p {lp:.3f}' style='background: rgb(255,{shade},{shade})'>"
                     f"{html.escape(tok).replace(chr(10), '⏎<br>')}</span>")
    return (f"<pre style='font-size: 13px'><span style='color:#888'>{html.escape(prompt)}</span>{''.join(spans)}</pre>"
            f"<div>log p(completion | prompt) = <b>{total:.3f}</b> (p = {math.exp(total):.3g}); "
            f"{len(text)} characters</div>")


def playground(run_id: str, prompt: str | None = None) -> Any:
    """An ipywidgets playground on the run's saved model (``runs.load_model(run_id, "lm")``): edit the prompt and
    the decoding settings, sample a completion (shown with each character's probability and the total log-prob
    under the String distribution), or type a completion and score it. The first prompt is a held-out question
    written the way the run wrote them. The sampling and scoring are :mod:`workbench.methods.cascades.playground`."""
    import ipywidgets as w

    from workbench import runs
    from workbench.methods.cascades import playground as pg

    lm = runs.load_model(run_id, "lm")
    if prompt is None:
        prompt = pg.first_prompt(runs.get(run_id)["config"])
    box = w.Textarea(value=prompt, description="prompt", layout={"width": "60%", "height": "70px"})
    stop = w.Text(value="\\n", description="stop")
    max_tokens = w.IntSlider(value=12, min=1, max=80, description="max tokens")
    temperature = w.FloatLogSlider(value=1.0, base=10, min=-1.3, max=0.7, description="temperature")
    seed = w.IntText(value=0, description="seed")
    scored = w.Text(value="", description="completion", placeholder="type one to score it")
    out = w.HTML()
    sample_btn, score_btn = w.Button(description="sample", button_style="primary"), w.Button(description="score")

    def settings() -> dict[str, Any]:
        stops = [s.encode().decode("unicode_escape") for s in stop.value.split(",") if s]
        return {"stop": stops, "max_tokens": max_tokens.value, "temperature": temperature.value}

    def show(result: Any) -> None:
        out.value = completion_html(result.prompt, result.text, result.tokens, result.total)

    def on_sample(_: Any) -> None:
        result = pg.sample(lm, box.value, seed=seed.value, **settings())
        seed.value += 1
        scored.value = result.text
        show(result)

    sample_btn.on_click(on_sample)
    score_btn.on_click(lambda _: show(pg.score(lm, box.value, scored.value, **settings())))
    on_sample(None)  # a first sample, so the playground (and a static export of it) shows something

    class Playground(w.VBox):
        def _repr_mimebundle_(self, **kwargs: Any) -> Any:
            """Live in a notebook front end; in a static report, the last sample as HTML instead of a repr."""
            data = super()._repr_mimebundle_(**kwargs)
            data["text/plain"] = "prompt playground (interactive with a running kernel)"
            data["text/html"] = ("<p><b>prompt playground</b> (interactive with a running kernel): the last "
                                 f"sample</p>{out.value}")
            return data

    return Playground([box, w.HBox([stop, max_tokens]), w.HBox([temperature, seed]),
                       w.HBox([sample_btn, scored, score_btn]), out])
