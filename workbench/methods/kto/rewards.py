"""Reward functions that decide whether a sampled completion is desirable (the desirable rate of an evaluation).

``load_reward(spec)``: ``"module:function"`` (a Python callable ``f(prompt, completion)`` returning a bool or a
number), or the directory of a Hugging Face reward model (sequence classification: its score). A numeric reward
counts as desirable when it is at least the threshold; a bool is the verdict itself.
"""
from __future__ import annotations

import importlib
import os
from typing import Callable, Sequence

from workbench.core.errors import ModelNotFound
from workbench.core.params import ConfigError

Reward = Callable[[str, str], "float | bool"]


def load_reward(spec: str, device: str = "cpu") -> Reward:
    """The reward ``spec`` names (see the module docstring); clear one-line errors otherwise."""
    if os.path.isdir(spec):
        return _reward_model(spec, device)
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise ConfigError(f"parameter 'reward' = {spec!r} must be 'module:function' (a callable over prompt and "
                          "completion) or the directory of a Hugging Face reward model", "reward")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"parameter 'reward' = {spec!r}: {type(err).__name__}: {err}", "reward") from None
    if not callable(fn):
        raise ConfigError(f"parameter 'reward' = {spec!r} is not callable", "reward")
    return fn


def _reward_model(path: str, device: str) -> Reward:
    import torch

    try:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(path).to(device).eval()
    except Exception as err:  # noqa: BLE001 - OSError, ValueError, ImportError: one line naming the model
        lines = str(err).strip().splitlines()
        raise ModelNotFound(f"reward model {path!r} cannot be loaded ({lines[0][:200] if lines else type(err).__name__}); "
                            "give a directory with a Hugging Face sequence-classification model") from err

    @torch.no_grad()
    def score(prompt: str, completion: str) -> float:
        enc = tokenizer(prompt + completion, return_tensors="pt", truncation=True).to(device)
        logits = model(**enc).logits[0]
        return float(logits[-1] - logits[0]) if logits.numel() > 1 else float(logits[0])

    return score


def desirable(rewards: Sequence[float | bool], threshold: float) -> list[bool]:
    """A bool reward is the verdict; a number is desirable when ≥ ``threshold``."""
    return [bool(r) if isinstance(r, bool) else float(r) >= threshold for r in rewards]
