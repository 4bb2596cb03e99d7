"""The run store's semantics, the same on SQLite and PostgreSQL (each test runs on both: see conftest.py)."""
from __future__ import annotations

import os
import threading
import time

import numpy as np
import pandas as pd
import pytest
import torch

import workbench
from tests.spine import toy  # noqa: F401  (registers "toy")
from workbench import runs
from workbench.store import store as store_module
from workbench.store.follow import RunFollower
from workbench.store.store import CLAIM_COLUMNS, MIGRATIONS, RUN_COLUMNS, SCHEMA_VERSION, Store


def test_schema_is_current_and_reopening_migrates_nothing(store, url):
    assert store.schema_version() == SCHEMA_VERSION == len(MIGRATIONS)
    rid = store.create_run("toy", {"seed": 1})
    again = Store(url)
    assert again.schema_version() == SCHEMA_VERSION and again.get(rid)["method"] == "toy"
    assert set(again.get(rid)) == set(RUN_COLUMNS)  # every column of the schema, no other


def test_artifacts_round_trip_and_replace(store):
    rid = store.create_run("toy", {"seed": 1})
    store.add_artifact(rid, "arr", np.arange(6).reshape(2, 3))
    store.add_artifact(rid, "table", [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}])
    store.add_artifact(rid, "info", {"k": [1.5, float("nan")]})
    store.add_artifact(rid, "note", "hello")
    store.add_artifact(rid, "note", "again")
    store.add_artifact(rid, "snap", np.zeros(2), step=3)
    store.add_artifact(rid, "snap", np.ones(2), step=5)
    store.add_artifact(rid, "ckpt", {"w": torch.arange(3.0)}, kind="checkpoint")
    assert store.load_artifact(rid, "arr").tolist() == [[0, 1, 2], [3, 4, 5]]
    assert isinstance(store.load_artifact(rid, "table"), pd.DataFrame)
    assert store.load_artifact(rid, "table").to_dict(orient="records") == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    assert store.load_artifact(rid, "info") == {"k": [1.5, None]}
    assert store.load_artifact(rid, "note") == "again"
    assert [a["name"] for a in store.artifacts(rid)].count("note") == 1
    assert store.load_artifact(rid, "snap").tolist() == [1, 1]
    assert store.load_artifact(rid, "snap", step=3).tolist() == [0, 0]
    assert store.load_artifact(rid, "ckpt")["w"].tolist() == [0.0, 1.0, 2.0]
    assert all(os.path.exists(a["path"]) for a in store.artifacts(rid))
    with pytest.raises(TypeError, match="kind="):
        store.add_artifact(rid, "obj", object())
    with pytest.raises(KeyError, match="no artifact 'missing'"):
        store.load_artifact(rid, "missing")


def test_artifacts_under_an_fsspec_url(pg):
    """A PostgreSQL store's artifact root may be any fsspec URL (a bucket); here fsspec's in-memory file system.
    (PostgreSQL only: SQLite keeps its files beside the database.)"""
    url = pg.url("workbench", schema=f"fsspec{time.monotonic_ns()}")
    root = f"memory://wb-{os.getpid()}-{time.monotonic_ns()}"
    st = Store(url + "&artifacts=" + root)
    rid = st.create_run("toy", {})
    where = st.add_artifact(rid, "arr", np.arange(4))
    assert where.startswith("memory://") and st.load_artifact(rid, "arr").tolist() == [0, 1, 2, 3]
    assert Store(st.url).load_artifact(rid, "arr").tolist() == [0, 1, 2, 3]  # store.url names the root too
    st.delete(rid)
    assert not st.files.exists(f"{rid}/arr.npy")
    unseen = Store(url + "&artifacts=" + root + "-elsewhere")
    rid = st.create_run("toy", {})
    st.add_artifact(rid, "arr", np.arange(4))
    with pytest.raises(FileNotFoundError, match="WORKBENCH_ARTIFACTS"):  # another machine without the shared root
        unseen.load_artifact(rid, "arr")


