import pytest

from workbench.core.params import Config, ConfigError, Param, ParamGroup, parse_assignments


class Demo(Config):
    steps: int = Param(10, bounds=(1, 100), unit="steps", doc="optimizer steps")
    lr: float = Param(0.1, bounds=(0.0, 1.0), log=True, doc="learning rate")
    arch: str = Param("mlp", choices=("mlp", "cnn"), doc="architecture")
    augment: bool = Param(False, doc="augment")


def test_defaults_and_base_params():
    cfg = Demo()
    assert cfg.steps == 10 and cfg.lr == 0.1 and cfg.arch == "mlp" and cfg.augment is False
    assert {"seed", "device", "amp", "checkpoint_every"} <= set(Demo.params())
    assert Demo.params()["lr"].name == "lr"


@pytest.mark.parametrize(
    "values, needle",
    [
        ({"steps": 0}, "parameter 'steps' = 0 is out of range; allowed range [1, 100]"),
        ({"steps": 1.5}, "parameter 'steps' = 1.5 has type float, expected int"),
        ({"lr": float("nan")}, "parameter 'lr' = nan is not finite"),
        ({"arch": "vit"}, "parameter 'arch' = 'vit' is not allowed; allowed: mlp, cnn"),
        ({"augment": "maybe"}, "parameter 'augment' = 'maybe' is not a boolean"),
        ({"device": "tpu"}, "parameter 'device' = 'tpu' is not allowed; allowed: auto, cpu, cuda"),
        ({"stpes": 3}, "unknown parameter 'stpes'"),
    ],
)
def test_bad_values_name_parameter_value_and_range(values, needle):
    with pytest.raises(ConfigError) as err:
        Demo(**values)
    assert needle in str(err.value)


def test_strings_from_command_lines_are_coerced():
    cfg = Demo(steps="20", lr="1e-2", augment="true")
    assert cfg.steps == 20 and cfg.lr == 0.01 and cfg.augment is True
    assert Demo(steps=5.0).steps == 5


def test_immutable_replace_and_round_trip():
    cfg = Demo(steps=20)
    with pytest.raises(AttributeError):
        cfg.steps = 3
    assert cfg.replace(lr=0.2).lr == 0.2 and cfg.lr == 0.1
    assert Demo.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError):
        cfg.replace(steps=1000)


def test_cross_parameter_check():
    class Checked(Demo):
        def check(self):
            if self.arch == "cnn" and self.steps < 5:
                raise ConfigError("parameter 'steps' must be ≥ 5 for arch=cnn", "steps")

    with pytest.raises(ConfigError, match="steps"):
        Checked(arch="cnn", steps=2)


def test_parse_assignments_key_value_and_yaml():
    assert parse_assignments("steps = 20\nlr = 1e-3\n# comment\narch = cnn") == {"steps": 20, "lr": 1e-3, "arch": "cnn"}
    assert parse_assignments("steps: 20\narch: mlp") == {"steps": 20, "arch": "mlp"}


def test_key_metric_patterns():
    from workbench.core.registry import Experiment

    exp = Experiment("x", Demo, lambda cfg, ctx: {}, key_metrics=("*/test/accuracy", "train/loss"))
    assert exp.is_key_metric("nfm/test/accuracy") and exp.is_key_metric("train/loss")
    assert not exp.is_key_metric("train/lr")
    assert Experiment("y", Demo, lambda cfg, ctx: {}).is_key_metric("anything")


# -- parameter groups, multi-choice and soft bounds ------------------------------------------------

class OptimParams(ParamGroup):
    lr: float = Param(0.1, bounds=(1e-6, 10.0), soft=(1e-4, 1.0), log=True, doc="learning rate")
    momentum: float = Param(0.9, bounds=(0.0, 0.999), doc="momentum")


class Grouped(OptimParams, Config):
    methods: tuple = Param(("a", "b"), choices=("a", "b", "c"), multiple=True, doc="methods compared")
    steps: int = Param(10, bounds=(1, None), soft=(1, 1000), doc="steps")


