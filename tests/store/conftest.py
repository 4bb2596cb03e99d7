"""Every store test runs twice: on embedded SQLite and on a real PostgreSQL server that this test session starts
in a temporary directory (Debian's ``postgresql``; the PostgreSQL half skips, saying why, where it is missing)."""
from __future__ import annotations

import itertools

import pytest

from tests.common import _one_thread  # noqa: F401  (an autouse fixture)
from workbench.store.store import Store
from tests.pgtemp import TempPostgres, unavailable

BACKENDS = ("sqlite", "postgresql")
_names = itertools.count()


@pytest.fixture(scope="session")
def pg():
    """The session's PostgreSQL server (started on first use)."""
    reason = unavailable()
    if reason:
        pytest.skip(f"PostgreSQL store tests: {reason}")
    server = TempPostgres().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _no_store_env(monkeypatch):
    """A user's own WORKBENCH_STORE / WORKBENCH_MLFLOW must not leak into the tests."""
    monkeypatch.delenv("WORKBENCH_STORE", raising=False)
    monkeypatch.delenv("WORKBENCH_MLFLOW", raising=False)


def new_url(backend: str, tmp_path, request) -> str:
    """A fresh, empty store of ``backend``: a directory, or a new schema with its own artifact directory."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / f'sq{next(_names)}' / 'workbench.db'}"
    server = request.getfixturevalue("pg")
    n = next(_names)
    art = tmp_path / f"pg-artifacts{n}"
    art.mkdir()
    return server.url("workbench", schema=f"t{n}", artifacts=str(art))


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def url(backend, tmp_path, request) -> str:
    return new_url(backend, tmp_path, request)


@pytest.fixture
def store(url) -> Store:
    return Store(url)


@pytest.fixture
def other_url(backend, tmp_path, request) -> str:
    """A second, empty store of the other backend (copies between them; SQLite again where PostgreSQL is missing)."""
    other = "postgresql" if backend == "sqlite" and unavailable() is None else "sqlite"
    return new_url(other, tmp_path, request)
