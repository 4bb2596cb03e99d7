"""A run survives its PostgreSQL server going away: restarts (fast and immediate shutdown), a killed backend
connection, and, past ``Store.retry_for``, stops with a spill file that ``workbench runs import`` loads. In every
case each logged metric row is stored exactly once.

One server for the module (its own: the restarts must not disturb the session's server); each test pauses a run
at a known step (events, no sleeps), takes the server away, lets the run go on, and checks the rows."""
from __future__ import annotations

import json
import threading
import time

import pytest

from tests.pgtemp import TempPostgres, unavailable, wait_ready
from workbench.core import cli, engine
from workbench.core.params import Config, Param
from workbench.core.registry import Experiment, register
from workbench.store.store import Store, StoreUnavailable

if unavailable():
    pytest.skip(f"PostgreSQL outage tests: {unavailable()}", allow_module_level=True)


class Hook:
    """The test's handle on a paused run: ``reached`` when it pauses, ``go`` to let it go on."""

    def __init__(self) -> None:
        self.reached, self.go = threading.Event(), threading.Event()
        self.logged = 0


HOOK = Hook()


class OutageConfig(Config):
    steps: int = Param(30, bounds=(1, 10_000), doc="steps")
    pause_at: int = Param(10, bounds=(0, 10_000), doc="the run waits for the test at this step")


def run_outage(cfg: OutageConfig, ctx) -> dict:
    for step in ctx.steps(cfg.steps):
        ctx.log(step, a=float(step), b=2.0 * step)
        HOOK.logged += 2
        if step == cfg.pause_at:
            HOOK.reached.set()
            assert HOOK.go.wait(60), "the test never let the run go on"
    ctx.artifact("table", {"rows": HOOK.logged})
    ctx.claim("the run reached its last step", measured=cfg.steps, holds=True)
    return {"steps": cfg.steps}


register(Experiment("outage_toy", OutageConfig, run_outage, title="store outage test run"))


@pytest.fixture(scope="module")
def server():
    # durable: an immediate shutdown is a crash, and with synchronous_commit off the server forgets commits it
    # had acknowledged (no client can see that); fsync stays on for the same reason
    pg = TempPostgres(durable=True).start()
    yield pg
    pg.stop()


@pytest.fixture
def store(server, tmp_path, request):
    url = server.url("outage", schema=f"s{abs(hash(request.node.name)) % 10**8}", artifacts=str(tmp_path / "art"))
    st = Store(url)
    st.home = tmp_path / "home"  # the spill goes under the test's directory
    return st


def pg_ctl(server: TempPostgres, *args: str) -> None:
    server._run("pg_ctl", "-D", str(server.data), "-w", "-t", "60", *args)


def start_paused(store: Store, **config) -> tuple[threading.Thread, dict]:
    """Start a run in a thread; return once it is paused at ``pause_at`` with its rows committed."""
    global HOOK
    HOOK = Hook()
    out: dict = {}

    def target() -> None:
        out["result"] = engine.run("outage_toy", config, store=store, progress=False)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    assert HOOK.reached.wait(60)
    return thread, out


def saw_failure(store: Store) -> threading.Event:
    """An event set the first time a write of ``store`` fails on a transient error."""
    event, transient = threading.Event(), store.dialect.transient

    def spy(err: BaseException) -> bool:
        event.set()
        return transient(err)

    store.dialect.transient = spy  # type: ignore[method-assign]
    return event


def assert_every_row_once(store: Store, run_id: str, logged: int) -> None:
    rows = store.metrics(run_id)
    keys = [(r["step"], r["name"]) for r in rows]
    assert len(keys) == logged, f"{len(keys)} rows stored, {logged} logged"
    assert len(set(keys)) == len(keys), "a metric row was stored twice"
    steps = sorted({r["step"] for r in rows})
    assert steps == list(range(len(steps)))


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_run_survives_a_server_restart(server, store, mode):
    """The server stops (``pg_ctl stop -m MODE``) while the run goes on logging and writing; it comes back; the
    run completes with every row once. Prints the outage and the run's longest wait (the issue's timings)."""
    failed = saw_failure(store)
    thread, out = start_paused(store, steps=30, pause_at=10)
    away = time.monotonic()
    pg_ctl(server, "-m", mode, "stop")
    HOOK.go.set()  # the run logs on (buffered) and waits in its artifact write
    assert failed.wait(30)
    pg_ctl(server, "-l", str(server.dir / "log"), "restart")  # starts the stopped server with its options
    back = time.monotonic()
    thread.join(120)
    res = out["result"]
    assert res.status == "completed", res.error
    assert_every_row_once(store, res.run_id, HOOK.logged)
    assert store.get(res.run_id)["status"] == "completed" and len(store.claims(res.run_id)) == 1
    assert store.load_artifact(res.run_id, "table") == {"rows": 60}
    waited = max((s for _, s in store.waits), default=0.0)
    assert waited > 0  # the run did wait for the store, and no longer than it was away (plus a backoff step)
    print(f"\n{mode} shutdown: store away {back - away:.2f} s, the run's longest wait {waited:.2f} s "
          f"({len(store.waits)} writes retried)")


