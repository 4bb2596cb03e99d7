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
    # five parameters: all shown; the engine's (seed, device, ...) folded away in a closed section
    assert form.essential == ["steps", "gamma", "methods", "lr", "weight_decay"]
    assert isinstance(form.more, W.Accordion) and form.more.selected_index is None
    assert form.tab_names == ["engine"] and "seed" in form.controls


def _walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)


@pytest.fixture(scope="module")
def forms():
    """Every registered experiment's form, at its defaults (built once for the tests below)."""
    from workbench.core.registry import experiments
    from widgets.form import ParamForm

    return {name: (exp, ParamForm(exp.config)) for name, exp in experiments().items()}


def test_every_form_is_compact_and_folds_the_rest(forms):
    """Every registered experiment's form: the essentials shown, every other control in the folded tabs (none
    lost), and an invalid value in a folded parameter opens the section on its tab."""
    import ipywidgets as W

    from workbench.core.registry import experiments
    from widgets.declared import ESSENTIALS
    from widgets.form import ParamForm

    for name, (exp, form) in forms.items():
        shown = {id(w) for w in _walk(W.VBox([c for c in form.widget.children if c is not form.more]))}
        folded = {id(w) for w in _walk(form.tabs)}
        for pname, ctrl in form.controls.items():
            assert (id(ctrl) in shown) == (pname in form.essential) and (id(ctrl) in folded) != (id(ctrl) in shown), \
                (name, pname)
        multiple = [k for k, p in exp.config.params().items() if p.multiple]
        assert set(multiple) <= set(form.essential), name  # what a run compares is never folded away
        assert len(form.essential) <= ESSENTIALS + 2 and form.more.selected_index is None, name
    form = ParamForm(experiments()["goldilocks"].config)
    assert "il_steps" not in form.essential and form.more.selected_index is None
    form.set(il_steps=0)  # a whole-number box: the value stays as typed, shown in red beside it
    assert form.more.selected_index == 0 and form.tab_names[form.tabs.selected_index] == "other"
    assert "out of range" in form.messages["il_steps"].value


def test_no_box_in_a_form_carries_a_tooltip(forms):
    """JupyterLab draws a widget's tooltip from its ``description``; a box (the multi-choice checkboxes) has none,
    and a tooltip on it makes the front end fail ("Could not create a view"). The doc goes on the label instead."""
    import html

    from widgets.form import CheckboxGroup

    groups = 0
    for name, (exp, form) in forms.items():
        for w in _walk(form.widget):
            if getattr(w, "tooltip", None):
                assert "description" in w.trait_names(), (name, type(w).__name__, w.tooltip)
            if isinstance(w, CheckboxGroup):
                groups += 1
                param = exp.config.params()[w.label]
                assert f"title='{html.escape(param.doc, quote=True)}'" in w.children[0].value, (name, w.label)
    assert groups >= 5  # goldilocks methods, ls4 baselines, noisymix/nfm variants, nft models and tasks, ...


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
