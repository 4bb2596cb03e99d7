"""Stops and faults under ``torchrun --nproc-per-node 2`` (gloo, CPU).

- Every distributed experiment, asked to stop through the store (rank 0's writer sees the request; the engine passes
  it on to rank 1), ends ``stopped`` on both ranks with its checkpoint; resumed under two processes it ends with the
  metrics of an uninterrupted run, nothing written twice (the suite's one launch, ``tests.ddp``).
- A rank killed mid-run (SIGKILL at a step) ends the run ``failed`` on rank 0 with a one-line reason, its metrics up
  to the failure kept, and the launch ends within seconds (a launch of its own: a rank dies).
"""
from __future__ import annotations

import math
import time

import pytest

from workbench import runs
from workbench.store.store import Store

#: the killed run: classify's two-rank setting, small; rank 1 is killed once this many steps are done
KILL_AT = 6
KILLED = {"experiment": "classify", "steps": 20, "width": 16, "batch_size": 32, "eval_every": 4, "rank": 1,
          "at": KILL_AT}
#: experiments whose first phase logs its loss every step (the stop's step is visible in the curves)
EVERY_STEP = {"classify", "nfm"}
#: how long a launch may go on after a rank died (torchrun's grace before SIGKILL is 30 s)
BOUND_S = 25.0


def rows(run_id: str, store: Store):
    """The run's metric rows (name, step, value, time), timing metrics left out."""
    from tests.ddp import TIMING

    df = runs.metrics(run_id, store=store)
    return df[[not TIMING.search(name) for name in df["name"]]]


def assert_written_once(df) -> None:
    dup = df[df.duplicated(["name", "step"], keep=False)]
    assert dup.empty, f"metric rows written twice: {dup[['name', 'step']].values.tolist()}"


@pytest.mark.slow
@pytest.mark.parametrize("label", sorted(__import__("tests.ddp", fromlist=["STOP_RESUME"]).STOP_RESUME))
def test_stopped_through_the_store_and_resumed_under_two_processes_equals_the_uninterrupted_run(label, ddp):
    from tests.ddp import STOP_RESUME, assert_same_metrics, metric_table

    got = ddp.two["stop_resume"][label]
    at = STOP_RESUME[label]
    # the request reached rank 0 through the store and rank 1 through the engine: both left at the same step
    assert got["stopped"]["status"] == "stopped" and got["stopped"]["ranks"] == ["stopped", "stopped"], got
    assert got["stopped"]["error"] == "stop requested from the run store"
    assert got["checkpoint_step"] is not None  # the stop's own checkpoint
    assert got["resumed"]["status"] == "completed", got["resumed"]["error"]
    assert got["resumed"]["ranks"] == ["completed", "completed"]
    record = ddp.store.get(got["run_id"])
    assert record["status"] == "completed" and record["world_size"] == 2 and record["error"] is None
    df = rows(got["run_id"], ddp.store)
    assert_written_once(df)
    old, new = df[df["time"] <= got["stopped_at"]], df[df["time"] > got["stopped_at"]]
    assert not new.empty  # the resumed run logged what came after the stop
    table = metric_table(got["run_id"], ddp.store)
    two = metric_table(ddp.run(label)["run_id"], ddp.store)  # the same setting, uninterrupted, same launch
    assert_same_metrics(table, two, rel=1e-6, abs_=1e-7)
    one_id, _ = ddp.pair(label)  # and the one-process run of it
    assert_same_metrics(table, metric_table(one_id, ddp.store), rel=1e-4, abs_=1e-5)
    if label in EVERY_STEP:  # a first phase that logs every step: the stop and the resume at the very step asked
        assert got["checkpoint_step"] == at and not old.empty and int(old["step"].max()) < at
        went_on = old.groupby("name")["step"].max().to_frame("last").join(
            new.groupby("name")["step"].min().rename("next")).dropna()
        assert not went_on.empty and (went_on["next"] > went_on["last"]).all(), went_on
        assert int(new[new["name"].isin(went_on.index)]["step"].min()) == at, went_on


def test_a_rank_killed_mid_run_fails_the_run_with_one_line_and_the_launch_ends(tmp_path):
    from tests.ddp import torchrun

    start = time.time()
    proc = torchrun(tmp_path, {"kill": KILLED}, timeout=180)
    ended = time.time()
    assert proc.returncode != 0  # torchrun reports the killed rank
    killed_at = float((tmp_path / "store" / "killed_at").read_text())
    took = ended - killed_at
    print(f"launch {ended - start:.1f} s; from the kill to the launch's end {took:.1f} s")
    assert took < BOUND_S, f"the launch went on {took:.1f} s after rank 1 died"
    store = Store(tmp_path / "store")
    (record,) = store.runs()
    assert record["world_size"] == 2
    error = record["error"] or ""
    assert record["status"] == "failed", (record["status"], error)
    assert "\n" not in error and len(error) < 300, error
    assert "torchrun" in error and ("exits or fails" in error or "exited or crashed" in error), error
    assert f"step {KILL_AT - 1}" in error or f"step {KILL_AT}" in error, error  # where the run was
    df = rows(record["id"], store)
    assert_written_once(df)
    losses = df[df["name"] == "train/loss"].sort_values("step")
    # rank 0 logged every step before the kill (the ranks move in step: each step's all-reduces wait for both)
    assert losses["step"].tolist() == list(range(KILL_AT)), losses["step"].tolist()
    assert all(math.isfinite(v) for v in losses["value"])


def test_sigterm_under_torchrun_fails_the_run_and_ends_the_process_once_the_run_is_recorded():
    """torchrun sends SIGTERM to every process once one of them dies: while the method runs it becomes a one-line
    failure; while the run's end is recorded it waits; either way it is delivered again once the run is recorded
    (here to a handler of the test's, in place of the default that ends the process)."""
    import signal
    import threading

    from workbench.core.engine import Control, Terminated, _SigtermGuard

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are set from the main thread only")
    delivered: list[int] = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: delivered.append(signum))
    try:
        control = Control()
        control.phase, control.step = "train", 3
        with pytest.raises(Terminated) as term:
            with _SigtermGuard(True, control):
                signal.raise_signal(signal.SIGTERM)
        assert str(term.value).startswith("terminated (SIGTERM) at train step 3: torchrun ends every process")
        assert "\n" not in str(term.value) and delivered == [signal.SIGTERM]
        with _SigtermGuard(True, control) as guard:
            guard.recording = True
            signal.raise_signal(signal.SIGTERM)  # noted only
            assert len(delivered) == 1
        assert len(delivered) == 2
        with _SigtermGuard(False, control):  # a one-process run: the handler before stays
            signal.raise_signal(signal.SIGTERM)
        assert len(delivered) == 3 and signal.getsignal(signal.SIGTERM) is not None
    finally:
        signal.signal(signal.SIGTERM, before)


def test_every_distributed_experiment_is_stopped_and_resumed_under_torchrun():
    from tests.ddp import STOP_RESUME, distributed

    assert set(STOP_RESUME) == set(distributed())
