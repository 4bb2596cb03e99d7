"""Sweeps on a real local Ray cluster (2 CPUs, one session for the module): trials are runs tagged with their
sweep and trial, claims over seeds, a pruner stopping a bad trial early, a killed trial failed while the sweep
goes on, and resume after the driver is killed (numbering continues, no trial lost or run twice)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")
ray = pytest.importorskip("ray")

from workbench.core.sweep import execute, sweep  # noqa: E402
from workbench.core.sweep import study as studies  # noqa: E402
from workbench.store.store import Store  # noqa: E402

from . import toy  # noqa: E402,F401  (registers "sweeptoy")

ROOT = Path(__file__).resolve().parents[2]
MODULE = "tests.sweep.toy"


@pytest.fixture(scope="module")
def cluster():
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *([before] if before else [])])  # workers import the toy
    started = execute.connect(num_cpus=2)
    assert ray.util.get_node_ip_address() == "127.0.0.1"
    yield ray.get_runtime_context().gcs_address
    if started:
        execute.shutdown()
    if before is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = before


def _trials(store, sweep_id):
    return {t.number: t for t in optuna.load_study(study_name=sweep_id, storage=studies.storage(store)).get_trials()}


def test_seed_sweep_runs_are_tagged_and_claims_hold_over_seeds(cluster, tmp_path):
    store = Store(tmp_path)
    res = sweep("sweeptoy", ["seed=0..2"], parallel=2, store=store, module=MODULE, fixed={"steps": 5},
                sweep_id="toy-seeds")
    assert res.sweep_id == "toy-seeds" and studies.sweeps(store) == ["toy-seeds"]  # the name the caller gave
    assert res.counts == {"completed": 3} and not res.interrupted
    trials = _trials(store, res.sweep_id)
    assert sorted(trials) == [0, 1, 2]  # the grid: each seed once
    for n, t in trials.items():
        run_id = t.user_attrs["run_id"]
        record = store.get(run_id)
        assert record["status"] == "completed" and record["config"]["seed"] == t.params["seed"]
        assert store.load_artifact(run_id, "sweep") == {"sweep": res.sweep_id, "trial": n, "params": t.params}
        assert t.values[0] == pytest.approx(record["summary"]["val/loss"])
    (claim,) = res.claims
    from workbench.core.claims import Effect

    effects = [store.claims(trials[n].user_attrs["run_id"])[0]["effect"] for n in range(3)]
    want = Effect.paired(effects)
    assert claim["seeds"] == 3 and claim["effect"].value == pytest.approx(want.value)
    assert claim["effect"].uncertainty == pytest.approx(want.uncertainty) and claim["outcome"] == "holds"
    table = res.trials()
    assert list(table["trial"]) == [0, 1, 2] and set(table["status"]) == {"completed"}


def test_pruner_stops_a_bad_trial_early_and_keeps_its_metrics(cluster, tmp_path):
    store = Store(tmp_path)
    res = sweep("sweeptoy", ["offset=0.001,0,5"], parallel=1, store=store, module=MODULE,
                fixed={"steps": 100, "sleep": 0.02}, objective="val/loss", direction="min", pruner="median",
                pruner_options={"n_startup_trials": 1, "n_warmup_steps": 2})
    trials = _trials(store, res.sweep_id)
    assert [trials[n].state.name for n in range(3)] == ["COMPLETE", "COMPLETE", "PRUNED"]
    run_id = trials[2].user_attrs["run_id"]
    record = store.get(run_id)
    assert record["status"] == "pruned" and "pruned by the median pruner" in record["error"]
    steps = [r[1] for r in store.metrics(run_id, ["val/loss"])]
    assert steps and max(steps) < 90, steps  # stopped well before its 100 steps (the pruner's answer reaches the run
    # through the store's sink thread, so on a loaded machine a few more steps pass), its metrics kept
    assert res.counts == {"completed": 2, "pruned": 1}


def test_a_killed_trial_is_failed_and_the_sweep_goes_on(cluster, tmp_path):
    store = Store(tmp_path)
    res = sweep("sweeptoy", ["die_at=-1,2"], parallel=2, store=store, module=MODULE, fixed={"steps": 6})
    trials = _trials(store, res.sweep_id)
    assert trials[0].state.name == "COMPLETE" and trials[1].state.name == "FAIL"
    assert "process died" in trials[1].user_attrs["error"]
    assert store.get(trials[1].user_attrs["run_id"])["status"] == "crashed"
    assert res.counts == {"completed": 1, "crashed": 1}


@pytest.mark.extended  # a minute or more each: `make test-all`
def test_resume_after_the_driver_is_killed(cluster, tmp_path):
    """A driver (its own process, joined to this cluster) is SIGKILLed mid-sweep; resume finishes the sweep:
    trials 0..3 each end exactly once, trials left running continue under their number from their checkpoint."""
    store = Store(tmp_path)
    cmd = [sys.executable, "-m", "workbench.core.sweep", "sweeptoy", "--module", MODULE, "--space",
           "lr=0.01:0.5:log", "--trials", "4", "--parallel", "2", "--seed", "0", "--pruner", "none", "--store",
           str(tmp_path), "--address", cluster, "--set", "steps=24", "--set", "sleep=0.1", "--set", "checkpoint_every=4"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    driver = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        end = time.monotonic() + 240
        while time.monotonic() < end:
            ids = studies.sweeps(store) if (tmp_path / "workbench.db").exists() else []
            if ids:
                trials = _trials(store, ids[0]).values()
                checkpointed = [t for t in trials if t.state.name == "RUNNING" and t.user_attrs.get("run_id")
                                and store.artifact_row(t.user_attrs["run_id"], "checkpoint") is not None]
                if any(t.state.name == "COMPLETE" for t in trials) and checkpointed:
                    break
            assert driver.poll() is None, driver.stdout.read()
            time.sleep(0.5)
        else:
            pytest.fail("the driver never had a trial done and one running")
        (sweep_id,) = ids
        before = {n: (t.state.name, t.user_attrs.get("run_id")) for n, t in _trials(store, sweep_id).items()}
        resumable = [t.number for t in checkpointed]
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
    end = time.monotonic() + 60  # its tasks die with their driver (Ray fate-shares them with the job)
    while store.runs(status="running") and time.monotonic() < end:
        time.sleep(0.5)
    res = sweep(resume=sweep_id, parallel=2, store=store)
    trials = _trials(store, sweep_id)
    assert sorted(trials) == [0, 1, 2, 3]
    assert all(t.state.name == "COMPLETE" for t in trials.values()), {n: t.state.name for n, t in trials.items()}
    for n, (state, run_id) in before.items():
        if state == "COMPLETE":  # never run again
            assert trials[n].user_attrs["run_id"] == run_id
    completed = [r for r in store.runs(status="completed")]
    tags = [store.load_artifact(r["id"], "sweep")["trial"] for r in completed]
    assert sorted(tags) == [0, 1, 2, 3]  # one completed run per trial: none lost, none run twice
    for n in resumable:  # a trial with a checkpoint continued its own run (or ended on its own before the kill)
        assert trials[n].user_attrs["run_id"] == before[n][1]
    assert res.counts == {"completed": 4}


def test_sweep_on_a_postgresql_store(cluster):
    """The study lives in the PostgreSQL database of the store; the workers write their runs there."""
    from tests import pgtemp

    reason = pgtemp.unavailable()
    if reason:
        pytest.skip(reason)
    with pgtemp.TempPostgres() as pg:
        store = Store(pg.url("sweeps"))
        res = sweep("sweeptoy", ["seed=0..1"], parallel=2, store=store, module=MODULE, fixed={"steps": 4})
        assert res.counts == {"completed": 2}
        assert studies.storage_url(store).startswith("postgresql+psycopg://")
        assert studies.sweeps(store) == [res.sweep_id]
        tagged = sorted(store.load_artifact(r["id"], "sweep")["trial"] for r in store.runs(method="sweeptoy"))
        assert tagged == [0, 1] and res.claims and res.claims[0]["seeds"] == 2


@pytest.mark.extended  # a minute or more each: `make test-all`
def test_ctrl_c_stops_running_trials_and_leaves_the_sweep_resumable(cluster, tmp_path):
    store = Store(tmp_path)
    cmd = [sys.executable, "-m", "workbench.core.sweep", "sweeptoy", "--module", MODULE, "--space", "seed=0..2",
           "--parallel", "2", "--store", str(tmp_path), "--address", cluster, "--set", "steps=40",
           "--set", "sleep=0.1", "--set", "checkpoint_every=5"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    driver = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    end = time.monotonic() + 240
    while not any(store.artifact_row(r["id"], "checkpoint") for r in store.runs(status="running")):
        assert driver.poll() is None and time.monotonic() < end, driver.stdout.read() if driver.poll() else "slow"
        time.sleep(0.5)
    driver.send_signal(signal.SIGINT)
    out, _ = driver.communicate(timeout=120)
    assert driver.returncode == 130, out
    assert "--resume sweep-" in out
    (sweep_id,) = studies.sweeps(store)
    trials = _trials(store, sweep_id)
    running = [t for t in trials.values() if t.state.name == "RUNNING"]
    assert running and all(store.get(t.user_attrs["run_id"])["status"] == "stopped" for t in running)
    res = sweep(resume=sweep_id, parallel=2, store=store)
    assert res.counts == {"completed": 3}
    for t in running:  # continued from their checkpoints, under their own numbers and runs
        assert _trials(store, sweep_id)[t.number].user_attrs["run_id"] == t.user_attrs["run_id"]
