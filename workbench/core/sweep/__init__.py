"""Sweeps: Optuna searches an experiment's declared parameters, Ray runs the trials, every trial is a run.

    import workbench
    result = workbench.sweep("classify", ["lr=1e-3:1e-1:log"], trials=12, parallel=2)
    result.best, result.trials()                    # best trial(s); a DataFrame of every trial
    workbench.sweep("classify", ["seed=0..4"])      # each claim with its effect ± uncertainty over five seeds
    workbench.sweep(resume=result.sweep_id)         # continue an interrupted sweep

Also ``workbench sweep METHOD ...`` (:mod:`.cli`) and ``python -m workbench.core.sweep``. Needs the ``sweep`` extra.
"""
from .claims import aggregate as claims_over_seeds
from .driver import SweepResult, sweep
from .space import Dim, Space, parse_space
from .study import sweeps, trials

__all__ = ["sweep", "SweepResult", "Space", "Dim", "parse_space", "trials", "sweeps", "claims_over_seeds"]
