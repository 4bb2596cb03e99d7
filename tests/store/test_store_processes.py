"""Several processes on one store, on SQLite and on PostgreSQL: writers at once, a killed writer, a live follower,
first openings of a new store at once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from workbench.store.follow import RunFollower
from workbench.store.store import Store

ROOT = Path(__file__).resolve().parents[2]

WRITER = """
import sys, time
from workbench.store.store import Store
st = Store(sys.argv[1]); rid = sys.argv[2]
while time.time() < float(sys.argv[3]):
    time.sleep(0.005)
w = st.writer(rid, flush_interval=0.005)
for i in range(2000):
    w.log(i, {"x": float(i), "y": -float(i)})
    if i % 20 == 0:
        time.sleep(0.002)  # a training step's pace: the writer thread commits in between
w.close()
st.finish(rid, "completed", summary={"commits": len(w.commit_seconds)})
"""


def test_eight_processes_writing_at_once_lose_no_rows(store, url):
    ids = [store.create_run("toy", {}) for _ in range(8)]
    start = str(time.time() + 1.0)  # all start writing together
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, rid, start]) for rid in ids]
    assert [p.wait(120) for p in procs] == [0] * 8
    for rid in ids:
        rows = store.metrics(rid)
        assert [r["step"] for r in rows[::2]] == list(range(2000)) and [r["name"] for r in rows[:2]] == ["x", "y"]
        assert [r["value"] for r in rows[1::2]] == [-float(i) for i in range(2000)]
        rec = store.get(rid)
        assert rec["status"] == "completed" and rec["summary"]["commits"] > 1  # batched, not one commit at the end


TRAINER = """
import sys, time
from workbench.store.store import Store
st = Store(sys.argv[1])
rid = st.create_run("toy", {"steps": int(sys.argv[2])})
with open(sys.argv[3] + ".tmp", "w") as fh:
    fh.write(rid)
import os; os.replace(sys.argv[3] + ".tmp", sys.argv[3])
w = st.writer(rid, flush_interval=0.02)
for i in range(int(sys.argv[2])):
    w.log(i, {"train/loss": 1.0 / (i + 1)})
    if i % 25 == 0:
        st.add_artifact(rid, "samples", [{"step": i}], step=i)
    time.sleep(0.004)
w.close()
st.add_artifact(rid, "weights", [1.0, 2.0], kind="json")
st.finish(rid, "completed", summary={"train/loss": 1.0 / int(sys.argv[2])})
"""


def _start_trainer(url: str, steps: int, tmp_path: Path) -> tuple[subprocess.Popen, str]:
    """A training process (the engine's writer, artifacts, finish; no torch, to keep the test quick)."""
    id_file = tmp_path / "run_id"
    proc = subprocess.Popen([sys.executable, "-c", TRAINER, url, str(steps), str(id_file)], cwd=ROOT)
    deadline = time.time() + 60
    while not id_file.exists():
        assert time.time() < deadline and proc.poll() is None, "the training process did not start"
        time.sleep(0.02)
    return proc, id_file.read_text()


def test_sigkill_of_a_writer_ends_its_run_crashed_with_committed_metrics_kept(store, url, tmp_path):
    proc, rid = _start_trainer(url, 10_000_000, tmp_path)
    deadline = time.time() + 60
    while len(store.metrics(rid)) < 50 and time.time() < deadline:
        time.sleep(0.05)
    assert store.get(rid)["status"] == "running"
    committed = len(store.metrics(rid))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    rec = store.get(rid)
    rows = store.metrics(rid)
    assert rec["status"] == "crashed" and "killed" in rec["error"]
    steps = [r["step"] for r in rows]
    assert len(steps) >= committed >= 50 and steps == list(range(len(steps)))  # a prefix, nothing torn or lost
    assert [r["value"] for r in rows] == [1.0 / (i + 1) for i in range(len(rows))]


def test_a_follower_follows_a_run_written_by_another_process(store, url, tmp_path):
    """What a dashboard does: poll the store while another process trains, until the run ends."""
    proc, rid = _start_trainer(url, 300, tmp_path)
    follower = RunFollower(rid, store=Store(url))
    updates = list(follower.follow(interval=0.05, timeout=90))
    assert proc.wait(60) == 0
    live = [u for u in updates if not u.finished and len(u.metrics)]
    seen = [int(s) for u in updates for s in u.metrics.step]
    assert len(live) >= 2  # curves grew while the run was going
    assert seen == list(range(300))  # every row exactly once, in order
    names = [name for u in updates for name in u.artifacts]
    assert "samples" in names and "weights" in names
    assert updates[-1].status == "completed" and updates[-1].record["summary"] == {"train/loss": 1 / 300}


OPENER = """
import sys, time
from workbench.store.store import Store
while time.time() < float(sys.argv[2]):
    pass
st = Store(sys.argv[1])
st.finish(st.create_run("toy", {}), "completed")
"""


def test_processes_opening_one_new_store_at_once_migrate_it_once(url):
    """torchrun ranks and team members may open a new store at the same moment (WAL switch; migration lock)."""
    start = time.time() + 1.5
    procs = [subprocess.Popen([sys.executable, "-c", OPENER, url, str(start)], stderr=subprocess.PIPE)
             for _ in range(6)]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    assert len(Store(url).runs(status="completed")) == 6
