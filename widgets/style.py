"""The visual language of every figure: one colour per method / arm / recipe / model name (the same in every
figure of a run, the report and the app), legends outside the plotting area, log axes with plain decimals or
10^k ticks (never SI prefixes), axis ranges that fit the quantity, integer ticks where an axis counts, and
figures that take the width of their container (:func:`house`).

Plain functions over plotly figures and layout dicts; no widget imports.
"""
from __future__ import annotations

import hashlib
import math
import re
from typing import Any, Iterable

#: Tableau-like colours; ``GREY`` marks baselines and references everywhere.
BLUE, ORANGE, GREEN, RED, PURPLE = "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"
BROWN, PINK, GREY, OLIVE, CYAN = "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"
DARK, NAVY, LIGHT_GREY = "#444444", "#393b79", "#c7c7c7"

#: One colour per name the experiments use. Names meet in one figure only within an experiment (or the
#: robustness comparison), so within each group below every colour is distinct; baselines are grey.
COLOURS: dict[str, str] = {
    # kto: alignment methods
    "kto": BLUE, "dpo": RED, "cdpo": "#ff9896", "ipo": PURPLE, "slic": BROWN, "csft": PINK, "ppo_offline": ORANGE,
    "sft": OLIVE, "kto_z0": CYAN, "kto_drop": NAVY, "reference": DARK,
    # goldilocks: selection methods
    "uniform": GREY, "rho_loss": RED, "train_loss": BLUE, "grad_norm": CYAN, "irreducible": ORANGE,
    "entropy": GREEN, "bald": OLIVE, "boltzmann": PINK, "replay": PURPLE, "replay_uniform": LIGHT_GREY,
    "il_model": BROWN,
    # nfm / noisymix / robustness_compare: training recipes
    "baseline": GREY, "input_mixup": BLUE, "manifold_mixup": GREEN, "noisy_input_mixup": ORANGE, "nfm": RED,
    "noise_only": PINK, "augmix": OLIVE, "augmix_jsd": CYAN, "noisymix": PURPLE,
    # nft: weight-space models
    "nft": BLUE, "np": ORANGE, "hnp": GREEN, "stats": GREY, "flat": BROWN, "mlp": BROWN, "inr2array": PURPLE,
    # ls4: generative models of series
    "ls4": BLUE, "latent_ode": ORANGE, "gru_vae": GREEN, "real": DARK,
    # cascades: inference methods, answer formats, STaR arms
    "forward": GREY, "self_consistency": BLUE, "verifier_smc": GREEN, "verifier_rejection": "#98df8a",
    "tool": ORANGE, "direct": BROWN, "selection_inference": PURPLE, "scratchpad": CYAN, "star": BLUE,
    "control": GREY,
    # sdebnn: models and KL estimators
    "sdebnn": BLUE, "odenet": GREY, "bbb": ORANGE, "resnet": GREEN, "stl": PURPLE, "full": RED, "kl": GREY,
    "prior": GREY,
}
#: Other spellings of the same name (the label a view shows, a short form).
ALIASES = {"ode": "odenet", "ode_net": "odenet", "sde_bnn": "sdebnn", "bayes_by_backprop": "bbb",
           "residual_net": "resnet", "flat_mlp": "flat", "nfn_np": "np", "nfn_hnp": "hnp", "weight_statistics": "stats",
           "ppo": "ppo_offline", "rho": "rho_loss", "rholoss": "rho_loss", "latent_ode_": "latent_ode"}
#: Colours for names nobody declared (picked by a hash of the name, so stable across figures and sessions) and for
#: runs compared in one plot (picked by order).
FALLBACK = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
            "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d")
SERIES = FALLBACK

#: Pixel sizes of the house layout.
MARGIN = {"l": 60, "r": 20, "t": 60, "b": 50}
TITLE_CHARS = 95  # a title longer than this is wrapped onto a second line (titles are never cut)
#: SI-prefix formats a log axis must not use (plotly's default "B" shows µ, n, p).
SI_FORMATS = ("B", "SI")

