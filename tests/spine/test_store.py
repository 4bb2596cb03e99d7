import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench import runs
from workbench.store import MIGRATIONS, SCHEMA_VERSION, Store

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "home")


def test_wal_mode_and_schema_version(store):
    conn = store.connect()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == len(MIGRATIONS)


def test_migrates_a_version_1_database(tmp_path):
    home = tmp_path / "old"
    home.mkdir()
    conn = sqlite3.connect(home / "workbench.db")
    conn.executescript(MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    conn.execute("INSERT INTO runs (id, method, config, status) VALUES ('r1', 'toy', '{}', 'completed')")
    conn.commit()
    conn.close()
    st = Store(home)
    assert st.get("r1")["stop_requested"] == 0 and st.get("r1")["world_size"] == 1


def test_refuses_a_newer_schema(tmp_path):
    home = tmp_path / "new"
    home.mkdir()
    sqlite3.connect(home / "workbench.db").execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="newer than this workbench"):
        Store(home)


def test_artifacts_round_trip_and_replace(store):
    rid = store.create_run("toy", {"seed": 1})
    store.add_artifact(rid, "arr", np.arange(6).reshape(2, 3))
    store.add_artifact(rid, "table", [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}])
    store.add_artifact(rid, "info", {"k": [1.5, float("nan")]})
    store.add_artifact(rid, "note", "hello")
    store.add_artifact(rid, "note", "again")
    store.add_artifact(rid, "snap", np.zeros(2), step=3)
    store.add_artifact(rid, "snap", np.ones(2), step=5)
    assert store.load_artifact(rid, "arr").tolist() == [[0, 1, 2], [3, 4, 5]]
    assert isinstance(store.load_artifact(rid, "table"), pd.DataFrame)
    assert store.load_artifact(rid, "info") == {"k": [1.5, None]}
    assert store.load_artifact(rid, "note") == "again"
    assert [a["name"] for a in store.artifacts(rid)].count("note") == 1
    assert store.load_artifact(rid, "snap").tolist() == [1, 1]
    assert store.load_artifact(rid, "snap", step=3).tolist() == [0, 0]
    with pytest.raises(TypeError, match="kind="):
        store.add_artifact(rid, "obj", object())


def test_writer_commits_with_bounded_latency(store):
    rid = store.create_run("toy", {})
    writer = store.writer(rid, flush_interval=0.05)
    writer.log(0, {"loss": 1.0})
    deadline = time.time() + 5
    while not store.metrics(rid) and time.time() < deadline:
        time.sleep(0.01)
    assert len(store.metrics(rid)) == 1  # committed while the writer is still open
    writer.close()


def test_concurrent_writers_threads_keep_all_rows(store):
    ids = [store.create_run("toy", {}) for _ in range(4)]

    def work(rid):
        w = store.writer(rid, flush_interval=0.01)
        for i in range(500):
            w.log(i, {"a": i, "b": -i})
        w.close()

    threads = [threading.Thread(target=work, args=(rid,)) for rid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for rid in ids:
        assert len(store.metrics(rid)) == 1000


WRITER = """
import sys
from workbench.store import Store
st = Store(sys.argv[1]); rid = sys.argv[2]
w = st.writer(rid, flush_interval=0.005)
for i in range(2000):
    w.log(i, {"x": float(i)})
w.close()
st.finish(rid, "completed")
"""


def test_concurrent_writers_processes_keep_all_rows(store):
    ids = [store.create_run("toy", {}) for _ in range(3)]
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(store.home), rid]) for rid in ids]
    assert all(p.wait(120) == 0 for p in procs)
    for rid in ids:
        rows = store.metrics(rid)
        assert [r["step"] for r in rows] == list(range(2000))
        assert store.get(rid)["status"] == "completed"


KILLED = """
import sys, time
sys.path.insert(0, sys.argv[2] + "/tests/spine")  # by path: an installed package may own the name 'tests'
import workbench
import toy
workbench.run("toy", {"steps": 10_000_000, "sleep": 0.002}, progress=False)
"""


def test_sigkill_keeps_metrics_and_reads_back_as_crashed(tmp_path):
    home = tmp_path / "killed"
    env = {**os.environ, "WORKBENCH_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(home), str(ROOT)], env=env, cwd=ROOT)
    deadline = time.time() + 60
    st = None
    while time.time() < deadline:
        time.sleep(0.2)
        if (home / "workbench.db").exists():
            st = st or Store(home)
            listed = st.runs()
            if listed and len(st.metrics(listed[0]["id"])) >= 50:
                break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    rec = st.runs()[0]
    rows = st.metrics(rec["id"])
    assert rec["status"] == "crashed" and "killed" in rec["error"]
    steps = [r["step"] for r in rows]
    assert len(steps) >= 50 and steps == list(range(len(steps)))  # a prefix, nothing torn


def test_stale_heartbeat_reads_as_crashed(store, monkeypatch):
    rid = store.create_run("toy", {})
    store._write("UPDATE runs SET host='elsewhere', heartbeat_at=? WHERE id=?", (time.time() - 3600, rid))
    assert store.get(rid)["status"] == "crashed"


def test_python_api_list_filter_compare_export_delete(tmp_path):
    st = Store(tmp_path / "api")
    a, b = st.create_run("toy", {"seed": 0}), st.create_run("other", {"seed": 1})
    for rid in (a, b):
        st.add_metrics(rid, [(i, "loss", 1.0 / (i + 1), time.time()) for i in range(5)])
    st.finish(a, "completed", summary={"loss": 0.2})
    assert list(runs.list(store=st).id) == [a, b]
    assert list(runs.list(method="toy", store=st).id) == [a]
    assert list(runs.list(status="completed", store=st).id) == [a]
    assert runs.get(a[:-2], store=st)["summary"] == {"loss": 0.2}  # id prefixes work
    cmp = runs.compare([a, b], store=st)
    assert set(cmp.run) == {a, b} and len(cmp) == 10
    assert list(runs.wide(a, store=st)["loss"]) == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    csv = runs.export(a, tmp_path / "a.csv", store=st)
    pq = runs.export(a, tmp_path / "a.parquet", store=st)
    assert len(pd.read_csv(csv)) == 5 and len(pd.read_parquet(pq)) == 5
    with pytest.raises(ValueError, match=".csv or .parquet"):
        runs.export(a, tmp_path / "a.xlsx", store=st)
    st.add_artifact(a, "x", np.zeros(1))
    runs.delete(a, store=st)
    assert list(runs.list(store=st).id) == [b] and not (st.home / "artifacts" / a).exists()
    with pytest.raises(KeyError):
        runs.get(a, store=st)


OPENER = """
import sys, time
from workbench.store import Store
while time.time() < float(sys.argv[2]):
    pass
st = Store(sys.argv[1])
st.finish(st.create_run("toy", {}), "completed")
"""


def test_many_processes_creating_one_new_store_at_once(tmp_path):
    """Switching a fresh database to WAL ignores SQLite's busy timeout; the store retries (torchrun ranks)."""
    home, start = tmp_path / "fresh", time.time() + 2.0
    procs = [subprocess.Popen([sys.executable, "-c", OPENER, str(home), str(start)], stderr=subprocess.PIPE)
             for _ in range(12)]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    assert len(Store(home).runs(status="completed")) == 12
