"""The goldilocks experiment in smoke mode: every method runs, artifacts and claims are recorded, replay works."""
import math

import numpy as np
import pytest

import workbench
from workbench import runs
from workbench.methods.goldilocks.experiment import METHODS, GoldilocksConfig
from workbench.methods.goldilocks.speedup import speedup, speedup_table, steps_to_target
from workbench.core.params import ConfigError
from tests.common import StopAfter, smoke_group, smoke_run


def test_steps_to_target_and_speedup_table_by_hand():
    assert steps_to_target([10, 20, 30], [0.5, 0.8, 0.9], 0.8) == 20
    assert math.isinf(steps_to_target([10, 20], [0.5, 0.6], 0.8))
    assert speedup(40, 20) == 2.0 and speedup(40, math.inf) == 0.0 and math.isnan(speedup(math.inf, math.inf))
    rows = speedup_table({
        "uniform": ([10, 20, 30, 40], [1, 2, 3, 4], [0.5, 0.7, 0.8, 0.75]),
        "rho_loss": ([10, 20, 30, 40], [2, 4, 6, 8], [0.6, 0.85, 0.9, 0.9]),
        "bad": ([10, 20, 30, 40], [1, 2, 3, 4], [0.1, 0.2, 0.3, 0.4]),
    })
    by = {r["method"]: r for r in rows}
    assert by["uniform"]["target_accuracy"] == 0.8 and by["uniform"]["steps_to_target"] == 30
    assert by["rho_loss"]["steps_to_target"] == 20 and by["rho_loss"]["speedup_steps"] == 1.5
    assert by["rho_loss"]["speedup_wallclock"] == 3 / 4
    assert by["bad"]["speedup_steps"] == 0.0


def test_config_validation_names_the_parameter():
    assert GoldilocksConfig().small_batch == 32  # ⌈0.1 · 320⌉
    assert GoldilocksConfig(large_batch=33, percent_train=0.1).small_batch == 4
    with pytest.raises(ConfigError, match="replay_run"):
        GoldilocksConfig(selection="replay")
    with pytest.raises(ConfigError, match="methods"):
        GoldilocksConfig(methods="uniform,nope")
    with pytest.raises(ConfigError, match="noise_rate"):
        GoldilocksConfig(noise_rate=1.5)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_runs_in_smoke_mode(method):
    res = workbench.run("goldilocks", {"selection": method, "steps": 2}, smoke=True, progress=False)
    assert res.status == "completed", res.error
    seq = runs.artifact(res.run_id, f"selected/{method}")
    assert seq.shape == (2, 8)
    assert math.isfinite(res.summary["test/accuracy"])


@smoke_group("goldilocks")
def test_compare_mode_records_everything_and_checks_four_claims():
    res = smoke_run("goldilocks").result
    assert res.status == "completed", res.error
    rid = res.run_id
    table = runs.artifact(rid, "speedup")
    methods = set(table["method"]) if hasattr(table, "columns") else {r["method"] for r in table}
    assert set(METHODS) | {"replay", "replay_uniform"} <= methods
    claims = runs.claims(rid)
    assert len(claims) == 4 and all(c["measured"] for c in claims)
    assert all(c["holds"] is None and c["detail"].startswith("not evaluated") for c in claims)  # a smoke run
    # every trained model reloads from its spec: the target per method, the replay models, the irreducible model
    saved = runs.models(rid)
    assert set(METHODS) | {"replay", "replay_uniform", "il_model"} <= set(saved)
    model = runs.load_model(rid, "rho_loss")
    from workbench.lib import data as wdata

    x, y = wdata.tensors("digits", "test")
    acc = float((model(x).argmax(-1) == y).float().mean())
    assert acc == pytest.approx(res.summary["rho_loss/test/accuracy"])
    gallery = runs.artifact(rid, "gallery")
    item = gallery["items"][0]
    assert {"image", "label", "true_label", "corrupted", "train_loss", "irreducible_loss", "score"} <= set(item)
    assert np.asarray(item["image"]).shape == (8, 8)
    scatter = runs.artifact(rid, "scatter")
    assert len(scatter["train_loss"]) == len(scatter["irreducible_loss"]) == len(scatter["selected"])
    names = set(runs.metrics(rid)["name"])
    for m in METHODS:
        assert f"{m}/test/accuracy" in names and f"{m}/time_s" in names
    hist = runs.artifact(rid, "scores/rho_loss")
    assert sum(hist["selected"]) > 0 and sum(hist["candidates"]) >= sum(hist["selected"])


def test_replay_run_reproduces_the_recorded_selection():
    first = workbench.run("goldilocks", {"selection": "rho_loss"}, smoke=True, progress=False)
    assert first.status == "completed", first.error
    second = workbench.run("goldilocks", {"selection": "replay", "replay_run": first.run_id, "arch": "cnn"},
                           smoke=True, progress=False)
    assert second.status == "completed", second.error
    recorded = runs.artifact(first.run_id, "selected/rho_loss")
    replayed = runs.artifact(second.run_id, "selected/replay")
    assert np.array_equal(recorded, replayed)


def test_same_seed_same_selection():
    a = workbench.run("goldilocks", {"selection": "boltzmann"}, smoke=True, progress=False)
    b = workbench.run("goldilocks", {"selection": "boltzmann"}, smoke=True, progress=False)
    assert np.array_equal(runs.artifact(a.run_id, "selected/boltzmann"), runs.artifact(b.run_id, "selected/boltzmann"))




