"""The run store: one SQLite database (WAL mode) plus artifact files beside it, under the workbench home.

Layout under ``$WORKBENCH_HOME`` (default ``./runs``)::

    workbench.db            runs, metrics, artifacts, claims (schema version in PRAGMA user_version)
    artifacts/<run_id>/     one file per artifact, indexed in the database

Metrics are buffered by a :class:`RunWriter` and committed by a background thread at most
``flush_interval`` seconds after they are logged, so a killed process loses at most that much.
The same thread writes a heartbeat; a ``running`` run whose process is gone (same host) or whose
heartbeat is older than ``HEARTBEAT_TIMEOUT`` reads back as ``crashed``.
"""
from __future__ import annotations

import io
import json
import math
import os
import re
import secrets
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable

SCHEMA_VERSION = 3
HEARTBEAT_EVERY = 2.0
HEARTBEAT_TIMEOUT = 30.0
STATUSES = ("running", "completed", "stopped", "failed", "crashed")

#: MIGRATIONS[v] upgrades a database at version v to v + 1.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY, method TEXT NOT NULL, config TEXT NOT NULL, seed INTEGER, device TEXT,
        version TEXT, git_commit TEXT, status TEXT NOT NULL, error TEXT, summary TEXT,
        host TEXT, pid INTEGER, created_at REAL, ended_at REAL, heartbeat_at REAL
    );
    CREATE TABLE metrics (
        id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, step INTEGER NOT NULL,
        name TEXT NOT NULL, value REAL, time REAL NOT NULL
    );
    CREATE INDEX metrics_by_run ON metrics (run_id, id);
    CREATE TABLE artifacts (
        id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL,
        step INTEGER, path TEXT NOT NULL, meta TEXT, created_at REAL NOT NULL
    );
    CREATE INDEX artifacts_by_run ON artifacts (run_id, name);
    CREATE TABLE claims (
        id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, claim TEXT NOT NULL,
        measured TEXT, holds INTEGER, detail TEXT
    );
    """,
    # v2: external stop requests (a widget or `workbench runs stop` in another process) and world size.
    """
    ALTER TABLE runs ADD COLUMN stop_requested INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN world_size INTEGER NOT NULL DEFAULT 1;
    """,
    # v3: smoke runs are labelled (their claims are not evaluated); a failed run keeps its full traceback
    # beside its one-line error.
    """
    ALTER TABLE runs ADD COLUMN smoke INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN traceback TEXT;
    """,
]

_HOST = socket.gethostname()


def default_home() -> Path:
    return Path(os.environ.get("WORKBENCH_HOME", "runs")).expanduser()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped) is gone for our purposes
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


class Store:
    """A run store rooted at ``home``; safe to share between threads and processes."""

    def __init__(self, home: str | os.PathLike | None = None):
        self.home = Path(home) if home is not None else default_home()
        self.home.mkdir(parents=True, exist_ok=True)
        self.path = self.home / "workbench.db"
        self._local = threading.local()
        self._migrate()

    # -- connections -------------------------------------------------------------------------
    def connect(self) -> sqlite3.Connection:
        """A connection for the calling thread (sqlite3 connections are not shared across threads)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout=60000")
            for attempt in range(600):  # switching a new database to WAL ignores the busy timeout: retry
                try:
                    conn.execute("PRAGMA journal_mode=WAL")
                    break
                except sqlite3.OperationalError as err:
                    if "locked" not in str(err) or attempt == 599:
                        raise
                    time.sleep(0.05)
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def _write(self, sql: str, params: Iterable[Any] = (), many: bool = False) -> sqlite3.Cursor:
        conn = self.connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            cur = conn.executemany(sql, params) if many else conn.execute(sql, tuple(params))
            conn.execute("COMMIT")
            return cur
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _migrate(self) -> None:
        conn = self.connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path} has schema version {version}, newer than this workbench ({SCHEMA_VERSION}); upgrade"
                )
            for v in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[v].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {v + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # -- runs ---------------------------------------------------------------------------------
    def create_run(self, method: str, config: dict[str, Any], *, device: str = "cpu", world_size: int = 1,
                   smoke: bool = False) -> str:
        from . import __version__

        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
        now = time.time()
        self._write(
            "INSERT INTO runs (id, method, config, seed, device, version, git_commit, status, host, pid,"
            " created_at, heartbeat_at, world_size, smoke) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (run_id, method, json.dumps(config), config.get("seed"), device, __version__, _git_commit(),
             "running", _HOST, os.getpid(), now, now, world_size, int(bool(smoke))),
        )
        return run_id

    def reopen(self, run_id: str) -> None:
        """Mark a run running again in this process (resume)."""
        self._write(
            "UPDATE runs SET status='running', error=NULL, traceback=NULL, ended_at=NULL, host=?, pid=?,"
            " heartbeat_at=?, stop_requested=0 WHERE id=?",
            (_HOST, os.getpid(), time.time(), run_id),
        )

    def finish(self, run_id: str, status: str, error: str | None = None, summary: dict | None = None,
               traceback: str | None = None) -> None:
        """End a run: its status, one-line ``error``, summary and (failed runs) the full ``traceback``."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        self._write(
            "UPDATE runs SET status=?, error=?, summary=?, ended_at=?, traceback=? WHERE id=?",
            (status, error, json.dumps(_jsonable(summary or {})), time.time(), traceback, run_id),
        )

    def heartbeat(self, run_id: str) -> bool:
        """Record that the run is alive; returns whether someone asked it to stop."""
        self._write("UPDATE runs SET heartbeat_at=? WHERE id=?", (time.time(), run_id))
        row = self.connect().execute("SELECT stop_requested FROM runs WHERE id=?", (run_id,)).fetchone()
        return bool(row and row[0])

    def request_stop(self, run_id: str) -> None:
        self._write("UPDATE runs SET stop_requested=1 WHERE id=?", (run_id,))

    def _detect_crashes(self) -> None:
        rows = self.connect().execute(
            "SELECT id, host, pid, heartbeat_at FROM runs WHERE status='running'"
        ).fetchall()
        now = time.time()
        for r in rows:
            gone = (r["host"] == _HOST and r["pid"] and not _pid_alive(r["pid"])) or (
                now - (r["heartbeat_at"] or 0) > HEARTBEAT_TIMEOUT
            )
            if gone:
                self._write(
                    "UPDATE runs SET status='crashed', error=?, ended_at=heartbeat_at WHERE id=? AND status='running'",
                    ("the process stopped without reporting (killed or crashed); metrics up to the last commit kept",
                     r["id"]),
                )

    def runs(self, method: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        self._detect_crashes()
        sql, args = "SELECT * FROM runs WHERE 1=1", []
        if method:
            sql, args = sql + " AND method=?", args + [method]
        if status:
            sql, args = sql + " AND status=?", args + [status]
        return [_run_record(r) for r in self.connect().execute(sql + " ORDER BY created_at", args)]

    def get(self, run_id: str) -> dict[str, Any]:
        self._detect_crashes()
        row = self.connect().execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            row = self._by_prefix(run_id)
        return _run_record(row)

    def _by_prefix(self, prefix: str) -> sqlite3.Row:
        rows = self.connect().execute("SELECT * FROM runs WHERE id LIKE ?", (prefix + "%",)).fetchall()
        if len(rows) != 1:
            raise KeyError(f"no run with id {prefix!r}" if not rows else f"run id {prefix!r} is ambiguous")
        return rows[0]

    def delete(self, run_id: str) -> None:
        run_id = self.get(run_id)["id"]
        for table, col in (("metrics", "run_id"), ("artifacts", "run_id"), ("claims", "run_id"), ("runs", "id")):
            self._write(f"DELETE FROM {table} WHERE {col}=?", (run_id,))
        folder = self.home / "artifacts" / run_id
        if folder.exists():
            import shutil

            shutil.rmtree(folder)

    # -- metrics ------------------------------------------------------------------------------
    def add_metrics(self, run_id: str, rows: list[tuple[int, str, float, float]]) -> None:
        """Commit (step, name, value, time) rows in one transaction."""
        if rows:
            self._write(
                "INSERT INTO metrics (run_id, step, name, value, time) VALUES (?,?,?,?,?)",
                [(run_id, s, n, v, t) for s, n, v, t in rows],
                many=True,
            )

    def metrics(self, run_id: str, names: Iterable[str] | None = None, since: int | None = None) -> list[sqlite3.Row]:
        sql, args = "SELECT id, step, name, value, time FROM metrics WHERE run_id=?", [run_id]
        if since is not None:
            sql, args = sql + " AND id>?", args + [since]
        names = list(names) if names is not None else None
        if names:
            sql += f" AND name IN ({','.join('?' * len(names))})"
            args += names
        return self.connect().execute(sql + " ORDER BY id", args).fetchall()

    def drop_metrics_after(self, run_id: str, when: float) -> None:
        self._write("DELETE FROM metrics WHERE run_id=? AND time>?", (run_id, when))

    # -- artifacts and claims ------------------------------------------------------------------
    def add_artifact(self, run_id: str, name: str, value: Any, kind: str | None = None, step: int | None = None,
                     meta: dict | None = None) -> Path:
        """Write ``value`` as a file and index it; with ``step=None`` it replaces the previous one of that name."""
        kind = kind or infer_kind(value)
        folder = self.home / "artifacts" / run_id
        folder.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name) + ("" if step is None else f"@{step}")
        path = folder / (stem + _EXT[kind])
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(encode(value, kind))
        os.replace(tmp, path)
        rel = str(path.relative_to(self.home))
        if step is None:
            self._write("DELETE FROM artifacts WHERE run_id=? AND name=? AND step IS NULL", (run_id, name))
        self._write(
            "INSERT INTO artifacts (run_id, name, kind, step, path, meta, created_at) VALUES (?,?,?,?,?,?,?)",
            (run_id, name, kind, step, rel, json.dumps(_jsonable(meta or {})), time.time()),
        )
        return path

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.connect().execute(
            "SELECT * FROM artifacts WHERE run_id=? ORDER BY id", (run_id,)
        ).fetchall()
        return [{**dict(r), "meta": json.loads(r["meta"] or "{}"), "path": str(self.home / r["path"])} for r in rows]

    def artifact_row(self, run_id: str, name: str, step: int | None = None) -> dict[str, Any] | None:
        sql, args = "SELECT * FROM artifacts WHERE run_id=? AND name=?", [run_id, name]
        if step is not None:
            sql, args = sql + " AND step=?", args + [step]
        row = self.connect().execute(sql + " ORDER BY id DESC LIMIT 1", args).fetchone()
        if row is None:
            return None
        return {**dict(row), "meta": json.loads(row["meta"] or "{}"), "path": str(self.home / row["path"])}

    def load_artifact(self, run_id: str, name: str, step: int | None = None) -> Any:
        row = self.artifact_row(run_id, name, step)
        if row is None:
            raise KeyError(f"run {run_id} has no artifact {name!r}")
        return decode(Path(row["path"]).read_bytes(), row["kind"])

    def add_claim(self, run_id: str, claim: str, measured: Any, holds: bool | None, detail: str = "") -> None:
        self._write(
            "INSERT INTO claims (run_id, claim, measured, holds, detail) VALUES (?,?,?,?,?)",
            (run_id, claim, str(measured), None if holds is None else int(bool(holds)), detail),
        )

    def claims(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.connect().execute(
            "SELECT claim, measured, holds, detail FROM claims WHERE run_id=? ORDER BY id", (run_id,)
        ).fetchall()
        return [{**dict(r), "holds": None if r["holds"] is None else bool(r["holds"])} for r in rows]

    def writer(self, run_id: str, flush_interval: float = 0.25, on_stop_request=None) -> "RunWriter":
        return RunWriter(self, run_id, flush_interval, on_stop_request)


class RunWriter:
    """Buffers one run's metrics and commits them from a background thread (bounded latency).

    The same thread beats the heart every ``HEARTBEAT_EVERY`` seconds and calls ``on_stop_request``
    when another process asked the run to stop.
    """

    def __init__(self, store: Store, run_id: str, flush_interval: float = 0.25, on_stop_request=None):
        self.store, self.run_id, self.flush_interval = store, run_id, flush_interval
        self.on_stop_request = on_stop_request
        self._buffer: list[tuple[int, str, float, float]] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"workbench-writer-{run_id}", daemon=True)
        self._thread.start()

    def log(self, step: int, metrics: dict[str, float]) -> None:
        now = time.time()
        with self._lock:
            self._buffer.extend((int(step), name, float(value), now) for name, value in metrics.items())

    def flush(self) -> None:
        with self._flush_lock:
            with self._lock:
                rows, self._buffer = self._buffer, []
            self.store.add_metrics(self.run_id, rows)

    def _loop(self) -> None:
        last_beat = 0.0
        while not self._closed.wait(self.flush_interval):
            try:
                self.flush()
                if time.monotonic() - last_beat >= HEARTBEAT_EVERY:
                    last_beat = time.monotonic()
                    if self.store.heartbeat(self.run_id) and self.on_stop_request:
                        self.on_stop_request()
            except sqlite3.Error:  # a busy database: retry on the next tick, rows stay buffered
                continue

    def close(self) -> None:
        self._closed.set()
        self._thread.join()
        self.flush()


# -- artifact encoding ---------------------------------------------------------------------------
_EXT = {"array": ".npy", "table": ".json", "json": ".json", "figure": ".json", "text": ".txt",
        "checkpoint": ".pt", "bytes": ".bin"}


def infer_kind(value: Any) -> str:
    import numpy as np

    if isinstance(value, (bytes, bytearray)):
        return "bytes"
    if isinstance(value, str):
        return "text"
    if isinstance(value, np.ndarray) or type(value).__name__ == "Tensor":
        return "array"
    if type(value).__name__ == "DataFrame" or (isinstance(value, list) and all(isinstance(v, dict) for v in value)):
        return "table"
    if isinstance(value, dict):
        return "json"
    raise TypeError(f"cannot store an artifact of type {type(value).__name__}; pass kind= explicitly")


def encode(value: Any, kind: str) -> bytes:
    import numpy as np

    if kind == "bytes":
        return bytes(value)
    if kind == "text":
        return str(value).encode()
    if kind == "array":
        if type(value).__name__ == "Tensor":
            value = value.detach().cpu().numpy()
        buf = io.BytesIO()
        np.save(buf, np.asarray(value), allow_pickle=False)
        return buf.getvalue()
    if kind == "table":
        if type(value).__name__ == "DataFrame":
            value = value.to_dict(orient="records")
        return json.dumps(_jsonable(list(value))).encode()
    if kind in ("json", "figure"):
        if hasattr(value, "to_plotly_json"):
            value = value.to_plotly_json()
        return json.dumps(_jsonable(value)).encode()
    if kind == "checkpoint":
        import torch

        buf = io.BytesIO()
        torch.save(value, buf)
        return buf.getvalue()
    raise ValueError(f"unknown artifact kind {kind!r}; known: {', '.join(_EXT)}")


def decode(data: bytes, kind: str) -> Any:
    import numpy as np

    if kind == "bytes":
        return data
    if kind == "text":
        return data.decode()
    if kind == "array":
        return np.load(io.BytesIO(data), allow_pickle=False)
    if kind == "table":
        import pandas as pd

        return pd.DataFrame(json.loads(data))
    if kind in ("json", "figure"):
        return json.loads(data)
    if kind == "checkpoint":
        import torch

        return torch.load(io.BytesIO(data), weights_only=True)
    raise ValueError(f"unknown artifact kind {kind!r}")


def _jsonable(value: Any) -> Any:
    """Numpy/torch scalars and arrays, NaN and inf into JSON-safe Python values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def _run_record(row: sqlite3.Row) -> dict[str, Any]:
    rec = dict(row)
    rec["config"] = json.loads(rec["config"] or "{}")
    rec["summary"] = json.loads(rec["summary"] or "{}") if rec.get("summary") else {}
    if "smoke" in rec:
        rec["smoke"] = bool(rec["smoke"])
    return rec


_COMMIT: list[str | None] = []


def _git_commit() -> str | None:
    """The git commit of the installed source tree, when it is a checkout."""
    if not _COMMIT:
        import subprocess

        try:
            out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                 text=True, timeout=5)
            _COMMIT.append(out.stdout.strip() or None if out.returncode == 0 else None)
        except (OSError, subprocess.SubprocessError):
            _COMMIT.append(None)
    return _COMMIT[0]
