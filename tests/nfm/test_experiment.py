"""The nfm experiment runs in smoke mode, records its tables and claims, and validates its config."""
from __future__ import annotations

import pytest

import pandas as pd

import workbench
from workbench import runs
from workbench.core.params import ConfigError
from tests.common import smoke_group, smoke_run


@smoke_group("nfm")
def test_nfm_smoke_digits():
    res = smoke_run("nfm").result
    assert res.status == "completed", res.error
    curves = pd.DataFrame(runs.artifact(res.run_id, "noise_curves")).to_dict("records")
    assert {r["variant"] for r in curves} == {"baseline", "input_mixup", "nfm"}
    claims = runs.claims(res.run_id)
    assert any("NFM keeps the highest accuracy" in c["claim"] for c in claims)
    m = runs.metrics(res.run_id)
    assert "nfm/train/loss" in set(m["name"])


def test_nfm_smoke_two_moons_decision_boundary():
    res = workbench.run("nfm", {"dataset": "two_moons", "label_noise": 0.1, "variants": "baseline,nfm"}, smoke=True,
                        progress=False)
    assert res.status == "completed", res.error
    b = runs.artifact(res.run_id, "decision_boundary")
    assert set(b["probs"]) == {"baseline", "nfm"} and len(b["probs"]["nfm"]) == len(b["y"])


def test_config_errors_name_parameter():
    with pytest.raises(ConfigError, match="variants"):
        workbench.run("nfm", {"variants": "nfm,cutmix"}, progress=False)
    with pytest.raises(ConfigError, match="add_noise"):
        workbench.run("nfm", {"add_noise": -1.0}, progress=False)


def test_one_clean_accuracy_on_the_full_test_set_and_a_named_subset_curve():
    """The training curve is the clean accuracy on a fixed test subset (named so); the run's clean accuracy is
    the full test set's, even when the corruption and noise evaluation uses fewer images."""
    from workbench.lib import data

    res = workbench.run("nfm", {"curve_images": 20}, smoke=True, progress=False)
    assert res.status == "completed", res.error
    names = set(runs.metrics(res.run_id)["name"])
    assert "nfm/test_subset/accuracy" in names and not any(n.endswith("/test/accuracy") for n in names)
    assert sum(n.endswith("clean_accuracy") for n in names) == 3  # one per recipe
    n_test = len(data.tensors("digits", "test")[1])
    summary = pd.DataFrame(runs.artifact(res.run_id, "summary"))
    for acc in summary["clean_accuracy"]:
        assert abs(acc * n_test - round(acc * n_test)) < 1e-3  # a count over all test images
    curves = pd.DataFrame(runs.artifact(res.run_id, "noise_curves"))
    assert set(curves["images"]) == {16}  # smoke: eval_limit 16
    subset = runs.metrics(res.run_id, ["nfm/test_subset/accuracy"])["value"]
    assert all(abs(v * 20 - round(v * 20)) < 1e-4 for v in subset)  # a count over the 20-image subset
