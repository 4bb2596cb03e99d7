"""Saved models, one format for every method: what ``ctx.save_model`` writes and ``runs.load_model`` reads.

A saved model is a checkpoint artifact ``model/<name>`` holding::

    {"format": FORMAT, "build": "package.module:callable", "spec": {...}, "state": module.state_dict()}

``build(**spec)`` rebuilds the module (a class or a factory function importable without the notebook layer);
its ``state_dict`` is then loaded strictly. ``spec`` holds plain values (numbers, strings, lists, dicts), so the
file loads with ``torch.load(weights_only=True)`` and never runs pickled code.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

from torch import nn

FORMAT = "workbench.model/1"
PREFIX = "model/"


def qualified_name(build: Callable[..., Any]) -> str:
    """``module:qualname`` of a class or function defined at a module's top level (or nested in a class)."""
    name = getattr(build, "__qualname__", "")
    if not name or "<locals>" in name or "<lambda>" in name:
        raise ValueError(f"save_model: build={build!r} must be a class or function defined at module level, "
                         "so another process can import it")
    return f"{build.__module__}:{name}"


def pack(model: nn.Module, spec: dict[str, Any], build: Callable[..., nn.Module] | None = None) -> dict[str, Any]:
    """The saved form of ``model``; ``build(**spec)`` (default: ``type(model)(**spec)``) must rebuild it."""
    if not isinstance(spec, dict):
        raise TypeError(f"save_model: spec must be a dict of constructor arguments, got {type(spec).__name__}")
    target = model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model  # DDP
    state = {k: v.detach().cpu().clone() for k, v in target.state_dict().items()}
    return {"format": FORMAT, "build": qualified_name(build or type(target)), "spec": _plain(spec), "state": state}


def unpack(payload: dict[str, Any]) -> nn.Module:
    """Rebuild a module from :func:`pack`'s form (in eval mode, on the CPU)."""
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if fmt != FORMAT:
        raise ValueError(f"not a saved model of format {FORMAT!r} (found {fmt!r}); it was saved by another version")
    module_name, _, qualname = payload["build"].partition(":")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    model = target(**payload["spec"])
    model.load_state_dict(payload["state"])
    return model.eval()


def _plain(value: Any) -> Any:
    """Check a spec holds only what ``weights_only`` loading accepts (and JSON can show)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"save_model: spec values must be numbers, strings, lists or dicts, got {type(value).__name__}")
