"""The two SQL dialects of the run store: embedded SQLite (one machine) and PostgreSQL (a team's shared store).

:class:`~workbench.store.store.Store` holds all the SQL once, written for SQLite (``?`` placeholders, SQLite's types);
a dialect object connects, opens transactions, maps the placeholders and the column types of the migrations, keeps
the schema version, knows the database's clock (heartbeats are compared on one clock, whatever the writers' clocks
say) and bulk-inserts metric rows. Nothing here imports ``psycopg`` until a ``postgresql://`` store is opened.
"""
from __future__ import annotations

import os
import re
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


class Row(tuple):
    """A result row read by position, by column name (``row["step"]``), as a tuple and as a dict (``dict(row)``),
    like :class:`sqlite3.Row`."""

    _keys: tuple[str, ...] = ()

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            try:
                return tuple.__getitem__(self, self._keys.index(key))
            except ValueError:
                raise IndexError(f"no column {key!r}") from None
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._keys)


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    keys = tuple(col.name for col in cursor.description) if cursor.description else ()
    cls = type("Row", (Row,), {"_keys": keys, "__slots__": ()})
    return lambda values: cls(values)


class Dialect:
    """What differs between the databases; the store's SQL goes through :meth:`sql`."""

    name = ""
    #: the database's own clock as UNIX seconds, inlined into SQL where ``{now}`` appears
    now = ""
    #: exceptions a database raises (busy, connection lost...): the writer retries on them
    errors: tuple[type[BaseException], ...] = ()
    #: whether ``UPDATE ... RETURNING`` works
    returning = True

    def connect(self) -> Any:
        raise NotImplementedError

    def sql(self, statement: str) -> str:
        return statement.replace("{now}", self.now)

    def begin(self, conn: Any) -> None:
        conn.execute("BEGIN")

    def broken(self, conn: Any) -> bool:
        """Whether ``conn`` cannot be used again (the store opens a new one)."""
        return False

    def transient(self, err: BaseException) -> bool:
        """Whether ``err`` may pass if the write is tried again on a new connection (the store retries it)."""
        return False

    def ddl(self, statement: str) -> str:
        return statement

    def schema_version(self, conn: Any) -> int:
        raise NotImplementedError

    def set_schema_version(self, conn: Any, version: int) -> None:
        raise NotImplementedError

    def lock_schema(self, conn: Any) -> None:
        """Inside the migration's transaction: keep other processes from migrating at the same time."""

    def insert_metrics(self, conn: Any, rows: list[tuple[str, int, str, float, float, int | None]]) -> None:
        """Rows (run_id, step, name, value, time, seq) in one transaction."""
        conn.executemany(self.sql("INSERT INTO metrics (run_id, step, name, value, time, seq) VALUES (?,?,?,?,?,?)"),
                         rows)

    def describe(self) -> str:
        raise NotImplementedError


