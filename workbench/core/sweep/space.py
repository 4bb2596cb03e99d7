"""A sweep's search space, from an experiment's declared parameters narrowed on the command line.

Each ``--space`` names one declared parameter and, optionally, how to narrow it::

    lr                  the declared range: soft range if declared, else bounds (log when the Param says log)
    lr=1e-4:1e-1:log    a float (or int) range inside the declared bounds, optionally on a log scale
    width=8,16,32       a finite set of values (each validated as the parameter's type and range)
    seed=0..4           integers 0, 1, 2, 3, 4 (a finite set)
    recipes=a+b,c       a multi-choice parameter: each value a '+'-joined set of choices

A bad space (unknown parameter, bounds outside the declared ones, wrong type) raises one
:class:`~workbench.core.params.ConfigError` naming the parameter, before anything starts.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from workbench.core.params import ConfigError, Param

if TYPE_CHECKING:  # pragma: no cover
    from optuna.distributions import BaseDistribution

    from workbench.core.registry import Experiment


@dataclass(frozen=True)
class Dim:
    """One searched parameter: a numeric range (``low``..``high``, ``log``) or a finite set of ``values``."""

    name: str
    kind: str  # "float", "int" or "choice"
    low: float | None = None
    high: float | None = None
    log: bool = False
    values: tuple[Any, ...] = ()
    spec: str = ""  # as written (the study keeps it, so --resume rebuilds the same space)

    @property
    def finite(self) -> bool:
        return self.kind == "choice"

    def distribution(self) -> "BaseDistribution":
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "float":
            return FloatDistribution(float(self.low), float(self.high), log=self.log)
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log)
        return CategoricalDistribution([_encode(v) for v in self.values])

    def decode(self, value: Any) -> Any:
        """A value as the study stores it -> the config's value (multi-choice sets travel as 'a+b')."""
        if self.kind == "choice" and isinstance(value, str) and any(isinstance(v, tuple) for v in self.values):
            return tuple(p for p in value.split("+") if p)
        return value


@dataclass(frozen=True)
class Space:
    """The searched dimensions of one experiment; ``fixed`` values apply to every trial."""

    method: str
    dims: tuple[Dim, ...]

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dims]

    @property
    def finite(self) -> bool:
        """Every dimension is a finite set (a grid can enumerate it)."""
        return all(d.finite for d in self.dims)

    def distributions(self) -> dict[str, "BaseDistribution"]:
        return {d.name: d.distribution() for d in self.dims}

    def grid(self) -> list[dict[str, Any]]:
        """Every combination of a finite space, in order (the first dimension varies slowest)."""
        if not self.finite:
            bad = next(d for d in self.dims if not d.finite)
            raise ConfigError(f"parameter '{bad.name}': the grid sampler needs a finite set of values "
                              f"(e.g. {bad.name}=a,b,c or {bad.name}=0..4), not a range", bad.name)
        return [dict(zip(self.names, (_encode(v) for v in combo)))
                for combo in itertools.product(*(d.values for d in self.dims))]

    def config_values(self, params: dict[str, Any]) -> dict[str, Any]:
        """A trial's params (as the study stores them) -> config values."""
        by_name = {d.name: d for d in self.dims}
        return {k: by_name[k].decode(v) if k in by_name else v for k, v in params.items()}

    def specs(self) -> list[str]:
        return [d.spec for d in self.dims]


def parse_space(experiment: "Experiment", specs: Iterable[str], fixed: dict[str, Any] | None = None,
                smoke: bool = False, scale: str = "default") -> Space:
    """Parse ``--space`` specs against ``experiment``'s declared parameters; every corner of the space is checked
    against the config (with ``fixed`` values) so a bad space fails here, in one line, before anything starts."""
    params = experiment.config.params()
    dims: list[Dim] = []
    for spec in specs:
        name, _, rhs = str(spec).partition("=")
        name = name.strip()
        if name not in params:
            raise ConfigError(f"unknown parameter {name!r} in --space {spec!r} for {experiment.name}; known: "
                              f"{', '.join(params)}", name)
        if any(d.name == name for d in dims):
            raise ConfigError(f"parameter '{name}' is given twice in --space", name)
        if fixed and name in fixed:
            raise ConfigError(f"parameter '{name}' is both searched (--space) and fixed (--set)", name)
        dims.append(_dim(params[name], rhs.strip(), str(spec).strip()))
    if not dims:
        raise ConfigError("give at least one --space NAME[=RANGE] (e.g. --space lr=1e-4:1e-1:log)", "space")
    space = Space(experiment.name, tuple(dims))
    _check_corners(experiment, space, fixed or {}, smoke, scale)
    return space


