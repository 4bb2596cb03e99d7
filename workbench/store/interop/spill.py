"""Spill files: what a run still held when its store stayed unreachable past ``Store.retry_for``.

The engine writes one JSON file per run (``<home>/spill/<run_id>.wbspill.json``): the run's record as the
engine knows it (method, config, the status it ended with and why), the metric rows it could not commit (with
their sequence numbers), and the artifacts (its checkpoint among them, bytes in base64) and claims whose writes
failed. ``workbench runs import FILE`` (or a folder of them) loads it into a store: into the run already there
(rows whose sequence number is stored are skipped, so nothing is duplicated) or as a new run.
"""
from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any, Iterable

from workbench.store.store import Store, _jsonable

FORMAT = "workbench-spill"
SUFFIX = ".wbspill.json"


def write_spill(store: Store, record: dict[str, Any], rows: Iterable[tuple], directory: str | Path | None = None
                ) -> Path:
    """Write run ``record["id"]``'s spill file (``rows``: (step, name, value, time, seq)); returns its path."""
    run_id = record["id"]
    target = Path(directory) if directory is not None else store.home / "spill"
    target.mkdir(parents=True, exist_ok=True)
    kept = store.kept(run_id)
    doc = {
        "format": FORMAT, "version": 1, "store": repr(store), "written_at": time.time(),
        "run": _jsonable({**record, "ended_at": record.get("ended_at") or time.time()}),
        "metrics": [[int(r[0]), str(r[1]), _num(r[2]), float(r[3]), int(r[4])] for r in rows],
        "artifacts": [{k: (base64.b64encode(v).decode() if k == "data" else _jsonable(v)) for k, v in a.items()
                       if k != "type"} for a in kept if a["type"] == "artifact"],
        "claims": [_jsonable(c["record"]) for c in kept if c["type"] == "claim"],
    }
    path = target / f"{run_id}{SUFFIX}"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)
    return path


def _num(value: Any) -> float | None:
    value = float(value)
    return value if value == value else None


def is_spill(path: Path) -> bool:
    return path.is_file() and path.name.endswith(SUFFIX)


def spill_files(path: Path) -> list[Path]:
    """``path`` itself when it is a spill file, else the spill files directly in the folder ``path``."""
    if is_spill(path):
        return [path]
    return sorted(p for p in path.glob(f"*{SUFFIX}") if p.is_file()) if path.is_dir() else []


def read_spill(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable spill file ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or "run" not in doc:
        raise ValueError(f"{path}: not a workbench spill file")
    return doc


def import_spill(path: str | Path, store: Store) -> tuple[str, str]:
    """Load one spill file into ``store``; returns ``(run_id, outcome)``: ``merged`` (into the run already
    there), ``imported`` (a new run) or ``exists`` (this spill was loaded before)."""
    doc = read_spill(path)
    run = dict(doc["run"])
    rid = run["id"]
    present = store.exists(rid)
    if present:
        stored = store.get(rid)
        if stored["status"] == run["status"] and stored.get("ended_at") == run["ended_at"]:
            return rid, "exists"
    rows = [tuple(r) for r in doc["metrics"]]
    if rows and present:
        have = {r[0] for r in store._read("SELECT seq FROM metrics WHERE run_id=? AND seq>=?",
                                          (rid, min(r[4] for r in rows)))}
        rows = [r for r in rows if r[4] not in have]
    rows = [(s, n, float("nan") if v is None else v, t, q) for s, n, v, t, q in rows]
    for i in range(0, len(rows), 50_000):
        store.add_metrics(rid, rows[i:i + 50_000])
    for a in doc["artifacts"]:
        store.add_artifact(rid, a["name"], None, kind=a["kind"], step=a["step"], meta=a["meta"],
                           data=base64.b64decode(a["data"]), created_at=a["created_at"])
    for c in doc["claims"]:
        store.add_claim(rid, c)
    if present:
        store._write("UPDATE runs SET status=?, error=?, summary=?, traceback=?, ended_at=? WHERE id=?",
                     (run["status"], run.get("error"), json.dumps(_jsonable(run.get("summary") or {})),
                      run.get("traceback"), run["ended_at"], rid))
        return rid, "merged"
    first = min((r[3] for r in rows), default=run["ended_at"])
    store.put_run({"created_at": first, "heartbeat_at": run["ended_at"], **run})
    return rid, "imported"
