"""``workbench.sweep``: Optuna asks, Ray runs, the store records; the driver only hands trials out and tells
the study how each ended.

Trial numbering lives in the study (in the store's database), so a sweep interrupted by Ctrl-C, a crash or a
lost worker continues with ``resume=SWEEP_ID``: a trial left running by a driver that is gone is run again under
its own number (resumed from its run's checkpoint when it has one), then new trials continue the numbering.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

from workbench.core.params import ConfigError

from . import study as studies
from .space import Space, parse_space

if TYPE_CHECKING:  # pragma: no cover
    import optuna
    import pandas as pd

    from workbench.core.registry import Experiment
    from workbench.store.store import Store

#: seconds Ctrl-C waits for running trials to stop (through the store) before cancelling their Ray tasks
STOP_GRACE = 20.0
DEFAULT_TRIALS = 10


@dataclass
class SweepResult:
    """How a sweep ended: its id, counts by outcome, the best trial(s), claims over seeds, ``interrupted``."""

    sweep_id: str
    store: "Store"
    counts: dict[str, int] = field(default_factory=dict)
    best: list[dict[str, Any]] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False
    seconds: float = 0.0

    def trials(self) -> "pd.DataFrame":
        return studies.trials(self.sweep_id, self.store)


def _experiment(method: "str | Experiment", module: str = "") -> tuple["Experiment", str]:
    import importlib

    from workbench.core.registry import Experiment, get, register

    if module:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ConfigError(f"parameter 'module' = {module!r} cannot be imported: {err}", "module") from None
    if isinstance(method, Experiment):
        register(method)
        mod = method.run.__module__
        return method, "" if mod.startswith("workbench.methods.") else mod
    return get(method), module


def _default_objective(exp: "Experiment") -> str:
    names = [m for m in exp.key_metrics if not any(c in m for c in "*?[")]
    if not names:
        raise ConfigError(f"give --objective METRIC: {exp.name} declares no key metric to default to", "objective")
    return next((m for m in names if m.startswith(("test/", "val/", "eval/"))), names[0])


def _default_direction(name: str) -> str:
    lower = ("loss", "error", "nll", "ece", "time", "seconds", "perplexity", "bpd", "mse", "rmse", "mae")
    return "min" if any(w in name.lower() for w in lower) else "max"


def sweep(method: "str | Experiment | None" = None, space: Iterable[str] = (), *,
          objective: str | list[str] | None = None, direction: str | list[str] | None = None,
          trials: int | None = None, parallel: int = 1, sampler: str | None = None, pruner: str | None = None,
          pruner_options: dict[str, Any] | None = None, timeout: float | None = None, address: str | None = None,
          resume: str | None = None, store: "Store | str | None" = None, gpus_per_trial: float = 0.0,
          fixed: dict[str, Any] | None = None, smoke: bool = False, scale: str = "default", seed: int | None = None,
          module: str = "", sweep_id: str | None = None,
          on_trial: Callable[[dict[str, Any]], None] | None = None) -> SweepResult:
    """Search ``method``'s declared parameters over ``space`` (``["lr=1e-4:1e-1:log", "width=8,16,32"]``, see
    :mod:`workbench.core.sweep.space`), ``trials`` trials, ``parallel`` at a time on Ray; every trial is a run in
    ``store``. ``sweep_id`` names a new sweep (default ``sweep-<time>-<hex>``), so a caller knows it before the
    sweep starts. ``resume=SWEEP_ID`` continues a sweep (its stored definition; ``trials``/``parallel``/``timeout``
    may change). A bad argument raises :class:`ConfigError` (one line naming it) before anything starts."""
    from workbench.store import runs as runs_api

    started = time.monotonic()
    if isinstance(store, str) or store is None:
        store = runs_api.store(store)
    if not isinstance(parallel, int) or parallel < 1:
        raise ConfigError(f"parameter 'parallel' = {parallel!r} is out of range; allowed range [1, inf]", "parallel")
    if trials is not None and (not isinstance(trials, int) or trials < 1):
        raise ConfigError(f"parameter 'trials' = {trials!r} is out of range; allowed range [1, inf]", "trials")
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"parameter 'timeout' = {timeout!r} is out of range; allowed range (0, inf] s", "timeout")
    if not gpus_per_trial >= 0:
        raise ConfigError(f"parameter 'gpus_per_trial' = {gpus_per_trial!r} is out of range; allowed range [0, inf]",
                          "gpus_per_trial")
    threads = max(1, (os.cpu_count() or 1) // parallel) if address is None else 1
    if sweep_id is not None and resume:
        raise ConfigError("give sweep_id (a new sweep) or resume (an existing one), not both", "sweep_id")
    if sweep_id is not None:
        studies.check_new_id(store, sweep_id)
    if resume:
        study, spec = studies.load(store, resume)
        exp, _ = _experiment(spec.method, spec.module)
        sp = parse_space(exp, spec.space, spec.fixed, spec.smoke, spec.scale)
        target = trials or int(study.user_attrs.get("trials", DEFAULT_TRIALS))
        study.set_user_attr("trials", target)
    else:
        if method is None:
            raise ConfigError("name the experiment to sweep (or resume=SWEEP_ID)", "method")
        exp, module = _experiment(method, module)
        fixed = dict(fixed or {})
        sp = parse_space(exp, space, fixed, smoke, scale)
        if "threads" not in fixed and "threads" not in sp.names:
            fixed["threads"] = threads
        objectives = [objective] if isinstance(objective, str) else list(objective or [_default_objective(exp)])
        directions = [direction] if isinstance(direction, str) else list(direction or [])
        directions = directions or [_default_direction(o) for o in objectives]
        if len(directions) == 1 and len(objectives) > 1:
            directions *= len(objectives)
        if len(directions) != len(objectives):
            raise ConfigError(f"parameter 'direction': {len(directions)} directions for {len(objectives)} objectives",
                              "direction")
        bad = [d for d in directions if d not in studies.DIRECTIONS]
        if bad:
            raise ConfigError(f"parameter 'direction' = {bad[0]!r} is not allowed; allowed: max, min", "direction")
        sampler = sampler or ("grid" if sp.finite else "tpe")
        if sampler not in studies.SAMPLERS:
            raise ConfigError(f"parameter 'sampler' = {sampler!r} is not allowed; allowed: "
                              f"{', '.join(studies.SAMPLERS)}", "sampler")
        pruner = pruner or ("median" if len(objectives) == 1 else "none")
        if pruner not in studies.PRUNERS:
            raise ConfigError(f"parameter 'pruner' = {pruner!r} is not allowed; allowed: {', '.join(studies.PRUNERS)}",
                              "pruner")
        if pruner != "none" and len(objectives) > 1:
            raise ConfigError(f"parameter 'pruner' = {pruner!r}: pruning follows one objective; with "
                              f"{len(objectives)} objectives use pruner none", "pruner")
        grid = sp.grid() if sampler == "grid" else []
        target = min(trials, len(grid)) if grid and trials else (len(grid) or trials or DEFAULT_TRIALS)
        spec = studies.SweepSpec(exp.name, sp.specs(), objectives, directions, fixed, smoke, scale, sampler, pruner,
                                 dict(pruner_options or {}), seed, module)
        studies.make_sampler(sampler, seed, len(objectives) > 1)
        studies.make_pruner(pruner, pruner_options)
        study = studies.create(store, spec, sweep_id)
        study.set_user_attr("trials", target)
        for params in grid[:target]:
            study.enqueue_trial(params)
    from . import execute

    owned = execute.connect(address, num_cpus=max(os.cpu_count() or 1, parallel * threads) if address is None else None)
    try:
        driver = _Driver(study, spec, sp, store, parallel, gpus_per_trial, on_trial)
        interrupted = driver.run(target, timeout)
    finally:
        if owned:
            execute.shutdown()
    return _result(study, spec, sp, store, interrupted, time.monotonic() - started)


class _Driver:
    """Hands trials to Ray, ``parallel`` at a time, and tells the study how each ended."""

    def __init__(self, study: "optuna.Study", spec: studies.SweepSpec, space: Space, store: "Store", parallel: int,
                 gpus: float, on_trial: Callable[[dict[str, Any]], None] | None):
        from . import execute

        self.study, self.spec, self.space, self.store = study, spec, space, store
        self.parallel, self.on_trial = parallel, on_trial
        threads = int(spec.fixed.get("threads") or 1)
        self.task = execute.remote_trial(num_cpus=threads, num_gpus=gpus)
        self.storage_url = studies.storage_url(store)
        self.running: dict[Any, dict[str, Any]] = {}
        self.interrupted = False

    def _job(self, trial: "optuna.trial.FrozenTrial | optuna.trial.Trial", params: dict[str, Any],
             resume: str | None = None) -> dict[str, Any]:
        return {"sweep": self.study.study_name, "number": trial.number, "trial_id": trial._trial_id,
                "params": params, "config": {**self.spec.fixed, **self.space.config_values(params)},
                "objectives": self.spec.objectives, "pruner": self.spec.pruner,
                "pruner_options": self.spec.pruner_options, "storage": self.storage_url, "store": self.store.url,
                "method": self.spec.method, "module": self.spec.module, "smoke": self.spec.smoke,
                "scale": self.spec.scale, "resume": resume}

    def _dispatch(self, job: dict[str, Any]) -> None:
        self.running[self.task.remote(job)] = job

    def _orphans(self) -> list[dict[str, Any]]:
        """Trials left running by a driver that is gone: run again under their own number (their run resumed
        from its checkpoint when it has one). A trial whose run is still alive belongs to another driver."""
        from optuna.trial import TrialState

        jobs = []
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            run_id, resume = t.user_attrs.get(studies.RUN_ATTR), None
            if run_id:
                try:
                    record = self.store.get(run_id)
                except KeyError:
                    record = None
                if record is not None and record["status"] == "running":
                    continue
                if record is not None and record["status"] in ("completed", "pruned", "failed"):
                    self._settle(t, record)  # it ended after its driver was gone: told now, never run again
                    continue
                if record is not None and record["status"] in ("stopped", "crashed") and \
                        self.store.artifact_row(run_id, "checkpoint") is not None:
                    resume = run_id
            jobs.append(self._job(t, dict(t.params), resume))
        return jobs

    def _settle(self, t: "optuna.trial.FrozenTrial", record: dict[str, Any]) -> None:
        from optuna.trial import TrialState

        from .trial import objective_values

        status = record["status"]
        values, missing = objective_values(self.store, record["id"], record["summary"], self.spec.objectives) \
            if status == "completed" else ([], "")
        self.study._storage.set_trial_user_attr(t._trial_id, "status", "failed" if missing else status)
        if status == "completed" and not missing:
            self.study.tell(t.number, values)
        else:
            self.study.tell(t.number, state=TrialState.PRUNED if status == "pruned" else TrialState.FAIL)

    def run(self, target: int, timeout: float | None) -> bool:
        """Run until ``target`` trials have been started and every started one has ended (or ``timeout`` s have
        passed: no new trial then); returns whether Ctrl-C interrupted it."""
        import ray
        from optuna.trial import TrialState

        begin = time.monotonic()
        orphans = self._orphans()
        started = sum(t.state != TrialState.WAITING for t in self.study.get_trials(deepcopy=False))
        distributions = self.space.distributions()
        try:
            while True:
                late = timeout is not None and time.monotonic() - begin > timeout
                while orphans and len(self.running) < self.parallel and not late:
                    self._dispatch(orphans.pop(0))
                while not orphans and len(self.running) < self.parallel and started < target and not late:
                    trial = self.study.ask(distributions)
                    self._dispatch(self._job(trial, dict(trial.params)))
                    started += 1
                if not self.running:
                    return False
                ready, _ = ray.wait(list(self.running), num_returns=1, timeout=0.5)
                for ref in ready:
                    self._ended(ref, self.running.pop(ref))
        except KeyboardInterrupt:
            self.interrupted = True
            self._stop_all()
            return True

    def _run_id(self, job: dict[str, Any]) -> str | None:
        return self.study._storage.get_trial(job["trial_id"]).user_attrs.get(studies.RUN_ATTR)

    def _ended(self, ref: Any, job: dict[str, Any]) -> None:
        import ray
        from optuna.trial import TrialState

        from . import execute

        try:
            res = ray.get(ref)
        except Exception as err:  # the trial's process died, or the task was cancelled
            run_id = self._run_id(job)
            cancelled = isinstance(err, ray.exceptions.TaskCancelledError)
            why = ("cancelled (Ctrl-C)" if cancelled else
                   f"the trial's process died ({type(err).__name__})" if execute.is_worker_death(err) else
                   f"the trial raised {type(err).__name__}: {str(err).strip().splitlines()[-1][:300]}")
            if run_id:
                record = self.store.get(run_id)
                if record["status"] == "running":
                    self.store.finish(run_id, "stopped" if cancelled else "crashed", why, record["summary"])
            res = {"run_id": run_id, "status": "stopped" if cancelled else "crashed", "values": None, "error": why}
        storage = self.study._storage
        storage.set_trial_user_attr(job["trial_id"], "status", res["status"])
        if res.get("error"):
            storage.set_trial_user_attr(job["trial_id"], "error", res["error"])
        status = res["status"]
        if status == "stopped" and self.interrupted:
            pass  # left running in the study: resume continues it
        elif status == "completed":
            self.study.tell(job["number"], res["values"])
        elif status == "pruned":
            self.study.tell(job["number"], state=TrialState.PRUNED)
        else:
            self.study.tell(job["number"], state=TrialState.FAIL)
        if self.on_trial is not None:
            self.on_trial({**res, "trial": job["number"], "params": job["params"]})

    def _stop_all(self) -> None:
        """Ctrl-C: ask every running trial's run to stop (it ends ``stopped``, checkpointed when it checkpoints),
        cancel what has not stopped after :data:`STOP_GRACE` s; the trials stay open in the study."""
        import ray

        for job in self.running.values():
            run_id = self._run_id(job)
            if run_id:
                self.store.request_stop(run_id)
        end = time.monotonic() + STOP_GRACE
        cancelled = False
        while self.running:
            try:
                ready, _ = ray.wait(list(self.running), num_returns=1, timeout=0.5)
                for ref in ready:
                    self._ended(ref, self.running.pop(ref))
                if not cancelled and time.monotonic() > end:
                    for ref in self.running:
                        ray.cancel(ref)
                    cancelled = True
            except KeyboardInterrupt:  # a second Ctrl-C: stop now
                for ref in self.running:
                    ray.cancel(ref, force=True)
                cancelled = True
                end = 0.0


def _result(study: "optuna.Study", spec: studies.SweepSpec, space: Space, store: "Store", interrupted: bool,
            seconds: float) -> SweepResult:
    from .claims import aggregate

    counts: dict[str, int] = {}
    finished = []
    for t in study.get_trials(deepcopy=False):
        status = t.user_attrs.get("status") or t.state.name.lower()
        counts[status] = counts.get(status, 0) + 1
        if t.state.name == "COMPLETE" and t.user_attrs.get(studies.RUN_ATTR):
            finished.append(t)
    best = [{"trial": t.number, "values": list(t.values), "params": dict(t.params),
             "run_id": t.user_attrs.get(studies.RUN_ATTR)} for t in studies.best(study)]
    claims = []
    if "seed" in space.names:
        claims = aggregate(store, [(t.user_attrs[studies.RUN_ATTR], {k: v for k, v in t.params.items() if k != "seed"})
                                   for t in finished])
    return SweepResult(study.study_name, store, counts, best, claims, interrupted, seconds)
