"""Re-sampling a trained 1-D SDE-BNN without retraining: its predictive band with another number of paths or another
σ, its prior band (g = 0) from the same w(0), and the weight paths w(t) of prior and posterior.

Headless (no plotting): the views draw what these functions return, and a researcher can call them on a model from
``workbench.runs.load_model(run_id, "regression")``::

    model = runs.load_model(run_id, "regression")
    band = playground.band(model, samples=64, sigma=0.5)      # {"x", "models": {"sdebnn": {...}}, "stats": ...}
    paths = playground.weight_paths(model, weights=[3])       # prior and posterior paths of weight 3

Randomness: pass ``generator`` (in a run, ``ctx.rng(...)``), or ``seed`` for a fresh stream derived from it.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import torch

from workbench.core.context import derive_seed

from . import data as gapdata
from .model import SDEBNN
from .train import band_ratio, entropy, predict_regression


def _generator(generator: torch.Generator | None, seed: int, name: str) -> torch.Generator:
    """``generator``, or a fresh one derived from (seed, name) with the run context's formula."""
    return generator if generator is not None else torch.Generator().manual_seed(derive_seed(seed, f"playground/{name}"))


@contextlib.contextmanager
def with_sigma(model: SDEBNN, sigma: float | None) -> Iterator[SDEBNN]:
    """The model with diffusion ``sigma`` inside the block (``None``: as trained), restored after."""
    keep = model.sigma
    model.sigma = keep if sigma is None else float(sigma)
    try:
        yield model
    finally:
        model.sigma = keep


@contextlib.contextmanager
def as_prior(model: SDEBNN) -> Iterator[SDEBNN]:
    """The model with the posterior drift switched off (g = 0): the OU prior (P) from the trained w(0)."""
    keep = model.sde.drift
    model.sde.drift = lambda t, w: torch.zeros_like(w)
    try:
        yield model
    finally:
        model.sde.drift = keep


def band_stats(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> dict[str, float]:
    """Mean predictive std on the data ranges, in the gap and outside both (extrapolation), the gap/data ratio,
    and the RMSE of the mean against cos x on the data, for raw ``x`` (n,) or (n, 1)."""
    x = x.reshape(-1)
    on, gap = gapdata.region_masks(x)
    out = ~(on | gap)
    data = float(std[on].mean())
    stats = {"std_data": data, "std_gap": float(std[gap].mean()), "std_max": float(std.max()),
             "ratio": float(band_ratio(std, gap, on)) if data > 0 else float("nan"),
             "rmse_data": float((mean[on] - torch.cos(x[on])).pow(2).mean().sqrt())}
    if bool(out.any()):
        stats["std_outside"] = float(std[out].mean())
        stats["outside_ratio"] = stats["std_outside"] / data if data > 0 else float("nan")
    return stats


@torch.no_grad()
def band(model: torch.nn.Module, samples: int = 32, sigma: float | None = None, *, prior: bool = False,
         points: int = 200, generator: torch.Generator | None = None, seed: int = 0) -> dict[str, Any]:
    """The predictive band of a 1-D model over the plotted range: mean, std and a few sampled curves.

    ``sigma`` re-samples an SDE-BNN with another diffusion (0: the ODE limit of the same weights); ``prior``
    switches its drift off (the OU prior from the trained w(0)). Returns the band the views draw, with
    :func:`band_stats` under ``stats``."""
    if samples < 1:
        raise ValueError(f"samples = {samples} is out of range; allowed >= 1")
    gen = _generator(generator, seed, "band")
    grid = gapdata.grid(points)
    name = "sdebnn" if isinstance(model, SDEBNN) else type(model).__name__.lower()
    with contextlib.ExitStack() as stack:
        if isinstance(model, SDEBNN):
            stack.enter_context(with_sigma(model, sigma))
            if prior:
                stack.enter_context(as_prior(model))
        elif sigma is not None or prior:
            raise ValueError("sigma and prior re-sample an SDE-BNN only")
        mean, std, draws = predict_regression(model, gapdata.scale_x(grid), int(samples), gen)
        used = getattr(model, "sigma", None)
    trained = float(model.spec["sigma"]) if isinstance(model, SDEBNN) else None
    return {"x": grid.squeeze(1).tolist(), "gap": list(gapdata.GAP),
            "data_ranges": [list(r) for r in gapdata.DATA_RANGES],
            "models": {name: {"mean": mean.tolist(), "std": std.tolist(), "samples": draws[:8].tolist()}},
            "stats": {name: band_stats(grid, mean, std)}, "sigma": used, "trained_sigma": trained,
            "samples": int(samples), "prior": prior}


@torch.no_grad()
def weight_paths(model: SDEBNN, paths: int = 8, weights: Sequence[int] | None = None, k: int = 4,
                 sigma: float | None = None, generator: torch.Generator | None = None,
                 seed: int = 0) -> dict[str, Any]:
    """w(t) of the OU prior (g = 0) and of the posterior, from the same w(0) and the same Brownian motion, so
    they differ by the posterior drift only: of ``weights`` (indices into w), or of the ``k`` weights the
    posterior moves most (mean at t = 1). Arrays (paths, times, weights)."""
    gen = _generator(generator, seed, "paths")
    start = gen.get_state()
    with with_sigma(model, sigma):
        ts = torch.linspace(0, model.t1, 2 * model.steps + 1)
        noise = entropy(gen)
        post = model.weight_paths(ts, paths, entropy=noise, generator=gen)
        gen.set_state(start)
        noise = entropy(gen)  # the same draws again: the same w(0) and Brownian motion for the prior
        prior = model.weight_paths(ts, paths, prior=True, entropy=noise, generator=gen)
        used = model.sigma
    if weights is None:
        shift = (post[-1].mean(0) - prior[-1].mean(0)).abs()
        idx = torch.argsort(shift, descending=True)[:k].tolist()
    else:
        idx = [int(i) for i in weights]
        bad = [i for i in idx if not 0 <= i < model.dim]
        if bad:
            raise ValueError(f"weights = {bad} out of range; allowed 0..{model.dim - 1}")
    names = model.layout.names()
    return {"t": ts.tolist(), "index": idx, "names": [names[i] for i in idx], "sigma": used,
            "prior": prior[:, :, idx].permute(1, 0, 2).tolist(), "posterior": post[:, :, idx].permute(1, 0, 2).tolist()}
