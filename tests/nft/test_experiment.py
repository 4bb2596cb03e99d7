"""The nft experiment in smoke mode: every task and setting runs, records its claims and artifacts, resumes
exactly; the scores of task (a) against closed forms and scipy."""
import math

import numpy as np
import pytest
import scipy.stats
import torch

import workbench
from workbench import runs
from workbench.methods.nft.experiment import NFTConfig
from workbench.methods.nft.metrics import kendall_tau, r2_score
from workbench.core.params import ConfigError
from tests.common import StopAfter


def test_kendall_tau_and_r2_against_closed_forms_and_scipy():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)  # C=2, D=1
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, 40), rng.integers(0, 4, 40)  # many ties: τ_b
    assert kendall_tau(x, y) == pytest.approx(scipy.stats.kendalltau(x, y).statistic, abs=1e-12)
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
    y_true = np.array([1.0, 2.0, 3.0, 4.0])
    assert r2_score(y_true, y_true) == 1.0 and r2_score(y_true, np.full(4, 2.5)) == 0.0
    assert r2_score(y_true, y_true + 1) == pytest.approx(1 - 4 / 5)


def test_smoke_run_records_claims_artifacts_and_an_exact_permutation_demo(smoke_run):
    rid, s = smoke_run.run_id, smoke_run.summary
    claims = runs.claims(rid)
    assert len(claims) == 6 and all(c["measured"] for c in claims)
    assert all(c["holds"] is None and c["outcome"] == "not evaluated" for c in claims)  # smoke: nothing evaluated
    for c in claims:  # but the comparison, the effect with its interval and the rule are recorded
        assert c["arm"] and c["rule"] and not c["rule"].startswith("legacy"), c
        assert c["effect"] is not None and c["uncertainty"] is not None, c
    assert {c["arm"] for c in claims} >= {"NFN-NP", "NFN-HNP", "weight statistics + MLP", "NFT"}
    saved = runs.models(rid)
    assert {"acc/nft", "acc/np", "acc/hnp", "acc/stats", "acc/flat", "inr/nft", "inr/np", "inr2array/autoencoder",
            "inr2array/classifier"} <= set(saved)
    names = {a["name"] for a in runs.artifacts(rid)}
    assert {"zoo", "zoo/weights", "zoo/spec", "predictions", "attention", "permutation_demo", "inr/gallery",
            "inr/attention", "results"} <= names
    pred = runs.artifact(rid, "predictions")
    assert set(pred["model"]) == {"nft", "np", "hnp", "stats", "flat"}
    assert runs.artifact(rid, "zoo/weights").shape[0] == 12
    gallery = runs.artifact(rid, "inr/gallery")
    assert np.asarray(gallery["original"]).shape == (4, 8, 8, 1) and "reconstruction" in gallery
    demo = runs.artifact(rid, "permutation_demo")
    assert demo["output_change"] < 1e-12 and demo["weight_change"] > 1e-3
    assert all(demo["models"][k]["max_change"] < 1e-12 for k in ("nft", "np", "hnp", "stats"))
    assert demo["models"]["flat"]["max_change"] > 1e-6
    assert s["inr2array/invariance"] < 1e-12
    for key in ("acc/nft/kendall_tau", "inr/np/accuracy", "inr2array/accuracy", "siren/psnr_test"):
        assert key in s and isinstance(s[key], float)
    metric_names = set(runs.metrics(rid)["name"])
    assert {"acc/nft/train/loss", "acc/hnp/test/kendall_tau", "inr/flat/test/accuracy", "inr/inr2array/test/accuracy",
            "inr2array/recon/test/loss"} <= metric_names


@pytest.mark.parametrize("options", [
    {"tasks": ("accuracy",), "zoo_arch": "mlp", "models": ("nft", "hnp", "flat")},
    {"tasks": ("inr",), "models": ("nft", "np"), "permute_inrs": False},
    {"tasks": ("inr2array",), "latent_grid": 4},
    {"tasks": ("accuracy",), "zoo_dataset": "fashion_mnist", "zoo_depth": 1, "models": ("np", "stats")},
], ids=["mlp-zoo", "inr-only", "inr2array-grid4", "fashion-zoo"])
def test_every_setting_runs_in_smoke_mode(options):
    res = workbench.run("nft", options, smoke=True, progress=False)
    assert res.status == "completed", res.error
    assert runs.claims(res.run_id) or options["tasks"] == ("inr2array",)


def test_a_local_small_cnn_zoo_is_read(tmp_path):
    from workbench.lib import data
    from workbench.lib.weightspace import ZooArch, export_small_cnn_zoo, train_zoo

    x, y = data.tensors("digits", "train")
    xt, yt = data.tensors("digits", "test")
    zoo = train_zoo(ZooArch("cnn", (1, 4, 4, 10)), x[:100], y[:100], xt[:50], yt[:50], n=10, steps=3,
                    batch_size=8, generator=torch.Generator().manual_seed(0))
    export_small_cnn_zoo(zoo, tmp_path, step=86)
    res = workbench.run("nft", {"tasks": ("accuracy",), "zoo_path": str(tmp_path), "models": ("hnp", "flat")},
                        smoke=True, progress=False)
    assert res.status == "completed", res.error
    assert runs.artifact(res.run_id, "zoo/weights").shape == (10, zoo.weights.spec.num_params)
    demo = runs.artifact(res.run_id, "permutation_demo")
    assert demo["output_change"] < 1e-12 and demo["models"]["hnp"]["max_change"] < 1e-12


def test_config_errors_name_the_parameter(tmp_path):
    with pytest.raises(ConfigError, match="d_model"):
        NFTConfig(d_model=10, heads=4)
    with pytest.raises(ConfigError, match="zoo_path"):
        NFTConfig(zoo_path=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="latent_grid"):
        NFTConfig(latent_grid=3)
    with pytest.raises(ConfigError, match="models"):
        NFTConfig(models=("nft", "transformer"))




@pytest.mark.parametrize("stop_after", [4, 22, 35], ids=["in-accuracy-phase", "in-inr-phase", "in-latent-phase"])
def test_a_stopped_run_resumes_to_the_same_results(smoke_run, stop_after):
    # against the shared uninterrupted smoke run (no checkpoints): checkpointing every step changes no number
    cfg, full = {"checkpoint_every": 1}, smoke_run
    cut = workbench.run("nft", cfg, smoke=True, progress=False, control=StopAfter(stop_after))
    assert cut.status == "stopped"
    resumed = workbench.run("nft", resume=cut.run_id, progress=False)
    assert resumed.status == "completed", resumed.error
    assert resumed.summary.keys() == full.summary.keys()
    for k, v in full.summary.items():
        assert resumed.summary[k] == pytest.approx(v, rel=1e-6, abs=1e-9), k
    def table(rid):
        return {(r.name, int(r.step)): r.value for r in runs.metrics(rid).itertuples()}

    want, got = table(full.run_id), table(cut.run_id)
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-6, nan_ok=True), key
    effects = lambda rid: [(c["claim"], c["effect"], c["low"], c["high"]) for c in runs.claims(rid)]  # noqa: E731
    assert effects(cut.run_id) == effects(full.run_id)
    a, b = runs.artifact(full.run_id, "inr/gallery"), runs.artifact(cut.run_id, "inr/gallery")
    assert np.allclose(a["reconstruction"], b["reconstruction"])
