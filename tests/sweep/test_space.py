"""Search spaces from declared parameters, and bad spaces refused in one line before anything starts (no Ray)."""
import subprocess
import sys

import pytest

from workbench.core.params import ConfigError
from workbench.core.sweep.claims import aggregate, rule_bound
from workbench.core.sweep.space import parse_space

from . import toy

EXP = toy.EXPERIMENT


def test_declared_range_choices_and_narrowed_ranges():
    sp = parse_space(EXP, ["lr", "arch", "width=8,16,32", "seed=0..4", "offset=0.5:2"])
    d = {x.name: x for x in sp.dims}
    assert (d["lr"].kind, d["lr"].low, d["lr"].high, d["lr"].log) == ("float", 1e-3, 0.5, True)  # the soft range
    assert d["arch"].values == ("a", "b", "c")
    assert d["width"].values == (8, 16, 32) and all(isinstance(v, int) for v in d["width"].values)
    assert d["seed"].values == (0, 1, 2, 3, 4)
    assert (d["offset"].low, d["offset"].high, d["offset"].log) == (0.5, 2.0, False)
    dist = sp.distributions()
    assert dist["lr"].log and dist["width"].choices == (8, 16, 32)
    assert not sp.finite
    grid = parse_space(EXP, ["width=8,16", "seed=0..2"]).grid()
    assert grid[:3] == [{"width": 8, "seed": 0}, {"width": 8, "seed": 1}, {"width": 8, "seed": 2}] and len(grid) == 6


@pytest.mark.parametrize("spec, param, words", [
    ("nope=1:2", "nope", "unknown parameter 'nope'"),
    ("lr=1e-9:0.1:log", "lr", "out of range"),            # below the declared bounds
    ("lr=0.1:7", "lr", "out of range"),                   # above them
    ("width=8,abc", "width", "not a valid int"),          # wrong type
    ("width=1.5:4", "width", "not a valid int"),
    ("arch=a:c", "arch", "not a range"),                  # a range of a choice
    ("arch=a,z", "arch", "not allowed"),
    ("lr=0.1:0.01", "lr", "LOW < HIGH"),
    ("offset=0:2:log", "offset", "LOW > 0"),
    ("lr=0.1..0.2", "lr", "integer range"),
    ("steps", "steps", None),                             # declared, with finite bounds: allowed
])
def test_bad_spaces_name_the_parameter(spec, param, words):
    if words is None:
        parse_space(EXP, [spec])
        return
    with pytest.raises(ConfigError) as err:
        parse_space(EXP, [spec])
    assert err.value.param == param and words in str(err.value) and "\n" not in str(err.value)


def test_grid_needs_finite_sets_and_empty_space_refused():
    with pytest.raises(ConfigError, match="'lr': the grid sampler needs a finite set"):
        parse_space(EXP, ["lr=0.01:0.1"]).grid()
    with pytest.raises(ConfigError, match="at least one --space"):
        parse_space(EXP, [])
    with pytest.raises(ConfigError, match="both searched"):
        parse_space(EXP, ["lr"], fixed={"lr": 0.1})


def test_cli_bad_space_is_one_line_exit_2_before_anything_starts(tmp_path):
    cmd = [sys.executable, "-m", "workbench.core.sweep", "sweeptoy", "--module", "tests.sweep.toy",
           "--space", "lr=1e-9:0.1", "--store", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "parameter 'lr'" in lines[0] and "allowed range [0.0001, 1.0]" in lines[0]
    assert not (tmp_path / "workbench.db").exists() or "sweep-" not in (tmp_path / "workbench.db").read_bytes().decode(
        "latin-1")  # no study was created
    out = subprocess.run(cmd[:-4] + ["--space", "lr", "--sampler", "grid", "--store", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "grid sampler needs a finite set" in out.stderr


def test_rule_bounds_and_claims_over_seeds_from_stored_claims(tmp_path):
    """Each trial's claim effect is one replicate: the effect over seeds is Effect.paired of them."""
    from workbench.core.claims import Effect, exceeds, not_worse, superior
    from workbench.store.store import Store

    e = Effect.normal(0.5, 0.0, kind="value")
    assert rule_bound(exceeds("s", e, 0.95).rule) == (0.95, "higher")
    assert rule_bound(superior("s", "a", "b", Effect.normal(0.1, 0.01), better="lower").rule) == (0.0, "lower")
    assert rule_bound(not_worse("s", "a", "b", Effect.normal(0.1, 0.01), margin=0.02).rule) == (-0.02, "higher")
    store = Store(tmp_path)
    runs = []
    for seed, value in enumerate([0.50, 0.56, 0.53]):
        run_id = store.create_run("sweeptoy", {"seed": seed})
        store.add_claim(run_id, exceeds("score > 0.4", Effect.normal(value, 0.0, kind="value"), 0.4).to_record())
        runs.append((run_id, {"lr": 0.1}))
    (row,) = aggregate(store, runs)
    want = Effect.paired([0.50, 0.56, 0.53])
    assert row["seeds"] == 3 and row["effect"].value == pytest.approx(want.value)
    assert (row["effect"].low, row["effect"].high) == pytest.approx((want.low, want.high))
    assert row["outcome"] == "holds" and row["setting"] == {"lr": 0.1}
    (row,) = aggregate(store, runs[:1])  # one seed: no interval, never "holds"
    assert row["outcome"] == "inconclusive" and "unbounded" in row["reason"]


def test_sweep_id_is_checked_before_anything_starts(tmp_path, monkeypatch):
    """``sweep_id=`` names a new sweep: a malformed or taken name (or one given with ``resume``) is one line, and
    neither Ray nor a study is started."""
    pytest.importorskip("optuna")
    from workbench.core.sweep import execute, sweep
    from workbench.core.sweep import study as studies
    from workbench.store.store import Store

    def no_ray(*_a, **_k):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(execute, "connect", no_ray)
    store = Store(tmp_path)
    sp = parse_space(EXP, ["lr"])
    studies.create(store, studies.SweepSpec("sweeptoy", sp.specs(), ["val/loss"], ["min"]), "taken")
    for name, words in [("a b", "parameter 'sweep_id' = 'a b' is not allowed"), ("", "is not allowed"),
                        ("taken", "names a sweep already in the store; continue it with resume='taken'")]:
        with pytest.raises(ConfigError, match=words):
            sweep("sweeptoy", ["lr"], store=store, sweep_id=name)
    with pytest.raises(ConfigError, match="not both"):
        sweep(store=store, sweep_id="new", resume="taken")
    assert studies.sweeps(store) == ["taken"]
