"""The one mapping from a declared :class:`~workbench.core.params.Param` to a control, shared by the notebook form
(ipywidgets), the Panel app and the magics' help. No UI imports here: :func:`control_spec` says *what* control
a parameter gets (kind, range, step, readout format, options); ``widgets.form`` and ``widgets.app`` build it.

- bool → checkbox; choices → dropdown; ``multiple=True`` → one checkbox per choice;
- int with a range of at most ``MAX_INT_SLIDER`` values → slider, else a bounded whole-number box;
- float with ``log=True`` and a positive range → log slider; float with a range → slider; else a number box;
- the slider range is ``Param.soft`` when declared (``Param.slider_range``), widened to hold the value;
- a float slider's step and readout follow the values' own precision (5e-4 reads "0.0005", never "0").
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from workbench.core.params import Config, Param

#: Largest integer range drawn as a slider; wider ranges get a bounded text box.
MAX_INT_SLIDER = 10_000

ENGINE = "engine"

#: How many parameters a compact form shows unfolded (besides every multi-choice parameter and ``steps``).
ESSENTIALS = 6


def engine_names() -> set[str]:
    """The engine's own parameters, declared on the base :class:`Config` (seed, device, amp, ...)."""
    return {k for k, v in vars(Config).items() if isinstance(v, Param)}


def ordered(params: dict[str, Param]) -> list[str]:
    """The experiment's own parameters first (in declaration order), then its groups', then the engine's."""
    return [name for names in sections(params).values() for name in names]


def sections(params: dict[str, Param]) -> dict[str, list[str]]:
    """``{section title: [names]}``: ``""`` (the config's own) first, each :class:`ParamGroup` in declaration
    order, ``"engine"`` (seed, device, amp, ...) last."""
    base = engine_names()
    out: dict[str, list[str]] = {"": []}
    for name, p in params.items():
        group = ENGINE if name in base else (getattr(p, "group", "") or "")
        if group != ENGINE:
            out.setdefault(group, []).append(name)
    out[ENGINE] = [n for n in params if n in base]
    return {k: v for k, v in out.items() if v}


def essentials(params: dict[str, Param], n: int = ESSENTIALS) -> list[str]:
    """The parameters a compact form shows unfolded, in form order: the first ``n`` outside the engine's, every
    multi-choice parameter (what a run compares) and ``steps``; the rest fold away."""
    names = [name for section, group in sections(params).items() if section != ENGINE for name in group]
    keep = set(names[:n]) | {k for k in names if getattr(params[k], "multiple", False)} | ({"steps"} & set(names))
    return [k for k in names if k in keep]


def decimals(value: float) -> int:
    """Decimal places needed to show ``value`` at its own precision (0.0005 → 4, 0.25 → 2, 3.0 → 0)."""
    if value == 0 or not math.isfinite(value):
        return 0
    text = f"{abs(value):.12g}"
    if "e" in text:
        mant, exp = text.split("e")
        places = len(mant.split(".")[1]) if "." in mant else 0
        return max(0, places - int(exp))
    return len(text.split(".")[1]) if "." in text else 0


def float_step(lo: float, hi: float, *values: float) -> float:
    """A slider step no coarser than a hundredth of the range, fine enough to land exactly on ``values``."""
    span = hi - lo
    step = 10 ** math.floor(math.log10(span / 100)) if span > 0 else 0.01
    for v in values:
        if v and math.isfinite(v):
            step = min(step, 10 ** -decimals(v))
    return step


@dataclass(frozen=True)
class ControlSpec:
    """What control a parameter gets: ``kind`` is one of checkbox, dropdown, checkboxes, int_slider, int_box,
    float_slider, log_slider, float_box, text; ``lo``/``hi`` the slider (or box) range, ``step`` its step,
    ``digits`` the decimals a float readout shows (``fmt`` the same as a Python format spec)."""

    name: str
    kind: str
    label: str
    tooltip: str
    unit: str
    section: str
    lo: float | None = None
    hi: float | None = None
    step: float | None = None
    digits: int = 0
    fmt: str = ""
    options: tuple[Any, ...] = ()

    def readout(self, value: Any) -> str:
        """The value as the control shows it."""
        if self.kind in ("float_slider", "float_box", "log_slider") and isinstance(value, (int, float)):
            return format(value, self.fmt) if self.fmt else str(value)
        return str(value)


def control_spec(param: Param, value: Any = None) -> ControlSpec:
    """The control of one declared parameter, set up to show ``value`` (default: the declared default)."""
    value = param.default if value is None else value
    base = dict(name=param.name, label=param.name, tooltip=param.doc or param.name, unit=param.unit,
                section=ENGINE if param.name in engine_names() else (getattr(param, "group", "") or ""))
    kind = param.kind
    if getattr(param, "multiple", False):
        return ControlSpec(kind="checkboxes", options=tuple(param.choices or ()), **base)
    if kind is bool:
        return ControlSpec(kind="checkbox", **base)
    if param.choices is not None:
        return ControlSpec(kind="dropdown", options=tuple(param.choices), **base)
    lo, hi = _slider_range(param)
    if kind is int:
        if lo is not None and hi is not None:
            lo, hi = min(lo, value), max(hi, value)
            if hi - lo <= MAX_INT_SLIDER:
                return ControlSpec(kind="int_slider", lo=int(lo), hi=int(hi), step=int(param.step or 1), **base)
        hard = param.bounds or (None, None)
        return ControlSpec(kind="int_box", lo=hard[0], hi=hard[1], step=1, **base)
    if kind is float:
        if lo is not None and hi is not None:
            if param.log and lo > 0:
                lo, hi = min(lo, value) if value > 0 else lo, max(hi, value)
                digits = max(decimals(lo), decimals(value), 2)
                return ControlSpec(kind="log_slider", lo=float(lo), hi=float(hi), step=param.step or 0.05,
                                   digits=digits, fmt=".3g", **base)
            lo, hi = min(lo, value), max(hi, value)
            step = float(param.step) if param.step else float_step(lo, hi, value, param.default)
            digits = max(decimals(step), decimals(value))
            return ControlSpec(kind="float_slider", lo=float(lo), hi=float(hi), step=step, digits=digits,
                               fmt=f".{digits}f", **base)
        hard = param.bounds or (None, None)
        digits = max(decimals(value) if isinstance(value, (int, float)) else 0, 1)
        return ControlSpec(kind="float_box", lo=hard[0], hi=hard[1], step=param.step, digits=digits,
                           fmt=".6g", **base)
    return ControlSpec(kind="text", **base)


def _slider_range(param: Param) -> tuple[float | None, float | None]:
    rng = getattr(param, "slider_range", None)
    if rng is not None:
        return rng
    return param.bounds if param.bounds is not None else (None, None)


def help_lines(config: type[Config], prefix: str = "--") -> list[str]:
    """One line per declared parameter (flag, default, allowed values, unit, doc), a heading per group."""
    params = config.params()
    lines: list[str] = []
    for section, names in sections(params).items():
        if section:
            lines.append(f"  {section}:")
        for name in names:
            p = params[name]
            allowed = p.allowed() or p.kind.__name__
            unit = f" {p.unit}" if p.unit else ""
            default = ",".join(map(str, p.default)) if isinstance(p.default, tuple) else repr(p.default)
            lines.append(f"  {prefix}{flag(name):<22} {default:<12} {allowed + unit:<28} {p.doc}")
    return lines


def flag(name: str) -> str:
    """The command-line spelling of a parameter (``checkpoint_every`` → ``checkpoint-every``)."""
    return name.replace("_", "-")
