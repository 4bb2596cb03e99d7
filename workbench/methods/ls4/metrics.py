"""Scores of generated time series (LS4 §5; the marginal/classification/prediction scores follow the LS4 reference
evaluation), forecasting errors and the sharp-transition statistics.

- :func:`marginal_score`: mean absolute difference of the 50-bin value densities of real and generated data,
  per channel (bins over the real range), averaged over channels; lower is better, 0 for identical data.
- :func:`classification_score`: the held-out cross-entropy of a one-layer S4D classifier trained to tell real from
  generated series; higher is better (ln 2 ≈ 0.693 when it cannot tell them apart). Per held-out example:
  :func:`classification_losses` (what a bootstrap resamples).
- :func:`prediction_score`: a one-layer S4D forecaster trained on generated series to predict the next value,
  tested on real series (MSE over the last ``horizon`` steps); lower is better. Per real series:
  :func:`prediction_errors`.
- The score models are initialised inside an ``init`` context (``ctx.seeded(name)`` in a run), never by seeding
  torch's global generator here.
- :func:`masked_mse`, :func:`crps` (empirical CRPS of a sample ensemble), :func:`jump_stats` (step-to-step jumps).
- Data parallelism (``dp``: the run context under torchrun): the score models' minibatches are drawn for the global
  batch on every rank and sharded, gradients averaged; their held-out predictions are sharded and gathered. The
  same numbers as one process, to floating-point rounding.
"""
from __future__ import annotations

import contextlib
from typing import Callable, ContextManager, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.core.context import Shard

from .layers import S4Block


class DataParallel(Protocol):
    """What the score models need to train data-parallel (:class:`~workbench.core.context.RunContext` has it)."""

    world_size: int

    def shard(self, total: int) -> Shard: ...

    def average_gradients(self, *modules: nn.Module) -> None: ...


def _sharded(dp: DataParallel | None, total: int) -> Shard | None:
    """This rank's shard of ``total`` rows; None (every rank computes all of them) in one process or when there
    are fewer rows than ranks."""
    if dp is None or dp.world_size == 1 or total < dp.world_size:
        return None
    return dp.shard(total)


def rowwise(fn: Callable[[Tensor], Tensor], x: Tensor, dp: DataParallel | None = None) -> Tensor:
    """``fn`` (independent per row) of ``x``: each rank computes its shard of the rows, gathered in order."""
    shard = _sharded(dp, len(x))
    return fn(x) if shard is None else shard.gather(fn(shard.take(x)))


def _np(x: Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)


def marginal_score(real: Tensor | np.ndarray, generated: Tensor | np.ndarray, bins: int = 50,
                   mask: Tensor | np.ndarray | None = None) -> float:
    """(1/C) Σ_c (1/bins) Σ_b |p̂_real,c(b) − p̂_gen,c(b)|, densities on ``bins`` equal bins spanning the real
    values of channel c (generated values outside that range count in the normaliser, not in any bin). real, generated:
    (n, L, C); ``mask`` (of real) drops missing values."""
    r, g = _np(real).astype(np.float64), _np(generated).astype(np.float64)
    m = None if mask is None else _np(mask).astype(bool)
    scores = []
    for c in range(r.shape[-1]):
        rv = r[..., c][m[..., c]] if m is not None else r[..., c].ravel()
        gv = g[..., c].ravel()
        lo, hi = float(rv.min()), float(rv.max())
        if hi <= lo:
            hi = lo + 1e-6
        width = (hi - lo) / bins
        dr = np.histogram(rv, bins=bins, range=(lo, hi))[0] / (len(rv) * width)
        dg = np.histogram(gv, bins=bins, range=(lo, hi))[0] / (len(gv) * width)
        scores.append(float(np.mean(np.abs(dr - dg))))
    return float(np.mean(scores))


class S4Head(nn.Module):
    """One S4D block between a linear input and a linear output: the evaluation model (classifier/forecaster)."""

    def __init__(self, d_in: int, d_out: int, hidden: int = 16, state: int = 16, pool: bool = False):
        super().__init__()
        self.inp = nn.Linear(d_in, hidden)
        self.block = S4Block(hidden, state, "s4d")
        self.out = nn.Linear(hidden, d_out)
        self.pool = pool

    def forward(self, x: Tensor) -> Tensor:
        h = self.block(self.inp(x))
        return self.out(h.mean(1) if self.pool else h)


