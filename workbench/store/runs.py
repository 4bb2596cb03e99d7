"""Python API over the run store: list, get, metrics as DataFrames, compare, delete, export, import.

Every function takes an optional ``store`` (default: ``$WORKBENCH_STORE``, else the store under
``$WORKBENCH_HOME``)::

    from workbench.store import runs
    runs.list(method="classify")            # DataFrame, one row per run
    runs.metrics(run_id)                    # DataFrame: id, step, name, value, time
    runs.compare([a, b], names=["test/accuracy"])
    runs.models(run_id); runs.load_model(run_id, "ls4")   # a trained model, rebuilt in any Python process
    runs.export_run(run_id, "mlflow", tracking_uri="file:///tmp/mlruns")   # or "tensorboard", "dir"
    runs.import_runs("runs/", store=runs.store("postgresql://team@db/workbench"))  # a laptop's runs, shared
"""
from __future__ import annotations

import builtins
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from workbench.store.store import Store, default_home

if TYPE_CHECKING:  # pragma: no cover  (pandas is imported on use: every run opens its store through this module)
    import pandas as pd
    import torch

_STORES: dict[str, Store] = {}


def store(home: str | Path | None = None) -> Store:
    """The (cached) store at ``home``: a directory, ``sqlite:///path.db`` or ``postgresql://user@host/db``;
    by default ``$WORKBENCH_STORE``, else ``$WORKBENCH_HOME``. With ``$WORKBENCH_MLFLOW`` set to a tracking URI,
    every run this store writes is mirrored to MLflow as it goes."""
    import os

    location = home if home is not None else (os.environ.get("WORKBENCH_STORE") or default_home())
    text = os.fspath(location)
    key = text if "://" in text else str(Path(text).expanduser().resolve())
    mlflow = os.environ.get("WORKBENCH_MLFLOW")
    if mlflow:
        key += f"#mlflow={mlflow}"
    if key not in _STORES:
        st = Store(text)
        if mlflow:
            from workbench.store.interop.to_mlflow import MlflowSink

            st.add_sink(MlflowSink.factory(mlflow))
        _STORES[key] = st
    return _STORES[key]


def list(method: str | None = None, status: str | None = None, store: Store | None = None) -> pd.DataFrame:  # noqa: A001
    """Runs as a DataFrame (newest last), filtered by method and status."""
    import pandas as pd

    rows = (store or _default()).runs(method=method, status=status)
    cols = ["id", "method", "status", "seed", "device", "created_at", "ended_at", "error", "config", "summary"]
    df = pd.DataFrame(rows, columns=None if rows else cols)
    if rows:
        df = df[cols + [c for c in df.columns if c not in cols]]
        for col in ("created_at", "ended_at"):
            df[col] = pd.to_datetime(df[col], unit="s")
    return df


def get(run_id: str, store: Store | None = None) -> dict[str, Any]:
    """One run's record (id prefixes work): method, config, status, error, summary, times, version..."""
    return (store or _default()).get(run_id)


def metrics(run_id: str, names: Iterable[str] | None = None, since: int | None = None,
            store: Store | None = None) -> pd.DataFrame:
    """Metrics in logging order as a long DataFrame (id, step, name, value, time); ``since`` a row id."""
    import pandas as pd

    st = store or _default()
    rows = st.metrics(st.get(run_id)["id"], names=names, since=since)
    return pd.DataFrame([tuple(r) for r in rows], columns=["id", "step", "name", "value", "time"])


def wide(run_id: str, names: Iterable[str] | None = None, store: Store | None = None) -> pd.DataFrame:
    """Metrics as one column per name, indexed by step (last value wins)."""
    df = metrics(run_id, names, store=store)
    return df.pivot_table(index="step", columns="name", values="value", aggfunc="last")