def test_claims_smoke_flag_summary_and_traceback(store):
    from workbench.core.claims import Effect, superior

    rid = store.create_run("toy", {"seed": 2, "lr": 0.5}, smoke=True, world_size=2, device="cpu")
    full = superior("loss falls", "SGD", "init", Effect.paired([0.5, 0.7, 0.6], [0.1, 0.1, 0.2]), detail="by 4x",
                    paper="Fig. 1")
    store.add_claim(rid, full.to_record())
    store.add_claim(rid, full.not_evaluated("not evaluated (smoke run)").to_record())
    store.add_claim(rid, superior("one seed", "A", "B", Effect.paired([1.0], [0.0])).to_record())
    store.add_claim(rid, {"claim": "fails", "measured": 3, "holds": False})  # a schema-v4 record
    store.finish(rid, "failed", "ValueError: bad", {"loss": float("nan"), "acc": np.float32(0.5)},
                 traceback="Traceback (most recent call last):\n  ...\nValueError: bad")
    rec = store.get(rid)
    assert rec["smoke"] is True and rec["world_size"] == 2 and rec["config"] == {"seed": 2, "lr": 0.5}
    assert rec["status"] == "failed" and rec["error"] == "ValueError: bad" and rec["traceback"].endswith("bad")
    assert rec["summary"] == {"loss": None, "acc": 0.5} and rec["ended_at"] >= rec["created_at"]
    got = store.claims(rid)
    assert all(set(c) == set(CLAIM_COLUMNS) | {"statement"} for c in got)
    first = full.to_record()
    assert {k: got[0][k] for k in first if k in CLAIM_COLUMNS and k not in ("holds", "effect", "uncertainty", "low",
                                                                           "high")} == {
        k: first[k] for k in first if k in CLAIM_COLUMNS and k not in ("holds", "effect", "uncertainty", "low",
                                                                       "high")}
    for key in ("effect", "uncertainty", "low", "high"):  # double precision on both backends
        assert got[0][key] == first[key]
    assert got[0]["holds"] is True and got[0]["outcome"] == "holds" and got[0]["statement"] == "loss falls"
    assert got[0]["seeds"] == 3 and got[0]["method"] == "SGD" and got[0]["arm"] == "init" and got[0]["paper"] == "Fig. 1"
    assert got[1]["outcome"] == "not evaluated" and got[1]["holds"] is None
    assert got[1]["reason"] == "not evaluated (smoke run)" and got[1]["detail"] == "not evaluated (smoke run); by 4x"
    assert got[2]["outcome"] == "inconclusive" and got[2]["low"] is None and got[2]["uncertainty"] is None
    assert got[2]["effect"] == 1.0 and "unbounded" in got[2]["reason"]
    assert got[3] == {**got[3], "claim": "fails", "measured": "3", "holds": False, "outcome": "fails", "detail": "",
                      "effect": None, "method": "", "reason": ""}
    for record in got:  # a claim read back and written again (a copy between stores) is the same claim
        store.add_claim(rid, record)
    assert store.claims(rid)[len(got):] == got
    with pytest.raises(ValueError, match="claim outcome 'passes'"):
        store.add_claim(rid, {**first, "outcome": "passes"})
    with pytest.raises(ValueError, match="statement"):
        store.add_claim(rid, {"measured": 1})
    with pytest.raises(ValueError, match="status must be one of"):
        store.finish(rid, "exploded")


def test_a_version_4_store_migrates_its_claims(url, monkeypatch):
    """Schema v5 gives a claim its outcome, comparison, effect and rule; a v4 store's rows get an outcome from
    ``holds`` (and "not evaluated" from a smoke run's detail), on SQLite and PostgreSQL alike."""
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 4)
    old = Store(url)
    assert old.schema_version() == 4
    rid = old.create_run("toy", {})
    old._write("INSERT INTO claims (run_id, claim, measured, holds, detail) VALUES (?,?,?,?,?), (?,?,?,?,?), "
               "(?,?,?,?,?), (?,?,?,?,?), (?,?,?,?,?)",
               [rid, "a", "1", 1, "by 4x", rid, "b", "2", 0, None, rid, "c", "3", None, "not evaluated (smoke run)",
                rid, "d", "4", None, "ranges do not overlap", rid, "e", "5", None, None])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION)
    new = Store(url)
    assert new.schema_version() == SCHEMA_VERSION >= 6
    got = new.claims(rid)
    assert [c["outcome"] for c in got] == ["holds", "fails", "not evaluated", "inconclusive", "inconclusive"]
    assert [c["holds"] for c in got] == [True, False, None, None, None]  # holds stays comparable
    assert [c["reason"] for c in got] == ["", "", "not evaluated (smoke run)", "ranges do not overlap",
                                          "no verdict recorded"]
    assert [c["measured"] for c in got] == ["1", "2", "3", "4", "5"] and got[0]["detail"] == "by 4x"
    assert all(c["rule"] == store_module.LEGACY_RULE and c["effect"] is None and c["method"] == "" for c in got)
    assert all(set(c) == set(CLAIM_COLUMNS) | {"statement"} for c in got)