def _fit(model: nn.Module, loss_fn, n: int, steps: int, batch: int, lr: float, generator: torch.Generator,
         dp: DataParallel | None = None) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    with torch.enable_grad():
        _loop(model, opt, loss_fn, n, steps, batch, generator, dp)


def _loop(model: nn.Module, opt: torch.optim.Optimizer, loss_fn, n: int, steps: int, batch: int,
          generator: torch.Generator, dp: DataParallel | None = None) -> None:
    """``steps`` Adam steps on minibatches of ``min(batch, n)`` indices drawn with replacement; ``loss_fn(idx)`` is
    the mean over rows. Under ``dp`` each rank takes its rows of the global minibatch, its loss weighted by its
    share of the rows (× ranks: the gradients are averaged)."""
    for _ in range(steps):
        idx = torch.randint(0, n, (min(batch, n),), generator=generator)
        shard = _sharded(dp, len(idx))
        opt.zero_grad(set_to_none=True)
        if shard is None:
            loss_fn(idx).backward()
        else:
            mine = shard.take(idx)
            (loss_fn(mine) * (len(mine) * shard.world_size / len(idx))).backward()
            dp.average_gradients(model)
        opt.step()


def _head(d_in: int, d_out: int, hidden: int, pool: bool, init: ContextManager | None) -> S4Head:
    """The evaluation model, initialised inside ``init`` (e.g. ``ctx.seeded(name)``; None: torch's global RNG)."""
    with init if init is not None else contextlib.nullcontext():
        return S4Head(d_in, d_out, hidden, hidden, pool=pool)


def classification_losses(real: Tensor, generated: Tensor, generator: torch.Generator, steps: int = 200,
                          batch: int = 64, lr: float = 1e-2, hidden: int = 16, test_fraction: float = 0.2,
                          init: ContextManager | None = None, dp: DataParallel | None = None) -> Tensor:
    """Per-example held-out binary cross-entropy of a one-layer S4D classifier (generated = 1, real = 0), trained
    for ``steps`` Adam steps on a shuffled 80 % of an equal number of each (the split drawn from ``generator``,
    the classifier initialised inside ``init``). The same generator state and ``init`` give every generator under
    comparison the same split and the same initial classifier (common random numbers). ``dp``: data-parallel."""
    n = min(len(real), len(generated))
    X = torch.cat([generated[:n], real[:n]]).float().cpu()
    Y = torch.cat([torch.ones(n), torch.zeros(n)])
    perm = torch.randperm(2 * n, generator=generator)
    cut = max(1, int(round((1 - test_fraction) * 2 * n)))
    tr, te = perm[:cut], perm[cut:] if cut < 2 * n else perm[:1]
    clf = _head(X.shape[-1], 1, hidden, True, init)
    _fit(clf, lambda i: F.binary_cross_entropy_with_logits(clf(X[tr[i]])[:, 0], Y[tr[i]]), len(tr), steps, batch,
         lr, generator, dp)
    with torch.no_grad():
        logits = rowwise(lambda x: clf(x)[:, 0], X[te], dp)
        return F.binary_cross_entropy_with_logits(logits, Y[te], reduction="none").double()


def classification_score(real: Tensor, generated: Tensor, generator: torch.Generator, steps: int = 200,
                         batch: int = 64, lr: float = 1e-2, hidden: int = 16, test_fraction: float = 0.2,
                         init: ContextManager | None = None) -> float:
    """The mean of :func:`classification_losses`: higher is better (ln 2 ≈ 0.693: real and generated cannot be
    told apart)."""
    return float(classification_losses(real, generated, generator, steps, batch, lr, hidden, test_fraction,
                                       init).mean())


