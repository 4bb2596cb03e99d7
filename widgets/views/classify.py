"""Views of the ``classify`` experiment: test accuracy and calibration curves, confusion matrix,
per-class accuracy, reliability diagram. Functions of stored data only (live, finished or remote runs)."""
from __future__ import annotations

from typing import Any

import numpy as np

from . import view
from .common import curves, from_stored, reliability_figure, stored, table


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


view("classify", "reliability diagram")(from_stored("reliability", reliability_figure))


def _class_names(run_id: str, k: int) -> list[str]:
    rows = stored(run_id, "per_class_accuracy")
    if rows is not None:
        df = table(rows)
        if "name" in df and len(df) == k:
            return [str(n) for n in df["name"]]
    return [str(i) for i in range(k)]
