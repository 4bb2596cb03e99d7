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
import subprocess
import sys
from pathlib import Path

import pytest

import workbench
from workbench import runs
from workbench.core.params import ConfigError
from workbench.store.store import Store
from tests.common import StopAfter, smoke_group, smoke_run
from tests.ddp import assert_same_metrics, metric_table

ROOT = Path(__file__).resolve().parents[2]


def _not_a_test_double(exp) -> bool:
    """Every registered experiment (built-in or a plugin's), but not those other test modules register."""
    path = getattr(sys.modules.get(exp.run.__module__), "__file__", "") or ""
    return not Path(path).resolve().is_relative_to(ROOT / "tests")


NAMES = sorted(n for n, e in workbench.experiments().items() if _not_a_test_double(e))
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
    assert_same_metrics(got, want, rel=1e-5, abs_=1e-6)


@pytest.mark.parametrize("name", PER_NAME)
def test_help_prints(name, capsys):
    from workbench.core.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["run", name, "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert f"workbench run {name}" in text and "--seed" in text


def test_refusal_under_torchrun_comes_before_anything_runs(monkeypatch):
    """An experiment that cannot run data-parallel refuses before it creates anything. A stand-in refuses here
    whether or not any built-in method still does (each of those also refuses in the torchrun launch below)."""
    from workbench.core import registry

    monkeypatch.setenv("WORLD_SIZE", "2")
    classify = workbench.get("classify")
    stand_in = registry.Experiment(name="one_process_only", title="refuses", config=classify.config,
                                   run=classify.run, distributed=False)
    monkeypatch.setitem(registry._REGISTRY, stand_in.name, stand_in)
    before = len(runs.list())
    for name in [n for n in NAMES if not workbench.get(n).distributed] + [stand_in.name]:
        with pytest.raises(ConfigError, match=rf"experiment '{name}' does not support multi-process runs"):
            workbench.run(name, smoke=True, progress=False)
    assert len(runs.list()) == before


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_two_processes_match_one_or_refuse(name, ddp):
    """Under ``torchrun --nproc-per-node 2`` (the suite's one launch, ``tests.ddp``) every experiment either refuses
    at once or logs the metrics a one-process run of the same setting logs, and records its claims once."""
    got, exp = ddp.run(name), workbench.get(name)
    if not exp.distributed:
        assert "does not support multi-process runs" in got.get("refused", ""), got
        return
    assert got["status"] == "completed", got.get("error")
    one = ddp.one(name)
    assert one.status == "completed", one.error
    assert ddp.store.get(got["run_id"])["world_size"] == 2 and ddp.store.get(one.run_id)["world_size"] == 1
    want, two = metric_table(one.run_id, ddp.store), metric_table(got["run_id"], ddp.store)
    assert_same_metrics(two, want)
    losses = {v for k, v in want.items() if k[0].endswith("loss") and v is not None}
    assert len(losses) > 1, name  # the run trained: not a comparison of constants
    # the claims, computed alike on every rank, are recorded once (by rank 0)
    claims = lambda run_id: sorted((c["statement"], c["outcome"]) for c in ddp.store.claims(run_id))  # noqa: E731
    assert claims(got["run_id"]) == claims(one.run_id)


def test_the_launch_wrote_one_run_per_distributed_experiment(ddp):
    """Rank 1 writes nothing: the store holds exactly one two-rank run per run the launch made."""
    from tests.ddp import STOP_RESUME, jobs

    two = [r for r in ddp.store.runs() if r["world_size"] == 2]
    made = [name for name, _ in jobs().values()] + [jobs()[label][0] for label in STOP_RESUME]
    assert sorted(r["method"] for r in two) == sorted(made)
    assert {n for n in NAMES if workbench.get(n).distributed} <= {name for name, _ in jobs().values()}
