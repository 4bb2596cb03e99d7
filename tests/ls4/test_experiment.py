"""The ``ls4`` experiment in smoke mode: every setting runs, claims and artifacts are recorded, a stopped run resumes
to the uninterrupted curve, bad values name the parameter."""
import math

import numpy as np
import pytest

import workbench
from workbench import runs
from workbench.methods.ls4.experiment import LS4Config
from workbench.core.params import ConfigError
from workbench.core.errors import DataNotFound
from tests.common import StopAfter, shared
from tests.common import smoke_run as shared_smoke_run


@pytest.fixture(scope="module")
@shared("smoke-ls4")
def smoke_run():
    """The experiment's one smoke run, shared with the contract."""
    res = shared_smoke_run("ls4").result
    assert res.status == "completed", res.error
    return res


def test_compare_records_scores_artifacts_models_and_claims(smoke_run):
    rid = smoke_run.run_id
    names = {a["name"] for a in runs.artifacts(rid)}
    for m in ("ls4", "latent_ode", "gru_vae"):
        assert {f"samples/{m}", f"conditional/{m}", f"latents/{m}"} <= names
        for key in ("marginal", "classification", "prediction", "interp_mse", "extrap_mse", "crps", "nll"):
            assert math.isfinite(smoke_run.summary[f"{m}/{key}"]), (m, key)
    assert {"kernels", "metrics", "metrics_by_source", "timing", "jumps", "setup"} <= names
    setup = runs.artifact(rid, "setup")
    ls4_params = setup["params"]["ls4"]
    for m in ("latent_ode", "gru_vae"):  # the parameter budget: baselines sized to LS4
        assert abs(setup["params"][m] - ls4_params) / ls4_params < 0.2, setup["params"]
    claims = runs.claims(rid)
    # on square: marginal, classification, prediction, sharp transitions; timing: LS4 slope, ratio, ratio growth
    assert len(claims) == 7, [c["claim"] for c in claims]
    assert sum("prediction score" in c["claim"] for c in claims) == 1
    for c in claims:  # a smoke run records the effect and the rule, and the outcome "not evaluated"
        assert c["outcome"] == "not evaluated" and c["holds"] is None, c
        assert c["arm"] and c["rule"] and c["effect"] is not None and c["uncertainty"] is not None, c
    timing = runs.artifact(rid, "timing")
    assert set(timing["length"]) == {16, 32} and set(timing["method"]) == {"ls4", "latent_ode", "gru_vae"}
    samples = runs.artifact(rid, "samples/ls4")
    assert np.asarray(samples["generated"]).shape == (3, 16, 1) and samples["step"] == 3
    assert runs.models(rid) == ["gru_vae", "latent_ode", "ls4"]
    model = runs.load_model(rid, "ls4")  # rebuilt from the saved spec with the trained weights
    assert type(model).__name__ == "LS4" and sum(p.numel() for p in model.parameters()) == ls4_params
    metrics = set(runs.metrics(rid)["name"])
    assert {"ls4/train/loss", "ls4/test/nelbo", "latent_ode/score/marginal", "gru_vae/test/crps"} <= metrics


def test_a_saved_model_reloads_in_a_plain_process(smoke_run):
    """``runs.load_model`` needs only the method's package: no widgets, no experiment module."""
    import os
    import subprocess
    import sys

    code = ("import sys; from workbench import runs; from workbench.methods.ls4 import resample; "
            f"m = runs.load_model({smoke_run.run_id!r}, 'latent_ode'); "
            f"shown = runs.artifact({smoke_run.run_id!r}, 'samples/ls4'); "
            "d = resample(m, shown['real'], shown['real_mask'], n=2, generator=1, prefix=4); "
            "assert d['x'].shape == (2, 16, 1), d['x'].shape; "
            "assert 'widgets' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ),
                         timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


@pytest.mark.parametrize("options", [
    {"methods": "ls4", "kernel": "dplr", "time_dim": 4, "missing_rate": 0.3, "objective": "reweighted"},
    {"methods": "ls4", "decoder_x": False, "data": "sharp_mix", "timing_repeats": 0},
    {"methods": "latent_ode", "adjoint": True, "ode_method": "euler", "data": "telegraph", "timing_repeats": 0},
    {"methods": "gru_vae,ls4", "data": "sawtooth", "match_params": False, "gru_layers": 2, "timing_repeats": 0},
], ids=["dplr-time-missing-reweighted", "no-x-conditioning", "latent-ode-adjoint", "gru-unmatched"])
def test_settings_run_in_smoke_mode(options):
    res = workbench.run("ls4", options, smoke=True, progress=False)
    assert res.status == "completed", res.error
    methods = options["methods"].split(",")
    for m in methods:
        assert math.isfinite(res.summary[f"{m}/nll"])
    if "ls4" not in methods or "latent_ode" not in methods:
        assert not runs.claims(res.run_id)  # nothing to compare


def test_packaged_real_series_run():
    pytest.importorskip("statsmodels")
    res = workbench.run("ls4", {"methods": "ls4", "data": "macrodata", "timing_repeats": 0}, smoke=True,
                        progress=False)
    assert res.status == "completed", res.error
    assert np.asarray(runs.artifact(res.run_id, "samples/ls4")["generated"]).shape[-1] == 5




def test_a_stopped_run_resumes_to_the_uninterrupted_curve():
    cfg = {"methods": "ls4,latent_ode", "steps": 4, "checkpoint_every": 1, "timing_repeats": 0}
    full = workbench.run("ls4", cfg, smoke=True, progress=False)
    cut = workbench.run("ls4", cfg, smoke=True, progress=False, control=StopAfter(6))  # inside the ODE's phase
    assert cut.status == "stopped"
    resumed = workbench.run("ls4", resume=cut.run_id, progress=False)
    assert resumed.status == "completed", resumed.error

    def curve(rid):
        df = runs.metrics(rid)
        df = df[~df["name"].str.contains("seconds|timing")]
        return df.drop_duplicates(["step", "name"], keep="last").set_index(["name", "step"])["value"].sort_index()

    a, b = curve(full.run_id), curve(cut.run_id)
    assert list(a.index) == list(b.index)
    assert np.allclose(a.values, b.values, rtol=1e-6, atol=1e-9)
    for key in ("ls4/marginal", "latent_ode/classification", "ls4/crps"):
        assert math.isclose(full.summary[key], resumed.summary[key], rel_tol=1e-6), key


def test_bad_values_name_the_parameter():
    with pytest.raises(ConfigError, match="timing_lengths"):
        LS4Config(timing_lengths="128,abc")
    with pytest.raises(ConfigError, match="tsf_path"):
        LS4Config(data="tsf")
    with pytest.raises(ConfigError, match="methods"):
        LS4Config(methods=("ls4", "transformer"))
    with pytest.raises(ConfigError, match="kernel"):
        LS4Config(kernel="s5")
    with pytest.raises(DataNotFound, match="forecastingdata.org"):  # before the run exists (preflight)
        workbench.run("ls4", {"data": "tsf", "tsf_path": "/nonexistent/x.tsf"}, smoke=True, progress=False)
