"""Small helpers for views: read stored data defensively (a live run may not have written it yet)."""
from __future__ import annotations

from typing import Any, Callable, Iterable


def stored(run_id: str, name: str) -> Any | None:
    """The latest artifact ``name`` of the run, or ``None`` when the run has not stored it (yet)."""
    from workbench import runs

    if not any(a.get("name") == name for a in runs.artifacts(run_id)):
        return None
    return runs.artifact(run_id, name)


def from_stored(name: str, figure: Callable[..., Any], **kwargs: Any) -> Callable[[str], Any]:
    """A view that draws ``figure(artifact, **kwargs)`` from the run's artifact ``name``, or ``None`` before it exists."""

    def draw(run_id: str) -> Any:
        value = stored(run_id, name)
        return None if value is None else figure(value, **kwargs)

    return draw


def table(value: Any) -> Any:
    """A stored table (DataFrame or list of dicts) as a DataFrame."""
    import pandas as pd

    return value if isinstance(value, pd.DataFrame) else pd.DataFrame(list(value))


def curves(run_id: str, names: Iterable[str], title: str = "", log_y: bool = False) -> Any | None:
    """A static figure of the run's metrics ``names``: one panel per metric, the same metric of several methods
    (``a/test/accuracy``, ``b/test/accuracy``) overlaid in one panel; ``None`` if none is logged yet."""
    from workbench import runs

    from ..curves import Series, panels, static_figure
    from ..labels import short_id

    names = list(names)
    frame = runs.metrics(run_id, names=names)
    if not len(frame):
        return None
    series = Series()
    series.add_frame(short_id(run_id), frame)
    shown = [n for n in names if n in series.metrics]
    return static_figure(series, metrics=shown, title=title, log_y=log_y, cols=min(3, len(panels(shown))))


def reliability_figure(reliability_rows: Any, title: str = "reliability diagram") -> Any:
    """Accuracy against mean confidence per confidence bin, one line per ``variant`` (if the table has that
    column), the ECE of each from its bins (Σ n_b/N·|acc_b − conf_b|) in the legend, and in the title for one."""
    import plotly.graph_objects as go

    df = table(reliability_rows)
    if "variant" not in df:
        df = df.assign(variant="model")
    from ..style import colours

    variants = list(dict.fromkeys(df["variant"]))
    palette = colours(variants)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                             line={"dash": "dash", "color": "#777"}))
    eces = []
    for v in variants:
        d = df[(df["variant"] == v) & (df["count"] > 0)]
        total = d["count"].sum()
        ece = float((d["count"] / total * (d["accuracy"] - d["confidence"]).abs()).sum()) if total else float("nan")
        eces.append(ece)
        fig.add_trace(go.Scatter(x=d["confidence"], y=d["accuracy"], mode="lines+markers", name=f"{v} (ECE {ece:.3f})",
                                 line={"color": palette[v]}, customdata=d["count"],
                                 hovertemplate="conf %{x:.2f}: acc %{y:.2f} (n=%{customdata})<extra></extra>"))
    if len(variants) == 1:
        title = f"{title} (ECE {eces[0]:.3f})"
    fig.update_layout(title={"text": title}, height=400,
                      xaxis={"title": {"text": "mean confidence"}, "range": [0, 1.02], "dtick": 0.2},
                      yaxis={"title": {"text": "accuracy"}, "range": [0, 1.02], "dtick": 0.2})
    return fig


_FIGURE_OUTPUT: Any = None


def figure_output() -> Any:
    """An ``ipywidgets.Output`` that shows one plotly figure at a time (``.show(fig)``), drawn the way JupyterLab
    draws any plotly output: as wide as the output area, whenever it is attached (a ``FigureWidget`` drawn before
    it is on the page stays at plotly's 700 px). ``.figure`` / ``.data``: the figure shown last."""
    global _FIGURE_OUTPUT
    if _FIGURE_OUTPUT is None:
        import ipywidgets as W

        class FigureOutput(W.Output):
            figure: Any = None

            def show(self, fig: Any) -> None:
                from ..render import output
                from ..style import house

                self.figure = house(fig)
                self.outputs = (output(self.figure),)

            @property
            def data(self) -> Any:
                return () if self.figure is None else self.figure.data

        _FIGURE_OUTPUT = FigureOutput
    out = _FIGURE_OUTPUT()
    out.add_class("wb-figure")
    return out
