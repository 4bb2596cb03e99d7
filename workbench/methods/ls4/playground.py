"""Re-sampling a trained model, headless: what the sample explorer draws, usable from plain Python.

A run saves every trained model (``ctx.save_model``) and, beside it, the real series it was shown
(``samples/<method>``: ``real``, ``real_mask``, ``prefix``, ``step``). From any Python process::

    from workbench import runs
    from workbench.methods.ls4 import resample

    model = runs.load_model(run_id, "ls4")
    shown = runs.artifact(run_id, "samples/ls4")
    draw = resample(model, shown["real"], shown["real_mask"], n=8, generator=3, temperature=0.5, prefix=20)

Unconditional draws follow the prior p(z_t | z_<t) and the decoder in recurrent step mode (LS4 §3, generation);
conditional draws encode an observed prefix, step the prior and the decoder through it and continue (the
extrapolation of LS4 §5.2). Nothing is trained and nothing is stored.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn


def _generator(generator: torch.Generator | int) -> torch.Generator:
    """A generator as given, or a fresh one seeded with the integer the user chose (a slider's seed)."""
    if isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, bool) or not isinstance(generator, int) or generator < 0:
        raise ValueError(f"generator must be a torch.Generator or a seed ≥ 0, got {generator!r}")
    return torch.Generator().manual_seed(generator)


@torch.no_grad()
def sample_series(model: nn.Module, n: int = 8, horizon: int = 64, generator: torch.Generator | int = 0,
                  temperature: float = 1.0) -> dict[str, np.ndarray]:
    """``n`` new series of ``horizon`` steps from the prior at ``temperature`` (its scale multiplied; 0 follows the
    prior means): ``x`` (n, horizon, C) and the latents ``z``."""
    _check(n=n, horizon=horizon, temperature=temperature)
    model.eval()
    out = model.sample(n, horizon, _generator(generator), temperature)
    return {"x": out["x"].cpu().numpy(), "z": out["z"].cpu().numpy()}


@torch.no_grad()
def continue_series(model: nn.Module, observed: Any, mask: Any = None, horizon: int = 32,
                    generator: torch.Generator | int = 0, temperature: float = 1.0,
                    n_samples: int = 1) -> dict[str, np.ndarray]:
    """Continuations of observed prefixes ``observed`` (B, P, C) (``mask``: False where missing): ``x``
    (n_samples, B, horizon, C)."""
    _check(horizon=horizon, temperature=temperature, n=n_samples)
    ref = next(model.parameters())
    obs = torch.as_tensor(np.asarray(observed, dtype=np.float64)).to(ref)
    m = None if mask is None else torch.as_tensor(np.asarray(mask, dtype=bool)).to(ref.device)
    if obs.dim() != 3 or obs.shape[1] < 1:
        raise ValueError(f"observed must be (series, steps ≥ 1, channels), got shape {tuple(obs.shape)}")
    model.eval()
    out = model.extrapolate(obs, m, horizon, _generator(generator), temperature, n_samples)
    return {"x": out["x"].cpu().numpy()}


def resample(model: nn.Module, real: Any, real_mask: Any = None, *, n: int = 8, generator: torch.Generator | int = 0,
             temperature: float = 1.0, horizon: int | None = None, prefix: int = 0) -> dict[str, Any]:
    """The sample explorer's draw: ``n`` series of ``horizon`` steps (default: the length of ``real``) at prior
    ``temperature``; with ``prefix > 0`` each continues the first ``prefix`` steps of a real series (cycling
    through ``real``). Returns ``x`` (n, horizon, C), ``observed`` (n, prefix, C) or None, ``prefix``, ``real``."""
    real_t = np.asarray(real, dtype=np.float32)
    if real_t.ndim != 3:
        raise ValueError(f"real must be (series, steps, channels), got shape {real_t.shape}")
    mask_t = np.ones_like(real_t, dtype=bool) if real_mask is None else np.asarray(real_mask, dtype=bool)
    L = real_t.shape[1]
    horizon = int(horizon or L)
    if not 0 <= prefix < L:
        raise ValueError(f"prefix = {prefix}: allowed range [0, {L - 1}] (the stored series have {L} steps)")
    if prefix > 0:
        idx = np.arange(n) % len(real_t)
        obs, m = real_t[idx, :prefix], mask_t[idx, :prefix]
        x = continue_series(model, obs, m, horizon, generator, temperature)["x"][0]
        return {"observed": obs, "x": x, "prefix": prefix, "real": real_t}
    return {"observed": None, "x": sample_series(model, n, horizon, generator, temperature)["x"], "prefix": 0,
            "real": real_t}


def _check(n: int | None = None, horizon: int | None = None, temperature: float | None = None) -> None:
    if n is not None and n < 1:
        raise ValueError(f"n = {n}: draw at least one series")
    if horizon is not None and horizon < 1:
        raise ValueError(f"horizon = {horizon}: allowed range [1, inf)")
    if temperature is not None and not temperature >= 0:
        raise ValueError(f"temperature = {temperature}: allowed range [0, inf)")
