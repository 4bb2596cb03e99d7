"""A run as a plain directory, and copying runs between stores.

An exported run ``<dest>/<run_id>/`` holds::

    run.json          the run's record (method, config, status, summary, error, traceback, times, host...)
    metrics.parquet   every metric row in logging order: step, name, value, time
    claims.json       the paper claims it checked: one object per claim, every column of the store's claims
                      (statement, method, arm, effect, uncertainty, low, high, seeds, rule, outcome, reason...)
    artifacts.json    one entry per artifact: name, kind, step, meta, created_at, file
    files/            the artifact files, as the store encodes them (.npy, .json, .txt, .pt, .bin)

:func:`import_runs` reads such a directory (or a folder of them), another store's directory or URL, or a
:class:`~workbench.store.store.Store`, and copies each run with its id, times and status kept; it also loads
spill files (:mod:`.spill`: what a run held when its store stayed unreachable) into the run they belong to.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from workbench.store.interop.spill import import_spill, read_spill, spill_files
from workbench.store.store import Store, _jsonable

CHUNK = 50_000  # metric rows per transaction when copying


def export_dir(store: Store, run_id: str, dest: str | os.PathLike) -> Path:
    """Write run ``run_id`` to ``dest/<run_id>/`` (replacing an earlier export there); returns that directory."""
    import pandas as pd

    record = store.get(run_id)
    out = Path(dest) / record["id"]
    files = out / "files"
    files.mkdir(parents=True, exist_ok=True)
    (out / "run.json").write_text(json.dumps(_jsonable(record), indent=1))
    rows = store.metrics(record["id"])
    frame = pd.DataFrame([tuple(r)[1:] for r in rows], columns=["step", "name", "value", "time"])
    frame = frame.astype({"step": "int64", "name": "string", "value": "float64", "time": "float64"})
    frame.to_parquet(out / "metrics.parquet", index=False)
    (out / "claims.json").write_text(json.dumps(_jsonable(store.claims(record["id"])), indent=1))
    index = []
    for row in store.artifacts(record["id"]):
        name = Path(row["rel"]).name
        (files / name).write_bytes(store.artifact_bytes(row))
        index.append({"name": row["name"], "kind": row["kind"], "step": row["step"], "meta": row["meta"],
                      "created_at": row["created_at"], "file": f"files/{name}"})
    (out / "artifacts.json").write_text(json.dumps(_jsonable(index), indent=1))
    return out


@dataclass
class _Run:
    """One run to copy, from wherever it comes."""

    record: dict[str, Any]
    source: Any

    def metric_chunks(self) -> Iterator[list[tuple[int, str, float, float]]]:
        return self.source.metric_chunks(self.record["id"])

    def artifacts(self) -> Iterator[tuple[dict[str, Any], bytes]]:
        return self.source.artifacts(self.record["id"])

    def claims(self) -> list[dict[str, Any]]:
        return self.source.claims(self.record["id"])


class _FromStore:
    def __init__(self, store: Store):
        self.store = store

    def runs(self) -> list[_Run]:
        return [_Run(rec, self) for rec in self.store.runs()]

    def metric_chunks(self, run_id: str) -> Iterator[list[tuple[int, str, float, float]]]:
        for rows in self.store.metric_chunks(run_id, CHUNK):
            yield [(r[1], r[2], _float(r[3]), r[4]) for r in rows]

    def artifacts(self, run_id: str) -> Iterator[tuple[dict[str, Any], bytes]]:
        for row in self.store.artifacts(run_id):
            yield row, self.store.artifact_bytes(row)

    def claims(self, run_id: str) -> list[dict[str, Any]]:
        return self.store.claims(run_id)


class _FromDir:
    def __init__(self, folders: list[Path]):
        self.folders = {json.loads((f / "run.json").read_text())["id"]: f for f in folders}

    def runs(self) -> list[_Run]:
        return [_Run(json.loads((f / "run.json").read_text()), self) for f in self.folders.values()]

    def metric_chunks(self, run_id: str) -> Iterator[list[tuple[int, str, float, float]]]:
        import pandas as pd

        frame = pd.read_parquet(self.folders[run_id] / "metrics.parquet")
        rows = list(zip(frame["step"].astype(int).tolist(), frame["name"].astype(str).tolist(),
                        frame["value"].astype(float).tolist(), frame["time"].astype(float).tolist()))
        for i in range(0, len(rows), CHUNK):
            yield rows[i:i + CHUNK]

    def artifacts(self, run_id: str) -> Iterator[tuple[dict[str, Any], bytes]]:
        folder = self.folders[run_id]
        for entry in json.loads((folder / "artifacts.json").read_text()):
            yield entry, (folder / entry["file"]).read_bytes()

    def claims(self, run_id: str) -> list[dict[str, Any]]:
        return json.loads((self.folders[run_id] / "claims.json").read_text())


def _float(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _source(source: str | os.PathLike | Store) -> _FromStore | _FromDir:
    if isinstance(source, Store):
        return _FromStore(source)
    text = os.fspath(source)
    if "://" in text:
        return _FromStore(Store(text))
    path = Path(text).expanduser()
    if (path / "run.json").exists():
        return _FromDir([path])
    if (path / "workbench.db").exists():
        return _FromStore(Store(path))
    if path.is_file() and path.suffix == ".db":
        return _FromStore(Store(f"sqlite:///{path.resolve()}"))
    folders = sorted(p.parent for p in path.glob("*/run.json")) if path.is_dir() else []
    if folders:
        return _FromDir(folders)
    raise ValueError(f"import source {text!r} is neither an exported run directory (run.json), a folder of them, "
                     "a store directory (workbench.db) nor a store URL")


def _spills(source: str | os.PathLike | Store) -> list[Path]:
    """The spill files ``source`` names (a spill file, or a folder holding them and no exported runs)."""
    if isinstance(source, Store) or "://" in os.fspath(source):
        return []
    path = Path(os.fspath(source)).expanduser()
    if (path / "run.json").exists() or (path / "workbench.db").exists():
        return []
    return spill_files(path)


def import_runs(source: str | os.PathLike | Store, store: Store, run_ids: Iterable[str] | None = None,
                include_running: bool = False) -> list[tuple[str, str]]:
    """Copy runs from ``source`` into ``store`` (see the module docstring); returns ``(run_id, outcome)`` pairs.

    A run already in ``store`` is left as it is (importing twice is harmless); a ``running`` run is skipped unless
    ``include_running`` (its writer still writes to the source). The run record is written last, so an
    interrupted import leaves no half run behind: the next import clears the pieces and copies it again.
    """
    spills = _spills(source)
    if spills:
        done = [import_spill(f, store) for f in spills
                if not run_ids or any(read_spill(f)["run"]["id"].startswith(w) for w in run_ids)]
        if run_ids and not done:
            raise KeyError(f"no run with id {list(run_ids)[0]!r} in the import source")
        return done
    src = _source(source)
    if isinstance(src, _FromStore) and src.store.url == store.url:
        raise ValueError(f"import source and target are the same store ({store!r})")
    wanted = list(run_ids) if run_ids else None
    out = []
    for run in src.runs():
        rid = run.record["id"]
        if wanted is not None and not any(rid.startswith(w) for w in wanted):
            continue
        if store.exists(rid):
            out.append((rid, "exists"))
            continue
        if run.record["status"] == "running" and not include_running:
            out.append((rid, "running"))
            continue
        copy_run(run, store)
        out.append((rid, "imported"))
    if wanted is not None:
        missing = [w for w in wanted if not any(r.startswith(w) for r, _ in out)]
        if missing:
            raise KeyError(f"no run with id {missing[0]!r} in the import source")
    return out


def copy_run(run: _Run, store: Store) -> None:
    rid = run.record["id"]
    store.purge(rid)  # pieces of an interrupted import
    for chunk in run.metric_chunks():
        store.add_metrics(rid, chunk)
    for row, data in run.artifacts():
        store.add_artifact(rid, row["name"], None, kind=row["kind"], step=row["step"], meta=row["meta"], data=data,
                           created_at=row["created_at"])
    for c in run.claims():  # a schema-v4 export (claim, measured, holds, detail) reads as the v5 migration reads it
        store.add_claim(rid, c)
    store.put_run(run.record)
