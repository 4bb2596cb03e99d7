"""Training and prediction helpers shared by the experiment's tasks: seeded noise per step, predictions with S
sampled paths, a checkpointable record of plain results, and the per-sample gradient variance of the estimators."""
from __future__ import annotations

import math
import zlib
from typing import Any, Callable, Iterable

import torch
from torch import nn

from .losses import predictive_log_probs, predictive_moments


def step_entropy(seed: int, name: str, step: int) -> int:
    """A seed for the noise of one step of one model: a function of (run seed, name, step) only, so that a resumed
    run draws the same Brownian motions without any generator state."""
    return (seed * 1_000_003 + zlib.crc32(name.encode()) * 7_919 + step) % (2**62)


def step_generator(seed: int, name: str, step: int) -> torch.Generator:
    """A fresh torch.Generator seeded by :func:`step_entropy`."""
    return torch.Generator().manual_seed(step_entropy(seed, name, step))


class Record:
    """Plain results accumulated during a run (lists of rows), checkpointed with the run (``ctx.track``)."""

    def __init__(self) -> None:
        self.data: dict[str, list[dict[str, Any]]] = {}

    def add(self, key: str, row: dict[str, Any]) -> None:
        self.data.setdefault(key, []).append(row)

    def rows(self, key: str) -> list[dict[str, Any]]:
        return list(self.data.get(key, []))

    def state_dict(self) -> dict[str, Any]:
        return {"data": {k: [dict(r) for r in v] for k, v in self.data.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.data = {k: [dict(r) for r in v] for k, v in state["data"].items()}


def sample(model: nn.Module, x: torch.Tensor, samples: int, seed: int, name: str) -> torch.Tensor:
    """Outputs of ``samples`` paths (S, B, out), noise from (seed, name); SDE-BNN, BBB and deterministic nets alike."""
    out, _ = model(x, samples, entropy=step_entropy(seed, name, 0), generator=step_generator(seed, name, 0))
    return out


@torch.no_grad()
def predict_log_probs(model: nn.Module, x: torch.Tensor, samples: int, seed: int, name: str,
                      batch_size: int = 512) -> torch.Tensor:
    """log p(y | x) of the Monte Carlo predictive (N, K), in batches (each batch its own noise)."""
    was = model.training
    model.eval()
    try:
        parts = [predictive_log_probs(sample(model, x[i : i + batch_size], samples, seed, f"{name}/{i}"))
                 for i in range(0, len(x), batch_size)]
    finally:
        model.train(was)
    return torch.cat(parts)


@torch.no_grad()
def predict_regression(model: nn.Module, x: torch.Tensor, samples: int, seed: int,
                       name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Predictive mean and standard deviation over sampled paths (B,), (B,), and the samples (S, B)."""
    out = sample(model, x, samples, seed, name)
    mean, std = predictive_moments(out)
    return mean, std, out.squeeze(-1)


def gradient_variance(model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                      x: torch.Tensor, estimators: Iterable[str], samples: int, seed: int, name: str,
                      params: Iterable[nn.Parameter]) -> dict[str, dict[str, float]]:
    """Per-sample gradients of the loss (one sampled path each) for every KL estimator, the same Brownian paths for
    every estimator (paired). Returns per estimator the total variance tr Cov[∇] and ‖E ∇‖² over ``params``."""
    params = list(params)
    keep = model.estimator
    out: dict[str, dict[str, float]] = {}
    try:
        for est in estimators:
            model.estimator = est
            grads = []
            for m in range(samples):
                model.zero_grad(set_to_none=True)
                pred, kl = model(x, 1, entropy=step_entropy(seed, name, m))
                loss_fn(pred, kl).backward()
                grads.append(torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten()
                                        for p in params]))
            g = torch.stack(grads).double()
            out[est] = {"variance": float(g.var(0, unbiased=True).sum()) if samples > 1 else math.nan,
                        "mean_sq": float(g.mean(0).pow(2).sum())}
    finally:
        model.estimator = keep
        model.zero_grad(set_to_none=True)
    return out
