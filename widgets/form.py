"""A parameter form generated from an experiment's declared parameters (ipywidgets 8).

One control per :class:`~workbench.params.Param`: a checkbox for booleans, a dropdown for choices, a
(log-)slider for bounded numbers, a text box otherwise. The doc line is the tooltip, the unit sits beside
the control, and an invalid value is shown in red next to its control, never as a traceback.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import ipywidgets as W

from workbench.params import Config, ConfigError, Param

from .declared import engine_names, ordered

#: Largest integer range drawn as a slider; wider ranges get a bounded text box.
MAX_INT_SLIDER = 10_000
_ERROR_STYLE = "color:#c0392b;font-size:0.85em"


def control_for(param: Param, value: Any) -> W.ValueWidget:
    """The ipywidget for one declared parameter, set to ``value``."""
    common: dict[str, Any] = dict(description=param.name, tooltip=param.doc or param.name,
                                  style={"description_width": "initial"})
    kind = param.kind
    lo, hi = param.bounds if param.bounds is not None else (None, None)
    if kind is bool:
        return W.Checkbox(value=bool(value), indent=False, **common)
    if param.choices is not None:
        return W.Dropdown(options=list(param.choices), value=value, **common)
    if kind is int:
        if lo is not None and hi is not None and hi - lo <= MAX_INT_SLIDER:
            return W.IntSlider(value=value, min=int(lo), max=int(hi), step=int(param.step or 1),
                               continuous_update=False, **common)
        return W.IntText(value=value, **common)
    if kind is float:
        if lo is not None and hi is not None:
            if param.log and lo > 0:
                return W.FloatLogSlider(value=value, base=10, min=math.log10(lo), max=math.log10(hi),
                                        step=param.step or 0.05, continuous_update=False, readout_format=".2e",
                                        **common)
            step = param.step or (hi - lo) / 100
            return W.FloatSlider(value=value, min=lo, max=hi, step=step, continuous_update=False,
                                 readout_format=".3g", **common)
        return W.FloatText(value=value, **common)
    return W.Text(value=str(value), continuous_update=False, **common)


class ParamForm:
    """A form for ``config_cls`` (a :class:`Config` subclass), starting at its defaults updated by ``values``.

    ``form.values`` is the raw value dict, ``form.config()`` the validated config (raises
    :class:`ConfigError`), ``form.errors`` maps a parameter (or ``""`` for the whole form) to its message.
    ``hide`` names parameters left out of the form (they keep their default or given value).
    """

    def __init__(self, config_cls: type[Config], values: dict[str, Any] | None = None,
                 hide: tuple[str, ...] = ()) -> None:
        self.config_cls = config_cls
        self.params = config_cls.params()
        values = dict(values or {})
        unknown = sorted(set(values) - set(self.params))
        if unknown:
            raise ConfigError(f"unknown parameter {unknown[0]!r} for {config_cls.__name__}; known: "
                              f"{', '.join(self.params)}", unknown[0])
        self._fixed = {k: values[k] for k in hide if k in values}
        self.controls: dict[str, W.ValueWidget] = {}
        self.messages: dict[str, W.HTML] = {}
        self.errors: dict[str, str] = {}
        self._listeners: list[Callable[["ParamForm"], None]] = []
        rows, engine_rows = [], []
        engine = engine_names()
        for name in ordered(self.params):
            param = self.params[name]
            if name in hide:
                continue
            value = values.get(name, param.default)
            try:
                value = param.validate(value)
            except ConfigError as err:
                self.errors[name] = str(err)
                value = param.default
            ctrl = control_for(param, value)
            msg = W.HTML("")
            unit = W.HTML(f"<span style='color:#777'>{param.unit}</span>") if param.unit else None
            ctrl.observe(self._changed, names="value")
            self.controls[name], self.messages[name] = ctrl, msg
            (engine_rows if name in engine else rows).append(W.HBox([ctrl] + ([unit] if unit else []) + [msg]))
        self.form_message = W.HTML("")
        children = rows
        if engine_rows:  # seed, device, amp, ...: folded away under the experiment's own parameters
            self.engine_box = W.Accordion(children=[W.VBox(engine_rows)], selected_index=None)
            self.engine_box.set_title(0, "engine: " + ", ".join(n for n in ordered(self.params) if n in engine))
            children = rows + [self.engine_box]
        self.widget = W.VBox(children + [self.form_message], layout=W.Layout(grid_gap="2px"))
        self.validate()

    # values ---------------------------------------------------------------------------------
    @property
    def values(self) -> dict[str, Any]:
        out = {name: param.default for name, param in self.params.items()}
        out.update(self._fixed)
        out.update({name: ctrl.value for name, ctrl in self.controls.items()})
        return out

    def set(self, **values: Any) -> None:
        """Set controls from Python (what a user does with the mouse)."""
        for name, value in values.items():
            if name not in self.controls:
                raise ConfigError(f"unknown parameter {name!r}; known: {', '.join(self.controls)}", name)
            self.controls[name].value = self.params[name].coerce(value)

    def config(self) -> Config:
        """The validated config; raises :class:`ConfigError` (the form shows it too)."""
        self.validate()
        if self.errors:
            name, message = next(iter(self.errors.items()))
            raise ConfigError(message, name or None)
        return self.config_cls(**self.values)

    @property
    def valid(self) -> bool:
        return not self.errors

    def on_change(self, callback: Callable[["ParamForm"], None]) -> None:
        self._listeners.append(callback)

    # validation -----------------------------------------------------------------------------
    def validate(self) -> dict[str, str]:
        """Check each value, then the whole config; show every message next to its control."""
        errors: dict[str, str] = {}
        values = self.values
        for name, param in self.params.items():
            try:
                param.validate(values[name])
            except ConfigError as err:
                errors[name] = str(err)
        if not errors:
            try:
                self.config_cls(**values)
            except ConfigError as err:
                key = err.param if err.param in self.controls else ""
                errors[key] = str(err)
        self.errors = errors
        for name, msg in self.messages.items():
            msg.value = _error_html(errors.get(name, ""))
        self.form_message.value = _error_html(errors.get("", ""))
        return errors

    def _changed(self, _change: dict) -> None:
        self.validate()
        for callback in self._listeners:
            callback(self)

    def disable(self, disabled: bool = True) -> None:
        for ctrl in self.controls.values():
            ctrl.disabled = disabled


def _error_html(message: str) -> str:
    if not message:
        return ""
    import html

    return f"<span style='{_ERROR_STYLE}'>&#9888; {html.escape(message)}</span>"