def compare(run_ids: Iterable[str], names: Iterable[str] | None = None, store: Store | None = None) -> pd.DataFrame:
    """Long DataFrame of several runs' metrics with a ``run`` column, for overlaying."""
    import pandas as pd

    frames = [metrics(r, names, store=store).assign(run=get(r, store)["id"]) for r in run_ids]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["id", "step", "name", "value", "time", "run"])


def artifacts(run_id: str, store: Store | None = None) -> builtins.list[dict[str, Any]]:
    st = store or _default()
    return st.artifacts(st.get(run_id)["id"])


def artifact(run_id: str, name: str, step: int | None = None, store: Store | None = None) -> Any:
    """The latest artifact called ``name`` (array, DataFrame, dict, text, bytes or checkpoint dict)."""
    st = store or _default()
    return st.load_artifact(st.get(run_id)["id"], name, step)


def claims(run_id: str, store: Store | None = None) -> builtins.list[dict[str, Any]]:
    """The paper claims a run checked, in order: statement (`claim`), method vs `arm`, `effect` ± `uncertainty` with
    its interval (`low`, `high`), `seeds`, `rule`, `outcome` (holds, fails, inconclusive, not evaluated) with its
    `reason`, and `holds` (True, False or None)."""
    st = store or _default()
    return st.claims(st.get(run_id)["id"])


def models(run_id: str, store: Store | None = None) -> builtins.list[str]:
    """The names of the models a run saved (``ctx.save_model``), for :func:`load_model`."""
    from workbench.store.models import PREFIX

    return sorted({a["name"][len(PREFIX):] for a in artifacts(run_id, store) if a["name"].startswith(PREFIX)})


def load_model(run_id: str, name: str, store: Store | None = None) -> "torch.nn.Module":
    """The model ``name`` a run saved, rebuilt from its spec with its trained weights (eval mode, CPU); needs only
    the method's own package, never the notebook layer."""
    from workbench.store.models import PREFIX, unpack

    saved = models(run_id, store)
    if name not in saved:
        raise KeyError(f"run {run_id} saved no model {name!r}; it saved: {', '.join(saved) or 'none'}")
    return unpack(artifact(run_id, PREFIX + name, store=store))


def stop(run_id: str, store: Store | None = None) -> None:
    """Ask a running run (in any process) to stop; it ends with status ``stopped``."""
    st = store or _default()
    st.request_stop(st.get(run_id)["id"])


def delete(run_id: str, store: Store | None = None) -> None:
    (store or _default()).delete(run_id)


def export(run_id: str, path: str | Path, store: Store | None = None) -> Path:
    """Write a run's metrics to ``path`` (.csv or .parquet, by suffix)."""
    path = Path(path)
    df = metrics(run_id, store=store)
    if path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    elif path.suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        raise ValueError(f"export path must end in .csv or .parquet, got {path.name!r}")
    return path


def export_run(run_id: str, to: str, dest: str | Path | None = None, store: Store | None = None,
               **options: Any) -> Any:
    """Export one run elsewhere: ``to="dir"`` (a directory ``import_runs`` reads back; returns its path),
    ``"mlflow"`` (``tracking_uri=``, ``experiment=``; returns the MLflow run id) or ``"tensorboard"`` (``dest``
    the log directory; returns the run's event directory). See :mod:`workbench.store.interop`."""
    from workbench.store import interop

    return interop.export_run(run_id, to, dest, store=store or _default(), **options)


def import_runs(source: str | Path | Store, store: Store | None = None, run_ids: Iterable[str] | None = None,
                include_running: bool = False) -> builtins.list[tuple[str, str]]:
    """Copy runs into ``store`` from an exported directory (or a folder of them), another store's directory or
    URL, or a :class:`Store`. Returns ``(run_id, outcome)`` pairs: ``imported``, ``exists`` (left as it is) or
    ``running`` (skipped unless ``include_running``)."""
    from workbench.store.interop.bundle import import_runs as _import

    return _import(source, store or _default(), run_ids=run_ids, include_running=include_running)


def _default() -> Store:
    return store()