def test_metric_values_and_times_keep_double_precision(store):
    rid = store.create_run("toy", {})
    t = 1_790_000_000.123456
    store.add_metrics(rid, [(0, "x", 1.0 + 1e-12, t), (2**40, "y", -3.5e-300, t + 1e-6)])
    rows = store.metrics(rid)
    assert [tuple(r)[1:] for r in rows] == [(0, "x", 1.0 + 1e-12, t), (2**40, "y", -3.5e-300, t + 1e-6)]
    assert rows[0]["name"] == "x" and dict(rows[1])["step"] == 2**40
    assert [tuple(r)[2] for r in store.metrics(rid, names=["y"])] == ["y"]
    assert [r["name"] for r in store.metrics(rid, since=rows[0]["id"])] == ["y"]


def test_metric_chunks_read_every_row_once_in_order(store):
    rid, other = store.create_run("toy", {}), store.create_run("toy", {})
    store.add_metrics(rid, [(i, "x", float(i), 1.0 + i) for i in range(23)])
    store.add_metrics(other, [(0, "x", 9.0, 1.0)])
    chunks = list(store.metric_chunks(rid, size=5))
    assert [len(c) for c in chunks] == [5, 5, 5, 5, 3]
    assert [tuple(r)[1:] for c in chunks for r in c] == [tuple(r)[1:] for r in store.metrics(rid)]
    assert list(store.metric_chunks(store.create_run("toy", {}))) == []


def test_writer_commits_with_bounded_latency(store):
    rid = store.create_run("toy", {})
    writer = store.writer(rid, flush_interval=0.05)
    start = time.monotonic()
    writer.log(0, {"loss": 1.0})
    while not store.metrics(rid) and time.monotonic() - start < 5:
        time.sleep(0.01)
    assert len(store.metrics(rid)) == 1  # committed while the writer is still open
    writer.close()
    assert writer.commit_seconds and writer.pending() == 0


def test_flush_keeps_rows_when_the_commit_fails(store, monkeypatch):
    """A failed commit (busy or unreachable database) puts its rows back, in order, ahead of newer ones."""
    rid = store.create_run("toy", {})
    writer = store.writer(rid, flush_interval=3600)  # only explicit flushes
    real = store.add_metrics
    failures = [2]

    def flaky(run_id, rows):
        if failures[0]:
            failures[0] -= 1
            raise store.errors[0]("simulated: the database went away")
        real(run_id, rows)

    monkeypatch.setattr(store, "add_metrics", flaky)
    writer.log(0, {"a": 0.0, "b": 0.5})
    with pytest.raises(store.errors[0]):
        writer.flush()
    assert writer.pending() == 2
    writer.log(1, {"a": 1.0})
    with pytest.raises(store.errors[0]):
        writer.flush()
    writer.log(2, {"a": 2.0})
    writer.flush()
    writer.close()
    assert [tuple(r)[1:3] for r in store.metrics(rid)] == [(0, "a"), (0, "b"), (1, "a"), (2, "a")]
    assert writer.failures == 2


def test_writer_thread_retries_failed_commits_without_losing_or_duplicating(store, monkeypatch):
    rid = store.create_run("toy", {})
    real, calls = store.add_metrics, [0]

    def flaky(run_id, rows):
        calls[0] += 1
        if calls[0] % 3 == 1:  # every third commit fails
            raise store.errors[0]("simulated: busy")
        real(run_id, rows)

    monkeypatch.setattr(store, "add_metrics", flaky)
    writer = store.writer(rid, flush_interval=0.005)
    for i in range(300):
        writer.log(i, {"x": float(i)})
        if i % 50 == 0:
            time.sleep(0.02)
    writer.close()
    assert [r["step"] for r in store.metrics(rid)] == list(range(300)) and writer.failures >= 1


