"""Declared parameters: one declaration gives validation, CLI flags, magic options and slider forms.

A method declares its parameters once, as class attributes of a :class:`Config` subclass::

    class NFMConfig(Config):
        alpha: float = Param(1.0, bounds=(0.0, 10.0), doc="Beta(α, α) mixing concentration")
        mode: str = Param("nfm", choices=("mixup", "nfm"), doc="which special case")

``NFMConfig(alpha=2.0)`` validates every value and raises one :class:`ConfigError` naming the
parameter, the value and the allowed range. Configs are immutable; ``cfg.replace(**kv)`` makes a
new validated one, ``cfg.to_dict()`` / ``Cfg.from_dict(d)`` round-trip through JSON.

Reusable blocks of parameters are :class:`ParamGroup` subclasses that a config composes by inheritance
(``class NFMConfig(MixingParams, OptimParams, Config)``); each parameter remembers its group, so forms show
it as a section. ``multiple=True`` declares a multi-choice parameter (a tuple of choices; checkboxes in a
form, comma-separated on a command line); ``soft=(lo, hi)`` gives a slider's range inside wider hard ``bounds``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator

_MISSING = object()


class ConfigError(ValueError):
    """A parameter value is invalid; the message names the parameter, the value and what is allowed."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Param:
    """One declared parameter.

    default: the default value (its Python type is the parameter's type unless ``type`` is given).
    bounds: inclusive (low, high) for numbers; ``None`` on one side means unbounded.
    choices: the allowed values (strings usually).
    unit: shown beside the control ("steps", "images", "lr").
    doc: one line, shown as tooltip and ``--help``.
    log: a slider on a log scale (learning rates, temperatures).
    step: slider increment for floats.
    soft: the (low, high) range a slider shows; values outside it but within ``bounds`` stay valid.
    multiple: a multi-choice parameter: the value is a tuple of ``choices`` (a comma-separated string is accepted).
    group: the :class:`ParamGroup` (or config) that declared it; forms show one section per group.
    """

    default: Any
    bounds: tuple[float | None, float | None] | None = None
    choices: tuple[Any, ...] | None = None
    unit: str = ""
    doc: str = ""
    log: bool = False
    step: float | None = None
    type: type | None = None
    soft: tuple[float, float] | None = None
    multiple: bool = False
    name: str = field(default="", compare=False)
    group: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.multiple:
            if not self.choices:
                raise TypeError("Param(multiple=True) needs choices")
            object.__setattr__(self, "default", tuple(self.default))
        if self.soft is not None and self.bounds is not None:
            lo, hi = self.bounds
            if (lo is not None and self.soft[0] < lo) or (hi is not None and self.soft[1] > hi):
                raise TypeError(f"Param soft range {self.soft} must lie within bounds {self.bounds}")

    @property
    def kind(self) -> type:
        if self.multiple:
            return tuple
        if self.type is not None:
            return self.type
        return type(self.default)

    @property
    def slider_range(self) -> tuple[float | None, float | None]:
        """The range a slider shows: ``soft`` when declared, else ``bounds`` (``(None, None)`` when unbounded)."""
        if self.soft is not None:
            return self.soft
        return self.bounds if self.bounds is not None else (None, None)

    def coerce(self, value: Any) -> Any:
        """Turn strings from a command line or a magic into the declared type."""
        if self.multiple:
            if isinstance(value, str):
                text = value.strip()
                if text.lower() == "all":
                    return tuple(self.choices or ())
                return tuple(v.strip() for v in text.split(",") if v.strip())
            if isinstance(value, (list, tuple, set, frozenset)):
                return tuple(value)
            return value
        kind = self.kind
        if isinstance(value, str) and kind is not str:
            text = value.strip()
            if kind is bool:
                low = text.lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ConfigError(f"parameter '{self.name}' = {value!r} is not a boolean (use true/false)", self.name)
            try:
                if kind is int:
                    as_float = float(text)
                    if not as_float.is_integer():
                        raise ValueError
                    return int(as_float)
                return kind(text)
            except ValueError:
                raise ConfigError(
                    f"parameter '{self.name}' = {value!r} is not a valid {kind.__name__}{self._allowed()}", self.name
                ) from None
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if kind is int and isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    def allowed(self) -> str:
        """What is allowed, in words: ``"a, b"``, ``"one or more of a, b"``, ``"[0, inf]"`` or ``""``
        (the one place this text is built: errors, ``--help``, magics and forms all use it)."""
        if self.choices is not None:
            return ("one or more of " if self.multiple else "") + ", ".join(map(str, self.choices))
        if self.bounds is not None:
            lo, hi = self.bounds
            return f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
        return ""

    def _allowed(self) -> str:
        text = self.allowed()
        if not text:
            return ""
        return f"; allowed: {text}" if self.choices is not None else f"; allowed range {text}"

    def validate(self, value: Any) -> Any:
        """Coerce and check one value; raise :class:`ConfigError` naming the parameter and the allowed range."""
        value = self.coerce(value)
        kind = self.kind
        if self.multiple:
            if not isinstance(value, tuple) or not value:
                raise ConfigError(f"parameter '{self.name}' = {value!r} must name at least one choice{self._allowed()}",
                                  self.name)
            bad = [v for v in value if v not in (self.choices or ())]
            if bad:
                raise ConfigError(f"parameter '{self.name}': {', '.join(map(repr, bad))} not allowed{self._allowed()}",
                                  self.name)
            if len(set(value)) != len(value):
                raise ConfigError(f"parameter '{self.name}' = {value!r} names a choice twice", self.name)
            return value
        if kind is bool:
            ok = isinstance(value, bool)
        elif kind in (int, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if ok and kind is int and not isinstance(value, int):
                ok = False
        else:
            ok = isinstance(value, kind)
        if not ok:
            raise ConfigError(
                f"parameter '{self.name}' = {value!r} has type {type(value).__name__}, expected {kind.__name__}"
                f"{self._allowed()}",
                self.name,
            )
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"parameter '{self.name}' = {value!r} is not allowed{self._allowed()}", self.name)
        if self.bounds is not None and kind in (int, float):
            lo, hi = self.bounds
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"parameter '{self.name}' = {value!r} is not finite{self._allowed()}", self.name)
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise ConfigError(f"parameter '{self.name}' = {value!r} is out of range{self._allowed()}", self.name)
        return value


