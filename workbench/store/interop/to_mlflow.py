"""A run as an MLflow run: params (the config), metrics with their steps and times, artifacts, the claims as a
table artifact, the record, and the status. ``pip install 'workbench[mlflow]'`` (``mlflow-skinny`` suffices).

Two ways in: :func:`export_mlflow` copies a stored run (``workbench runs export ID --to mlflow``), and
:class:`MlflowSink` mirrors a run as it goes (``workbench run METHOD --mlflow URI``; in Python
``store.add_sink(MlflowSink.factory(uri))`` or ``$WORKBENCH_MLFLOW``). Both write the same things; the sink writes
metrics from its own thread after each commit of the run's writer, so a slow tracking server delays neither the
training step nor the store, and writes the rest when the run ends.

A local file store (``file:///path/mlruns`` or a plain path) is in "maintenance mode" in MLflow 3; a target the
user names explicitly as a file store is allowed (``MLFLOW_ALLOW_FILE_STORE``), a database or server URI needs
nothing.
"""
from __future__ import annotations

import json
import math
import os
import queue
import re
import tempfile
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from workbench.store.store import _jsonable

if TYPE_CHECKING:  # pragma: no cover
    from workbench.store.store import Store

#: workbench status -> MLflow RunStatus
STATUS = {"completed": "FINISHED", "failed": "FAILED", "crashed": "FAILED", "stopped": "KILLED", "pruned": "KILLED",
          "running": "RUNNING"}
TAG = "workbench.run_id"
BATCH = 1000  # MLflow's limit of metrics per log_batch
PARAM_LIMIT = 6000  # MLflow's longest param value


def client(tracking_uri: str | None = None) -> Any:
    """An ``MlflowClient`` for ``tracking_uri``: a server (``http://...``), a database, or a path / ``file:`` URI
    of a local file store. Default: ``$MLFLOW_TRACKING_URI``, else the file store ``./mlruns`` (MLflow's own
    default, ``sqlite:///mlflow.db``, needs the full ``mlflow`` package)."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as err:
        raise ImportError("MLflow export needs mlflow: pip install 'workbench[mlflow]' (mlflow-skinny)") from err
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "mlruns"
    if uri is not None and "://" not in uri:
        uri = Path(uri).expanduser().resolve().as_uri()  # a plain path: a local file store
    if uri is not None and uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MlflowClient(uri)


def metric_key(name: str) -> str:
    """An MLflow metric/param key: letters, digits, ``_ - . / : space`` (others become ``_``), ≤ 250 chars."""
    return re.sub(r"[^\w\-./: ]", "_", name)[:250] or "_"


def params_of(config: dict[str, Any]) -> dict[str, str]:
    """The config as MLflow params: nested dicts flattened with ``.``, other values as JSON, cut to MLflow's limit."""
    out: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
            return
        text = value if isinstance(value, str) else json.dumps(_jsonable(value))
        out[metric_key(prefix)] = text if len(text) <= PARAM_LIMIT else text[: PARAM_LIMIT - 1] + "…"

    walk("", config)
    return out


def _experiment_id(cl: Any, name: str) -> str:
    exp = cl.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            cl.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    try:
        return cl.create_experiment(name)
    except Exception:  # created meanwhile by another process
        exp = cl.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def start_run(cl: Any, record: dict[str, Any], experiment: str | None = None) -> str:
    """A new MLflow run for ``record`` with its params and tags; returns its MLflow id."""
    from mlflow.entities import Param

    exp_id = _experiment_id(cl, experiment or record["method"])
    tags = {TAG: record["id"], "workbench.method": record["method"], "workbench.status": record["status"],
            "workbench.smoke": str(bool(record.get("smoke"))).lower(), "mlflow.source.name": "workbench"}
    for key in ("version", "git_commit", "device", "host", "world_size", "seed"):
        if record.get(key) is not None:
            tags[f"workbench.{key}"] = str(record[key])
    if record.get("git_commit"):
        tags["mlflow.source.git.commit"] = record["git_commit"]
    run = cl.create_run(exp_id, start_time=_ms(record.get("created_at")), tags=tags, run_name=record["id"])
    params = [Param(k, v) for k, v in params_of(record.get("config") or {}).items()]
    for i in range(0, len(params), 100):
        cl.log_batch(run.info.run_id, params=params[i:i + 100])
    return run.info.run_id