def test_concurrent_writer_threads_keep_all_rows(store):
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
        rows = store.metrics(rid)
        assert len(rows) == 1000 and [r["step"] for r in rows[::2]] == list(range(500))


def test_crash_detection_pid_only_on_the_same_host_heartbeat_elsewhere(store):
    dead = _dead_pid()
    here = store.create_run("toy", {})  # this process: alive
    gone = store.create_run("toy", {})  # same machine and PID namespace, process gone
    store._write("UPDATE runs SET pid=? WHERE id=?", (dead, gone))
    remote = store.create_run("toy", {})  # another machine that beat its heart just now: its PIDs mean nothing here
    store._write("UPDATE runs SET pid=?, host='elsewhere', pid_space='elsewhere|boot|pid:[1]' WHERE id=?",
                 (dead, remote))
    silent = store.create_run("toy", {})  # another machine, silent for an hour
    store._write("UPDATE runs SET host='elsewhere', pid_space='elsewhere|x', heartbeat_at={now} - 3600 WHERE id=?",
                 (silent,))
    old = store.create_run("toy", {})  # a row from before schema v4 (no pid_space): the host name decides
    store._write("UPDATE runs SET pid=?, pid_space=NULL WHERE id=?", (dead, old))
    status = {r["id"]: r["status"] for r in store.runs()}
    assert status == {here: "running", gone: "crashed", remote: "running", silent: "crashed", old: "crashed"}
    rec = store.get(silent)
    assert "killed or crashed" in rec["error"] and rec["ended_at"] == rec["heartbeat_at"]


def test_heartbeat_is_on_the_database_clock(store):
    """A writer whose clock is an hour late still reads as alive: the heartbeat is stamped by the database."""
    rid = store.create_run("toy", {})
    store._write("UPDATE runs SET host='elsewhere', pid_space='elsewhere' WHERE id=?", (rid,))
    real = time.time
    try:
        store_module.time.time = lambda: real() - 3600  # this process's clock, as the store sees it
        store.heartbeat(rid)
    finally:
        store_module.time.time = real
    assert store.get(rid)["status"] == "running"
    assert abs(store.get(rid)["heartbeat_at"] - time.time()) < 5


def test_stop_request_from_another_connection_reaches_the_writer(store, url, monkeypatch):
    monkeypatch.setattr(store_module, "HEARTBEAT_EVERY", 0.05)
    rid = store.create_run("toy", {})
    asked = threading.Event()
    writer = store.writer(rid, flush_interval=0.02, on_stop_request=asked.set)
    runs.stop(rid[:12], store=Store(url))  # another connection (another process would do the same)
    assert asked.wait(10)
    writer.close()
    assert store.get(rid)["stop_requested"] == 1
    other = store.create_run("toy", {})
    monkeypatch.setattr(store.dialect, "returning", False)  # SQLite before 3.35: UPDATE, then SELECT
    assert store.heartbeat(other) is False
    store.request_stop(other)
    assert store.heartbeat(other) is True


def test_python_api_list_filter_compare_export_delete(store, tmp_path):
    st = store
    a, b = st.create_run("toy", {"seed": 0}), st.create_run("other", {"seed": 1})
    for rid in (a, b):
        st.add_metrics(rid, [(i, "loss", 1.0 / (i + 1), time.time()) for i in range(5)])
    st.finish(a, "completed", summary={"loss": 0.2})
    assert list(runs.list(store=st).id) == [a, b]
    assert list(runs.list(method="toy", store=st).id) == [a]
    assert list(runs.list(status="completed", store=st).id) == [a]
    assert runs.get(a[:-2], store=st)["summary"] == {"loss": 0.2}  # id prefixes work
    with pytest.raises(KeyError, match="ambiguous"):
        runs.get(a[:4], store=st)
    cmp = runs.compare([a, b], store=st)
    assert set(cmp.run) == {a, b} and len(cmp) == 10
    assert list(runs.wide(a, store=st)["loss"]) == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    csv = runs.export(a, tmp_path / "a.csv", store=st)
    pq = runs.export(a, tmp_path / "a.parquet", store=st)
    assert len(pd.read_csv(csv)) == 5 and len(pd.read_parquet(pq)) == 5
    with pytest.raises(ValueError, match=".csv or .parquet"):
        runs.export(a, tmp_path / "a.xlsx", store=st)
    path = st.add_artifact(a, "x", np.zeros(1))
    runs.delete(a, store=st)
    assert list(runs.list(store=st).id) == [b] and not os.path.exists(path)
    assert st.metrics(a) == [] and st.claims(a) == [] and st.artifacts(a) == []
    with pytest.raises(KeyError):
        runs.get(a, store=st)