def _dim(param: Param, rhs: str, spec: str) -> Dim:
    name = param.name
    kind = param.kind
    if not rhs:  # the declared range or choices
        if param.choices is not None:
            if param.multiple:
                values = tuple((c,) for c in param.choices)
            else:
                values = tuple(param.choices)
            return Dim(name, "choice", values=values, spec=spec)
        if kind is bool:
            return Dim(name, "choice", values=(False, True), spec=spec)
        lo, hi = param.slider_range
        if lo is None or hi is None or kind not in (int, float):
            raise ConfigError(f"parameter '{name}' has no finite declared range ({param.allowed() or 'unbounded'});"
                              f" give one: --space {name}=LOW:HIGH or {name}=a,b,c", name)
        return Dim(name, "float" if kind is float else "int", lo, hi, bool(param.log and lo > 0), spec=spec)
    if ":" in rhs:  # a range
        if kind not in (int, float) or param.choices is not None:
            raise ConfigError(f"parameter '{name}' takes values ({param.allowed() or kind.__name__}), not a range "
                              f"{rhs!r}; write {name}=a,b,c", name)
        parts = rhs.split(":")
        log = len(parts) == 3 and parts[2].strip().lower() == "log"
        if len(parts) not in (2, 3) or (len(parts) == 3 and not log):
            raise ConfigError(f"parameter '{name}': range {rhs!r} must be LOW:HIGH or LOW:HIGH:log", name)
        lo, hi = (param.validate(p.strip()) for p in parts[:2])  # type and declared bounds, in one line
        if not lo < hi:
            raise ConfigError(f"parameter '{name}': range {rhs!r} needs LOW < HIGH", name)
        if log and lo <= 0:
            raise ConfigError(f"parameter '{name}': a log range needs LOW > 0 (got {lo})", name)
        return Dim(name, "float" if kind is float else "int", lo, hi, log, spec=spec)
    if ".." in rhs:  # integers a..b
        if kind is not int:
            raise ConfigError(f"parameter '{name}': {rhs!r} is an integer range but '{name}' is a {kind.__name__}",
                              name)
        a, _, b = rhs.partition("..")
        lo, hi = param.validate(a.strip()), param.validate(b.strip())
        if hi < lo:
            raise ConfigError(f"parameter '{name}': range {rhs!r} needs LOW <= HIGH", name)
        if hi - lo >= 10_000:
            raise ConfigError(f"parameter '{name}': {rhs!r} has {hi - lo + 1} values; write LOW:HIGH for a range",
                              name)
        return Dim(name, "choice", values=tuple(range(lo, hi + 1)), spec=spec)
    raw = [v.strip() for v in rhs.split(",") if v.strip()]
    if param.multiple:
        values = tuple(param.validate(",".join(v.split("+"))) for v in raw)
    else:
        values = tuple(param.validate(v) for v in raw)
    if not values or len(set(values)) != len(values):
        raise ConfigError(f"parameter '{name}': {rhs!r} must list distinct values", name)
    return Dim(name, "choice", values=values, spec=spec)


def _check_corners(experiment: "Experiment", space: Space, fixed: dict[str, Any], smoke: bool, scale: str) -> None:
    """Build the config at the low and high corners (cross-parameter checks run there too)."""
    for pick in (0, -1):
        values = dict(fixed)
        for d in space.dims:
            values[d.name] = d.values[pick] if d.finite else (d.low if pick == 0 else d.high)
        experiment.make_config(values, smoke=smoke, scale=scale)


def _encode(value: Any) -> Any:
    """Values a study can store: multi-choice tuples as 'a+b'."""
    if isinstance(value, tuple):
        return "+".join(map(str, value))
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"value {value} is not finite")
    return value


def parse_assignment(text: str, experiment: "Experiment") -> tuple[str, Any]:
    """``--set NAME=VALUE``: a value fixed for every trial, validated as the parameter's type and range."""
    name, sep, value = text.partition("=")
    name = name.strip()
    params = experiment.config.params()
    if not sep or name not in params:
        raise ConfigError(f"--set {text!r}: write NAME=VALUE with a parameter of {experiment.name} "
                          f"({', '.join(params)})", name or "set")
    return name, params[name].validate(value.strip())