class ParamGroup:
    """A reusable block of declared parameters (optimisation, mixing, data...) that configs compose::

        class OptimParams(ParamGroup):
            lr: float = Param(0.05, bounds=(1e-6, 10.0), log=True, doc="peak learning rate")

        class MyConfig(OptimParams, Config): ...

    Each parameter records the group's ``title`` (default: the class name without ``Params``), so forms and
    ``--help`` show it in its section. ``OptimParams.bind(cfg, lr=0.1)`` gives the group's validated values on
    their own (from any object that has them, e.g. a config, then overrides), for code that needs only them.
    """

    title: ClassVar[str] = ""

    @classmethod
    def group_params(cls) -> dict[str, Param]:
        """The parameters declared by this group (and the groups it derives from)."""
        out: dict[str, Param] = {}
        for klass in reversed(cls.__mro__):
            if issubclass(klass, ParamGroup) and not issubclass(klass, Config):
                out.update({k: v for k, v in vars(klass).items() if isinstance(v, Param)})
        return out

    @classmethod
    def bind(cls, source: Any = None, **values: Any) -> Any:
        """An instance of the group holding validated values: ``values``, else ``source``'s, else the defaults."""
        params = cls.group_params()
        unknown = sorted(set(values) - set(params))
        if unknown:
            raise ConfigError(f"unknown parameter {unknown[0]!r} for {cls.__name__}; known: {', '.join(params)}",
                              unknown[0])
        obj = object.__new__(cls)
        for name, param in params.items():
            value = values[name] if name in values else getattr(source, name, param.default)
            object.__setattr__(obj, name, param.validate(value))
        return obj

    @classmethod
    def with_defaults(cls, docs: dict[str, str] | None = None, **values: Any) -> type:
        """The same group with other defaults (and, optionally, docs) for one method::

            class LS4Config(OptimParams.with_defaults(lr=3e-3), LoopParams.with_defaults(steps=500), Config): ...

        Each new default is validated against the shared bounds, so a method cannot widen them silently."""
        params, docs = cls.group_params(), docs or {}
        unknown = sorted((set(values) | set(docs)) - set(params))
        if unknown:
            raise ConfigError(f"unknown parameter {unknown[0]!r} for {cls.__name__}; known: {', '.join(params)}",
                              unknown[0])
        ns: dict[str, Any] = {"title": cls.title or _group_title(cls)}
        for name in set(values) | set(docs):
            old = params[name]
            default = old.validate(values[name]) if name in values else old.default
            ns[name] = Param(**{**old.__dict__, "default": default, "doc": docs.get(name, old.doc)})
        return type(cls.__name__, (cls,), ns)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={getattr(self, k)!r}' for k in self.group_params())})"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if issubclass(cls, Config):
            return
        title = vars(cls).get("title") or _group_title(cls)
        for key, value in list(vars(cls).items()):
            if isinstance(value, Param):
                setattr(cls, key, Param(**{**value.__dict__, "name": key, "group": value.group or title}))


