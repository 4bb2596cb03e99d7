"""The noisymix experiment runs in smoke mode with the corruption benchmark and its claims."""
from __future__ import annotations

import pytest

import pandas as pd

import workbench
from workbench import runs
from workbench.core.params import ConfigError
from tests.common import smoke_group, smoke_run


@smoke_group("noisymix")
def test_noisymix_smoke():
    res = smoke_run("noisymix").result
    assert res.status == "completed", res.error
    table = pd.DataFrame(runs.artifact(res.run_id, "corruption_table")).to_dict("records")
    assert {r["variant"] for r in table} == {"baseline", "augmix", "augmix_jsd", "noisymix"}
    assert {r["severity"] for r in table} == {1, 2, 3, 4, 5}
    summary = {r["variant"]: r for r in pd.DataFrame(runs.artifact(res.run_id, "summary")).to_dict("records")}
    assert summary["baseline"]["mce"] == pytest.approx(1.0)
    claims = {c["claim"]: c for c in runs.claims(res.run_id)}
    assert "NoisyMix has the best mean corruption accuracy" in claims
    # the ECE claim compares AugMix + JSD with AugMix alone (the ablation that isolates the stability loss)
    jsd = claims["The stability (JSD) loss lowers ECE"]
    assert (jsd["method"], jsd["arm"]) == ("augmix_jsd", "augmix")
    for c in claims.values():  # smoke: not evaluated, but the effect, its interval and the rule are recorded
        assert c["outcome"] == "not evaluated" and c["arm"] and c["rule"] and not c["rule"].startswith("legacy")
        assert c["effect"] is not None and c["uncertainty"] is not None
    assert set(runs.models(res.run_id)) == {"baseline", "augmix", "augmix_jsd", "noisymix"}


def test_two_moons_rejected_for_augmix():
    with pytest.raises(ConfigError, match="dataset"):
        workbench.run("noisymix", {"dataset": "two_moons"}, progress=False)


def test_mce_against_a_chosen_baseline_run_and_determinism():
    first = workbench.run("noisymix", {"variants": "baseline,noisymix"}, smoke=True, progress=False)
    second = workbench.run("noisymix", {"variants": "baseline,noisymix", "baseline_run": first.run_id}, smoke=True,
                           progress=False)
    assert second.status == "completed", second.error
    s1 = {r["variant"]: r for r in pd.DataFrame(runs.artifact(first.run_id, "summary")).to_dict("records")}
    s2 = {r["variant"]: r for r in pd.DataFrame(runs.artifact(second.run_id, "summary")).to_dict("records")}
    # same seed and config: the same numbers, so the baseline normalised to the first run's baseline is 1
    assert s2["noisymix"]["mean_corruption_accuracy"] == s1["noisymix"]["mean_corruption_accuracy"]
    assert s2["baseline"]["mce_vs_run"] == pytest.approx(1.0)
    assert s2["noisymix"]["mce_vs_run"] == pytest.approx(s2["noisymix"]["mce"])
