"""The nfm experiment runs in smoke mode, records its tables and claims, and validates its config."""
from __future__ import annotations

import pytest

import pandas as pd

import workbench
from workbench import runs
from workbench.params import ConfigError


def test_nfm_smoke_digits():
    res = workbench.run("nfm", smoke=True, progress=False)
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