def test_stopped_compare_run_resumes_to_the_same_selections():
    cfg = {"checkpoint_every": 1, "methods": "uniform,rho_loss,boltzmann,bald"}
    full = workbench.run("goldilocks", cfg, smoke=True, progress=False)
    cut = workbench.run("goldilocks", cfg, smoke=True, progress=False, control=StopAfter(12))  # inside boltzmann
    assert cut.status == "stopped"
    resumed = workbench.run("goldilocks", resume=cut.run_id, progress=False)
    assert resumed.status == "completed", resumed.error
    for m in ["uniform", "rho_loss", "boltzmann", "bald", "replay_uniform", "replay"]:
        assert np.array_equal(runs.artifact(full.run_id, f"selected/{m}"), runs.artifact(cut.run_id, f"selected/{m}")), m
    assert resumed.summary["rho_loss/test/accuracy"] == full.summary["rho_loss/test/accuracy"]


def test_replicates_report_the_median_over_seeds():
    res = workbench.run("goldilocks", {"methods": "uniform,rho_loss,train_loss", "seeds": 2}, smoke=True, progress=False)
    assert res.status == "completed", res.error
    table = runs.artifact(res.run_id, "speedup")
    rows = table.to_dict("records") if hasattr(table, "to_dict") else table
    assert sorted({r["seed"] for r in rows}) == [0, 1]
    assert {r["method"] for r in rows} == {"uniform", "rho_loss", "train_loss", "replay_uniform", "replay"}
    claim = runs.claims(res.run_id)[0]
    assert "t interval over 2 seeds" in claim["detail"] and "seed 1:" in claim["detail"]
    names = set(runs.metrics(res.run_id)["name"])
    assert "rho_loss@1/test/accuracy" in names and "il_model@1/test/accuracy" in names


@pytest.mark.parametrize("options", [
    {"selection": "rho_loss", "update_irreducible": True},
    {"selection": "rho_loss", "noise": "structured", "noise_rate": 0.2},
    {"selection": "bald", "eval_mode_scoring": True, "arch": "cnn", "il_arch": "cnn", "width": 4, "il_width": 4},
    {"selection": "boltzmann", "ambiguous_rate": 0.1, "duplicate_rate": 0.1, "noise": "none", "temperature": 0.1},
])
def test_options_run_in_smoke_mode(options):
    res = workbench.run("goldilocks", options, smoke=True, progress=False)
    assert res.status == "completed", res.error
    if options.get("noise") == "none":
        assert res.summary["noise_rate"] == 0.0
    if options.get("noise") == "structured":
        assert abs(res.summary["noise_rate"] - 0.2) < 0.01


def test_accuracy_on_a_test_subset_during_training_and_the_whole_test_set_at_the_end():
    from workbench.lib import data as wdata

    n_test = len(wdata.tensors("digits", "test")[1])
    res = workbench.run("goldilocks", {"methods": "uniform,rho_loss", "steps": 4, "eval_points": 50}, smoke=True,
                        progress=False)
    assert res.status == "completed", res.error
    m = runs.metrics(res.run_id)
    sub = m[m["name"] == "rho_loss/test_subset/accuracy"]
    full = m[m["name"] == "rho_loss/test/accuracy"]
    assert list(sub["step"]) == [2, 4] and list(full["step"]) == [4]
    # the subset accuracy counts 50 points, the final one the whole test set
    assert all(abs(v * 50 - round(v * 50)) < 1e-9 for v in sub["value"])
    assert abs(full["value"].iloc[0] * n_test - round(full["value"].iloc[0] * n_test)) < 1e-6
    assert res.summary["rho_loss/test/accuracy"] == pytest.approx(full["value"].iloc[0])
    names = set(m["name"])
    for name in ("rho_loss/select/corrupted_share_recent", "rho_loss/diag/confidence_gap_corrupted",
                 "rho_loss/diag/reducible_loss_corrupted", "rho_loss/diag/rho_pick_corrupted_share",
                 "il_model/train_part/accuracy", "il_model/train_part/ece", "il_model/train_part/accuracy_clean_labels",
                 "il_model/best_step"):
        assert name in names, name
    hist = runs.artifact(res.run_id, "rl_hist/rho_loss", step=4)
    assert sum(hist["clean"]) + sum(hist["corrupted"]) == len(wdata.tensors("digits", "train", holdout=0.5)[1])
    rel = runs.artifact(res.run_id, "il_model/reliability")
    rows = rel.to_dict("records") if hasattr(rel, "to_dict") else rel
    assert len(rows) == 15 and {"accuracy", "accuracy_clean_labels", "confidence", "count"} <= set(rows[0])
    table = runs.artifact(res.run_id, "speedup")
    rows = table.to_dict("records") if hasattr(table, "to_dict") else table
    row = next(r for r in rows if r["method"] == "rho_loss")
    assert row["final_test_accuracy"] == pytest.approx(full["value"].iloc[0])


def test_a_compare_run_stopped_in_its_second_replicate_resumes_to_the_same_speedups(tmp_path):
    """Stopped at step 50 of 68 (the second seed, before a method's first step): the first replicate's records are
    restored before its speedup rows are read, and a record checkpointed empty reloads."""
    from workbench.store.store import Store

    store = Store(tmp_path / "store")
    full = workbench.run("goldilocks", smoke=True, progress=False, store=store)
    part = workbench.run("goldilocks", {"checkpoint_every": 1}, smoke=True, progress=False, control=StopAfter(50),
                         store=store)
    assert part.status == "stopped", part.error
    resumed = workbench.run("goldilocks", resume=part.run_id, progress=False, store=store)
    assert resumed.status == "completed", resumed.error
    columns = ("method", "seed", "steps_to_target", "speedup_steps", "final_test_accuracy", "corrupted_share")
    import pandas as pd

    table = lambda rid: runs.artifact(rid, "speedup", store=store)[list(columns)]  # noqa: E731
    pd.testing.assert_frame_equal(table(resumed.run_id), table(full.run_id))
