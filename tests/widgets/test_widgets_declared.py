"""One Param → control mapping for the notebook form, the Panel app and the magics' help: multi-choice
checkboxes, soft-bound sliders, group sections, float readouts at the values' own precision."""
from __future__ import annotations

import pytest

from workbench.core.params import Config, Param, ParamGroup


class OptimParams(ParamGroup):
    lr: float = Param(0.05, bounds=(1e-6, 10.0), log=True, doc="peak learning rate")
    weight_decay: float = Param(5e-4, bounds=(0.0, 0.1), doc="L2 penalty (100% = none)")


class DemoConfig(OptimParams, Config):
    steps: int = Param(100, bounds=(1, 1000), doc="steps")
    gamma: float = Param(12.0, bounds=(0.0, 100.0), soft=(0.0, 30.0), doc="weight")
    methods: tuple = Param(("a", "c"), choices=("a", "b", "c"), multiple=True, doc="which")


def test_specs_follow_the_declarations():
    from widgets.declared import control_spec, decimals, sections

    p = DemoConfig.params()
    wd = control_spec(p["weight_decay"])
    assert wd.kind == "float_slider" and wd.step <= 5e-4 and wd.readout(5e-4) == "0.0005"  # never "0"
    assert round(5e-4 / wd.step, 9).is_integer()  # the slider lands exactly on the value
    assert control_spec(p["gamma"]).hi == 30.0 and control_spec(p["gamma"], 50.0).hi == 50.0  # soft, widened
    assert control_spec(p["methods"]).kind == "checkboxes" and control_spec(p["methods"]).options == ("a", "b", "c")
    assert control_spec(p["lr"]).kind == "log_slider"
    assert control_spec(p["steps"]).kind == "int_slider"
    assert list(sections(p)) == ["", "Optim", "engine"]
    assert sections(p)[""] == ["steps", "gamma", "methods"]
    assert decimals(0.25) == 2 and decimals(3.0) == 0 and decimals(1e-6) == 6


def test_form_sections_checkboxes_and_precise_sliders():
    import ipywidgets as W

    from widgets.form import CheckboxGroup, ParamForm

    form = ParamForm(DemoConfig)
    c = form.controls
    assert isinstance(c["methods"], CheckboxGroup) and c["methods"].value == ("a", "c")
    c["methods"].boxes[1].value = True  # a person ticks "b"
    assert form.values["methods"] == ("a", "b", "c") and form.config().methods == ("a", "b", "c")
    for box in c["methods"].boxes:
        box.value = False
    assert "methods" in form.errors and not form.valid  # none ticked: shown beside the control
    form.set(methods="all")
    assert form.valid and c["methods"].value == ("a", "b", "c")
    assert isinstance(c["weight_decay"], W.FloatSlider) and c["weight_decay"].value == 5e-4
    assert c["weight_decay"].readout_format == ".4f"
    assert c["gamma"].max == 30.0
    heads = [w.value for w in form.widget.children if isinstance(w, W.HTML) and "Optim" in w.value]
    assert len(heads) == 1  # the group is a titled section
    assert isinstance(form.engine_box, W.Accordion)


def test_panel_widgets_use_the_same_mapping():
    pn = pytest.importorskip("panel")

    from widgets.app import panel_widget, widget_value

    p = DemoConfig.params()
    wd = panel_widget(p["weight_decay"], 5e-4)
    assert isinstance(wd, pn.widgets.FloatSlider) and wd.value == 5e-4 and wd.format == "0.0000"
    methods = panel_widget(p["methods"], ("a", "c"))
    assert isinstance(methods, pn.widgets.CheckBoxGroup) and widget_value(methods) == ("a", "c")
    lr = panel_widget(p["lr"], 0.05)
    assert isinstance(lr, pn.widgets.DiscreteSlider) and lr.value == 0.05 and "0.05" in lr.options
    assert panel_widget(p["gamma"], 12.0).end == 30.0


def test_help_lines_use_allowed_and_groups():
    from widgets.declared import help_lines

    text = "\n".join(help_lines(DemoConfig))
    assert "--weight-decay" in text and "[0.0, 0.1]" in text and "one or more of a, b, c" in text
    assert "  Optim:" in text and "  engine:" in text and "a,c" in text