def log_metrics(cl: Any, mlflow_id: str, rows: Iterable[tuple[int, str, float, float]]) -> None:
    """(step, name, value, time) rows as MLflow metrics, in batches of MLflow's size."""
    from mlflow.entities import Metric

    batch: list[Any] = []
    for step, name, value, when in rows:
        batch.append(Metric(metric_key(name), math.nan if value is None else float(value), _ms(when), int(step)))
        if len(batch) == BATCH:
            cl.log_batch(mlflow_id, metrics=batch)
            batch = []
    if batch:
        cl.log_batch(mlflow_id, metrics=batch)


#: the columns of the MLflow claims table (claims.json): the statement, comparison, effect and interval, the rule,
#: the outcome and its reason, then the schema-v4 columns
MLFLOW_CLAIM_COLUMNS = ("claim", "method", "arm", "effect", "uncertainty", "low", "high", "kind", "seeds", "samples",
                        "how", "rule", "outcome", "reason", "paper", "measured", "holds", "detail")


def finish_run(cl: Any, mlflow_id: str, store: "Store", run_id: str, checkpoints: bool = False,
               logged: set[str] | None = None) -> None:
    """Everything but the metric history: artifacts, claims table, record, summary, status."""
    from mlflow.entities import Metric

    record = store.get(run_id)
    claims = store.claims(run_id)
    with tempfile.TemporaryDirectory(prefix="wb-mlflow-") as tmp:
        root = Path(tmp)
        files, index = root / "workbench" / "artifacts", []
        files.mkdir(parents=True)
        for row in store.artifacts(run_id):
            if row["kind"] == "checkpoint" and not checkpoints:
                continue
            name = Path(row["rel"]).name
            (files / name).write_bytes(store.artifact_bytes(row))
            index.append({"name": row["name"], "kind": row["kind"], "step": row["step"], "meta": row["meta"],
                          "file": f"artifacts/{name}"})
        (root / "workbench" / "artifacts.json").write_text(json.dumps(_jsonable(index), indent=1))
        (root / "workbench" / "run.json").write_text(json.dumps(_jsonable(record), indent=1))
        (root / "workbench" / "summary.json").write_text(json.dumps(_jsonable(record.get("summary") or {}), indent=1))
        cl.log_artifacts(mlflow_id, str(root))
    if claims:
        import pandas as pd

        frame = pd.DataFrame(claims, columns=list(MLFLOW_CLAIM_COLUMNS))
        frame = frame.astype(object).where(frame.notna(), None)  # no NaN in the JSON: None, as stored
        with warnings.catch_warnings():  # pandas deprecations inside MLflow's own table code
            warnings.simplefilter("ignore")
            cl.log_table(mlflow_id, frame, "claims.json")
    summary = [(k, v) for k, v in (record.get("summary") or {}).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and metric_key(k) not in (logged or set())]
    if summary:
        last = _last_step(store, run_id)
        cl.log_batch(mlflow_id, metrics=[Metric(metric_key(k), float(v), _ms(record.get("ended_at")), last)
                                         for k, v in summary])
    cl.set_tag(mlflow_id, "workbench.status", record["status"])
    if record.get("error"):
        cl.set_tag(mlflow_id, "workbench.error", record["error"][:5000])
    if record["status"] != "running":
        cl.set_terminated(mlflow_id, STATUS[record["status"]], end_time=_ms(record.get("ended_at")))


