"""The run store: runs, metrics, artifacts and claims in one database, artifact files beside it.

The store lives behind a location (``Store(location)``, ``$WORKBENCH_STORE``, ``--store``):

- a directory, or ``sqlite:///path/workbench.db`` (the default: ``$WORKBENCH_HOME/workbench.db``, ``./runs``):
  embedded SQLite in WAL mode, for one machine. Layout::

      workbench.db            runs, metrics, artifacts, claims (schema version in PRAGMA user_version)
      artifacts/<run_id>/     one file per artifact, indexed in the database

- ``postgresql://user@host/db``: a PostgreSQL server that a team's machines share (``workbench[postgres]``).
  Artifact files go under a shared directory or any ``fsspec`` URL: ``?artifacts=...`` in the URL,
  ``artifacts=`` here, or ``$WORKBENCH_ARTIFACTS`` (default ``$WORKBENCH_HOME/artifacts``, this machine only).

Both run the same SQL (:mod:`workbench.store.sql` maps placeholders and column types) and the same migrations.
Metrics are buffered by a :class:`RunWriter` and committed by a background thread at most ``flush_interval``
seconds after they are logged, so a killed process loses at most that much and a training step never waits for
the database. The same thread writes a heartbeat on the database's clock; a ``running`` run whose process is
gone (checked only on the machine, and in the PID namespace, that ran it) or whose heartbeat is older than
``HEARTBEAT_TIMEOUT`` reads back as ``crashed`` (and as ``running`` again if its heart beats after all).

A run's writes (metrics, heartbeat, checkpoints and other artifacts, claims, its final status) survive a server
that goes away for a while (a restart, a failover, a killed connection, too many connections): each is retried on
a new connection with bounded backoff for up to ``retry_for`` seconds (:data:`RETRY_FOR`), and is idempotent (metric
rows carry a per-run sequence number, claims and artifacts a token: a commit whose answer was lost is checked, not
repeated). Past that limit :class:`StoreUnavailable` stops the run, and the engine writes what it still holds to a
spill file (:mod:`workbench.store.interop.spill`) that ``workbench runs import`` loads.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import secrets
import socket
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol
from urllib.parse import quote

from workbench.store.files import ArtifactFiles
from workbench.store.sql import Dialect, PostgreSQL, SQLite, parse_location, redact

SCHEMA_VERSION = 7
HEARTBEAT_EVERY = 2.0
HEARTBEAT_TIMEOUT = 30.0
#: seconds a run's bookkeeping (metrics, heartbeat, artifacts, claims, final status) waits out an unreachable store
#: (a restart, a failover, too many connections), retrying with backoff, before the run stops and spills its rows
RETRY_FOR = 120.0
#: seconds a read (a view, ``runs list``) waits for a lost connection to come back before it raises
READ_RETRY_FOR = 10.0
STATUSES = ("running", "completed", "stopped", "failed", "crashed", "pruned")
#: the columns of ``runs`` at SCHEMA_VERSION
RUN_COLUMNS = ("id", "method", "config", "seed", "device", "version", "git_commit", "status", "error", "summary",
               "host", "pid", "created_at", "ended_at", "heartbeat_at", "stop_requested", "world_size", "smoke",
               "traceback", "pid_space")
#: the columns of ``claims`` at SCHEMA_VERSION, beside id and run_id (see :meth:`Store.add_claim`)
CLAIM_COLUMNS = ("claim", "measured", "holds", "detail", "outcome", "method", "arm", "effect", "uncertainty", "low",
                 "high", "kind", "seeds", "samples", "how", "rule", "reason", "paper")
#: a claim's outcomes (:mod:`workbench.core.claims`); ``holds`` is True, False, or None for the last two
OUTCOMES = ("holds", "fails", "inconclusive", "not evaluated")
#: the rule of a claim recorded before schema v5 (a measured value and a verdict)
LEGACY_RULE = "recorded without a rule: a measured value and a verdict, no interval"

#: MIGRATIONS[v] upgrades a database at version v to v + 1 (SQLite's types; PostgreSQL's are mapped from them).
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
    # v4: which PID namespace of which boot of which machine ran the run: a reader checks the PID only there
    # (two machines, or two containers, may share a host name).
    """
    ALTER TABLE runs ADD COLUMN pid_space TEXT;
    """,
    # v5: a claim is the comparison (method vs arm), the effect with its interval, the rule and one of four
    # outcomes (holds, fails, inconclusive with its reason, not evaluated); ``holds`` stays, derived from the
    # outcome, so old and new records compare. Old rows: holds 1/0 -> holds/fails; NULL -> "not evaluated" when
    # the detail says so (smoke runs), else "inconclusive" with the detail as its reason.
    f"""
    ALTER TABLE claims ADD COLUMN outcome TEXT;
    ALTER TABLE claims ADD COLUMN method TEXT;
    ALTER TABLE claims ADD COLUMN arm TEXT;
    ALTER TABLE claims ADD COLUMN effect REAL;
    ALTER TABLE claims ADD COLUMN uncertainty REAL;
    ALTER TABLE claims ADD COLUMN low REAL;
    ALTER TABLE claims ADD COLUMN high REAL;
    ALTER TABLE claims ADD COLUMN kind TEXT;
    ALTER TABLE claims ADD COLUMN seeds INTEGER;
    ALTER TABLE claims ADD COLUMN samples INTEGER;
    ALTER TABLE claims ADD COLUMN how TEXT;
    ALTER TABLE claims ADD COLUMN rule TEXT;
    ALTER TABLE claims ADD COLUMN reason TEXT;
    ALTER TABLE claims ADD COLUMN paper TEXT;
    UPDATE claims SET
        outcome = CASE WHEN holds = 1 THEN 'holds' WHEN holds = 0 THEN 'fails'
                       WHEN detail LIKE 'not evaluated%' THEN 'not evaluated' ELSE 'inconclusive' END,
        reason = CASE WHEN holds IS NULL THEN COALESCE(NULLIF(detail, ''), 'no verdict recorded') ELSE '' END,
        rule = '{LEGACY_RULE}', method = '', arm = '', how = '', paper = ''
    """,
    # v6: idempotent writes. A run's metric rows carry their writer's sequence number (unique per run), claims and
    # artifacts a token of their own: a commit whose outcome was lost with the connection is checked, not repeated.
    """
    ALTER TABLE metrics ADD COLUMN seq INTEGER;
    CREATE UNIQUE INDEX metrics_seq ON metrics (run_id, seq);
    ALTER TABLE claims ADD COLUMN token TEXT;
    CREATE UNIQUE INDEX claims_token ON claims (token);
    ALTER TABLE artifacts ADD COLUMN token TEXT;
    CREATE UNIQUE INDEX artifacts_token ON artifacts (token)
    """,
    # v7: a run may end ``pruned`` (a sweep's pruner stopped it early; its metrics kept). Existing rows need no
    # change; the version is what matters: a workbench older than v7 does not know that status and refuses this
    # store ("newer than this workbench; upgrade") rather than misread its runs. An index on status serves the
    # crash check every read makes (``status='running'``) and ``runs list --status``.
    """
    CREATE INDEX runs_by_status ON runs (status)
    """,
]

_HOST = socket.gethostname()


def _pid_space() -> str:
    """This process's PID namespace on this boot of this machine (PIDs mean something only inside it)."""
    parts = [_HOST]
    for source in ("/proc/sys/kernel/random/boot_id",):
        try:
            parts.append(Path(source).read_text().strip())
        except OSError:
            pass
    try:
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        pass
    return "|".join(parts)