class Config:
    """Base class of every experiment's configuration (the engine's own parameters live here).

    Subclasses add :class:`Param` class attributes. Instances are immutable and validated.
    """

    _params: ClassVar[dict[str, Param]] = {}

    seed: int = Param(0, bounds=(0, 2**31 - 1), doc="random seed: same seed, config and machine give the same metrics")
    device: str = Param("auto", choices=("auto", "cpu", "cuda"), doc="where to train (auto: cuda when available)")
    amp: bool = Param(True, doc="bfloat16 autocast on CUDA (ignored on CPU)")
    checkpoint_every: int = Param(0, bounds=(0, None), unit="steps", doc="save a resumable checkpoint every N steps (0: off)")
    threads: int = Param(0, bounds=(0, 1024), unit="threads",
                         doc="CPU threads for torch (0: one for tracked models under 2M parameters, else torch's default)")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        params: dict[str, Param] = {}
        for klass in reversed(cls.__mro__):
            for key, value in vars(klass).items():
                if isinstance(value, Param):
                    group = value.group or ("engine" if klass is Config else "")
                    params[key] = value if (value.name, value.group) == (key, group) else _named(value, key, group)
        cls._params = params
        for key, value in params.items():
            setattr(cls, key, value)

    def __init__(self, **values: Any) -> None:
        params = type(self).params()
        unknown = sorted(set(values) - set(params))
        if unknown:
            raise ConfigError(
                f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for "
                f"{type(self).__name__}; known: {', '.join(params)}",
                unknown[0],
            )
        for key, param in params.items():
            object.__setattr__(self, key, param.validate(values.get(key, param.default)))
        self.check()

    def check(self) -> None:
        """Cross-parameter checks; override and raise :class:`ConfigError` naming the parameters."""

    @classmethod
    def params(cls) -> dict[str, Param]:
        return dict(cls._params)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("configs are immutable; use cfg.replace(...)")

    def replace(self, **values: Any) -> "Config":
        return type(self)(**{**self.to_dict(), **values})

    def to_dict(self) -> dict[str, Any]:
        """Plain values (multi-choice tuples as lists, so the dict round-trips through JSON)."""
        return {key: list(v) if isinstance(v, tuple) else v for key, v in
                ((key, getattr(self, key)) for key in type(self).params())}

    @classmethod
    def groups(cls) -> dict[str, list[str]]:
        """Parameter names by group title, in declaration order (``""``: the config's own, ``"engine"``: the base's)."""
        out: dict[str, list[str]] = {}
        for name, param in cls.params().items():
            out.setdefault(param.group, []).append(name)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any], strict: bool = True) -> "Config":
        if not strict:
            values = {k: v for k, v in values.items() if k in cls.params()}
        return cls(**values)

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return iter(self.to_dict().items())

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.to_dict() == self.to_dict()

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted((k, repr(v)) for k, v in self))))

    def __repr__(self) -> str:
        changed = {k: v for k, v in self if v != type(self).params()[k].default}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"


def _group_title(cls: type) -> str:
    return cls.__name__.removesuffix("Params") or cls.__name__


class OptimParams(ParamGroup):
    """The optimiser's step size and weight decay, shared by every method that trains (re-default per method)."""

    title = "optimiser"
    lr: float = Param(1e-3, bounds=(1e-7, 10.0), log=True, unit="lr", doc="peak learning rate")
    weight_decay: float = Param(0.0, bounds=(0.0, 1.0), step=1e-4, doc="weight decay")


class LoopParams(ParamGroup):
    """How long a training loop runs, how much each step sees and how often it is evaluated."""

    title = "loop"
    steps: int = Param(1000, bounds=(1, 10_000_000), unit="steps", doc="optimiser steps")
    batch_size: int = Param(64, bounds=(1, 65_536), unit="examples", doc="examples per step (global, split across ranks)")
    eval_every: int = Param(100, bounds=(1, 10_000_000), unit="steps", doc="evaluate every N steps")


def _named(param: Param, name: str, group: str = "") -> Param:
    return Param(**{**param.__dict__, "name": name, "group": group})


def parse_assignments(text: str) -> dict[str, Any]:
    """Parse a cell body of ``key = value`` lines (or YAML ``key: value``) into raw values."""
    import yaml  # lazy: only magics and CLI need it

    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if all("=" in ln and ":" not in ln.split("=", 1)[0] for ln in lines):
        out: dict[str, Any] = {}
        for ln in lines:
            key, value = ln.split("=", 1)
            out[key.strip()] = _scalar(yaml.safe_load(value.strip())) if value.strip() else ""
        return out
    loaded = yaml.safe_load(text) or {}
    if not isinstance(loaded, dict):
        raise ConfigError("the cell body must be 'key = value' lines or a YAML mapping")
    return {k: _scalar(v) for k, v in loaded.items()}


def _scalar(value: Any) -> Any:
    """YAML 1.1 reads ``1e-3`` as a string; read it as the number it is."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value