_FRACTION = re.compile(r"(accuracy|(?<![a-z])rate|share|probability|recall|precision)", re.I)
_NOT_FRACTION = re.compile(r"(Δ|minus|change|difference|gap|margin|log|nats|rank|τ|tau|R²|learning|\blr\b|"
                           r"speed|×|faster|seconds)", re.I)


_COUNTS = re.compile(r"^(optimizer |training |gradient )?(step|steps|round|rounds|epoch|epochs)$|^STaR round$|"
                     r"^digits\b", re.I)


def key(name: str) -> str:
    """The colour key of a name: lower case, words joined by ``_`` ("Latent ODE" → ``latent_ode``)."""
    k = re.sub(r"[\s\-]+", "_", str(name).strip().lower())
    return ALIASES.get(k, k)


def colour(name: str) -> str:
    """The colour of a method / arm / recipe / model ``name``: the fixed one, else a stable hash-picked one."""
    k = key(name)
    if k in COLOURS:
        return COLOURS[k]
    return FALLBACK[int(hashlib.md5(k.encode()).hexdigest(), 16) % len(FALLBACK)]


def colours(names: Iterable[str]) -> dict[str, str]:
    """``{name: colour}`` for the names drawn in one figure: the fixed colour of each known name; names nobody
    declared get their hash-picked colour, or the next one not yet used in this figure (so two unknown names in
    one figure never share a colour)."""
    names = list(dict.fromkeys(names))
    out = {n: COLOURS[key(n)] for n in names if key(n) in COLOURS}
    used = set(out.values())
    for n in names:
        if n in out:
            continue
        start = FALLBACK.index(colour(n))
        for step in range(len(FALLBACK)):
            c = FALLBACK[(start + step) % len(FALLBACK)]
            if c not in used:
                break
        out[n] = c
        used.add(c)
    return {n: out[n] for n in names}


def series_colour(i: int) -> str:
    """The colour of the ``i``-th run of a comparison (runs have no fixed colour; methods within them do)."""
    return SERIES[i % len(SERIES)]


def rgba(hex_colour: str, alpha: float) -> str:
    """``#rrggbb`` with opacity ``alpha`` as ``rgba(...)``."""
    h = hex_colour.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha})"


# -- axes ---------------------------------------------------------------------------------------------------------
def log_ticks(values: Iterable[float] | None = None) -> dict[str, Any]:
    """Axis settings for a log axis: ticks as plain decimals or 10^k (``exponentformat="power"``, never µ/n/p).
    Over two decades or more: one tick per decade (or every few decades), labelled 10^k; over less: ticks at
    1, 2 and 5 × 10^k within the data's span (else at every integer mantissa, else at the span's two ends)
    labelled as plain decimals (0.02, 0.05, 0.1), never a bare "2" or "5"."""
    out: dict[str, Any] = {"type": "log", "exponentformat": "power", "minexponent": 3}
    vals = [float(v) for v in (values if values is not None else []) if _positive(v)]
    if not vals:
        return out
    lo, hi = math.log10(min(vals)), math.log10(max(vals))
    if hi - lo >= 2:
        out["dtick"] = max(1, math.ceil((hi - lo) / 8))
        return out
    # ticks inside the data's span (plotly's autorange pads it only a little: a tick beyond it is not drawn)
    for mantissas in ((1, 2, 5), range(1, 10)):  # 1-2-5, or every integer mantissa over a narrow span
        ticks = [m * 10.0 ** k for k in range(math.floor(lo) - 1, math.ceil(hi) + 1) for m in mantissas]
        inside = [t for t in ticks if min(vals) / 1.01 <= t <= max(vals) * 1.01]
        if len(inside) >= 2:
            out.update(tickmode="array", tickvals=inside, ticktext=[f"{t:.10g}" for t in inside])
            return out
    ends = sorted({min(vals), max(vals)})  # a narrow span: its ends, to two significant digits
    out.update(tickmode="array", tickvals=ends, ticktext=[f"{t:.2g}" for t in ends])
    return out


def _positive(v: Any) -> bool:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return False
    return math.isfinite(f) and f > 0


