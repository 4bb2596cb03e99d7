"""The one registry of experiments: a method registers under a short name; ``experiments()`` lists them."""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generic, TypeVar

from workbench.core.params import Config, ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from workbench.core.context import RunContext

C = TypeVar("C", bound=Config)


#: The scales every experiment can run at (``--scale``): its defaults, seconds, minutes on a CPU, the paper's.
SCALES = ("default", "smoke", "demo", "paper")

_REGISTRY: dict[str, "Experiment"] = {}
_loaded = False


@dataclass(frozen=True)
class Experiment(Generic[C]):
    """A registered experiment: declared config + ``run(cfg, ctx) -> summary``, typed by its config class.

    smoke: overrides that make it finish in seconds (tests, notebooks in smoke mode).
    demo: overrides for ``workbench demo`` (the quick default of the report: minutes on 2 CPU cores).
    paper: overrides that follow the paper's own protocol and scale (for a GPU); ``--scale paper``.
    key_metrics: shell-style patterns (``fnmatch``) of the metrics a report's curves show; empty shows all.
    distributed: the run is correct under ``torchrun`` (batches sharded, metrics reduced, one writer); when
        False the engine refuses a multi-process launch at once, saying ``distributed_note`` (what is missing).
    ddp_smoke: overrides of the smoke setting under which a 2-process run must match a 1-process run
        (e.g. a model without batch normalisation, whose statistics are per rank on CPU).
    preflight: ``preflight(cfg)`` checks what the run needs from outside (data files, datasets, models) before
        the run is created, raising :class:`~workbench.core.errors.SourceError` with one line saying what to do.
    """

    name: str
    config: type[C]
    run: Callable[[C, "RunContext"], Any]
    title: str = ""
    description: str = ""
    smoke: dict[str, Any] = field(default_factory=dict)
    demo: dict[str, Any] = field(default_factory=dict)
    paper: dict[str, Any] = field(default_factory=dict)
    key_metrics: tuple[str, ...] = ()
    distributed: bool = False
    distributed_note: str = ""
    ddp_smoke: dict[str, Any] = field(default_factory=dict)
    preflight: Callable[[C], None] | None = None

    def is_key_metric(self, name: str) -> bool:
        from fnmatch import fnmatchcase

        return not self.key_metrics or any(fnmatchcase(name, pat) for pat in self.key_metrics)

    def preset(self, scale: str) -> dict[str, Any]:
        """The overrides of a scale: ``default`` (none), ``smoke``, ``demo`` or ``paper``."""
        presets = {"default": {}, "smoke": self.smoke, "demo": self.demo, "paper": self.paper}
        if scale not in presets:
            raise ConfigError(f"parameter 'scale' = {scale!r} is not allowed; allowed: {', '.join(SCALES)}", "scale")
        return dict(presets[scale])

    def make_config(self, values: dict[str, Any] | Config | None = None, smoke: bool = False,
                    scale: str = "default") -> C:
        """Validated config from defaults, then the scale's (or smoke) overrides, then ``values``."""
        if isinstance(values, Config):  # an explicit config is used as it is (``smoke`` only labels the run)
            if type(values) is not self.config:
                raise ConfigError(f"{self.name}: expected a {self.config.__name__}, got {type(values).__name__}")
            return values
        merged = {**self.preset("smoke" if smoke else scale), **(values or {})}
        try:
            return self.config(**merged)
        except ConfigError as err:
            raise ConfigError(f"{self.name}: {err}", err.param) from None


def register(experiment: Experiment) -> Experiment:
    """Add ``experiment`` to the registry (re-registering the same name replaces it)."""
    _REGISTRY[experiment.name] = experiment
    return experiment


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in builtin_modules():  # a method that fails to import is an error, never skipped
        importlib.import_module(module)
    for ep in entry_points(group="workbench.experiments"):  # third-party methods
        ep.load()


_METHODS = "workbench.methods"


def builtin_modules() -> list[str]:
    """The modules that register the built-in methods: every ``workbench/methods/<name>/experiment.py``."""
    import workbench.methods as methods

    return [f"{methods.__name__}.{name}.experiment" for root in methods.__path__
            for name in sorted(p.parent.name for p in Path(root).glob("*/experiment.py"))]


def experiments() -> dict[str, Experiment]:
    """All registered experiments, by name."""
    _load()
    return dict(sorted(_REGISTRY.items()))


def get(name: str) -> Experiment:
    """The experiment registered under ``name`` (a clear error listing the known names otherwise). A built-in
    method whose folder is named ``name`` is imported alone (a process that runs one method does not import all)."""
    if name not in _REGISTRY and not _loaded and f"{_METHODS}.{name}.experiment" in builtin_modules():
        importlib.import_module(f"{_METHODS}.{name}.experiment")
    if name in _REGISTRY:
        return _REGISTRY[name]
    known = experiments()
    if name not in known:
        raise ConfigError(f"unknown experiment {name!r}; known: {', '.join(known) or '(none)'}", "method")
    return known[name]
