"""The embedded SQLite store: its file format, migrations, store locations, and a killed engine run.

The store's semantics on both backends (artifacts, writer, heartbeats, stop requests, claims, concurrency) are
tested in tests/store/, once on SQLite and once on PostgreSQL.
"""
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench import runs
from workbench.store.store import CLAIM_COLUMNS, MIGRATIONS, RUN_COLUMNS, SCHEMA_VERSION, Store
from workbench.store.sql import parse_location, redact

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "home")


def test_wal_mode_and_schema_version(store):
    conn = store.connect()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == len(MIGRATIONS)
    assert [r[1] for r in conn.execute("PRAGMA table_info(runs)")] == list(RUN_COLUMNS)


def test_migrates_a_version_1_database(tmp_path):
    home = tmp_path / "old"
    home.mkdir()
    conn = sqlite3.connect(home / "workbench.db")
    conn.executescript(MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    conn.execute("INSERT INTO runs (id, method, config, status) VALUES ('r1', 'toy', '{}', 'completed')")
    conn.execute("INSERT INTO claims (run_id, claim, measured, holds, detail) VALUES ('r1', 'it works', '0.9', 1, '')")
    conn.commit()
    conn.close()
    st = Store(home)
    rec = st.get("r1")
    assert rec["stop_requested"] == 0 and rec["world_size"] == 1 and rec["smoke"] is False
    assert rec["pid_space"] is None and st.schema_version() == SCHEMA_VERSION
    (claim,) = st.claims("r1")
    assert claim["outcome"] == "holds" and claim["holds"] is True and claim["measured"] == "0.9"
    assert [r[1] for r in st.connect().execute("PRAGMA table_info(claims)")] == ["id", "run_id", *CLAIM_COLUMNS, "token"]


def test_refuses_a_newer_schema(tmp_path):
    home = tmp_path / "new"
    home.mkdir()
    sqlite3.connect(home / "workbench.db").execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="newer than this workbench"):
        Store(home)


def test_store_locations(tmp_path, monkeypatch):
    home = tmp_path / "h"
    assert parse_location(home, Path("x")) == {"kind": "sqlite", "home": home, "path": home / "workbench.db"}
    url = parse_location(f"sqlite:///{tmp_path}/a/team.db", Path("x"))
    assert url["path"] == tmp_path / "a" / "team.db" and url["home"] == tmp_path / "a"
    monkeypatch.chdir(tmp_path)
    assert parse_location("sqlite:///rel/w.db", Path("x"))["path"] == Path("rel/w.db")  # three slashes: relative
    home.mkdir()
    assert parse_location(f"sqlite:///{home}", Path("x"))["path"] == home / "workbench.db"  # a directory
    pg = parse_location("postgres://me:secret@db:5433/wb?sslmode=require&artifacts=s3://bucket/wb", Path("x"))
    assert pg == {"kind": "postgresql", "url": "postgresql://me:secret@db:5433/wb?sslmode=require",
                  "artifacts": "s3://bucket/wb"}
    assert redact(pg["url"]) == "postgresql://me:***@db:5433/wb?sslmode=require"
    for bad, match in (("mysql://db/wb", "use a directory"), ("sqlite:///:memory:", "in-memory"),
                       ("sqlite://rel.db", "sqlite:///relative")):
        with pytest.raises(ValueError, match=match):
            parse_location(bad, Path("x"))
    st = Store(f"sqlite:///{tmp_path}/b/team.db")
    assert st.path == tmp_path / "b" / "team.db" and st.kind == "sqlite" and st.path.exists()
    monkeypatch.setenv("WORKBENCH_STORE", f"sqlite:///{tmp_path}/env/w.db")
    assert runs.store().path == tmp_path / "env" / "w.db" and Store().path == tmp_path / "env" / "w.db"


def test_flush_keeps_rows_when_the_commit_fails(store, monkeypatch):
    """``RunWriter.flush`` used to drop the rows it took when the commit raised; they stay buffered now."""
    rid = store.create_run("toy", {})
    writer = store.writer(rid, flush_interval=3600)
    real = store.add_metrics

    def busy(run_id, rows):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(store, "add_metrics", busy)
    writer.log(0, {"a": 1.0})
    with pytest.raises(sqlite3.OperationalError):
        writer.flush()
    assert writer.pending() == 1 and store.metrics(rid) == []
    monkeypatch.setattr(store, "add_metrics", real)
    writer.log(1, {"a": 2.0})
    writer.close()
    assert [(r["step"], r["value"]) for r in store.metrics(rid)] == [(0, 1.0), (1, 2.0)]


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
    env.pop("WORKBENCH_STORE", None)
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


OPENER = """
import sys, time
from workbench.store.store import Store
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
