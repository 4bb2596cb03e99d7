"""Schema v7 (the ``pruned`` status of a sweep's trial): a v6 store opened by this workbench migrates, its runs read
back unchanged, a pruned run is written and read with its metrics; a v6 workbench then refuses the store (on SQLite
and PostgreSQL alike: see conftest.py)."""
from __future__ import annotations

import pytest

from workbench.store import store as store_module
from workbench.store.store import SCHEMA_VERSION, Store


def test_a_version_6_store_migrates_and_takes_a_pruned_run(url, monkeypatch):
    assert SCHEMA_VERSION == 7
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 6)
    old = Store(url)
    assert old.schema_version() == 6
    done, crashed = old.create_run("toy", {"seed": 1, "lr": 0.1}), old.create_run("toy", {"seed": 2})
    old.add_metrics(done, [(0, "val/loss", 0.9, 1.0), (5, "val/loss", 0.4, 2.0)])
    old.finish(done, "completed", summary={"val/loss": 0.4})
    old.finish(crashed, "crashed", "the trial's process died")
    before = {r["id"]: r for r in old.runs()}

    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION)
    new = Store(url)
    assert new.schema_version() == 7
    after = {r["id"]: r for r in new.runs()}
    assert after == before  # every run and column as it was
    assert [tuple(r)[1:] for r in new.metrics(done)] == [(0, "val/loss", 0.9, 1.0), (5, "val/loss", 0.4, 2.0)]

    pruned = new.create_run("toy", {"seed": 3, "lr": 0.9})
    new.add_metrics(pruned, [(0, "val/loss", 5.0, 3.0)])
    new.finish(pruned, "pruned", "pruned by the median pruner at step 0", {"val/loss": 5.0})
    record = Store(url).get(pruned)
    assert record["status"] == "pruned" and record["error"].startswith("pruned by the median pruner")
    assert [r["id"] for r in new.runs(status="pruned")] == [pruned]
    assert [r["id"] for r in new.runs(status="completed")] == [done]
    assert [tuple(r)[1:] for r in new.metrics(pruned)] == [(0, "val/loss", 5.0, 3.0)]  # its metrics kept

    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 6)  # a workbench from before v7: refuses, reads nothing
    with pytest.raises(RuntimeError, match="schema version 7, newer than this workbench \\(6\\); upgrade"):
        Store(url)
