"""One trial, in whatever process runs it (a Ray worker, or this one): an ordinary workbench run, fed to the
study's pruner as it logs.

The run's metrics reach the pruner through the store's live-sink hook (:class:`workbench.store.store.Sink`): every
committed row of the objective goes to ``trial.report(value, step)`` on a thread of its own, and when the pruner
says so the run is asked to stop; it then ends with status ``pruned`` and keeps its metrics.
"""
from __future__ import annotations

import importlib
import math
import queue
import threading
from typing import Any

from workbench.store.store import Store

PRUNED = "pruned"


class TrialStore(Store):
    """The store as a trial sees it: a run its pruner stopped ends ``pruned`` instead of ``stopped``."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.pruned: dict[str, str] = {}  # run id -> why it was pruned

    def finish(self, run_id: str, status: str, error: str | None = None, summary: dict | None = None,
               traceback: str | None = None) -> None:
        if status == "stopped" and run_id in self.pruned:
            status, error = PRUNED, self.pruned[run_id]
        super().finish(run_id, status, error, summary, traceback)


class _Pruning:
    """A store sink (one run) that hands the objective's rows to the study's pruner on its own thread."""

    def __init__(self, job: dict[str, Any], store: TrialStore, run_id: str, control: Any):
        self.job, self.store, self.run_id, self.control = job, store, run_id, control
        self.rows: "queue.Queue[tuple[int, float] | None]" = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name=f"sweep-pruner-{run_id}", daemon=True)
        self.thread.start()

    def metrics(self, rows: list[tuple[int, str, float, float]]) -> None:
        name = self.job["objectives"][0]
        for step, metric, value, _ in rows:
            if metric == name and math.isfinite(value):
                self.rows.put((int(step), float(value)))

    def finish(self, record: dict[str, Any]) -> None:
        self.rows.put(None)

    def _loop(self) -> None:
        import optuna

        from .study import make_pruner, storage

        study = optuna.load_study(study_name=self.job["sweep"], storage=storage(self.job["storage"]),
                                  pruner=make_pruner(self.job["pruner"], self.job["pruner_options"]))
        trial = optuna.trial.Trial(study, self.job["trial_id"])
        while True:
            item = self.rows.get()
            if item is None:
                return
            step, value = item
            trial.report(value, step)
            if trial.should_prune():
                why = f"pruned by the {self.job['pruner']} pruner at step {step} ({self.job['objectives'][0]} = {value:.4g})"
                self.store.pruned[self.run_id] = why
                self.control.stop(why)
                return


def run_trial(job: dict[str, Any]) -> dict[str, Any]:
    """Run one trial (``job``: sweep, trial number and id, config values, objectives, store URL, study storage...)
    and return ``{"run_id", "status", "values", "error"}``; a run resumed from its checkpoint keeps its id."""
    from workbench.core.context import Control
    from workbench.core.engine import run
    from workbench.core.registry import get

    from .study import RUN_ATTR, SWEEP_ARTIFACT, storage

    if job.get("module"):
        importlib.import_module(job["module"])
    exp = get(job["method"])
    store = TrialStore(job["store"])
    st = storage(job["storage"])
    control = Control()
    prune = job["pruner"] != "none" and len(job["objectives"]) == 1
    sinks: list[_Pruning] = []

    def tag(st_: Store, run_id: str) -> Any:
        st_.add_artifact(run_id, SWEEP_ARTIFACT, {"sweep": job["sweep"], "trial": job["number"],
                                                  "params": job["params"]}, kind="json")
        st.set_trial_user_attr(job["trial_id"], RUN_ATTR, run_id)
        if prune:
            sinks.append(_Pruning(job, store, run_id, control))
            return sinks[-1]
        return _NoSink()

    store.add_sink(tag)
    result = run(exp, job["config"], smoke=job["smoke"], scale=job["scale"], control=control,
                 resume=job.get("resume"), progress=False, store=store)
    for sink in sinks:  # the last rows were reported before the verdict is read
        sink.rows.put(None)
        sink.thread.join(timeout=60)
    status = store.get(result.run_id)["status"] if result.run_id else result.status
    values, error = None, result.error
    if status == "completed":
        values, missing = objective_values(store, result.run_id, result.summary, job["objectives"])
        if missing:
            status, error = "failed", (f"objective {missing!r} was not logged by the run; logged: "
                                       f"{', '.join(sorted(result.summary)) or '(nothing)'}")
    return {"run_id": result.run_id, "status": status, "values": values, "error": error}


class _NoSink:
    def metrics(self, rows: list) -> None: ...
    def finish(self, record: dict) -> None: ...


def objective_values(store: Store, run_id: str, summary: dict[str, Any], names: list[str]) -> tuple[list[float], str]:
    """Each objective's value: the run's summary, else its last logged value; the first missing name, or ''."""
    out = []
    for name in names:
        value = summary.get(name)
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)):
            rows = store.metrics(run_id, [name])
            finite = [r[3] for r in rows if r[3] is not None and math.isfinite(r[3])]
            if not finite:
                return [], name
            value = finite[-1]
        out.append(float(value))
    return out, ""