def test_a_killed_backend_connection_is_replaced(server, store):
    thread, out = start_paused(store, steps=20, pause_at=5)
    with __import__("psycopg").connect(server.url("outage"), autocommit=True) as admin:
        killed = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                               "WHERE application_name = 'workbench' AND pid <> pg_backend_pid()").fetchone()[0]
    assert killed >= 1
    HOOK.go.set()
    thread.join(120)
    res = out["result"]
    assert res.status == "completed", res.error
    assert_every_row_once(store, res.run_id, HOOK.logged)


def test_an_ambiguous_commit_is_not_repeated(store, monkeypatch):
    """The connection dies after the server committed a batch: the retry sees the batch landed and skips it."""
    import psycopg

    rid = store.create_run("outage_toy", {})
    real, calls = store.transaction, [0]

    import contextlib

    @contextlib.contextmanager
    def lost_after_commit():
        with real() as conn:
            yield conn
        calls[0] += 1
        if calls[0] == 1:
            raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(store, "transaction", lost_after_commit)
    store.add_metrics(rid, [(0, "a", 1.0, 1.0, 0), (0, "b", 2.0, 1.0, 1)])
    monkeypatch.setattr(store, "transaction", real)
    assert [(r["step"], r["name"]) for r in store.metrics(rid)] == [(0, "a"), (0, "b")]
    assert store.waits and store.waits[-1][0] == "metrics"


def test_past_the_limit_the_run_stops_and_spills_and_import_loads_it(server, store, tmp_path, capsys):
    """The server stays away longer than ``retry_for``: the run stops with the reason, its checkpoint and the rows
    it holds go to a spill file; ``workbench runs import FILE`` loads them into the run (twice is harmless)."""
    store.retry_for = 1.0
    thread, out = start_paused(store, steps=30, pause_at=10, checkpoint_every=5)
    pg_ctl(server, "-m", "fast", "stop")
    try:
        HOOK.go.set()
        thread.join(120)
        res = out["result"]
        assert res.status == "stopped" and "did not answer" in res.error and "workbench runs import" in res.error
        spill = next((store.home / "spill").glob("*.wbspill.json"))
        doc = json.loads(spill.read_text())
        assert doc["run"]["status"] == "stopped" and doc["metrics"]
        assert any(a["name"] == "checkpoint" for a in doc["artifacts"])
    finally:
        pg_ctl(server, "-l", str(server.dir / "log"), "restart")
    wait_ready(server.url("outage"))
    before = len(store.metrics(res.run_id))
    assert before + len(doc["metrics"]) == HOOK.logged  # the rows the store missed are the ones spilled
    capsys.readouterr()
    assert cli.main(["runs", "import", str(spill), "--store", store.url]) == 0
    assert capsys.readouterr().out.split() == [res.run_id, "merged"]
    assert cli.main(["runs", "import", str(spill), "--store", store.url]) == 0
    assert capsys.readouterr().out.split() == [res.run_id, "exists"]
    fresh = Store(store.url)
    assert_every_row_once(fresh, res.run_id, HOOK.logged)
    record = fresh.get(res.run_id)
    assert record["status"] == "stopped" and "did not answer" in record["error"]
    assert fresh.artifact_row(res.run_id, "checkpoint") is not None
    other = Store(tmp_path / "other")  # a store that never saw the run: the spill makes a new one
    assert cli.main(["runs", "import", str(spill.parent), "--store", other.url]) == 0
    assert capsys.readouterr().out.split() == [res.run_id, "imported"]
    assert len(other.metrics(res.run_id)) == len(doc["metrics"]) and other.get(res.run_id)["status"] == "stopped"


def test_a_down_store_is_declared_once_then_writes_fail_fast(server, store):
    rid = store.create_run("outage_toy", {})
    store.retry_for = 0.3
    pg_ctl(server, "-m", "immediate", "stop")
    try:
        with pytest.raises(StoreUnavailable, match="did not answer"):
            store.heartbeat(rid)
        start = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.add_claim(rid, {"statement": "kept", "outcome": "holds"})
        assert time.monotonic() - start < 0.3 and store.kept(rid)[0]["type"] == "claim"
    finally:
        pg_ctl(server, "-l", str(server.dir / "log"), "restart")
    store.recommit_kept(rid)
    assert [c["claim"] for c in store.claims(rid)] == ["kept"] and store.kept(rid) == []


def test_transient_errors_are_told_apart(store):
    import psycopg
    from psycopg import errors

    transient = store.dialect.transient
    assert transient(psycopg.OperationalError("connection refused"))
    for cls in (errors.AdminShutdown, errors.TooManyConnections, errors.CannotConnectNow,
                errors.ReadOnlySqlTransaction, errors.ConnectionFailure, errors.SerializationFailure):
        assert transient(cls("x")), cls.__name__
    assert not transient(errors.UniqueViolation("duplicate"))
    assert not transient(errors.UndefinedTable("no such table"))
