"""Live metric curves the way TensorBoard and W&B draw them: one panel per metric, runs (and methods within a
run) overlaid, a legend that toggles a run in every panel, EMA smoothing, a metric filter, a log-y toggle.

The data model (:class:`Series`) is separate from drawing, so the same code draws a static ``go.Figure``
(exports, reports, headless runs) and updates a live ``go.FigureWidget``.

Panels: a metric ``<group>/<rest>`` whose ``<rest>`` also occurs under another group (``uniform/test/accuracy``,
``rho_loss/test/accuracy``) is drawn in the panel ``<rest>`` as the trace ``<group>``; any other metric is a panel
of its own (``train/loss``). See :func:`panels`.

Live updates are throttled (at most one redraw per ``min_interval`` seconds), long curves are downsampled to
at most ``max_points`` points per trace (min/max per bucket, so spikes survive). A redraw that only extends
curves sends one restyle; a redraw that adds panels or traces rebuilds the figure with whole-object layout
updates (never a parent and its child attribute in one message, which plotly.js rejects).
"""
from __future__ import annotations

import fnmatch
import math
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from .style import colours, integer_axis, is_fraction, legend, log_ticks, series_colour, wrap

PANEL_HEIGHT = 220   # px of one panel's plotting area
ROW_GAP = 70         # px between rows: x tick labels of one row, the title of the next
TOP, BOTTOM = 34, 48  # px margins (room for the first row's titles; the x tick labels and axis title)


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


