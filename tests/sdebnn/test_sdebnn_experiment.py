"""The sdebnn experiment in smoke mode: every setting runs, claims and artifacts are recorded, resume is exact,
and the views draw the stored run."""
import math

import numpy as np
import plotly.graph_objects as go
import pytest

import workbench
from workbench import runs
from workbench.core.params import ConfigError
from workbench.methods.sdebnn.experiment import SDEBNNConfig
from tests.common import StopAfter, shared
from tests.common import smoke_run as shared_smoke_run


@pytest.fixture(scope="module")
@shared("smoke-sdebnn")
def smoke_run():
    """The experiment's one smoke run, shared with the contract."""
    res = shared_smoke_run("sdebnn").result
    assert res.status == "completed", res.error
    return res


def test_the_full_smoke_run_records_claims_artifacts_and_metrics(smoke_run):
    rid = smoke_run.run_id
    claims = runs.claims(rid)
    assert [c["claim"].split(":")[0][:40] for c in claims] == [
        "The SDE-BNN's predictive band is wider i", "The SDE-BNN's predictive band widens in ",
        "Near convergence the sticking-the-landin", "At similar accuracy (the comparison's pr",
        "At similar accuracy the SDE-BNN's expect"]
    for c in claims:  # every claim: an arm, a rule, an effect with its uncertainty; a smoke run decides nothing
        assert c["arm"] and c["rule"] and not c["rule"].startswith("legacy") and c["measured"], c
        assert c["effect"] is not None and c["uncertainty"] is not None, c
        assert c["outcome"] == "not evaluated", c
    names = {a["name"] for a in runs.artifacts(rid)}
    assert {"band", "weight_paths", "model/regression", "reliability", "classification", "gradient_variance"} <= names
    band = runs.artifact(rid, "band")
    assert set(band["models"]) == {"sdebnn", "odenet", "bbb", "resnet"}
    assert max(band["models"]["odenet"]["std"]) < 1e-5  # the ODE-net has no band
    assert min(band["models"]["sdebnn"]["std"]) > 0
    paths = runs.artifact(rid, "weight_paths")
    prior = np.asarray(paths["prior"])
    assert prior.shape[1] == len(paths["t"]) and np.allclose(prior[:, 0], np.asarray(paths["posterior"])[:, 0])
    metric_names = set(runs.metrics(rid)["name"])
    for m in ("reg/sdebnn/loss", "reg/sdebnn/kl", "gradvar/stl", "gradvar/full", "cls/sdebnn/test/accuracy",
              "cls/odenet/test/ece", "cls/bbb/loss", "cls/resnet/loss"):
        assert m in metric_names, m
    assert all(math.isfinite(v) for v in smoke_run.summary.values())


@pytest.mark.parametrize("options", [
    {"task": "regression", "baselines": "odenet"},
    {"task": "classification", "baselines": "none", "estimator": "full"},
    {"task": "gradvar"},
    {"task": "regression", "baselines": "none", "method": "midpoint", "estimator": "kl", "adjoint": True},
    {"task": "regression", "baselines": "none", "w0": "gaussian", "estimator": "kl", "sigma_warmup": 0.5},
])
def test_every_setting_runs_in_smoke_mode(options):
    res = workbench.run("sdebnn", options, smoke=True, progress=False)
    assert res.status == "completed", res.error
    claims = runs.claims(res.run_id)
    if options["task"] == "gradvar":
        assert [c["claim"].split()[0] for c in claims] == ["The", "Near"]
    if options["task"] == "classification":
        assert "cls/sdebnn/test/ece" in res.summary and not any("band" in c["claim"] for c in claims)


def test_sigma_warmup_ramps_to_sigma_and_stays():
    from workbench.methods.sdebnn.experiment import sigma_at

    cfg = SDEBNNConfig(sigma=0.4, sigma_warmup=0.5)
    ramp = [sigma_at(cfg, s, 100) for s in range(100)]
    assert ramp[0] == pytest.approx(0.04) and ramp[49] == pytest.approx(0.4) and ramp[-1] == 0.4
    assert all(b >= a for a, b in zip(ramp, ramp[1:]))
    assert sigma_at(SDEBNNConfig(sigma=0.4), 0, 100) == 0.4


