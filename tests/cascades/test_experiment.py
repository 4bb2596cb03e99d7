"""The ``cascades`` experiment in smoke mode: every evaluation runs, artifacts and claims are recorded,
a stopped run resumes to the same numbers, bad settings are refused."""
import threading
import time

import pytest

import workbench
from workbench import runs
from workbench.core.params import ConfigError
from workbench.core.registry import get


def test_smoke_runs_every_evaluation(cascades_smoke_run):
    rid = cascades_smoke_run.run_id
    acc = runs.artifact(rid, "accuracy")
    methods = set(acc["method"])
    assert {"direct", "forward", "self_consistency", "verifier_smc", "verifier_rejection", "tool",
            "selection_inference"} <= methods
    assert set(acc[acc["method"] == "self_consistency"]["k"]) == {1, 2}
    assert ((acc["accuracy"] >= 0) & (acc["accuracy"] <= 1)).all()
    assert set(runs.artifact(rid, "digits")["format"]) == {"direct", "scratchpad", "tool"}
    star = runs.artifact(rid, "star")
    assert list(star["round"]) == [0, 1]
    names = set(runs.metrics(rid)["name"])
    assert {"train/loss", "accuracy/self_consistency", "star/accuracy"} <= names


def test_traces_are_stored_for_the_viewer(cascades_smoke_run):
    traces = runs.artifact(cascades_smoke_run.run_id, "traces")["problems"]
    assert {r["method"] for r in traces} >= {"self_consistency", "verifier_smc", "verifier_rejection", "tool"}
    rec = next(r for r in traces if r["method"] == "self_consistency")
    assert len(rec["traces"]) == 2  # K = k_max = 2 samples
    for tr in rec["traces"]:
        assert {"sites", "weight", "accepted", "status", "log_weight"} <= set(tr)
        for site in tr["sites"]:
            assert {"name", "value", "log_prob", "parents", "kind"} <= set(site)
    rej = next(r for r in traces if r["method"] == "verifier_rejection")
    assert all(not t["accepted"] for t in rej["traces"] if t["status"] == "rejected")


def test_claims_are_recorded(cascades_smoke_run):
    claims = [c["claim"] for c in runs.claims(cascades_smoke_run.run_id)]
    assert any("Self-consistency" in c for c in claims)
    assert any("Verifier" in c for c in claims)
    assert any("Tool use" in c for c in claims)
    assert any("STaR" in c for c in claims)


def test_the_stored_model_reloads(cascades_smoke_run):
    from workbench.methods.cascades import String
    from workbench.methods.cascades.experiment import load_model

    lm = load_model(runs.artifact(cascades_smoke_run.run_id, "model"))
    assert String(lm, "Q:1+2\n", stop="\n", max_tokens=4).log_prob("0+0+0=00") < 0


def test_config_errors():
    exp = get("cascades")
    with pytest.raises(ConfigError, match="evaluations"):
        exp.make_config({"evaluations": "sampling,magic"})
    with pytest.raises(ConfigError, match="digit_weights"):
        exp.make_config({"digit_weights": "1,2"})
    with pytest.raises(ConfigError, match="n_head"):
        exp.make_config({"d_model": 30, "n_head": 4})
    assert exp.make_config({"k_max": 6}).ks == [1, 2, 4, 6]


def test_resume_mid_evaluation_matches_an_uninterrupted_run():
    from workbench.core.engine import Control

    cfg = {"evaluations": "sampling,verifier,star", "checkpoint_every": 1, "stored_traces": 0}
    full = workbench.run("cascades", cfg, smoke=True, progress=False)
    control = Control()

    def stop_in_evaluation():
        while control.steps_done < 22:  # 20 training steps, then 2 of the 3 evaluation units
            time.sleep(0.002)
        control.stop("test")

    threading.Thread(target=stop_in_evaluation, daemon=True).start()
    part = workbench.run("cascades", cfg, smoke=True, progress=False, control=control)
    assert part.status == "stopped"
    resumed = workbench.run("cascades", None, resume=part.run_id, progress=False)
    assert resumed.status == "completed", resumed.error
    assert resumed.summary == pytest.approx(full.summary)
