import pytest

from workbench.params import Config, ConfigError, Param, parse_assignments


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
    from workbench.registry import Experiment

    exp = Experiment("x", Demo, lambda cfg, ctx: {}, key_metrics=("*/test/accuracy", "train/loss"))
    assert exp.is_key_metric("nfm/test/accuracy") and exp.is_key_metric("train/loss")
    assert not exp.is_key_metric("train/lr")
    assert Experiment("y", Demo, lambda cfg, ctx: {}).is_key_metric("anything")