def test_config_errors_name_the_parameter():
    with pytest.raises(ConfigError, match="adjoint"):
        SDEBNNConfig(adjoint=True)
    with pytest.raises(ConfigError, match="estimator"):
        SDEBNNConfig(method="midpoint", estimator="stl")
    with pytest.raises(ConfigError, match="baselines"):
        SDEBNNConfig(baselines="odenet,gp")
    with pytest.raises(ConfigError, match="sigma"):
        SDEBNNConfig(sigma=0.0)
    with pytest.raises(ConfigError, match="task"):
        SDEBNNConfig(task="everything")


def test_preflight_needs_the_image_data_only_for_classification(monkeypatch):
    from workbench.lib import data
    from workbench.core.errors import DataNotFound
    from workbench.methods.sdebnn.experiment import preflight

    def missing(name, *args, **kwargs):
        raise DataNotFound(f"dataset {name!r} is not available here")

    monkeypatch.setattr(data.core, "source", missing)
    with pytest.raises(DataNotFound, match="fashion_mnist"):
        preflight(SDEBNNConfig(dataset="fashion_mnist"))
    preflight(SDEBNNConfig(dataset="fashion_mnist", task="regression"))  # the 1-D task is generated




@pytest.mark.parametrize("stop_at", [5, 15])  # inside the regression's ODE-net phase; inside a classifier's phase
def test_stop_and_resume_reproduce_the_uninterrupted_run(smoke_run, stop_at):
    cut = workbench.run("sdebnn", {"checkpoint_every": 1}, smoke=True, progress=False, control=StopAfter(stop_at))
    assert cut.status == "stopped"
    resumed = workbench.run("sdebnn", resume=cut.run_id, progress=False)
    assert resumed.status == "completed", resumed.error
    timeless = {k: v for k, v in smoke_run.summary.items() if "seconds" not in k}
    assert {k: v for k, v in resumed.summary.items() if "seconds" not in k} == pytest.approx(timeless, rel=1e-6, abs=1e-9)
    assert all(resumed.summary[k] > 0 for k in smoke_run.summary if "seconds" in k)
    full = runs.metrics(smoke_run.run_id).sort_values(["name", "step"])[["name", "step", "value"]]
    back = runs.metrics(cut.run_id).sort_values(["name", "step"])[["name", "step", "value"]]
    assert list(full["name"]) == list(back["name"]) and list(full["step"]) == list(back["step"])
    np.testing.assert_allclose(back["value"].to_numpy(), full["value"].to_numpy(), rtol=1e-6, atol=1e-9)


def test_every_view_draws_the_smoke_run(smoke_run):
    from widgets.views import render, views_for

    titles = {v.title for v in views_for("sdebnn")}
    assert {"predictive band", "weight paths", "reliability diagram", "gradient variance", "test metrics"} <= titles
    drawn = dict(render("sdebnn", smoke_run.run_id))
    assert titles <= set(drawn)
    for title in titles:  # (the registry may add shared views, e.g. the claims table, that are not figures)
        fig = drawn[title]
        assert isinstance(fig, go.Figure) and len(fig.data) > 0, title
        assert "Error" not in str(fig.layout.annotations[:1]), title


def test_the_stored_model_is_resampled_without_retraining(smoke_run):
    from widgets.views.sdebnn import band_explorer, resample_band, weight_explorer

    rid = smoke_run.run_id
    stored = runs.artifact(rid, "band")["models"]["sdebnn"]
    again = resample_band(rid, samples=2, seed=0)
    assert len(again["models"]["sdebnn"]["mean"]) == len(stored["mean"])
    frozen = resample_band(rid, samples=4, sigma=0.0)
    assert max(frozen["models"]["sdebnn"]["std"]) < 1e-5  # σ = 0: every path the same
    wider = resample_band(rid, samples=16, sigma=1.0)
    assert np.mean(wider["models"]["sdebnn"]["std"]) > np.mean(again["models"]["sdebnn"]["std"])
    box = band_explorer(rid)
    paths, sigma = box.children[0].children
    sigma.value = 0.0  # the slider re-samples the stored model: the band collapses
    fig = box.children[1]
    assert any(getattr(t, "name", "") == "SDE-BNN mean" for t in fig.data)
    assert not any(getattr(t, "name", "") == "SDE-BNN ± 2σ" for t in fig.data)
    wbox = weight_explorer(rid, paths=3)
    wbox.children[0].children[0].value = 1
    assert len(wbox.children[1].data) == 6