class SQLite(Dialect):
    """One file in WAL mode: readers never wait for the writer, writers take turns (``BEGIN IMMEDIATE``)."""

    name = "sqlite"
    now = "((julianday('now') - 2440587.5) * 86400.0)"
    errors = (sqlite3.Error,)
    returning = sqlite3.sqlite_version_info >= (3, 35)

    def __init__(self, path: Path):
        self.path = path

    def connect(self) -> sqlite3.Connection:
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
        return conn

    def begin(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")

    def transient(self, err: BaseException) -> bool:
        """A busy or locked file (another writer held it past the busy timeout)."""
        text = str(err).lower()
        return isinstance(err, sqlite3.OperationalError) and ("locked" in text or "busy" in text)

    def schema_version(self, conn: sqlite3.Connection) -> int:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def set_schema_version(self, conn: sqlite3.Connection, version: int) -> None:
        conn.execute(f"PRAGMA user_version = {int(version)}")

    def describe(self) -> str:
        return str(self.path)


#: SQLite column types of the migrations -> PostgreSQL's (REAL is 4 bytes there: times need DOUBLE PRECISION)
_PG_TYPES = [
    (re.compile(r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b"), "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
]
#: a constant of our own, so that concurrent first openings of one database migrate one at a time
_MIGRATION_LOCK = 0x776B62  # "wkb"
#: SQLSTATEs worth a retry on a new connection: connection exceptions (class 08), serialization failure and
#: deadlock (40001, 40P01), too many connections (53300), admin/crash shutdown and "cannot connect now" while the
#: server starts or stops (57P01-57P03), a standby that is not writable yet during a failover (25006)
_PG_TRANSIENT = ("08", "40001", "40P01", "53300", "57P01", "57P02", "57P03", "25006")


class PostgreSQL(Dialect):
    """A PostgreSQL server shared by many machines (``psycopg`` 3; ``pip install 'workbench[postgres]'``)."""

    name = "postgresql"
    now = "(EXTRACT(EPOCH FROM clock_timestamp())::double precision)"

    def __init__(self, url: str):
        try:
            import psycopg
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError(
                "a postgresql:// run store needs psycopg: pip install 'workbench[postgres]' (psycopg[binary])"
            ) from err
        self._psycopg = psycopg
        self.errors = (psycopg.Error,)
        self.url = url

    #: libpq settings a URL does not set itself: a dead server or a silent network drop ends a connection attempt
    #: in 10 s and a connection in about a minute (TCP keepalives), instead of hanging a run's writer
    CONNECT_DEFAULTS = {"connect_timeout": "10", "keepalives": "1", "keepalives_idle": "30",
                        "keepalives_interval": "10", "keepalives_count": "3"}

    def connect(self) -> Any:
        given = self._psycopg.conninfo.conninfo_to_dict(self.url)
        extra = {k: v for k, v in self.CONNECT_DEFAULTS.items() if k not in given}
        conn = self._psycopg.connect(self.url, autocommit=True, row_factory=_row_factory,
                                     application_name="workbench", **extra)
        return _PgConnection(conn)

    def sql(self, statement: str) -> str:
        return super().sql(statement).replace("?", "%s")

    def broken(self, conn: Any) -> bool:
        return bool(conn.raw.closed or conn.raw.broken)

    def transient(self, err: BaseException) -> bool:
        """A lost or refused connection (restart, failover, ``pg_terminate_backend``, too many connections): an
        ``OperationalError`` without a SQLSTATE (raised by the client: connection refused, closed, lost) or one of
        :data:`_PG_TRANSIENT`."""
        state = getattr(err, "sqlstate", None)
        if state:
            return any(state.startswith(code) for code in _PG_TRANSIENT)
        return isinstance(err, (self._psycopg.OperationalError, self._psycopg.InterfaceError))

    def ddl(self, statement: str) -> str:
        for pattern, replacement in _PG_TYPES:
            statement = pattern.sub(replacement, statement)
        return statement

    def schema_version(self, conn: Any) -> int:
        conn.execute("CREATE TABLE IF NOT EXISTS workbench_schema (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM workbench_schema").fetchone()
        return int(row[0]) if row else 0

    def set_schema_version(self, conn: Any, version: int) -> None:
        conn.execute("DELETE FROM workbench_schema")
        conn.execute("INSERT INTO workbench_schema (version) VALUES (%s)", (int(version),))

    def lock_schema(self, conn: Any) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))

    def insert_metrics(self, conn: Any, rows: list[tuple[str, int, str, float, float, int | None]]) -> None:
        """``COPY``: one round trip for a whole batch, whatever its size. NaN is stored as NULL, as in SQLite."""
        with conn.raw.cursor() as cur:
            with cur.copy("COPY metrics (run_id, step, name, value, time, seq) FROM STDIN") as copy:
                for run_id, step, name, value, when, seq in rows:  # NaN as NULL, as SQLite stores it
                    copy.write_row((run_id, step, name, value if value == value else None, when, seq))

    def describe(self) -> str:
        return redact(self.url)


class _PgConnection:
    """A psycopg connection with sqlite3's ``execute``/``executemany`` returning a cursor."""

    def __init__(self, raw: Any):
        self.raw = raw

    def execute(self, sql: str, params: Iterable[Any] = ()) -> Any:
        return self.raw.execute(sql, tuple(params) or None)

    def executemany(self, sql: str, params: Iterable[Iterable[Any]]) -> Any:
        cur = self.raw.cursor()
        cur.executemany(sql, [tuple(p) for p in params])
        return cur

    def close(self) -> None:
        self.raw.close()


# -- store locations -------------------------------------------------------------------------------
def parse_location(location: str | os.PathLike | None, default_home: Path) -> dict[str, Any]:
    """Where a store lives: ``{"kind": "sqlite", "path", "home"}`` or ``{"kind": "postgresql", "url", "artifacts"}``.

    Accepted: a directory (its ``workbench.db``, as before URLs), ``sqlite:///relative/path.db``,
    ``sqlite:////absolute/path.db`` (SQLAlchemy's spelling), ``postgresql://user@host[:port]/db[?artifacts=...]``
    (also ``postgres://`` and ``postgresql+psycopg://``). ``artifacts=`` names the shared directory or fsspec URL of
    the artifact files; it is removed before connecting.
    """
    if location is None:
        location = os.environ.get("WORKBENCH_STORE") or default_home
    text = os.fspath(location)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if not scheme:
        home = Path(text).expanduser()
        return {"kind": "sqlite", "home": home, "path": home / "workbench.db"}
    if scheme == "sqlite":
        rest = text.split("://", 1)[1]
        if not rest.startswith("/") or rest in ("/", "/:memory:"):
            raise ValueError(f"store URL {text!r}: write sqlite:///relative/path.db or sqlite:////absolute/path.db "
                             "(an in-memory database cannot be shared by the writer thread and other processes)")
        path = Path(rest[1:]).expanduser()
        if path.is_dir():
            path = path / "workbench.db"  # sqlite:///runs names the directory, like a plain path
        return {"kind": "sqlite", "home": path.parent, "path": path}
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        parts = urlsplit(text)
        query = parse_qsl(parts.query, keep_blank_values=True)
        artifacts = next((v for k, v in query if k == "artifacts"), None)
        query = [(k, v) for k, v in query if k != "artifacts"]
        url = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(query), parts.fragment))
        return {"kind": "postgresql", "url": url, "artifacts": artifacts}
    raise ValueError(f"store location {redact(text)!r}: use a directory, sqlite:///path/workbench.db or "
                     "postgresql://user@host/db")


def redact(url: str) -> str:
    """``url`` without its password (for messages and records)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
