"""A throwaway PostgreSQL server in a temporary directory, for tests and benchmarks of the run store.

Uses the server binaries of Debian's ``postgresql`` package (``initdb``, ``pg_ctl`` under
``/usr/lib/postgresql/<version>/bin``, or ``$WORKBENCH_PG_BIN``). It listens only on a Unix socket in its own
directory (no port to collide with), trusts local connections, and is stopped and removed by :meth:`stop`.
PostgreSQL refuses to run as root: as root the server runs as ``nobody`` (through ``runuser``).

    with TempPostgres() as pg:
        store = Store(pg.url("mydb"))
"""
from __future__ import annotations

import atexit
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote


def server_bin() -> Path | None:
    """The directory of ``initdb`` and ``pg_ctl`` (newest installed version), or ``None``."""
    env = os.environ.get("WORKBENCH_PG_BIN")
    if env:
        return Path(env) if (Path(env) / "initdb").exists() else None
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[-3]))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    return Path(which).parent if which else None


def unavailable() -> str | None:
    """Why a temporary server cannot be started here (``None`` when it can)."""
    if server_bin() is None:
        return "PostgreSQL server binaries not found (apt-get install postgresql, or set WORKBENCH_PG_BIN)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg not installed (pip install 'workbench[postgres]')"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: PostgreSQL refuses to run as root"
    return None


class TempPostgres:
    """Start a server in a new temporary directory; ``url(db)`` creates database ``db`` and returns its URL.

    ``durable=False`` (tests) turns fsync and synchronous commit off; benchmarks keep the defaults.
    """

    def __init__(self, durable: bool = False, max_connections: int = 200):
        reason = unavailable()
        if reason:
            raise RuntimeError(reason)
        self.bin = server_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="wb-pg-"))
        self.data = self.dir / "data"
        self.durable, self.max_connections = durable, max_connections
        self._user: list[str] = []
        if os.geteuid() == 0:
            os.chown(self.dir, _uid("nobody"), -1)
            self._user = ["runuser", "-u", "nobody", "--"]
        self._databases: set[str] = set()
        self.started = False

    def _run(self, *args: str) -> None:
        out = subprocess.run([*self._user, str(self.bin / args[0]), *args[1:]], cwd=self.dir, capture_output=True,
                             text=True, timeout=120)
        if out.returncode:
            log = (self.dir / "log").read_text() if (self.dir / "log").exists() else ""
            raise RuntimeError(f"{args[0]} failed ({out.returncode}): {out.stderr.strip() or out.stdout.strip()}"
                               f"\n{log[-2000:]}")

    def start(self) -> "TempPostgres":
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        options = [f"-c listen_addresses=''", f"-c unix_socket_directories={self.dir}", "-c port=5432",
                   f"-c max_connections={self.max_connections}"]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-t", "60",
                  "-o", " ".join(options), "start")
        self.started = True
        atexit.register(self.stop)
        return self

    def url(self, database: str = "postgres", schema: str | None = None, **query: str) -> str:
        """The URL of ``database`` (created on first use); with ``schema``, a new schema of its own (a store as
        empty as a new database, at a fraction of the cost); ``query`` adds URL parameters (``artifacts=...``)."""
        import psycopg

        if database != "postgres" and database not in self._databases:
            with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{database}"')
            self._databases.add(database)
        params = [f"host={quote(str(self.dir), safe='')}", "port=5432"]
        if schema is not None:
            base = f"postgresql://postgres@/{database}?{'&'.join(params)}"
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            params.append("options=" + quote(f"-csearch_path={schema}", safe=""))
        params += [f"{k}={quote(str(v), safe='')}" for k, v in query.items()]
        return f"postgresql://postgres@/{database}?{'&'.join(params)}"

    def stop(self) -> None:
        """Immediate shutdown (SIGQUIT to the postmaster: a throwaway server needs no checkpoint), then remove."""
        if self.started:
            self.started = False
            try:
                pid = int((self.data / "postmaster.pid").read_text().split()[0])
                os.kill(pid, signal.SIGQUIT)
                end = time.monotonic() + 30
                while time.monotonic() < end:
                    os.kill(pid, 0)
                    time.sleep(0.02)
            except (OSError, ValueError, IndexError):
                pass  # gone
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "TempPostgres":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _uid(name: str) -> int:
    import pwd

    return pwd.getpwnam(name).pw_uid


def wait_ready(url: str, timeout: float = 30.0) -> None:
    """Wait until ``url`` accepts connections."""
    import psycopg

    end = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(url).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)
