"""Helpers over declared parameters shared by the notebook form and the Panel app (no UI imports)."""
from __future__ import annotations

from workbench.params import Config, Param


def engine_names() -> set[str]:
    """The engine's own parameters, declared on the base :class:`Config` (seed, device, amp, ...)."""
    return {k for k, v in vars(Config).items() if isinstance(v, Param)}


def ordered(params: dict[str, Param]) -> list[str]:
    """The experiment's own parameters first (in declaration order), then the engine's."""
    base = engine_names()
    return [n for n in params if n not in base] + [n for n in params if n in base]