def test_groups_compose_into_a_config_with_sections():
    cfg = Grouped(lr=0.5)
    assert cfg.lr == 0.5 and cfg.momentum == 0.9
    params = Grouped.params()
    assert params["lr"].group == "Optim" and params["steps"].group == "" and params["seed"].group == "engine"
    assert Grouped.groups() == {"engine": ["seed", "device", "amp", "checkpoint_every", "threads"],
                                "Optim": ["lr", "momentum"], "": ["methods", "steps"]}
    with pytest.raises(ConfigError, match=r"parameter 'lr' = 20\.0 is out of range; allowed range \[1e-06, 10\.0\]"):
        Grouped(lr=20.0)
    bound = OptimParams.bind(cfg, momentum=0.5)  # one group's values, from a config, with overrides
    assert (bound.lr, bound.momentum) == (0.5, 0.5) and isinstance(cfg, OptimParams)
    with pytest.raises(ConfigError, match="momentum"):
        OptimParams.bind(momentum=2.0)


def test_soft_bounds_set_the_slider_not_the_validation():
    p = Grouped.params()
    assert p["lr"].slider_range == (1e-4, 1.0) and Grouped(lr=5.0).lr == 5.0  # outside the slider, still valid
    assert p["momentum"].slider_range == (0.0, 0.999)
    assert Grouped(steps=5000).steps == 5000
    with pytest.raises(TypeError, match="within bounds"):
        Param(1.0, bounds=(0.0, 2.0), soft=(0.0, 3.0))


def test_multi_choice_parameters():
    assert Grouped().methods == ("a", "b")
    assert Grouped(methods="c, a").methods == ("c", "a")  # comma-separated, as on a command line; order kept
    assert Grouped(methods=["b"]).methods == ("b",)
    assert Grouped(methods="all").methods == ("a", "b", "c")
    with pytest.raises(ConfigError, match=r"parameter 'methods': 'x' not allowed; allowed: one or more of a, b, c"):
        Grouped(methods="a,x")
    with pytest.raises(ConfigError, match="at least one"):
        Grouped(methods="")
    with pytest.raises(ConfigError, match="twice"):
        Grouped(methods="a,a")
    cfg = Grouped(methods=("c",))
    assert cfg.to_dict()["methods"] == ["c"] and Grouped.from_dict(cfg.to_dict()) == cfg  # JSON round trip
    assert Grouped.params()["methods"].allowed() == "one or more of a, b, c"


def test_a_method_that_fails_to_import_is_an_error(monkeypatch):
    from workbench.core import registry

    found = registry.builtin_modules()
    assert "workbench.methods.kto.experiment" in found and len(found) == len(set(found)) >= 10
    monkeypatch.setattr(registry, "builtin_modules", lambda: [*found, "workbench.methods.nosuch.experiment"])
    monkeypatch.setattr(registry, "_loaded", False)
    with pytest.raises(ImportError, match="workbench.methods.nosuch"):
        registry.experiments()


def test_third_party_methods_register_through_the_entry_point(monkeypatch):
    from workbench.core import registry

    class EntryPoint:
        def load(self):
            from . import toy

            return toy.EXPERIMENT

    loaded = []
    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.setattr(registry, "entry_points",
                        lambda group: loaded.append(group) or ([EntryPoint()] if group == "workbench.experiments" else []))
    assert "toy" in registry.experiments() and loaded == ["workbench.experiments"]


def test_scales_are_presets_under_the_given_values():
    from workbench.core.registry import Experiment

    from . import toy

    exp = Experiment(name="scaled", config=toy.ToyConfig, run=toy.run, smoke={"steps": 2}, demo={"steps": 50},
                     paper={"steps": 5000, "lr": 0.01})
    assert exp.make_config(scale="paper").steps == 5000 and exp.make_config(scale="paper").lr == 0.01
    assert exp.make_config({"steps": 7}, scale="paper").steps == 7  # the given values win
    assert exp.make_config(scale="demo").steps == 50 and exp.make_config(smoke=True).steps == 2
    assert exp.make_config().steps == toy.ToyConfig.params()["steps"].default
    with pytest.raises(ConfigError, match="scale"):
        exp.make_config(scale="huge")
