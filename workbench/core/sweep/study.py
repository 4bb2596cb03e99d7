"""The Optuna study of a sweep, kept in the run store's own database (SQLite file or PostgreSQL).

A sweep id is the study's name; the study's user attributes hold the sweep's definition (method, space, fixed
values, objectives, sampler, pruner), so ``--resume SWEEP_ID`` rebuilds it from the database alone. Each trial's
user attributes hold its ``run_id``; each run holds a ``sweep`` artifact ``{"sweep", "trial", "params"}``.
"""
from __future__ import annotations

import math
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.core.params import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import optuna
    import pandas as pd

    from workbench.store.store import Store

SAMPLERS = ("tpe", "random", "grid", "cmaes")
PRUNERS = ("median", "hyperband", "none")
DIRECTIONS = {"max": "maximize", "maximize": "maximize", "min": "minimize", "minimize": "minimize"}
#: the trial user attribute naming its run, and the run artifact naming its sweep
RUN_ATTR, SWEEP_ARTIFACT = "run_id", "sweep"


@dataclass
class SweepSpec:
    """What a sweep searches and how (stored in the study, so a resumed sweep is the same sweep)."""

    method: str
    space: list[str]
    objectives: list[str]
    directions: list[str]
    fixed: dict[str, Any] = field(default_factory=dict)
    smoke: bool = False
    scale: str = "default"
    sampler: str = "tpe"
    pruner: str = "median"
    pruner_options: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    module: str = ""  # a module to import before looking the method up (methods outside workbench)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def new_sweep_id() -> str:
    return "sweep-" + time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


#: what a sweep id may hold: it names the study, the report file (reports/sweep-<id>.html) and the app's URL
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def check_new_id(store: "Store", sweep_id: str) -> None:
    """Refuse (one line) a ``sweep_id`` that is malformed or names a sweep already in ``store``."""
    if not isinstance(sweep_id, str) or not ID_PATTERN.fullmatch(sweep_id):
        raise ConfigError(f"parameter 'sweep_id' = {sweep_id!r} is not allowed; allowed: 1-100 letters, digits, "
                          "'_', '.', '-', starting with a letter or digit", "sweep_id")
    if sweep_id in sweeps(store):
        raise ConfigError(f"parameter 'sweep_id' = {sweep_id!r} names a sweep already in the store; continue it "
                          f"with resume={sweep_id!r} or choose another name", "sweep_id")


def storage_url(store: "Store") -> str:
    """The SQLAlchemy URL of the store's database (the study's tables live beside the runs)."""
    if store.kind == "sqlite":
        return f"sqlite:///{store.path.resolve()}"
    from workbench.store.sql import parse_location

    url = parse_location(store.url, store.home)["url"]  # without ?artifacts=
    return "postgresql+psycopg://" + url.split("://", 1)[1]


def storage(store: "Store | str") -> "optuna.storages.RDBStorage":
    """An Optuna RDB storage on the store's database (``store``: a Store, or an SQLAlchemy URL)."""
    import optuna

    url = store if isinstance(store, str) else storage_url(store)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 120}  # writers take turns with the store's own (WAL) writers
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


def make_sampler(name: str, seed: int | None = None, multi: bool = False) -> "optuna.samplers.BaseSampler":
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name in ("random", "grid"):  # a grid is enqueued once, trial by trial (resumable); random fills nothing
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        if multi:
            raise ConfigError("parameter 'sampler' = 'cmaes' optimises one objective; use tpe or random", "sampler")
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    raise ConfigError(f"parameter 'sampler' = {name!r} is not allowed; allowed: {', '.join(SAMPLERS)}", "sampler")


def make_pruner(name: str, options: dict[str, Any] | None = None) -> "optuna.pruners.BasePruner":
    import optuna

    options = dict(options or {})
    try:
        if name == "median":
            return optuna.pruners.MedianPruner(**{"n_startup_trials": 3, "n_warmup_steps": 0, **options})
        if name == "hyperband":
            return optuna.pruners.HyperbandPruner(**options)
        if name == "none":
            return optuna.pruners.NopPruner()
    except TypeError as err:
        raise ConfigError(f"parameter 'pruner_options' = {options!r} does not fit the {name} pruner: {err}",
                          "pruner_options") from None
    raise ConfigError(f"parameter 'pruner' = {name!r} is not allowed; allowed: {', '.join(PRUNERS)}", "pruner")


def create(store: "Store", spec: SweepSpec, sweep_id: str | None = None) -> "optuna.Study":
    import optuna

    directions = [DIRECTIONS[d] for d in spec.directions]
    study = optuna.create_study(storage=storage(store), study_name=sweep_id or new_sweep_id(),
                                directions=directions, sampler=make_sampler(spec.sampler, spec.seed, len(directions) > 1),
                                pruner=make_pruner(spec.pruner, spec.pruner_options))
    study.set_user_attr("workbench", spec.to_dict())
    return study


def load(store: "Store", sweep_id: str) -> tuple["optuna.Study", SweepSpec]:
    """The study and spec of ``sweep_id`` (one line naming the known sweeps when it is not there)."""
    import optuna

    st = storage(store)
    try:
        study = optuna.load_study(study_name=sweep_id, storage=st)
    except KeyError:
        known = [s.study_name for s in optuna.get_all_study_summaries(st)]
        raise ConfigError(f"no sweep {sweep_id!r} in {store!r}; known: {', '.join(known) or '(none)'}",
                          "resume") from None
    spec = SweepSpec(**study.user_attrs["workbench"])
    study.sampler = make_sampler(spec.sampler, spec.seed, len(spec.objectives) > 1)
    study.pruner = make_pruner(spec.pruner, spec.pruner_options)
    return study, spec


def sweeps(store: "Store") -> list[str]:
    """The ids of the sweeps stored in ``store``."""
    import optuna

    return [s.study_name for s in optuna.get_all_study_summaries(storage(store))]


def trials(sweep_id: str, store: "Store | None" = None) -> "pd.DataFrame":
    """One row per trial: number, state (Optuna's), status (the run's), params, objective value(s), run id, seconds,
    error (why it ended early: the driver's word, else its run's)."""
    import pandas as pd

    from workbench.store import runs as runs_api

    store = store or runs_api.store()
    study, spec = load(store, sweep_id)
    rows = []
    for t in study.get_trials(deepcopy=False):
        run_id = t.user_attrs.get(RUN_ATTR)
        status, error = t.user_attrs.get("status"), t.user_attrs.get("error")
        if run_id:
            try:
                record = store.get(run_id)
                status, error = record["status"], error or record.get("error")
            except KeyError:
                status = "missing"
        row = {"trial": t.number, "state": t.state.name, "status": status or t.state.name.lower(),
               "run_id": run_id, "seconds": t.duration.total_seconds() if t.duration else None, "error": error}
        for name, value in zip(spec.objectives, t.values or [None] * len(spec.objectives)):
            row[name] = value
        row.update({f"param/{k}": v for k, v in t.params.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def best(study: "optuna.Study") -> list["optuna.trial.FrozenTrial"]:
    """The best trial (one objective) or the Pareto front (several); empty before any trial completed."""
    try:
        return [study.best_trial] if len(study.directions) == 1 else list(study.best_trials)
    except ValueError:
        return []


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