def fraction_axis(values: Iterable[float] | None = None, pad: float = 0.02) -> dict[str, Any]:
    """Axis settings for accuracies, rates and shares: the range [0, 1] (with ``pad`` above for markers),
    widened only when the data leave it (a difference can be negative)."""
    vals = [float(v) for v in (values if values is not None else []) if _finite(v)]
    lo = min([0.0] + vals)
    hi = max([1.0] + vals)
    return {"range": [lo, hi + pad], "tick0": 0, "dtick": 0.2 if hi <= 1 and lo >= 0 else None}


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def integer_axis(values: Iterable[float] | None = None) -> dict[str, Any]:
    """Axis settings for a counting axis (steps, rounds, digits): a tick per integer over a short span (never
    0.5); over a longer one plotly's own spacing (1, 2, 5 × 10^k) is integer already."""
    vals = [float(v) for v in (values if values is not None else []) if _finite(v)]
    span = (max(vals) - min(vals)) if vals else 0.0
    return {"tick0": 0, "dtick": 1, "tickformat": "d"} if span <= 10 else {}


def is_fraction(title: str) -> bool:
    """Whether an axis titled ``title`` shows a quantity in [0, 1] (an accuracy, a rate, a share)."""
    return bool(title) and bool(_FRACTION.search(title)) and not _NOT_FRACTION.search(title)


