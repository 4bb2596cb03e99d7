"""The workbench's headless core: declared experiments, the engine around them and the run store.

    import workbench
    workbench.experiments()                   # name -> Experiment
    result = workbench.run("classify", {"steps": 200})
    workbench.runs.metrics(result.run_id)     # a pandas DataFrame
"""
from __future__ import annotations

from typing import Any

from typing import TYPE_CHECKING

from workbench.core.params import Config, ConfigError, LoopParams, OptimParams, Param, ParamGroup
from workbench.core.registry import Experiment, experiments, get, register

if TYPE_CHECKING:  # pragma: no cover
    from workbench.core.context import RunContext

__version__ = "0.1.0"
__all__ = ["Config", "ConfigError", "Param", "ParamGroup", "OptimParams", "LoopParams", "Experiment", "experiments", "get", "register", "run",
           "runs", "sweep", "Control", "RunContext", "__version__"]


def __getattr__(name: str) -> Any:  # torch and pandas load on first use, not on `import workbench`
    import importlib

    if name in ("run", "Control", "RunResult"):
        return getattr(importlib.import_module("workbench.core.engine"), name)
    if name == "RunContext":
        return importlib.import_module("workbench.core.context").RunContext
    if name == "runs":
        return importlib.import_module("workbench.store.runs")
    if name == "sweep":
        return importlib.import_module("workbench.core.sweep").sweep
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")
