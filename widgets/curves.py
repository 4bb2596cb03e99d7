"""Live metric curves: several metrics (one panel each), several runs overlaid, log-scale toggle.

The data model (:class:`Series`) is separate from drawing, so the same code draws a static
``go.Figure`` (exports, reports, headless runs) and updates a live ``go.FigureWidget``. Live updates
are throttled (at most one redraw per ``min_interval`` seconds), long curves are downsampled to at most
``max_points`` points per trace (min/max per bucket, so spikes survive), and every redraw goes through
one ``batch_update`` so a 100k-step run sends a bounded message a few times a second.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")


def downsample(x: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points of the curve (x, y), keeping first, last, and each bucket's min and max.

    The curve is cut into ``max_points // 2`` buckets of consecutive points; each bucket contributes its
    lowest and highest point in x order, so the drawn envelope is the true one (a loss spike stays visible).
    """
    n = len(x)
    if n <= max_points or max_points < 4:
        return x, y
    buckets = max(1, (max_points - 2) // 2)
    edges = np.linspace(1, n - 1, buckets + 1).astype(int)
    keep = [0]
    yy = np.where(np.isfinite(y), y, np.nan)
    for lo, hi in zip(edges[:-1], edges[1:]):
        if hi <= lo:
            continue
        seg = yy[lo:hi]
        if np.all(np.isnan(seg)):
            keep.append(lo)
            continue
        a, b = lo + int(np.nanargmin(seg)), lo + int(np.nanargmax(seg))
        keep.extend(sorted({a, b}))
    keep.append(n - 1)
    idx = np.unique(np.asarray(keep))
    return x[idx], y[idx]


@dataclass
class Series:
    """Growing (step, value) arrays per (run label, metric name), filled from run-store rows."""

    runs: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    data: dict[tuple[str, str], tuple[list[float], list[float]]] = field(default_factory=dict)
    version: int = 0

    def add(self, run: str, name: str, steps: Iterable[float], values: Iterable[float]) -> None:
        if run not in self.runs:
            self.runs.append(run)
        if name not in self.metrics:
            self.metrics.append(name)
        xs, ys = self.data.setdefault((run, name), ([], []))
        xs.extend(float(s) for s in steps)
        ys.extend(float(v) for v in values)
        self.version += 1

    def add_frame(self, run: str, frame: Any) -> None:
        """Append rows of a metrics DataFrame (columns step, name, value)."""
        if frame is None or len(frame) == 0:
            return
        for name, group in frame.groupby("name", sort=False):
            self.add(run, str(name), group["step"].to_numpy(), group["value"].to_numpy())

    def arrays(self, run: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = self.data.get((run, name), ([], []))
        return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


def _grid(n: int, cols: int) -> list[tuple[list[float], list[float]]]:
    """Axis domains (x, y) for ``n`` panels in a grid of ``cols`` columns, first panel top-left."""
    cols = max(1, min(cols, n))
    rows = max(1, math.ceil(n / cols))
    gx, gy = 0.08, 0.30 / rows if rows > 1 else 0.0
    w, h = (1 - gx * (cols - 1)) / cols, (1 - gy * (rows - 1)) / rows
    out = []
    for i in range(n):
        r, c = divmod(i, cols)
        x0 = c * (w + gx)
        y1 = 1 - r * (h + gy)
        out.append(([x0, x0 + w], [max(0.0, y1 - h), y1]))
    return out


def figure_spec(series: Series, metrics: list[str] | None = None, log_y: bool = False, max_points: int = 2000,
                cols: int = 2, title: str = "") -> tuple[list[dict], dict]:
    """Plotly traces and layout (plain dicts) drawing ``series``: one panel per metric, one colour per run."""
    names = [m for m in (metrics or series.metrics) if m in series.metrics] or list(series.metrics)
    domains = _grid(len(names), cols)
    traces: list[dict] = []
    layout: dict[str, Any] = {"title": {"text": title} if title else None, "height": max(300, 260 * max(1, math.ceil(len(names) / max(1, cols)))),
                              "margin": {"l": 50, "r": 20, "t": 40 if title else 25, "b": 40},
                              "legend": {"orientation": "h", "y": -0.12}, "annotations": [],
                              "uirevision": "keep"}
    shown: set[str] = set()
    for i, (name, (xd, yd)) in enumerate(zip(names, domains)):
        sx = "" if i == 0 else str(i + 1)
        layout[f"xaxis{sx}"] = {"domain": xd, "anchor": f"y{sx}", "title": {"text": "step"} if yd[0] < 0.05 else None}
        layout[f"yaxis{sx}"] = {"domain": yd, "anchor": f"x{sx}", "type": "log" if log_y else "linear"}
        layout["annotations"].append({"text": f"<b>{name}</b>", "x": (xd[0] + xd[1]) / 2, "y": yd[1],
                                      "xref": "paper", "yref": "paper", "xanchor": "center", "yanchor": "bottom",
                                      "showarrow": False})
        for j, run in enumerate(series.runs):
            if (run, name) not in series.data:
                continue
            x, y = downsample(*series.arrays(run, name), max_points)
            traces.append({"type": "scatter", "mode": "lines+markers" if len(x) < 30 else "lines",
                           "x": x, "y": y, "name": run, "legendgroup": run,
                           "showlegend": run not in shown, "line": {"color": PALETTE[j % len(PALETTE)]},
                           "marker": {"size": 4}, "xaxis": f"x{sx}", "yaxis": f"y{sx}",
                           "meta": f"{run}::{name}"})
            shown.add(run)
    return traces, layout


def static_figure(series: Series, **kw: Any) -> Any:
    """A plain ``go.Figure`` of ``series`` (exports, reports, headless runs)."""
    import plotly.graph_objects as go

    traces, layout = figure_spec(series, **kw)
    return go.Figure(data=traces, layout=layout)


class LiveCurves:
    """A ``FigureWidget`` kept in step with a :class:`Series`, redrawn at most every ``min_interval`` s."""

    def __init__(self, metrics: list[str] | None = None, log_y: bool = False, max_points: int = 2000,
                 min_interval: float = 0.3, cols: int = 2) -> None:
        import ipywidgets as W
        import plotly.graph_objects as go

        self.series = Series()
        self.metrics = metrics
        self.max_points, self.min_interval, self.cols = max_points, min_interval, cols
        self.figure = go.FigureWidget(layout={"height": 300, "margin": {"l": 50, "r": 20, "t": 25, "b": 40}})
        self.log_toggle = W.ToggleButton(value=log_y, description="log y", tooltip="logarithmic y axes",
                                         layout=W.Layout(width="80px"))
        self.log_toggle.observe(lambda _c: self.draw(force=True), names="value")
        self.widget = W.VBox([self.log_toggle, self.figure])
        self.draws = 0
        self._drawn_version = -1
        self._last: float | None = None
        self._keys: list[str] = []
        self._lock = threading.RLock()

    @property
    def log_y(self) -> bool:
        return bool(self.log_toggle.value)

    def reset(self) -> None:
        """Forget every curve (the next draw starts from an empty plot)."""
        with self._lock:
            self.series = Series()
            self._keys, self._drawn_version = [], -1

    def add_frame(self, run: str, frame: Any) -> None:
        with self._lock:
            self.series.add_frame(run, frame)

    def draw(self, force: bool = False) -> bool:
        """Push the series to the browser; skipped (returns False) when throttled or unchanged."""
        with self._lock:  # the monitor thread and the log toggle (kernel thread) may both redraw
            return self._draw(force)

    def _draw(self, force: bool) -> bool:
        now = time.monotonic()
        if not force and ((self._last is not None and now - self._last < self.min_interval)
                          or self.series.version == self._drawn_version):
            return False
        traces, layout = figure_spec(self.series, self.metrics, self.log_y, self.max_points, self.cols)
        keys = [t["meta"] for t in traces]
        fig = self.figure
        with fig.batch_update():
            if keys != self._keys:
                fig.data = []
                fig.layout.annotations = []
                fig.add_traces(traces)
                self._keys = keys
            else:
                for trace, spec in zip(fig.data, traces):
                    trace.x, trace.y, trace.mode = spec["x"], spec["y"], spec["mode"]
            fig.update_layout(layout, overwrite=False)
            fig.layout.annotations = layout["annotations"]
            fig.layout.height = layout["height"]
            for key, value in layout.items():
                if key.startswith("yaxis"):
                    fig.layout[key].type = value["type"]
        self._last, self._drawn_version = now, self.series.version
        self.draws += 1
        return True

    def static(self, title: str = "") -> Any:
        return static_figure(self.series, metrics=self.metrics, log_y=self.log_y, max_points=self.max_points,
                             cols=self.cols, title=title)
