"""Prediction and gradient-variance helpers shared by the experiment and the playground.

Randomness comes in as a ``torch.Generator`` (in a run: ``ctx.rng(name, step)``, fresh and stateless): it seeds the
Brownian motion of the weight SDE (``entropy``) and draws the Gaussian w(0) or the Bayes-by-backprop weights, so a
resumed run draws exactly what an uninterrupted one drew.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import torch
from torch import nn

from workbench.core.context import Shard

from .losses import predictive_log_probs, predictive_moments


def entropy(generator: torch.Generator) -> int:
    """A seed for ``torchsde.BrownianInterval`` drawn from ``generator`` (the interval takes an integer)."""
    return int(torch.randint(0, 2**62, (), generator=generator))


def sample(model: nn.Module, x: torch.Tensor, samples: int, generator: torch.Generator) -> tuple[torch.Tensor,
                                                                                                  torch.Tensor]:
    """``model(x, samples)`` with its noise from ``generator``: outputs (S, B, out) and KL (S,); SDE-BNN,
    Bayes-by-backprop and the deterministic nets alike."""
    return model(x, samples, entropy=entropy(generator), generator=generator)


@torch.no_grad()
def predict_log_probs(model: nn.Module, x: torch.Tensor, samples: int, generator: torch.Generator,
                      batch_size: int = 512, shard: Callable[[int], Shard] | None = None) -> torch.Tensor:
    """log p(y | x) of the Monte Carlo predictive (N, K), in batches (each batch its own paths).

    ``shard`` (under torchrun, ``ctx.shard``): each rank solves its rows of every batch and the rows are gathered.
    The paths are shared by the batch and their draws do not depend on its size (the Brownian motion has the
    weights' shape), so every rank draws the batch's paths and the result is the one-process predictive."""
    was = model.training
    model.eval()
    parts = []
    try:
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size]
            if shard is None:
                parts.append(predictive_log_probs(sample(model, xb, samples, generator)[0]))
            else:
                sh = shard(len(xb))
                parts.append(sh.gather(predictive_log_probs(sample(model, sh.take(xb), samples, generator)[0])))
    finally:
        model.train(was)
    return torch.cat(parts)


@torch.no_grad()
def predict_regression(model: nn.Module, x: torch.Tensor, samples: int,
                       generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Predictive mean and standard deviation over sampled paths (B,), (B,), and the samples (S, B)."""
    out = sample(model, x, samples, generator)[0]
    mean, std = predictive_moments(out)
    return mean, std, out.squeeze(-1)


def band_ratio(std: torch.Tensor, inside: torch.Tensor, outside: torch.Tensor) -> torch.Tensor:
    """Mean predictive std over the points ``inside`` (the gap) over that over ``outside`` (the data), per row of
    ``std`` (..., points): the band-widening statistic of the regression claims."""
    return std[..., inside].mean(-1) / std[..., outside].mean(-1)


def gradient_variance(model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                      x: torch.Tensor, estimators: Iterable[str], samples: int, generator: torch.Generator,
                      params: Iterable[nn.Parameter]) -> dict[str, dict[str, float]]:
    """Per-sample gradients of the loss (one sampled path each) for every KL estimator, the same Brownian paths for
    every estimator (paired). Returns per estimator the total variance tr Cov[∇] and ‖E ∇‖² over ``params``."""
    params = list(params)
    start = generator.get_state()
    keep = model.estimator
    out: dict[str, dict[str, float]] = {}
    try:
        for est in estimators:
            model.estimator = est
            generator.set_state(start)  # every estimator replays the same paths (and Gaussian w(0) draws)
            grads = []
            for _ in range(samples):
                model.zero_grad(set_to_none=True)
                pred, kl = sample(model, x, 1, generator)
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