def ema(y: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: the exponential moving average s_t = w·s_{t-1} + (1-w)·y_t, debiased by
    dividing by 1 - w^n (n = finite points so far), so the first points are not pulled towards 0.
    Non-finite values pass through unchanged and do not enter the average."""
    y = np.asarray(y, dtype=float)
    if weight <= 0 or len(y) == 0:
        return y
    out = np.empty_like(y)
    last, n = 0.0, 0
    for i, v in enumerate(y):
        if not math.isfinite(v):
            out[i] = v
            continue
        n += 1
        last = weight * last + (1 - weight) * v
        out[i] = last / (1 - weight ** n) if weight < 1 else v
    return out


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


def panels(names: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """``{panel title: [(metric name, group), ...]}``: the same metric of several methods overlaid in one panel.

    The method is the first path segment that varies between metrics otherwise the same: ``a/test/accuracy`` and
    ``b/test/accuracy`` → panel ``test/accuracy`` with groups ``a`` and ``b``; ``acc/nft/test/kendall_tau`` and
    ``acc/np/test/kendall_tau`` → panel ``acc/test/kendall_tau`` with groups ``nft`` and ``np`` (the last segment,
    the quantity itself, is a group only when it names a known method: ``accuracy/direct`` and ``accuracy/tool``
    → panel ``accuracy``). Segments naming known methods (:data:`widgets.style.COLOURS`) are tried first.
    ``train/loss`` with no sibling stays the panel ``train/loss`` (group ``""``), and joins the panel ``train/loss``
    of ``a/train/loss`` when there is one. Panels keep the order of their first metric.
    """
    from .style import COLOURS, key

    names = list(dict.fromkeys(names))
    split = {n: n.split("/") for n in names}
    depth = max((len(p) for p in split.values()), default=0)
    chosen: dict[str, tuple[str, str]] = {}
    # first the segments that name known methods (anywhere, even last: ``accuracy/direct``), then any segment
    # but the last, the first position winning
    for known in (True, False):
        for pos in range(depth if known else max(0, depth - 1)):
            siblings: dict[str, set[str]] = {}
            candidates = [(n, parts) for n, parts in split.items() if n not in chosen and len(parts) >= 2
                          and pos < len(parts) - (0 if known else 1)]
            for n, parts in candidates:
                siblings.setdefault("/".join(parts[:pos] + parts[pos + 1:]), set()).add(parts[pos])
            for n, parts in candidates:
                rest = "/".join(parts[:pos] + parts[pos + 1:])
                values = siblings[rest]
                ok = (sum(key(v) in COLOURS for v in values) >= 2) if known else len(values) > 1
                if ok and rest:
                    chosen[n] = (rest, parts[pos])
    out: dict[str, list[tuple[str, str]]] = {}
    for name in names:
        rest, group = chosen.get(name, (name, ""))
        out.setdefault(rest, []).append((name, group))
    return out


def matches(panel: str, pattern: str) -> bool:
    """The metric filter: a glob (``*accuracy*``), a regular expression, or a plain substring (case-insensitive)."""
    pattern = pattern.strip()
    if not pattern:
        return True
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(panel.lower(), pattern.lower())
    try:
        return re.search(pattern, panel, re.I) is not None
    except re.error:
        return pattern.lower() in panel.lower()


def grid_domains(n: int, cols: int) -> tuple[list[tuple[list[float], list[float]]], int]:
    """Axis domains (x, y) of ``n`` panels in ``cols`` columns (first panel top-left) and the figure height.

    Heights are fixed in pixels (``PANEL_HEIGHT`` per row, ``ROW_GAP`` between rows for tick labels and the
    next row's titles), converted to fractions of the plotting area, so panels never overlap whatever ``n``.
    """
    cols = max(1, min(cols, n))
    rows = max(1, math.ceil(n / cols))
    area = rows * PANEL_HEIGHT + (rows - 1) * ROW_GAP
    gx = 0.1 if cols > 1 else 0.0
    w = (1 - gx * (cols - 1)) / cols
    out = []
    for i in range(n):
        r, c = divmod(i, cols)
        x0 = c * (w + gx)
        y1 = 1 - r * (PANEL_HEIGHT + ROW_GAP) / area
        y0 = y1 - PANEL_HEIGHT / area
        out.append(([round(x0, 6), round(min(1.0, x0 + w), 6)], [round(max(0.0, y0), 6), round(min(1.0, y1), 6)]))
    return out, area


def _label(run: str, group: str, several_runs: bool) -> str:
    if not group:
        return run
    return f"{group} · {run}" if several_runs else group


def figure_spec(series: Series, metrics: list[str] | None = None, log_y: bool = False, max_points: int = 2000,
                cols: int = 2, title: str = "", smoothing: float = 0.0, filter: str = "",
                min_points: int = 1) -> tuple[list[dict], dict]:
    """Plotly traces and layout (plain dicts) drawing ``series``: one panel per metric (see :func:`panels`),
    one colour per legend entry (a run, or a method within a run), shared by every panel.

    ``metrics``: only these metric names (all when ``None``); ``filter``: only panels whose title matches;
    ``smoothing``: EMA weight in [0, 1) (the raw curve stays faintly behind the smoothed one);
    ``min_points``: leave out panels where no curve has that many points (a value logged once at the end
    belongs in the summary, not on an axis of its own).
    """
    chosen = [m for m in (metrics or series.metrics) if m in series.metrics] or list(series.metrics)
    several = len(series.runs) > 1
    groups = panels(chosen)
    shown_panels: list[tuple[str, list[tuple[str, str]]]] = []
    for panel, members in groups.items():
        if not matches(panel, filter):
            continue
        longest = max((len(series.data.get((run, name), ([], []))[0]) for name, _ in members for run in series.runs),
                      default=0)
        if longest >= min_points:
            shown_panels.append((panel, members))
    if not shown_panels and groups and not filter:  # never an empty figure for a run that logged something
        shown_panels = list(groups.items())
    domains, area = grid_domains(len(shown_panels), cols)
    title = wrap(title) if title else ""
    title_px = 22 * (title.count("<br>") + 1) + 14 if title else 0
    height = area + TOP + BOTTOM + title_px
    layout: dict[str, Any] = {
        "title": {"text": title, "x": 0.01, "xanchor": "left", "y": 1, "yanchor": "top", "yref": "container",
                  "pad": {"t": 8}} if title else {"text": ""},
        "height": height, "margin": {"l": 60, "r": 20, "t": TOP + title_px, "b": BOTTOM, "autoexpand": True},
        "legend": {**legend("right"), "title": {"text": "click to hide / show"}, "groupclick": "togglegroup"},
        "annotations": [], "uirevision": "keep", "hovermode": "closest", "autosize": True,
    }
    group_names = [g for _, members in shown_panels for _, g in members if g]
    palette = colours(group_names)
    run_colour = {run: series_colour(i) for i, run in enumerate(series.runs)}
    dashes = ("solid", "dash", "dot", "dashdot")
    traces: list[dict] = []
    for i, ((panel, members), (xd, yd)) in enumerate(zip(shown_panels, domains)):
        sx = "" if i == 0 else str(i + 1)
        last_row = yd[0] <= 1e-6 or i + cols >= len(shown_panels)
        xs = [v for run in series.runs for name, _ in members for v in series.data.get((run, name), ([], []))[0]]
        ys = [v for run in series.runs for name, _ in members for v in series.data.get((run, name), ([], []))[1]]
        layout[f"xaxis{sx}"] = {"domain": xd, "anchor": f"y{sx}", "automargin": False,
                                "title": {"text": "step" if last_row else ""}, **integer_axis(xs)}
        yaxis: dict[str, Any] = {"domain": yd, "anchor": f"x{sx}", "type": "linear",
                                 "automargin": i % max(1, min(cols, len(shown_panels))) == 0}  # left column only
        if log_y:
            yaxis.update(log_ticks(ys))
        elif is_fraction(panel) and ys and min(ys) >= 0 and max(ys) <= 1:
            yaxis["range"] = [0, 1.02]
        layout[f"yaxis{sx}"] = yaxis
        layout["annotations"].append({"text": f"<b>{panel}</b>", "x": (xd[0] + xd[1]) / 2, "y": yd[1],
                                      "xref": "paper", "yref": "paper", "xanchor": "center", "yanchor": "bottom",
                                      "showarrow": False, "font": {"size": 13}, "name": "panel-title"})
        for r, run in enumerate(series.runs):
            for name, group in members:
                if (run, name) not in series.data:
                    continue
                label = _label(run, group, several)
                # a method keeps its colour in every panel and run; runs of one method differ by colour, runs of
                # several methods by dash
                colour = palette[group] if group else run_colour[run]
                dash = dashes[r % len(dashes)] if group and several else "solid"
                x, y = series.arrays(run, name)
                common = {"type": "scatter", "xaxis": f"x{sx}", "yaxis": f"y{sx}", "legendgroup": label}
                if smoothing > 0 and len(y) > 2:
                    rx, ry = downsample(x, y, max_points)
                    traces.append({**common, "mode": "lines", "x": rx, "y": ry, "name": label, "showlegend": False,
                                   "line": {"color": colour, "width": 1, "dash": dash}, "opacity": 0.25,
                                   "hoverinfo": "skip", "meta": f"{run}::{name}::raw"})
                    y = ema(y, smoothing)
                x, y = downsample(x, y, max_points)
                traces.append({**common, "mode": "lines+markers" if len(x) < 30 else "lines", "x": x, "y": y,
                               "name": label, "showlegend": False, "line": {"color": colour, "width": 2, "dash": dash},
                               "marker": {"size": 5}, "meta": f"{run}::{name}",
                               "hovertemplate": f"{label}<br>{panel}<br>step %{{x}}: %{{y:.4g}}<extra></extra>"})
    seen: set[str] = set()
    for t in traces:  # one legend entry per label (its first smoothed/plain curve)
        if t["meta"].endswith("::raw") or t["legendgroup"] in seen:
            continue
        t["showlegend"] = True
        seen.add(t["legendgroup"])
    layout["showlegend"] = bool(seen) and (len(seen) > 1 or several)
    return traces, layout


#: the layout of a curves figure before its first metric: no axes, one line saying what comes
WAITING: dict[str, Any] = {
    "xaxis": {"visible": False}, "yaxis": {"visible": False},
    "annotations": [{"text": "waiting for the first metrics…", "x": 0.5, "y": 0.5, "xref": "paper", "yref": "paper",
                     "showarrow": False, "font": {"size": 14, "color": "#777"}, "name": "waiting"}],
}


def static_figure(series: Series, **kw: Any) -> Any:
    """A plain ``go.Figure`` of ``series`` (exports, reports, headless runs)."""
    import plotly.graph_objects as go

    traces, layout = figure_spec(series, **kw)
    return go.Figure(data=traces, layout=layout)


def panel_titles(layout: Any) -> list[str]:
    """The panel titles of a figure drawn by :func:`figure_spec` (tests, and the browser checks)."""
    anns = layout.get("annotations", []) if isinstance(layout, dict) else (layout.annotations or [])
    out = []
    for a in anns:
        name, text = (a.get("name"), a.get("text")) if isinstance(a, dict) else (a.name, a.text)
        if name == "panel-title":
            out.append(re.sub(r"</?b>", "", text or ""))
    return out


class LiveCurves:
    """A ``FigureWidget`` kept in step with a :class:`Series`, redrawn at most every ``min_interval`` s,
    with its controls: smoothing slider, metric filter and log-y toggle."""

    def __init__(self, metrics: list[str] | None = None, log_y: bool = False, max_points: int = 2000,
                 min_interval: float = 0.3, cols: int = 2, smoothing: float = 0.0) -> None:
        import ipywidgets as W
        import plotly.graph_objects as go

        self.series = Series()
        self.metrics = metrics
        self.max_points, self.min_interval, self.cols = max_points, min_interval, cols
        # no width anywhere: the figure takes the width of the output area (autosize), see :meth:`draw`
        self.figure = go.FigureWidget(layout={"height": 300, "autosize": True, "uirevision": "keep",
                                              "margin": {"l": 60, "r": 20, "t": TOP, "b": BOTTOM}, **WAITING})
        self.log_toggle = W.ToggleButton(value=log_y, description="log y", tooltip="logarithmic y axes",
                                         layout=W.Layout(width="80px"))
        self.smoothing = W.FloatSlider(value=smoothing, min=0.0, max=0.99, step=0.01, description="smoothing",
                                       readout_format=".2f", continuous_update=False,
                                       tooltip="exponential moving average weight (0: raw curves)",
                                       style={"description_width": "initial"}, layout=W.Layout(width="260px"))
        self.filter = W.Text(value="", placeholder="filter metrics (glob or regex)", continuous_update=False,
                             layout=W.Layout(width="240px"))
        for control in (self.log_toggle, self.smoothing, self.filter):
            control.observe(lambda _c: self.draw(force=True), names="value")
        self.widget = W.VBox([W.HBox([self.filter, self.smoothing, self.log_toggle]), self.figure])
        self.widget.add_class("wb-curves")
        self.draws = 0
        self._drawn_version = -1
        self._last: float | None = None
        self._keys: list[str] = []
        self._structure: Any = None
        self._axes: set[str] = set()
        self._lock = threading.RLock()

    @property
    def log_y(self) -> bool:
        return bool(self.log_toggle.value)

    def reset(self) -> None:
        """Forget every curve (the next draw starts from an empty plot)."""
        with self._lock:
            self.series = Series()
            self._drawn_version = -1

    def add_frame(self, run: str, frame: Any) -> None:
        with self._lock:
            self.series.add_frame(run, frame)

    def spec(self, **kw: Any) -> tuple[list[dict], dict]:
        """The traces and layout of the current view (controls applied)."""
        return figure_spec(self.series, self.metrics, self.log_y, self.max_points, self.cols,
                           smoothing=float(self.smoothing.value), filter=self.filter.value, **kw)

    def draw(self, force: bool = False) -> bool:
        """Push the series to the browser; skipped (returns False) when throttled or unchanged."""
        with self._lock:  # the monitor thread and the controls (kernel thread) may both redraw
            return self._draw(force)

    def _draw(self, force: bool) -> bool:
        now = time.monotonic()
        if not force and ((self._last is not None and now - self._last < self.min_interval)
                          or self.series.version == self._drawn_version):
            return False
        traces, layout = self.spec()
        if not traces:  # nothing logged yet: a note, not plotly's default empty axes (−1…6)
            layout.update(WAITING)
        keys = [t["meta"] for t in traces]
        ticks = [(k, repr({a: v for a, v in layout[k].items() if a in ("dtick", "tickvals", "range", "type")}))
                 for k in layout if k.startswith(("xaxis", "yaxis"))]  # a new tick spacing or range: rebuild
        structure = (keys, ticks, layout["height"], layout["title"]["text"],
                     [a["text"] for a in layout["annotations"]], self.log_y, layout["showlegend"])
        fig = self.figure
        if structure != self._structure:
            # Rebuild: drop the traces, replace the layout with whole objects (removing axes no longer drawn),
            # add the traces. Each is its own message; none mixes a parent attribute with its children.
            fig.data = []
            axes = {k for k in layout if k.startswith(("xaxis", "yaxis"))}
            gone = self._axes - axes
            if gone:
                fig.plotly_relayout({k: None for k in sorted(gone)})
            fig.layout = layout
            if traces:
                fig.add_traces(traces)
            self._structure, self._axes = structure, axes
        else:
            with fig.batch_update():  # only the curves grew: one restyle message
                for trace, spec in zip(fig.data, traces):
                    trace.x, trace.y = spec["x"], spec["y"]
                    if trace.mode != spec["mode"]:
                        trace.mode = spec["mode"]
        # a relayout of its own after the curves: plotly.js re-measures the output area on a relayout, so a figure
        # first drawn before it was on the page (700 px) or while hidden takes the area's width at the next draw
        fig.layout.datarevision = self.draws + 1
        self._keys = keys
        self._last, self._drawn_version = now, self.series.version
        self.draws += 1
        return True

    def static(self, title: str = "", min_points: int = 1) -> Any:
        """A plain figure of what the widget shows (controls applied)."""
        import plotly.graph_objects as go

        traces, layout = self.spec(title=title, min_points=min_points)
        return go.Figure(data=traces, layout=layout)
