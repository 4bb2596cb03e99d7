"""Views of the ``classify`` experiment: test accuracy and calibration curves, confusion matrix,
per-class accuracy, reliability diagram. Functions of stored data only (live, finished or remote runs)."""
from __future__ import annotations

from typing import Any

import numpy as np

from . import view
from .common import curves, stored, table


@view("classify", "test accuracy and calibration")
def test_curves(run_id: str) -> Any:
    """Test accuracy, expected calibration error (15 bins) and NLL over training."""
    return curves(run_id, ["test/accuracy", "test/ece", "test/nll"], title="test accuracy and calibration")


@view("classify", "confusion matrix")
def confusion(run_id: str) -> Any:
    """Row-normalised confusion matrix (true class × predicted class) on the test set."""
    import plotly.graph_objects as go

    counts = stored(run_id, "confusion")
    if counts is None:
        return None
    counts = np.asarray(counts, dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    frac = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    names = _class_names(run_id, len(counts))
    fig = go.Figure(go.Heatmap(z=frac, x=names, y=names, colorscale="Blues", zmin=0, zmax=1,
                               text=counts.astype(int), hovertemplate="true %{y}<br>predicted %{x}<br>"
                               "%{z:.1%} (%{text})<extra></extra>", colorbar={"title": {"text": "fraction"}}))
    fig.update_layout(title={"text": "confusion matrix (rows: true class)"}, height=420,
                      xaxis={"title": {"text": "predicted"}, "type": "category"},
                      yaxis={"title": {"text": "true"}, "type": "category", "autorange": "reversed"})
    return fig


@view("classify", "per-class accuracy", key=False)
def per_class(run_id: str) -> Any:
    """Test accuracy of each class (recall), with the class sizes in the hover text."""
    import plotly.graph_objects as go

    rows = stored(run_id, "per_class_accuracy")
    if rows is None:
        return None
    df = table(rows)
    fig = go.Figure(go.Bar(x=df["name"].astype(str), y=df["accuracy"], customdata=df["count"],
                           hovertemplate="%{x}: %{y:.1%} of %{customdata}<extra></extra>"))
    fig.update_layout(title={"text": "per-class test accuracy"}, height=320, yaxis={"range": [0, 1.02]},
                      xaxis={"type": "category"})
    return fig


@view("classify", "reliability diagram")
def reliability(run_id: str) -> Any:
    """Accuracy against mean confidence per confidence bin; the diagonal is perfect calibration."""
    import plotly.graph_objects as go

    rows = stored(run_id, "reliability")
    if rows is None:
        return None
    df = table(rows)
    df = df[df["count"] > 0]
    mid = (df["bin_low"] + df["bin_high"]) / 2
    width = (df["bin_high"] - df["bin_low"]).to_numpy()
    fig = go.Figure()
    fig.add_trace(go.Bar(x=mid, y=df["accuracy"], width=width, name="accuracy", marker={"color": "#1f77b4"},
                         customdata=df["count"], hovertemplate="conf %{x:.2f}: acc %{y:.2f} (n=%{customdata})"
                         "<extra></extra>"))
    fig.add_trace(go.Scatter(x=df["confidence"], y=df["confidence"], mode="markers", name="mean confidence",
                             marker={"color": "#d62728"}))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                             line={"dash": "dash", "color": "#777"}))
    total = df["count"].sum()
    ece = float((df["count"] / total * (df["accuracy"] - df["confidence"]).abs()).sum()) if total else float("nan")
    fig.update_layout(title={"text": f"reliability diagram (ECE {ece:.3f})"}, height=360,
                      xaxis={"title": {"text": "confidence"}, "range": [0, 1]},
                      yaxis={"title": {"text": "accuracy"}, "range": [0, 1]})
    return fig


def _class_names(run_id: str, k: int) -> list[str]:
    rows = stored(run_id, "per_class_accuracy")
    if rows is not None:
        df = table(rows)
        if "name" in df and len(df) == k:
            return [str(n) for n in df["name"]]
    return [str(i) for i in range(k)]
