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
    assert list(star["round"]) == [0, 0, 1, 1] and list(star["arm"]) == ["star", "control"] * 2
    long = runs.artifact(rid, "long")
    assert list(long["format"]) == ["tool", "direct", "scratchpad"] and set(long["digits"]) == {3}
    names = set(runs.metrics(rid)["name"])
    assert {"train/loss", "eval/loss", "accuracy/self_consistency", "star/accuracy", "star/control_accuracy",
            "star/control_loss", "long/tool"} <= names


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
    """Every claim names its arm and carries an effect with an interval and a rule; a smoke run evaluates none."""
    claims = runs.claims(cascades_smoke_run.run_id)
    names = [c["claim"] for c in claims]
    assert any("Self-consistency" in c for c in names)
    assert any("Verifier" in c for c in names)
    assert any("Tool use" in c for c in names)
    assert any("STaR" in c for c in names)
    for c in claims:
        assert c["arm"] and c["method"] and c["rule"].startswith("holds if")
        assert c["effect"] is not None and c["low"] is not None and c["high"] is not None
        assert c["outcome"] == "not evaluated"
    star = next(c for c in claims if "STaR" in c["claim"])
    assert "control" in star["arm"]
    tool = next(c for c in claims if "Tool use" in c["claim"])
    assert "longer than any in training" in tool["claim"] and "unaided" in tool["arm"]


def test_the_saved_model_reloads_in_a_plain_process(cascades_smoke_run):
    """``runs.load_model`` rebuilds the trained model (and STaR's) in a fresh Python process: no notebook layer,
    no experiment module, the same weights."""
    import os
    import subprocess
    import sys

    from workbench.methods.cascades import String

    rid = cascades_smoke_run.run_id
    assert runs.models(rid) == ["lm", "star"]
    lm = runs.load_model(rid, "lm")
    lp = String(lm, "Q:01+02\n", stop="\n", max_tokens=8).log_prob("1+2+0=03")
    assert lp < 0
    code = ("import sys; from workbench import runs; from workbench.methods.cascades import String\n"
            f"lm = runs.load_model({rid!r}, 'lm')\n"
            "print(String(lm, 'Q:01+02\\n', stop='\\n', max_tokens=8).log_prob('1+2+0=03'))\n"
            "assert not [m for m in sys.modules if m.split('.')[0] in ('widgets', 'ipywidgets', 'plotly')]\n"
            "assert 'workbench.methods.cascades.experiment' not in sys.modules\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.strip()) == pytest.approx(lp, abs=1e-5)


def test_the_playground_samples_and_scores_headlessly(cascades_smoke_run):
    from workbench.methods.cascades import playground as pg

    rid = cascades_smoke_run.run_id
    lm = runs.load_model(rid, "lm")
    prompt = pg.first_prompt(runs.get(rid)["config"])
    assert prompt.startswith("Q:") and len(prompt.split("+")[0]) == 2 + 2  # "Q:" and two digits (width 2)
    a, b = pg.sample(lm, prompt, stop="\n", seed=3), pg.sample(lm, prompt, stop="\n", seed=3)
    assert a == b and a.total <= 0 and "".join(t for t, _ in a.tokens) == a.text
    again = pg.score(lm, prompt, a.text, stop="\n")
    assert again.total == pytest.approx(a.total) and len(again.tokens) == len(lm.encode(a.text))
    assert sum(lp for _, lp in pg.score(lm, prompt, "1+2", stop="\n").tokens) < 0


def test_config_errors():
    exp = get("cascades")
    with pytest.raises(ConfigError, match="evaluations"):
        exp.make_config({"evaluations": "sampling,magic"})
    with pytest.raises(ConfigError, match="digit_weights"):
        exp.make_config({"digit_weights": "1,2"})
    with pytest.raises(ConfigError, match="n_head"):
        exp.make_config({"d_model": 30, "n_head": 4})
    with pytest.raises(ConfigError, match="long_digits"):
        exp.make_config({"long_digits": 5})  # not longer than the training operands (5 digits, 5 wide)
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
