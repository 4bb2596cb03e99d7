"""A parameter form generated from an experiment's declared parameters (ipywidgets 8).

One control per :class:`~workbench.core.params.Param`, chosen by the shared mapping in :mod:`widgets.declared`
(checkbox, dropdown, checkboxes for a multi-choice parameter, (log-)slider over the soft range, number box,
text). The doc line is the tooltip, the unit sits beside the control, and an invalid value is shown in red next
to its control, never as a traceback. The form is compact: the essentials (:func:`widgets.declared.essentials`)
are shown, every other parameter sits in one folded "more parameters" section with a tab per parameter group
(the engine's seed/device/... last), which opens by itself on the tab of a parameter whose value is invalid.
"""
from __future__ import annotations

import html
import math
from typing import Any, Callable

import ipywidgets as W
import traitlets

from workbench.core.params import Config, ConfigError, Param

from .declared import ENGINE, MAX_INT_SLIDER, ControlSpec, control_spec, essentials, sections  # noqa: F401

_ERROR_STYLE = "color:#c0392b;font-size:0.85em"


class CheckboxGroup(W.VBox):
    """One checkbox per choice; ``value`` is the tuple of ticked choices (in declaration order).

    The doc line is the ``title`` of the label element (``doc``), never the box's ``tooltip`` trait: JupyterLab's
    widget manager reads a ``description`` for a tooltip, which a box has not, and fails to draw the view."""

    value = traitlets.Tuple()
    disabled = traitlets.Bool(False)

    def __init__(self, options: tuple[Any, ...], value: tuple[Any, ...], description: str = "",
                 doc: str = "") -> None:
        self.options = tuple(options)
        self.boxes = [W.Checkbox(value=o in value, description=str(o), indent=False,
                                 layout=W.Layout(width="auto", margin="0 12px 0 0")) for o in self.options]
        title = W.HTML(f"<span title='{html.escape(doc, quote=True)}'>{html.escape(description)}</span>",
                       layout=W.Layout(min_width="90px"))
        super().__init__([title, W.HBox(self.boxes, layout=W.Layout(flex_flow="row wrap"))])
        self.label, self.doc = description, doc
        self.add_class("wb-checkboxes")
        self.value = tuple(value)
        self._syncing = False
        for box in self.boxes:
            box.observe(self._ticked, names="value")

    def _ticked(self, _change: dict) -> None:
        if not self._syncing:
            self.value = tuple(o for o, b in zip(self.options, self.boxes) if b.value)

    @traitlets.observe("value")
    def _value_set(self, change: dict) -> None:
        self._syncing = True
        try:
            for o, b in zip(self.options, self.boxes):
                b.value = o in change["new"]
        finally:
            self._syncing = False

    @traitlets.observe("disabled")
    def _disabled_set(self, change: dict) -> None:
        for b in self.boxes:
            b.disabled = change["new"]


def build(spec: ControlSpec, value: Any) -> W.DOMWidget:
    """The ipywidget for ``spec``, set to ``value``."""
    common: dict[str, Any] = dict(description=spec.label, tooltip=spec.tooltip, style={"description_width": "initial"})
    kind = spec.kind
    if kind == "checkboxes":
        return CheckboxGroup(spec.options, tuple(value), description=spec.label, doc=spec.tooltip)
    if kind == "checkbox":
        return W.Checkbox(value=bool(value), indent=False, **common)
    if kind == "dropdown":
        return W.Dropdown(options=list(spec.options), value=value, **common)
    if kind == "int_slider":
        return W.IntSlider(value=value, min=spec.lo, max=spec.hi, step=spec.step, continuous_update=False, **common)
    if kind == "int_box":  # unbounded box: a value out of range is shown in red beside it, never clamped
        return W.IntText(value=value, **common)
    if kind == "log_slider":
        return W.FloatLogSlider(value=value, base=10, min=math.log10(spec.lo), max=math.log10(spec.hi),
                                step=spec.step, continuous_update=False, readout_format=spec.fmt, **common)
    if kind == "float_slider":
        return W.FloatSlider(value=value, min=spec.lo, max=spec.hi, step=spec.step, continuous_update=False,
                             readout_format=spec.fmt, **common)
    if kind == "float_box":
        return W.FloatText(value=value, **common)
    return W.Text(value=str(value), continuous_update=False, **common)


def control_for(param: Param, value: Any) -> W.DOMWidget:
    """The ipywidget for one declared parameter, set to ``value``."""
    return build(control_spec(param, value), value)


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
        self.controls: dict[str, W.DOMWidget] = {}
        self.messages: dict[str, W.HTML] = {}
        self.errors: dict[str, str] = {}
        self._listeners: list[Callable[["ParamForm"], None]] = []
        shown = set(essentials(self.params))
        rows: dict[str, W.Widget] = {}
        self.section_of: dict[str, str] = {}
        for section, names in sections(self.params).items():
            for name in names:
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
                unit = W.HTML(f"<span style='color:#777'>{html.escape(param.unit)}</span>") if param.unit else None
                ctrl.observe(self._changed, names="value")
                self.controls[name], self.messages[name] = ctrl, msg
                rows[name] = W.HBox([ctrl] + ([unit] if unit else []) + [msg])
                self.section_of[name] = section
        self.form_message = W.HTML("")
        self.essential = [n for n in rows if n in shown]
        folded: dict[str, list[W.Widget]] = {}
        for name, row in rows.items():
            if name not in shown:
                folded.setdefault(self.section_of[name] or "other", []).append(row)
        self.tab_names = list(folded)
        self.tabs = W.Tab(children=[W.VBox(r, layout=W.Layout(grid_gap="2px")) for r in folded.values()],
                          titles=tuple(f"{t} ({len(r)})" for t, r in folded.items()))
        self.more = W.Accordion(children=[self.tabs] if folded else [], selected_index=None,
                                layout=W.Layout(min_width="520px"))  # its title on one line
        if folded:
            title = f"more parameters ({sum(map(len, folded.values()))}): " + ", ".join(folded)
            self.more.set_title(0, title if len(title) <= 64 else title.split(":")[0] + f" in {len(folded)} groups")
        self.more.add_class("wb-more")
        self.engine_box = self.more  # the engine's parameters (seed, device, ...) are the last tab
        children = [rows[n] for n in self.essential] + ([self.more] if folded else [])
        self.widget = W.VBox(children + [self.form_message], layout=W.Layout(grid_gap="2px"))
        self.widget.add_class("wb-form")
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
        folded = [n for n in errors if n in self.controls and n not in self.essential]
        if folded:  # an invalid value in the folded section: open it on that parameter's tab
            self.more.selected_index = 0
            self.tabs.selected_index = self.tab_names.index(self.section_of[folded[0]] or "other")
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
    return f"<span style='{_ERROR_STYLE}'>&#9888; {html.escape(message)}</span>"