def test_engine_runs_stops_and_resumes_exactly_on_the_store(store):
    """The engine against an explicit store: checkpoints (artifacts), stop, resume (drop_metrics_after, reopen)."""
    full = workbench.run("toy", {"steps": 24, "checkpoint_every": 5}, progress=False, store=store)
    part = workbench.run("toy", {"steps": 24, "checkpoint_every": 5, "stop_at": 11}, progress=False, store=store)
    assert full.status == "completed" and part.status == "stopped"
    done = workbench.run("toy", {"stop_at": -1}, resume=part.run_id, progress=False, store=store)
    assert done.status == "completed" and done.run_id == part.run_id
    a = runs.metrics(full.run_id, store=store)
    b = runs.metrics(part.run_id, store=store)
    assert list(b.step) == list(range(24)) and b.value.tolist() == pytest.approx(a.value.tolist(), rel=1e-6)
    rec = store.get(part.run_id)
    assert rec["status"] == "completed" and rec["error"] is None and rec["stop_requested"] == 0
    assert runs.claims(full.run_id, store=store)[0]["claim"] == "the loss falls below 1"


def test_follower_reads_only_what_is_new(store):
    rid = store.create_run("toy", {})
    follower = RunFollower(rid, store=store)
    store.add_metrics(rid, [(0, "a", 1.0, time.time())])
    store.add_artifact(rid, "x", "one")
    first = follower.poll()
    store.add_metrics(rid, [(1, "a", 2.0, time.time()), (1, "b", 3.0, time.time())])
    store.add_artifact(rid, "x", "two")
    second = follower.poll()
    store.finish(rid, "completed")
    last = follower.poll()
    assert list(first.metrics.step) == [0] and first.artifacts == ["x"] and first.status == "running"
    assert list(second.metrics.name) == ["a", "b"] and second.artifacts == ["x"]
    assert last.metrics.empty and last.artifacts == [] and last.finished


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_heartbeat_revives_a_run_marked_crashed_while_the_store_was_away(store):
    rid = store.create_run("toy", {})
    store._write("UPDATE runs SET status='crashed', error='gone', ended_at=1 WHERE id=?", (rid,))
    store.heartbeat(rid)
    rec = store.get(rid)
    assert rec["status"] == "running" and rec["error"] is None and rec["ended_at"] is None


def test_metric_rows_are_unique_per_sequence_number_and_writers_continue_the_sequence(store):
    rid = store.create_run("toy", {})
    store.add_metrics(rid, [(0, "a", 1.0, 1.0, 0), (0, "b", 2.0, 1.0, 1)])
    with pytest.raises(store.errors):  # the database itself refuses a second copy of a row
        store.add_metrics(rid, [(0, "a", 1.0, 1.0, 0)])
    writer = store.writer(rid, flush_interval=3600)
    writer.log(1, {"a": 3.0})
    writer.close()
    assert store.next_seq(rid) == 3 and len(store.metrics(rid)) == 3


def test_postgres_connections_time_out_and_keep_alive_unless_the_url_says_otherwise(monkeypatch):
    """A silent server must not hang a run's writer: connect_timeout and TCP keepalives by default, the URL's own
    values kept."""
    pytest.importorskip("psycopg")
    from workbench.store.sql import PostgreSQL

    seen = []
    dialect = PostgreSQL("postgresql://me@db/wb?connect_timeout=3")
    monkeypatch.setattr(dialect._psycopg, "connect", lambda url, **kw: seen.append((url, kw)) or _Closed())
    dialect.connect()
    url, kw = seen[0]
    assert "connect_timeout=3" in url and "connect_timeout" not in kw
    assert kw["keepalives"] == "1" and int(kw["keepalives_idle"]) <= 60 and kw["application_name"] == "workbench"


class _Closed:
    closed = broken = True