# -- legends and titles -------------------------------------------------------------------------------------------
def legend(where: str = "top") -> dict[str, Any]:
    """A legend outside the plotting area: ``"top"`` (horizontal, above the plots, below the title; wraps onto
    several rows rather than scrolling) or ``"right"`` (vertical, right of the plots)."""
    if where == "right":
        return {"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1, "yanchor": "top", "yref": "paper"}
    if where != "top":
        raise ValueError(f"legend(where): 'top' or 'right', got {where!r}")
    return {"orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom", "yref": "paper",
            "entrywidthmode": "pixels"}


def wrap(text: str, width: int = TITLE_CHARS) -> str:
    """``text`` with a ``<br>`` at a word boundary so that no line is longer than ``width`` characters (markup
    aside); text that already breaks its lines, or fits, is returned as it is."""
    plain = re.sub(r"<[^>]+>", "", text or "")
    if "<br>" in text or len(plain) <= width:
        return text
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(re.sub(r"<[^>]+>", "", line + " " + word)) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "<br>".join(lines)


def _title_text(layout: Any) -> str:
    title = layout.title
    return (title.text if title is not None else "") or ""


def _legend_entries(fig: Any) -> int:
    """How many entries the legend of ``fig`` shows (traces with a name whose legend entry is not hidden)."""
    groups = set()
    for t in fig.data:
        shown = getattr(t, "showlegend", None)
        if shown is False or not getattr(t, "name", None):
            continue
        if t.type in ("heatmap", "contour", "image", "table", "surface") and shown is not True:
            continue
        groups.add(getattr(t, "legendgroup", None) or t.name)
    return len(groups)


def house(fig: Any, height: int | None = None, legend_at: str | None = None) -> Any:
    """Apply the house layout to any plotly figure (in place; returns it): no fixed width (``autosize``: it
    takes its container's width), the title left-aligned and wrapped rather than cut, the legend above the plots
    (or right of them), room for both in the top margin, log axes with 10^k ticks, accuracy-like axes in [0, 1].

    ``height``: the figure's height in px (default: as set, else 380); ``legend_at``: ``"top"`` or ``"right"``
    (default: top for several entries; a single-entry legend is hidden).
    """
    layout = fig.layout
    layout.width = None
    layout.autosize = True
    if layout.colorway is None:
        layout.colorway = FALLBACK
    if height is not None:
        layout.height = height
    elif layout.height is None:
        layout.height = 380
    title = _title_text(layout)
    lines = 1
    if title:
        title = wrap(title)
        lines = title.count("<br>") + 1
        layout.title = {"text": title, "x": 0.01, "xanchor": "left", "y": 1, "yanchor": "top", "yref": "container",
                        "pad": {"t": 10}, "font": {"size": 15}}
    entries = _legend_entries(fig)
    margin = dict(MARGIN)
    old = layout.margin.to_plotly_json() if layout.margin is not None else {}
    margin.update({k: v for k, v in old.items() if k in ("l", "r", "b") and v is not None})
    top = (10 + 22 * lines) if title else 10
    panel_titles = _has_panel_titles(layout)
    if panel_titles:
        top += 24
    if layout.showlegend is False or entries == 0:
        pass
    elif entries == 1 and layout.showlegend is None:
        layout.showlegend = False
    else:
        plot_px = float(layout.height) - top - 26 - margin["b"]
        where = legend_at or ("right" if panel_titles and entries * 21 < plot_px else "top")
        spec = legend(where)
        if where == "top":
            top += 24 * _legend_rows(fig)  # room below the title for the legend's rows (wrapped at ~1000 px)
            if panel_titles:  # above the panels' titles, not on them
                spec["y"] = 1 + 26 / max(plot_px, 60)
        title_spec = layout.legend.title.to_plotly_json() if layout.legend.title is not None else {}
        layout.legend = {**spec, "title": title_spec, "groupclick": layout.legend.groupclick or "togglegroup"}
    margin["t"] = max(int(old.get("t") or 0), top)
    margin["autoexpand"] = True
    layout.margin = margin
    axes(fig)
    return fig


def _legend_rows(fig: Any, width_px: int = 1000) -> int:
    """How many rows a horizontal legend of ``fig`` takes in a figure ``width_px`` wide (an estimate: 7 px a
    character and 45 px a symbol per entry)."""
    seen: set[str] = set()
    widths = []
    for t in fig.data:
        group = getattr(t, "legendgroup", None) or getattr(t, "name", None)
        if getattr(t, "showlegend", None) is False or not getattr(t, "name", None) or group in seen:
            continue
        seen.add(group)
        widths.append(45 + 7 * len(re.sub(r"<[^>]+>", "", str(t.name))))
    rows, used = 1, 0
    for w in widths:
        if used and used + w > width_px:
            rows, used = rows + 1, 0
        used += w
    return rows


def _has_panel_titles(layout: Any) -> bool:
    """Whether annotations title panels from above (subplot titles, the curves' panel titles)."""
    for a in layout.annotations or ():
        if a.yref == "paper" and a.yanchor == "bottom" and a.showarrow is False and (a.y or 0) >= 0.999:
            return True
    return False


def axes(fig: Any) -> Any:
    """Fix every axis of ``fig`` to the house rules: log axes get ``exponentformat="power"`` (and a tick per
    decade or few over a wide span), axes titled as an accuracy / rate / share get a range within [0, 1]."""
    layout = fig.layout
    for name in [k for k in layout if re.match(r"^[xy]axis\d*$", k)]:
        axis = layout[name]
        values = _axis_values(fig, name)
        if axis.type == "log":
            ticks = log_ticks(values)
            if axis.exponentformat in (None, *SI_FORMATS):
                axis.exponentformat = "power"
            if axis.dtick is None and axis.tickvals is None:
                axis.update({k: v for k, v in ticks.items() if k in ("dtick", "tickmode", "tickvals", "ticktext")})
        title = (axis.title.text if axis.title is not None else "") or ""
        if _COUNTS.search(title) and axis.type in (None, "linear", "-") and axis.dtick is None and values:
            axis.update(integer_axis(values))
        if axis.type != "log" and is_fraction(title):
            nums = [v for v in values if _finite(v)]
            if axis.range is None:
                if nums and (min(nums) < -0.05 or max(nums) > 1.05):
                    continue  # not a fraction after all (a percentage, a count)
                axis.range = fraction_axis(nums)["range"]
            else:
                lo, hi = axis.range
                if lo is not None and hi is not None and (hi > 1.05 and max(nums or [0]) <= 1):
                    axis.range = [max(0.0, lo), 1.02]
    return fig


def _axis_values(fig: Any, axis_name: str) -> list[float]:
    """The data values drawn against the layout axis ``axis_name`` (``xaxis2`` → traces with ``xaxis="x2"``)."""
    letter, suffix = axis_name[0], axis_name[5:]
    ref = letter + suffix
    out: list[float] = []
    for t in fig.data:
        if (getattr(t, f"{letter}axis", None) or letter) != ref:
            continue
        vals = getattr(t, letter, None)
        if vals is None:
            continue
        try:
            out.extend(float(v) for v in vals if v is not None and not isinstance(v, str))
        except (TypeError, ValueError):
            continue
    return out