def prediction_errors(real: Tensor, generated: Tensor, generator: torch.Generator, horizon: int = 10,
                      steps: int = 200, batch: int = 64, lr: float = 1e-2, hidden: int = 16,
                      mask: Tensor | None = None, init: ContextManager | None = None,
                      dp: DataParallel | None = None) -> Tensor:
    """Train-on-generated, test-on-real (per real series): a one-layer S4D forecaster predicts x_{t+1} from x_≤t,
    trained on the generated series (squared error on the last ``horizon`` steps), tested on each real series
    (mean squared error over its observed entries in those steps; ``mask`` marks them, NaN if none). ``dp``:
    data-parallel."""
    G, R = generated.float().cpu(), real.float().cpu()
    h = max(1, min(horizon, G.shape[1] - 1))
    net = _head(G.shape[-1], G.shape[-1], hidden, False, init)

    def sq(x: Tensor) -> Tensor:
        return (net(x[:, :-1])[:, -h:] - x[:, 1:][:, -h:]) ** 2

    _fit(net, lambda i: sq(G[i]).mean(), len(G), steps, batch, lr, generator, dp)
    with torch.no_grad():
        err = rowwise(sq, R, dp).double()
    m = torch.ones_like(err) if mask is None else mask[:, 1:][:, -h:].to(err.dtype).cpu()
    count = m.sum((1, 2))
    return torch.where(count > 0, (err * m).sum((1, 2)) / count.clamp(min=1), torch.full_like(count, float("nan")))


def prediction_score(real: Tensor, generated: Tensor, generator: torch.Generator, horizon: int = 10,
                     steps: int = 200, batch: int = 64, lr: float = 1e-2, hidden: int = 16,
                     mask: Tensor | None = None, init: ContextManager | None = None) -> float:
    """The mean of :func:`prediction_errors` over the real series that have an observed target: lower is
    better."""
    err = prediction_errors(real, generated, generator, horizon, steps, batch, lr, hidden, mask, init)
    return float(err[torch.isfinite(err)].mean())


def hide_missing(generated: Tensor, mask: Tensor) -> Tensor:
    """Generated series i with the entries hidden (set to 0, as the data stores them) where real series i is
    missing, so a real-vs-generated classifier cannot tell them apart by their gaps alone."""
    n = min(len(generated), len(mask))
    out = generated.clone()
    out[:n] = torch.where(mask[:n].bool().to(out.device), out[:n], torch.zeros((), dtype=out.dtype))
    return out


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> float:
    """Mean of (pred − target)² over the entries where ``mask`` is True (all if None)."""
    err = (pred - target) ** 2
    if mask is None:
        return float(err.mean())
    m = mask.bool()
    return float(err[m].mean()) if bool(m.any()) else float("nan")


def crps(samples: Tensor, target: Tensor, mask: Tensor | None = None) -> float:
    """Empirical CRPS of an ensemble, averaged over entries: E|X − y| − ½ E|X − X'| with X, X' the S samples
    (samples: (S, ...), target: (...)); for one sample it is the absolute error; lower is better."""
    S = samples.shape[0]
    first = (samples - target[None]).abs().mean(0)
    second = (samples[:, None] - samples[None, :]).abs().sum((0, 1)) / (2 * S * S)
    score = first - second
    if mask is None:
        return float(score.mean())
    return float(score[mask.bool()].mean())


def jump_stats(x: Tensor | np.ndarray, threshold: float) -> dict[str, float]:
    """Step-to-step jumps |x_{t+1} − x_t| (all channels pooled): the share above ``threshold`` (sharp
    transitions), the 99th percentile and the mean."""
    d = np.abs(np.diff(_np(x).astype(np.float64), axis=1)).ravel()
    return {"sharp_rate": float(np.mean(d > threshold)), "p99": float(np.quantile(d, 0.99)),
            "mean": float(d.mean())}


def jump_distance(real: Tensor | np.ndarray, generated: Tensor | np.ndarray) -> float:
    """1-Wasserstein distance between the distributions of step-to-step jumps |Δx| of real and generated series."""
    from scipy.stats import wasserstein_distance

    dr = np.abs(np.diff(_np(real).astype(np.float64), axis=1)).ravel()
    dg = np.abs(np.diff(_np(generated).astype(np.float64), axis=1)).ravel()
    return float(wasserstein_distance(dr, dg))


def jump_histogram(x: Tensor | np.ndarray, edges: np.ndarray) -> list[float]:
    """Share of step-to-step jumps |Δx| in each bin of ``edges`` (for the jump view)."""
    d = np.abs(np.diff(_np(x).astype(np.float64), axis=1)).ravel()
    counts = np.histogram(np.clip(d, edges[0], edges[-1]), bins=edges)[0]
    return (counts / max(len(d), 1)).tolist()


