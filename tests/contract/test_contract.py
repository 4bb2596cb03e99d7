"""The experiment contract, held over the whole registry: a new method is checked here without new test code.

For every registered experiment, in smoke mode:
- it completes, records its claims through ``ctx.claim`` (as "not evaluated (smoke run)"), and is labelled smoke;
- every registered view draws the finished run, and returns None or a figure early in a live run;
- stopped at a step and resumed, its metrics equal an uninterrupted run's;
- it runs against a store passed explicitly, and nothing lands in the default store;
- under ``torchrun --nproc-per-node 2`` on CPU it either matches a 1-process run or refuses at once, clearly;
- ``workbench run NAME --help`` prints;
- every claim carries the statement, the arm, the effect ± uncertainty, the rule and one outcome;
- every trained model it saved reloads with ``workbench.runs.load_model`` in a plain Python process.
"""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import workbench
from workbench import runs
from workbench.core.params import ConfigError
from workbench.store.store import Store
from tests.common import StopAfter, smoke_group, smoke_run

ROOT = Path(__file__).resolve().parents[2]


def _not_a_test_double(exp) -> bool:
    """Every registered experiment (built-in or a plugin's), but not those other test modules register."""
    path = getattr(sys.modules.get(exp.run.__module__), "__file__", "") or ""
    return not Path(path).resolve().is_relative_to(ROOT / "tests")


NAMES = sorted(n for n, e in workbench.experiments().items() if _not_a_test_double(e))
#: metrics that measure time, not the computation (they differ between any two runs)
TIMING = re.compile(r"(second|time|wall|elapsed|per_s\b|/speed|throughput)")


def metric_table(run_id: str, store: Store | None = None) -> dict[tuple[str, int], float]:
    """(name, step) → value, timing metrics left out; NaN compared as a value."""
    df = runs.metrics(run_id, store=store)
    return {(r.name, int(r.step)): (None if math.isnan(r.value) else r.value) for r in df.itertuples()
            if not TIMING.search(r.name)}


#: each experiment's contract tests form one xdist group with its method's tests that share its smoke run
PER_NAME = [pytest.param(name, marks=smoke_group(name)) for name in NAMES]


@pytest.fixture
def finished(name):
    """The experiment's one uninterrupted smoke run in the default store, paused once mid-way so views are tried on
    the live run (``tests.common.smoke_run``, shared with the method's own tests): (run, steps taken, views' results
    while live)."""
    run = smoke_run(name)
    return run.result, run.steps, run.live


@pytest.mark.parametrize("name", PER_NAME)
def test_completes_with_claims_and_is_labelled_smoke(name, finished):
    res, steps, _ = finished
    assert res.status == "completed", res.error
    assert steps >= 1
    record = runs.get(res.run_id)
    assert record["smoke"] is True
    claims = runs.claims(res.run_id)
    assert claims, f"{name} recorded no claim"
    assert all(c["holds"] is None and c["outcome"] == "not evaluated" and c["reason"].startswith(
        "not evaluated (smoke run)") for c in claims)


@pytest.mark.parametrize("name", PER_NAME)
def test_every_claim_carries_effect_uncertainty_rule_and_outcome(name, finished):
    from workbench.core.claims import OUTCOMES

    res, _, _ = finished
    for c in runs.claims(res.run_id):
        assert c["outcome"] in OUTCOMES, c
        assert c["claim"] and c["arm"] and c["rule"] and not c["rule"].startswith("legacy"), (name, c["claim"])
        assert c["effect"] is not None and c["uncertainty"] is not None, (name, c["claim"])


#: a plain Python process that reloads saved models on request (one torch import for every experiment of a worker)
RELOADER = """
import json, sys, torch
from workbench import runs
for line in sys.stdin:
    req, out = json.loads(line), []
    for n in req["names"]:
        try:
            m = runs.load_model(req["run_id"], n)
            out.append([n, "ok" if isinstance(m, torch.nn.Module) else type(m).__name__])
        except Exception as err:
            out.append([n, repr(err)])
    bad = [m for m in sys.modules if m.split(".")[0] in ("widgets", "ipywidgets", "panel", "plotly")]
    print("RELOADED " + json.dumps({"models": out, "notebook_layer": bad}), flush=True)
"""