_PID_SPACE = _pid_space()


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


class Sink(Protocol):
    """A live mirror of one run (e.g. :class:`workbench.store.interop.mlflow.MlflowSink`), fed by the store.

    ``metrics`` runs on the writer thread right after each commit and must not block (queue the rows);
    ``finish`` runs when the run ends, after the writer is closed. A sink that raises is switched off with a
    warning: a mirror never stops a run.
    """

    def metrics(self, rows: list[tuple[int, str, float, float]]) -> None: ...
    def finish(self, record: dict[str, Any]) -> None: ...


SinkFactory = Callable[["Store", str], Sink]


class StoreUnavailable(ConnectionError):
    """The run store did not answer for longer than its ``retry_for`` (one line: where, how long, the last error)."""

    def __init__(self, message: str, waited: float = 0.0):
        super().__init__(message)
        self.waited = waited


class Store:
    """A run store at ``location`` (see the module docstring); safe to share between threads and processes.

    ``Store()`` opens ``$WORKBENCH_STORE`` when set, else ``$WORKBENCH_HOME``. ``home`` is a local directory in
    every case (caches live under it); ``url`` says where the database is.
    """

    def __init__(self, location: str | os.PathLike | None = None, *, artifacts: str | os.PathLike | None = None,
                 retry_for: float = RETRY_FOR):
        where = parse_location(location, default_home())
        self.dialect: Dialect
        if where["kind"] == "sqlite":
            self.home = Path(where["home"])
            self.home.mkdir(parents=True, exist_ok=True)
            self.path: Path | None = Path(where["path"])
            self.url = f"sqlite:///{self.path.resolve()}"
            self.dialect = SQLite(self.path)
            self.files = ArtifactFiles(artifacts or self.home)
            self._prefix = "artifacts/"  # rows index files relative to the home, as before URLs
        else:
            self.home = default_home()
            self.path = None
            self.dialect = PostgreSQL(where["url"])
            root = artifacts or where["artifacts"] or os.environ.get("WORKBENCH_ARTIFACTS") or self.home / "artifacts"
            self.files = ArtifactFiles(root)
            self._prefix = ""
            # the whole location, artifact root included: Store(store.url) opens the same store
            sep = "&" if "?" in where["url"] else "?"
            self.url = f"{where['url']}{sep}artifacts={quote(self.files.where(), safe='/:')}"
        self.errors: tuple[type[BaseException], ...] = self.dialect.errors
        self.sinks: list[SinkFactory] = []
        self._live: dict[str, list[Sink]] = {}
        self._local = threading.local()
        self._sql: dict[str, str] = {}
        #: how long (s) a run's write waits out an unreachable store before :class:`StoreUnavailable`
        self.retry_for = float(retry_for)
        #: (what, seconds) of every write that succeeded only after retrying: how long the run waited
        self.waits: list[tuple[str, float]] = []
        self._down: str | None = None  # set once the store was declared unreachable: later writes try once
        self._kept: dict[str, list[dict[str, Any]]] = {}  # writes of a run lost to an unreachable store (spill)
        self._migrate()

    def __repr__(self) -> str:
        return f"Store({redact(self.url)!r})"

    @property
    def kind(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.dialect.name

    # -- connections -------------------------------------------------------------------------
    def connect(self) -> Any:
        """A connection for the calling thread (opened again in a forked child, and after a lost connection)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            conn = self.dialect.connect()
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _q(self, sql: str) -> str:
        """``sql`` in the dialect's spelling (cached)."""
        out = self._sql.get(sql)
        if out is None:
            out = self._sql[sql] = self.dialect.sql(sql)
        return out

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        """Rows of one query; a lost connection (a restarted server) is opened again and the query repeated for
        up to :data:`READ_RETRY_FOR` seconds."""
        return self._retrying("read", lambda: self._read_once(sql, params), limit=min(self.retry_for, READ_RETRY_FOR),
                              read=True)

    def _read_once(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        conn = self.connect()
        try:
            return conn.execute(self._q(sql), tuple(params)).fetchall()
        except self.errors:
            if self.dialect.broken(conn):
                self._drop_connection()
            raise

    def _found(self, sql: str, params: Iterable[Any]) -> bool:
        """Whether ``sql`` returns a row, asked once (a write's ``landed`` probe: its failure is the write's)."""
        return bool(self._read_once(sql, params))

    def _one(self, sql: str, params: Iterable[Any] = ()) -> Any:
        rows = self._read(sql, params)
        return rows[0] if rows else None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """One write transaction (SQLite: ``BEGIN IMMEDIATE``, writers take turns; PostgreSQL: row locks)."""
        conn = self.connect()
        try:
            self.dialect.begin(conn)
        except self.errors:
            if self.dialect.broken(conn):
                self._drop_connection()
            raise
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except Exception:
                pass
            if self.dialect.broken(conn):
                self._drop_connection()
            raise

    def _write(self, sql: str, params: Iterable[Any] = (), many: bool = False, fetch: bool = False) -> Any:
        """Run one statement in its own transaction; ``fetch`` returns its rows (``RETURNING``)."""
        with self.transaction() as conn:
            sql = self._q(sql)
            if many:
                return conn.executemany(sql, [tuple(p) for p in params])
            cur = conn.execute(sql, tuple(params))
            return cur.fetchall() if fetch else cur

    def _retrying(self, what: str, op: Callable[[], Any], landed: Callable[[], bool] | None = None,
                  limit: float | None = None, read: bool = False) -> Any:
        """Run ``op`` (a write), retrying transient failures (connection lost, server restarting or failing over,
        too many connections, a busy SQLite file) with bounded exponential backoff and a new connection each time,
        for up to :attr:`retry_for` seconds; then :class:`StoreUnavailable`. ``landed()`` tells, after a failure
        whose commit may have reached the server, whether it did (the write is then not repeated). A ``read``
        waits ``limit`` seconds and leaves the store's state alone: only writes declare the store down."""
        limit = self.retry_for if limit is None else limit
        start, delay, failed = time.monotonic(), 0.05, False
        while True:
            try:
                if failed and landed is not None and landed():
                    result = None
                else:
                    result = op()
                if failed and not read:
                    self.waits.append((what, time.monotonic() - start))
                if not read:
                    self._down = None
                return result
            except (*self.errors, StoreUnavailable) as err:  # (a read inside ``op`` that gave up: retried here)
                if not isinstance(err, StoreUnavailable) and not self.dialect.transient(err):
                    raise
                self._drop_connection()
                failed = True
                waited = time.monotonic() - start
                if (self._down is not None and not read) or waited >= limit:
                    reason = f"{type(err).__name__}: {_first_line(err)}"
                    if not read:
                        self._down = self._down or reason
                    raise StoreUnavailable(f"the run store {self.dialect.describe()} did not answer for "
                                           f"{waited:.1f} s ({reason})", waited) from err
                time.sleep(min(delay, max(limit - waited, 0.0)))
                delay = min(delay * 2, 1.0)

    def kept(self, run_id: str) -> list[dict[str, Any]]:
        """The artifacts and claims of ``run_id`` whose writes were lost to an unreachable store (for the spill)."""
        return list(self._kept.get(run_id, []))

    def recommit_kept(self, run_id: str) -> None:
        """Write the artifacts and claims of ``run_id`` that an unreachable store missed (:meth:`kept`), now that
        it answers; what fails again stays kept."""
        items = self._kept.pop(run_id, [])
        for i, item in enumerate(items):
            try:
                if item["type"] == "artifact":
                    self.add_artifact(run_id, item["name"], None, kind=item["kind"], step=item["step"],
                                      meta=item["meta"], data=item["data"], created_at=item["created_at"])
                else:
                    self.add_claim(run_id, item["record"])
            except StoreUnavailable:
                self._kept[run_id] = self._kept.get(run_id, []) + items[i + 1:]
                raise

    def _migrate(self) -> None:
        with self.transaction() as conn:
            self.dialect.lock_schema(conn)
            version = self.dialect.schema_version(conn)
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"{self.dialect.describe()} has schema version {version}, newer than this "
                                   f"workbench ({SCHEMA_VERSION}); upgrade")
            for v in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[v].split(";"):
                    if statement.strip():
                        conn.execute(self.dialect.ddl(statement))
                self.dialect.set_schema_version(conn, v + 1)

    def schema_version(self) -> int:
        with self.transaction() as conn:
            return self.dialect.schema_version(conn)

    # -- runs ---------------------------------------------------------------------------------
    def create_run(self, method: str, config: dict[str, Any], *, device: str = "cpu", world_size: int = 1,
                   smoke: bool = False) -> str:
        from workbench import __version__

        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
        args = (run_id, method, json.dumps(config), config.get("seed"), device, __version__, _git_commit(),
                "running", _HOST, os.getpid(), time.time(), world_size, int(bool(smoke)), _PID_SPACE)
        self._retrying("create run", lambda: self._write(
            "INSERT INTO runs (id, method, config, seed, device, version, git_commit, status, host, pid,"
            " created_at, heartbeat_at, world_size, smoke, pid_space) VALUES (?,?,?,?,?,?,?,?,?,?,?,{now},?,?,?)",
            args), landed=lambda: self._found("SELECT 1 FROM runs WHERE id=?", (run_id,)))
        return run_id

    def reopen(self, run_id: str) -> None:
        """Mark a run running again in this process (resume)."""
        self._retrying("reopen", lambda: self._write(
            "UPDATE runs SET status='running', error=NULL, traceback=NULL, ended_at=NULL, host=?, pid=?,"
            " pid_space=?, heartbeat_at={now}, stop_requested=0 WHERE id=?",
            (_HOST, os.getpid(), _PID_SPACE, run_id),
        ))

    def finish(self, run_id: str, status: str, error: str | None = None, summary: dict | None = None,
               traceback: str | None = None) -> None:
        """End a run: its status, one-line ``error``, summary and (failed runs) the full ``traceback``."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        args = (status, error, json.dumps(_jsonable(summary or {})), time.time(), traceback, run_id)
        self._retrying("final status", lambda: self._write(
            "UPDATE runs SET status=?, error=?, summary=?, ended_at=?, traceback=? WHERE id=?", args))
        sinks = self._live.pop(run_id, [])
        if sinks:
            record = self.get(run_id)
            for sink in sinks:
                _call_sink(sink, "finish", record)

    def heartbeat(self, run_id: str) -> bool:
        """Record that the run is alive (on the database's clock); returns whether someone asked it to stop."""
        return self._retrying("heartbeat", lambda: self._heartbeat(run_id))

    def _heartbeat(self, run_id: str) -> bool:
        # a run marked crashed by a reader while the store was away is running again once its heart beats
        beat = ("UPDATE runs SET heartbeat_at={now}, error=CASE WHEN status='crashed' THEN NULL ELSE error END,"
                " ended_at=CASE WHEN status='crashed' THEN NULL ELSE ended_at END,"
                " status=CASE WHEN status='crashed' THEN 'running' ELSE status END WHERE id=?")
        if self.dialect.returning:
            rows = self._write(beat + " RETURNING stop_requested", (run_id,), fetch=True)
        else:  # SQLite before 3.35
            self._write(beat, (run_id,))
            rows = self._read_once("SELECT stop_requested FROM runs WHERE id=?", (run_id,))
        return bool(rows and rows[0][0])

    def request_stop(self, run_id: str) -> None:
        self._write("UPDATE runs SET stop_requested=1 WHERE id=?", (run_id,))

    def _detect_crashes(self) -> None:
        rows = self._read("SELECT id, host, pid, pid_space, heartbeat_at, {now} AS now FROM runs"
                          " WHERE status='running'")
        for r in rows:
            here = r["pid_space"] == _PID_SPACE if r["pid_space"] else r["host"] == _HOST
            gone = (here and r["pid"] and not _pid_alive(r["pid"])) or (
                r["now"] - (r["heartbeat_at"] or 0) > HEARTBEAT_TIMEOUT
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
        return [_run_record(r) for r in self._read(sql + " ORDER BY created_at, id", args)]

    def get(self, run_id: str) -> dict[str, Any]:
        self._detect_crashes()
        row = self._one("SELECT * FROM runs WHERE id=?", (run_id,))
        if row is None:
            row = self._by_prefix(run_id)
        return _run_record(row)

    def exists(self, run_id: str) -> bool:
        """Whether a run with exactly this id is stored."""
        return self._one("SELECT 1 FROM runs WHERE id=?", (run_id,)) is not None

    def _by_prefix(self, prefix: str) -> Any:
        rows = self._read("SELECT * FROM runs WHERE id LIKE ?", (prefix + "%",))
        if len(rows) != 1:
            raise KeyError(f"no run with id {prefix!r}" if not rows else f"run id {prefix!r} is ambiguous")
        return rows[0]

    def put_run(self, record: dict[str, Any]) -> None:
        """Insert a run record read from another store (:meth:`get`'s dict), keeping its id, times and status."""
        rec = {k: record.get(k) for k in RUN_COLUMNS}
        rec["config"] = json.dumps(_jsonable(rec["config"] or {}))
        rec["summary"] = json.dumps(_jsonable(rec["summary"] or {}))
        for flag, default in (("smoke", 0), ("stop_requested", 0), ("world_size", 1)):
            rec[flag] = default if rec[flag] is None else int(rec[flag])
        cols = list(rec)
        self._write(f"INSERT INTO runs ({', '.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                    [rec[c] for c in cols])

    def purge(self, run_id: str) -> None:
        """Remove every row and file of ``run_id`` whether or not its run record exists (an interrupted import)."""
        with self.transaction() as conn:
            for table, col in (("metrics", "run_id"), ("artifacts", "run_id"), ("claims", "run_id"), ("runs", "id")):
                conn.execute(self._q(f"DELETE FROM {table} WHERE {col}=?"), (run_id,))
        self.files.remove_tree(self._prefix + run_id)

    def delete(self, run_id: str) -> None:
        self.purge(self.get(run_id)["id"])

    # -- metrics ------------------------------------------------------------------------------
    def add_metrics(self, run_id: str, rows: list[tuple]) -> None:
        """Commit (step, name, value, time[, seq]) rows in one transaction.

        Rows with their writer's sequence numbers (:class:`RunWriter`) are retried through a lost connection (see
        :meth:`_retrying`): a batch commits whole or not at all, so after an ambiguous failure the presence of its
        first ``seq`` says whether it landed, and it is never written twice (``(run_id, seq)`` is unique)."""
        if not rows:
            return
        full = [(run_id, r[0], r[1], r[2], r[3], r[4] if len(r) > 4 else None) for r in rows]

        def commit() -> None:
            with self.transaction() as conn:
                self.dialect.insert_metrics(conn, full)

        first = full[0][5]
        if first is None:
            commit()
        else:
            self._retrying("metrics", commit, landed=lambda: self._found(
                "SELECT 1 FROM metrics WHERE run_id=? AND seq=?", (run_id, first)))

    def next_seq(self, run_id: str) -> int:
        """The sequence number a new writer of ``run_id`` starts from (after every stored row's)."""
        row = self._one("SELECT MAX(seq) FROM metrics WHERE run_id=?", (run_id,))
        return 0 if row is None or row[0] is None else int(row[0]) + 1

    def metrics(self, run_id: str, names: Iterable[str] | None = None, since: int | None = None) -> list[Any]:
        """Rows (id, step, name, value, time) in logging order; ``since`` a row id (only newer rows)."""
        sql, args = "SELECT id, step, name, value, time FROM metrics WHERE run_id=?", [run_id]
        if since is not None:
            sql, args = sql + " AND id>?", args + [since]
        names = list(names) if names is not None else None
        if names:
            sql += f" AND name IN ({','.join('?' * len(names))})"
            args += names
        return self._read(sql + " ORDER BY id", args)

    def metric_chunks(self, run_id: str, size: int = 50_000) -> Iterator[list[Any]]:
        """Rows (id, step, name, value, time) in logging order, ``size`` at a time: a long run's history is read
        without holding it all (exports, copies)."""
        last = None
        while True:
            sql, args = "SELECT id, step, name, value, time FROM metrics WHERE run_id=?", [run_id]
            if last is not None:
                sql, args = sql + " AND id>?", args + [last]
            rows = self._read(sql + f" ORDER BY id LIMIT {int(size)}", args)
            if not rows:
                return
            last = rows[-1][0]
            yield rows

    def drop_metrics_after(self, run_id: str, when: float) -> None:
        self._retrying("drop metrics", lambda: self._write("DELETE FROM metrics WHERE run_id=? AND time>?",
                                                           (run_id, when)))

    # -- artifacts and claims ------------------------------------------------------------------
    def add_artifact(self, run_id: str, name: str, value: Any, kind: str | None = None, step: int | None = None,
                     meta: dict | None = None, *, data: bytes | None = None, created_at: float | None = None) -> str:
        """Write ``value`` as a file and index it; with ``step=None`` it replaces the previous one of that name.

        ``data``: already encoded bytes of ``kind`` (copying runs between stores). Returns the file's path or URL.
        """
        kind = kind or infer_kind(value)
        if kind not in _EXT:
            raise ValueError(f"unknown artifact kind {kind!r}; known: {', '.join(_EXT)}")
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name) + ("" if step is None else f"@{step}")
        rel = f"{self._prefix}{run_id}/{stem}{_EXT[kind]}"
        payload = encode(value, kind) if data is None else data
        where = self.files.write(rel, payload)
        token = secrets.token_hex(12)
        row = (run_id, name, kind, step, rel, json.dumps(_jsonable(meta or {})),
               time.time() if created_at is None else created_at, token)

        def commit() -> None:
            with self.transaction() as conn:
                if step is None:
                    conn.execute(self._q("DELETE FROM artifacts WHERE run_id=? AND name=? AND step IS NULL"),
                                 (run_id, name))
                conn.execute(self._q("INSERT INTO artifacts (run_id, name, kind, step, path, meta, created_at,"
                                     " token) VALUES (?,?,?,?,?,?,?,?)"), row)

        try:
            self._retrying("artifact", commit,
                           landed=lambda: self._found("SELECT 1 FROM artifacts WHERE token=?", (token,)))
        except StoreUnavailable:  # kept for the run's spill file, with its bytes
            self._kept.setdefault(run_id, []).append({"type": "artifact", "name": name, "kind": kind, "step": step,
                                                      "meta": meta or {}, "created_at": row[6], "data": payload})
            raise
        return where

    def _artifact_record(self, row: Any) -> dict[str, Any]:
        rec = dict(row)
        rec["meta"] = json.loads(rec["meta"] or "{}")
        rec["rel"] = rec["path"]
        rec["path"] = self.files.where(rec["path"])
        return rec

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._read("SELECT * FROM artifacts WHERE run_id=? ORDER BY id", (run_id,))
        return [self._artifact_record(r) for r in rows]

    def artifact_row(self, run_id: str, name: str, step: int | None = None) -> dict[str, Any] | None:
        sql, args = "SELECT * FROM artifacts WHERE run_id=? AND name=?", [run_id, name]
        if step is not None:
            sql, args = sql + " AND step=?", args + [step]
        row = self._one(sql + " ORDER BY id DESC LIMIT 1", args)
        return None if row is None else self._artifact_record(row)

    def artifact_bytes(self, row: dict[str, Any]) -> bytes:
        """The stored (encoded) bytes of an artifact row from :meth:`artifacts` or :meth:`artifact_row`."""
        return self.files.read(row["rel"])

    def load_artifact(self, run_id: str, name: str, step: int | None = None) -> Any:
        row = self.artifact_row(run_id, name, step)
        if row is None:
            raise KeyError(f"run {run_id} has no artifact {name!r}")
        return decode(self.artifact_bytes(row), row["kind"])

    def add_claim(self, run_id: str, record: dict[str, Any]) -> None:
        """Store one claim record: :meth:`workbench.core.claims.Claim.to_record` (statement, method, arm, effect,
        uncertainty, low, high, kind, seeds, samples, how, rule, outcome, reason, detail, paper, measured), or a
        record read back by :meth:`claims` (copies between stores), or a schema-v4 record (claim, measured, holds,
        detail: its outcome is derived as in the v5 migration). See :func:`claim_row`."""
        row = claim_row(record)
        row["token"] = token = secrets.token_hex(12)
        cols = list(row)
        sql = f"INSERT INTO claims (run_id, {', '.join(cols)}) VALUES (?,{','.join('?' * len(cols))})"
        try:
            self._retrying("claim", lambda: self._write(sql, [run_id] + [row[c] for c in cols]),
                           landed=lambda: self._found("SELECT 1 FROM claims WHERE token=?", (token,)))
        except StoreUnavailable:  # kept for the run's spill file
            self._kept.setdefault(run_id, []).append({"type": "claim", "record": dict(record)})
            raise

    def claims(self, run_id: str) -> list[dict[str, Any]]:
        """The claims a run checked, in order: every column of ``claims`` (:data:`CLAIM_COLUMNS`: ``claim`` is the
        statement, ``holds`` True/False/None, ``outcome`` one of :data:`OUTCOMES`) plus ``statement``."""
        rows = self._read(f"SELECT {', '.join(CLAIM_COLUMNS)} FROM claims WHERE run_id=? ORDER BY id", (run_id,))
        return [claim_from_row(r) for r in rows]

    # -- writing a run --------------------------------------------------------------------------
    def add_sink(self, factory: SinkFactory) -> None:
        """Mirror every run this store writes from now on: ``factory(store, run_id)`` makes a :class:`Sink` when
        the run's writer opens (e.g. ``store.add_sink(MlflowSink.factory(uri))``)."""
        self.sinks.append(factory)

    def writer(self, run_id: str, flush_interval: float = 0.25, on_stop_request=None,
               on_store_lost: Callable[[StoreUnavailable], None] | None = None) -> "RunWriter":
        sinks = []
        for factory in self.sinks:
            try:
                sinks.append(factory(self, run_id))
            except Exception as err:  # a mirror never stops a run
                warnings.warn(f"run {run_id}: live sink not started: {type(err).__name__}: {err}", stacklevel=2)
        if sinks:
            self._live[run_id] = sinks
        return RunWriter(self, run_id, flush_interval, on_stop_request, sinks=sinks, on_store_lost=on_store_lost)


def _call_sink(sink: Any, method: str, *args: Any) -> bool:
    """Call a sink; on an error warn once and return False (the caller drops the sink)."""
    try:
        getattr(sink, method)(*args)
        return True
    except Exception as err:
        warnings.warn(f"live sink {type(sink).__name__}.{method} failed, mirror switched off: "
                      f"{type(err).__name__}: {err}", stacklevel=2)
        return False


class RunWriter:
    """Buffers one run's metrics and commits them from a background thread (bounded latency).

    The training thread only appends to a buffer (:meth:`log`); the writer thread commits every
    ``flush_interval`` seconds. Each row gets the next sequence number of the run, so a commit retried through a
    lost connection is never stored twice (:meth:`Store.add_metrics`). A commit that fails (a busy or unreachable
    database) leaves its rows buffered, in order, for the next one. The same thread beats the heart every
    ``HEARTBEAT_EVERY`` seconds, calls ``on_stop_request`` when another process asked the run to stop, hands
    committed rows to live sinks, and calls ``on_store_lost`` once if the store stays unreachable past
    ``store.retry_for`` (the rows it holds then are :meth:`held`, for the run's spill file).
    """

    def __init__(self, store: Store, run_id: str, flush_interval: float = 0.25, on_stop_request=None,
                 sinks: list[Sink] | None = None, on_store_lost: Callable[[StoreUnavailable], None] | None = None):
        self.store, self.run_id, self.flush_interval = store, run_id, flush_interval
        self.on_stop_request, self.on_store_lost = on_stop_request, on_store_lost
        self.sinks: list[Sink] = list(sinks or [])
        self.commit_seconds: list[float] = []  # duration of each non-empty commit (benchmarks read it)
        self.failures = 0
        self.lost: StoreUnavailable | None = None  # the store stayed unreachable past its retry_for
        self._seq = store.next_seq(run_id)
        self._buffer: list[tuple[int, str, float, float, int]] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"workbench-writer-{run_id}", daemon=True)
        self._thread.start()

    def log(self, step: int, metrics: dict[str, float]) -> None:
        now = time.time()
        with self._lock:
            for name, value in metrics.items():
                self._buffer.append((int(step), name, float(value), now, self._seq))
                self._seq += 1

    def pending(self) -> int:
        """Rows logged and not committed yet."""
        with self._lock:
            return len(self._buffer)

    def held(self) -> list[tuple[int, str, float, float, int]]:
        """The rows logged and not committed: (step, name, value, time, seq)."""
        with self._lock:
            return list(self._buffer)

    def flush(self) -> None:
        """Commit the buffered rows; if the commit raises they go back to the front of the buffer. A store that
        stayed unreachable past its ``retry_for`` does not raise here (the rows stay :meth:`held`, the run is told
        through ``on_store_lost``, and :meth:`close` raises): a checkpoint taken then is still made, and spilled."""
        with self._flush_lock:
            with self._lock:
                rows, self._buffer = self._buffer, []
            if not rows:
                return
            start = time.perf_counter()
            try:
                self.store.add_metrics(self.run_id, rows)
            except BaseException as err:
                with self._lock:
                    self._buffer[:0] = rows
                self.failures += 1
                if isinstance(err, StoreUnavailable):
                    self._mark_lost(err)
                    return
                raise
            self.commit_seconds.append(time.perf_counter() - start)
            plain = [r[:4] for r in rows]
            for sink in list(self.sinks):
                if not _call_sink(sink, "metrics", plain):
                    self.sinks.remove(sink)
                    live = self.store._live.get(self.run_id, [])
                    if sink in live:
                        live.remove(sink)

    def _loop(self) -> None:
        last_beat = 0.0
        while not self._closed.wait(self.flush_interval):
            try:
                self.flush()
                if time.monotonic() - last_beat >= HEARTBEAT_EVERY:
                    last_beat = time.monotonic()
                    if self.store.heartbeat(self.run_id) and self.on_stop_request:
                        self.on_stop_request()
            except StoreUnavailable as err:  # past the store's retry_for: the run is told once, rows stay held
                self._mark_lost(err)
            except self.store.errors:  # a busy or unreachable database: retry on the next tick, rows stay buffered
                continue

    def _mark_lost(self, err: StoreUnavailable) -> None:
        with self._lock:
            first, self.lost = self.lost is None, self.lost or err
        if first and self.on_store_lost is not None:
            self.on_store_lost(err)

    def close(self, retries: int = 20) -> None:
        """Stop the thread and commit what is left (retrying a busy or lost database; past the store's
        ``retry_for``, :class:`StoreUnavailable` with the rows still :meth:`held`)."""
        self._closed.set()
        self._thread.join()
        for attempt in range(retries + 1):
            try:
                self.flush()
                break
            except self.store.errors:
                if attempt == retries:
                    raise
                time.sleep(min(0.05 * 2 ** attempt, 1.0))
        if self.pending():
            raise self.lost or StoreUnavailable(f"run {self.run_id}: {self.pending()} metric rows not committed")


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


def legacy_outcome(holds: Any, detail: Any = "") -> str:
    """The outcome of a claim recorded with a verdict only (schema v4, or a record without ``outcome``)."""
    if holds is not None:
        return "holds" if bool(holds) else "fails"
    return "not evaluated" if str(detail or "").startswith("not evaluated") else "inconclusive"


def claim_row(record: dict[str, Any]) -> dict[str, Any]:
    """The ``claims`` columns of one claim record (see :meth:`Store.add_claim`), checked and normalised.

    ``holds`` follows the outcome (True for holds, False for fails, else None). ``detail`` keeps its schema-v4
    meaning, the whole explanation of the verdict: the reason first, then the claim's own detail (a reader of
    ``detail`` alone still sees "not evaluated (smoke run)..."); :func:`claim_note` gives the detail back.
    Non-finite numbers (an unbounded interval) are stored as NULL.
    """
    statement = record.get("statement") or record.get("claim")
    if not statement:
        raise ValueError("a claim record needs its statement ('statement' or 'claim')")
    outcome = record.get("outcome") or legacy_outcome(record.get("holds"), record.get("detail"))
    if outcome not in OUTCOMES:
        raise ValueError(f"claim outcome {outcome!r}; one of {', '.join(OUTCOMES)}")
    reason = str(record.get("reason") or "")
    detail = str(record.get("detail") or "")
    if not record.get("outcome") and outcome in ("not evaluated", "inconclusive") and not reason:
        reason = detail or "no verdict recorded"  # a v4 record: its detail said why
    if reason and not detail.startswith(reason):
        detail = f"{reason}; {detail}" if detail else reason
    measured = record.get("measured")
    row = {
        "claim": str(statement),
        "measured": "" if measured is None else str(measured),
        "holds": {"holds": 1, "fails": 0}.get(outcome),
        "detail": detail,
        "outcome": outcome,
        "method": str(record.get("method") or ""),
        "arm": str(record.get("arm") or ""),
        "effect": _finite_or_none(record.get("effect")),
        "uncertainty": _finite_or_none(record.get("uncertainty")),
        "low": _finite_or_none(record.get("low")),
        "high": _finite_or_none(record.get("high")),
        "kind": record.get("kind") or None,
        "seeds": None if record.get("seeds") is None else int(record["seeds"]),
        "samples": None if record.get("samples") is None else int(record["samples"]),
        "how": str(record.get("how") or ""),
        "rule": str(record.get("rule") or LEGACY_RULE),
        "reason": reason,
        "paper": str(record.get("paper") or ""),
    }
    return row


def claim_from_row(row: Any) -> dict[str, Any]:
    """A claim as :meth:`Store.claims` returns it (``holds`` as a bool or None, ``statement`` beside ``claim``)."""
    rec = dict(row)
    rec["holds"] = None if rec["holds"] is None else bool(rec["holds"])
    for key in ("method", "arm", "how", "rule", "reason", "paper", "detail", "measured"):
        rec[key] = rec.get(key) or ""
    rec["statement"] = rec["claim"]
    return rec


def claim_note(record: dict[str, Any]) -> str:
    """A stored claim's own detail, without the reason that :func:`claim_row` put in front of it."""
    detail, reason = str(record.get("detail") or ""), str(record.get("reason") or "")
    if reason and detail.startswith(reason):
        detail = detail[len(reason):].lstrip("; ").strip()
    return detail


def _first_line(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
    return lines[0][:200] if lines else ""


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _run_record(row: Any) -> dict[str, Any]:
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