def _last_step(store: "Store", run_id: str) -> int:
    row = store._one("SELECT MAX(step) FROM metrics WHERE run_id=?", (run_id,))
    return int(row[0]) if row and row[0] is not None else 0


def export_mlflow(store: "Store", run_id: str, tracking_uri: str | None = None, experiment: str | None = None,
                  checkpoints: bool = False) -> str:
    """Copy run ``run_id`` into MLflow (experiment ``experiment``, default the method's name) as a new MLflow run;
    returns its MLflow run id. Checkpoints are left out unless ``checkpoints``."""
    cl = client(tracking_uri)
    record = store.get(run_id)
    mlflow_id = start_run(cl, record, experiment)
    names: set[str] = set()
    for rows in store.metric_chunks(record["id"]):  # a long run's history need not fit in memory twice
        names.update(metric_key(r[2]) for r in rows)
        log_metrics(cl, mlflow_id, [(r[1], r[2], r[3], r[4]) for r in rows])
    finish_run(cl, mlflow_id, store, record["id"], checkpoints=checkpoints, logged=names)
    return mlflow_id


class MlflowSink:
    """Mirror one run to MLflow as it goes (a :class:`~workbench.store.store.Sink`): params at the start, metrics after
    each commit of the run's writer (from a thread of its own), artifacts, claims and status at the end.

    A resumed run continues the MLflow run that carries its id (the steps after the checkpoint appear twice in
    MLflow's history: MLflow cannot delete metric points).
    """

    def __init__(self, store: "Store", run_id: str, tracking_uri: str | None = None, experiment: str | None = None):
        self.store, self.run_id = store, run_id
        self.client = client(tracking_uri)
        record = store.get(run_id)
        self.mlflow_id = self._existing(record, experiment) or start_run(self.client, record, experiment)
        self.names: set[str] = set()
        self._queue: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name=f"workbench-mlflow-{run_id}", daemon=True)
        self._thread.start()

    @classmethod
    def factory(cls, tracking_uri: str | None = None, experiment: str | None = None):
        """What :meth:`Store.add_sink` takes: a sink for each run the store writes."""
        return lambda store, run_id: cls(store, run_id, tracking_uri, experiment)

    def _existing(self, record: dict[str, Any], experiment: str | None) -> str | None:
        exp = self.client.get_experiment_by_name(experiment or record["method"])
        if exp is None:
            return None
        found = self.client.search_runs([exp.experiment_id], filter_string=f"tags.`{TAG}` = '{record['id']}'",
                                        max_results=1)
        if found:
            self.client.update_run(found[0].info.run_id, status="RUNNING")
            return found[0].info.run_id
        return None

    def metrics(self, rows: list[tuple[int, str, float, float]]) -> None:
        if self.error is not None:
            raise RuntimeError(f"MLflow mirror stopped: {self.error}")
        self._queue.put(rows)

    def _loop(self) -> None:
        while True:
            rows = self._queue.get()
            if rows is None:
                return
            if self.error is not None:
                continue
            try:
                pending = list(rows)
                while not self._queue.empty():  # coalesce what queued up meanwhile
                    more = self._queue.get()
                    if more is None:
                        self._queue.put(None)
                        break
                    pending.extend(more)
                self.names.update(metric_key(r[1]) for r in pending)
                log_metrics(self.client, self.mlflow_id, pending)
            except Exception as err:  # the run goes on; the mirror says why it stopped
                self.error = err
                warnings.warn(f"run {self.run_id}: MLflow mirror stopped: {type(err).__name__}: {err}", stacklevel=1)

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until every queued metric row is in MLflow (the thread ends; call only at the end)."""
        self._queue.put(None)
        self._thread.join(timeout)

    def finish(self, record: dict[str, Any]) -> None:
        self.flush()
        finish_run(self.client, self.mlflow_id, self.store, self.run_id, logged=self.names)


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(round(seconds * 1000))