@pytest.fixture(scope="session")
def reloader(tmp_path_factory):
    """``reload(run_id, names)``: the saved models ``names`` of the run reloaded with ``runs.load_model`` in a plain
    Python process (the default store of this test process; one per xdist worker):
    ``{"models": [[name, "ok" or the error]], "notebook_layer": [modules of the notebook layer it imported]}``."""
    log = tmp_path_factory.mktemp("reloader") / "stderr.txt"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", RELOADER], cwd=ROOT, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err, text=True)

    def reload(run_id: str, names: list[str]) -> dict:
        proc.stdin.write(json.dumps({"run_id": run_id, "names": names}) + "\n")
        proc.stdin.flush()
        for line in proc.stdout:
            if line.startswith("RELOADED "):
                return json.loads(line.removeprefix("RELOADED "))
        raise AssertionError(f"the reloading process ended: {log.read_text()[-3000:]}")

    yield reload
    proc.stdin.close()
    proc.wait(60)


@pytest.mark.parametrize("name", PER_NAME)
def test_every_trained_model_reloads_in_a_plain_process(name, finished, reloader):
    res, _, _ = finished
    reloaded = reloader(res.run_id, runs.models(res.run_id))
    models = reloaded["models"]
    assert models, f"{name} saved no model (ctx.save_model)"
    assert [m for m in models if m[1] != "ok"] == [], models
    assert reloaded["notebook_layer"] == []


@pytest.mark.parametrize("name", PER_NAME)
def test_every_view_draws_the_finished_run_and_a_live_one(name, finished):
    import plotly.graph_objects as go

    from widgets.views import HTMLView, views_for

    res, _, live = finished
    views = views_for(name)
    assert views, f"{name} has no views"
    for v in views:
        fig = v(res.run_id)  # a broken view raises here
        assert fig is None or isinstance(fig, (go.Figure, HTMLView)), v.title
        early = live.get(v.title)
        assert not isinstance(early, Exception), f"{v.title} failed on the live run: {early!r}"
        assert early is None or isinstance(early, (go.Figure, HTMLView)), v.title
    drawn = [v.title for v in views if v(res.run_id) is not None]
    assert drawn, f"no view of {name} draws its finished run"


@pytest.mark.parametrize("name", PER_NAME)
def test_stop_and_resume_against_an_explicit_store_equals_the_uninterrupted_run(name, finished, tmp_path):
    res, steps, _ = finished
    store = Store(tmp_path / "own")
    default_before = len(runs.list())
    cut = max(1, steps // 2)
    part = workbench.run(name, {"checkpoint_every": 1}, smoke=True, progress=False, control=StopAfter(cut),
                         store=store)
    assert part.status == "stopped", part.error
    resumed = workbench.run(name, resume=part.run_id, progress=False, store=store)
    assert resumed.status == "completed", resumed.error
    assert resumed.run_id == part.run_id
    assert len(runs.list()) == default_before, "a run landed in the default store"
    assert [r["id"] for r in store.runs()] == [part.run_id]
    want, got = metric_table(res.run_id), metric_table(part.run_id, store)
    assert set(got) == set(want), f"metrics differ: missing {set(want) - set(got)}, extra {set(got) - set(want)}"
    for key, value in want.items():
        assert got[key] == (value if value is None else pytest.approx(value, rel=1e-5, abs=1e-6)), key


@pytest.mark.parametrize("name", PER_NAME)
def test_help_prints(name, capsys):
    from workbench.core.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["run", name, "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert f"workbench run {name}" in text and "--seed" in text


def test_refusal_under_torchrun_comes_before_anything_runs(monkeypatch):
    refusing = [n for n in NAMES if not workbench.get(n).distributed]
    assert refusing
    monkeypatch.setenv("WORLD_SIZE", "2")
    before = len(runs.list())
    for name in refusing:
        with pytest.raises(ConfigError, match=rf"experiment '{name}' does not support multi-process runs"):
            workbench.run(name, smoke=True, progress=False)
    assert len(runs.list()) == before


@pytest.mark.slow
def test_two_processes_match_one_or_refuse(tmp_path):
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch built without the gloo backend")
    home, out = tmp_path / "home", tmp_path / "ddp.json"
    env = {**os.environ, "WORKBENCH_HOME": str(home), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(key, None)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(Path(__file__).with_name("ddp_driver.py")), str(out), str(home)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert set(results) == set(NAMES)
    store = Store(home)
    for name, got in results.items():
        exp = workbench.get(name)
        if not exp.distributed:
            assert "refused" in got and "does not support multi-process runs" in got["refused"], (name, got)
            continue
        assert got["status"] == "completed", got.get("error")
        one = workbench.run(name, dict(exp.ddp_smoke), smoke=True, progress=False, store=store)
        want, two = metric_table(one.run_id, store), metric_table(got["run_id"], store)
        assert set(two) == set(want), name
        for key, value in want.items():
            assert two[key] == (value if value is None else pytest.approx(value, rel=1e-4, abs=1e-5)), (name, key)
    assert all(r["world_size"] in (1, 2) for r in store.runs())
