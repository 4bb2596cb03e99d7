"""Runs beyond the run store: export to a directory, MLflow or TensorBoard; import from a directory or a store.

- :mod:`.bundle`: a run as a plain directory (``run.json``, ``metrics.parquet``, ``claims.json``,
  ``artifacts.json`` and the artifact files), and copying runs between stores (a laptop's runs into the team's).
- :mod:`.to_mlflow`: a run as an MLflow run (params, metrics with steps, artifacts, claims table, status), and
  :class:`~.to_mlflow.MlflowSink`, a live mirror fed by the run's writer (``workbench run --mlflow URI``).
- :mod:`.to_tensorboard`: a run's scalars (and, through an optional hook, images) as TensorBoard event files.

``mlflow`` and ``tensorboard`` are optional extras (``workbench[mlflow]``, ``workbench[tensorboard]``); nothing
here imports them, or the notebook layer, until asked.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from workbench.store.store import Store

TARGETS = ("dir", "mlflow", "tensorboard")


def export_run(run_id: str, to: str, dest: str | Path | None = None, *, store: "Store", **options: Any) -> Any:
    """Export one run (id prefixes work) to ``to`` (one of :data:`TARGETS`); see :func:`workbench.runs.export_run`."""
    run_id = store.get(run_id)["id"]
    if to == "dir":
        from .bundle import export_dir

        if dest is None:
            raise ValueError("export to a directory needs its path")
        return export_dir(store, run_id, dest, **options)
    if to == "mlflow":
        from .to_mlflow import export_mlflow

        if dest is not None and "tracking_uri" not in options:
            options["tracking_uri"] = str(dest)
        return export_mlflow(store, run_id, **options)
    if to == "tensorboard":
        from .to_tensorboard import export_tensorboard

        if dest is None:
            raise ValueError("export to TensorBoard needs a log directory")
        return export_tensorboard(store, run_id, dest, **options)
    raise ValueError(f"export target {to!r} unknown; one of {', '.join(TARGETS)}")
