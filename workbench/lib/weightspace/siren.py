"""SIRENs (Sitzmann et al. 2020) fitted to images in batches: the implicit neural representations of task (b).

A SIREN maps a pixel coordinate x ∈ [-1, 1]² to the pixel value(s):

    h_1 = sin(ω₀ (W_0 x + b_0)),   h_2 = sin(ω₀ (W_1 h_1 + b_1)),   f(x) = W_2 h_2 + b_2        (SIREN §3)

with 2 → 32 → 32 → channels and ω₀ = 30. Initialisation (SIREN §3.2): W_0 ~ U(-1/n_in, 1/n_in), later layers
W ~ U(-√(6/n)/ω₀, √(6/n)/ω₀), biases U(-1/√n, 1/√n) (PyTorch's default). Every image starts from the *same*
initial weights (shared initialisation, as the NFT paper's INR data sets do), so the fitted weights of
different images stay comparable; :func:`fit_sirens` fits a whole batch at once with Adam on the stacked
parameters. Adam acts elementwise and the loss is a sum of per-image losses, so fitting a batch gives exactly
the SIRENs that fitting each image alone would.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

from .functional import batched_mlp
from .space import WeightSpace
from .spec import NetworkSpec

OMEGA_0 = 30.0


class Sine(nn.Module):
    """sin(ω₀ · x), the SIREN activation (applied to the pre-activation W h + b)."""

    def __init__(self, omega: float = OMEGA_0) -> None:
        super().__init__()
        self.omega = float(omega)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(self.omega * x)

    def extra_repr(self) -> str:
        return f"omega={self.omega:g}"


def siren_spec(channels: int = 1, hidden: int = 32, depth: int = 2) -> NetworkSpec:
    """2 → hidden (× depth) → channels."""
    return NetworkSpec((2,) + (hidden,) * depth + (channels,))


def siren_init(spec: NetworkSpec, generator: torch.Generator | None = None, omega: float = OMEGA_0,
               dtype: torch.dtype = torch.float32) -> WeightSpace:
    """One SIREN's initial weights (module docstring), a batch of one."""
    weights, biases = [], []
    for i in range(spec.num_layers):
        rows, cols = spec.weight_shape(i)
        bound = 1.0 / cols if i == 0 else math.sqrt(6.0 / cols) / omega
        w = (torch.rand(rows, cols, generator=generator, dtype=torch.float64) * 2 - 1) * bound
        b = (torch.rand(rows, generator=generator, dtype=torch.float64) * 2 - 1) / math.sqrt(cols)
        weights.append(w.to(dtype)[None, None])
        biases.append(b.to(dtype)[None, None])
    return WeightSpace(tuple(weights), tuple(biases))


def siren_module(spec: NetworkSpec, omega: float = OMEGA_0) -> nn.Sequential:
    """An ``nn.Sequential`` of the SIREN architecture (use with ``WeightSpace.to_mlp(Sine(ω))`` or
    ``WeightSpace.functional_call``)."""
    layers: list[nn.Module] = []
    for i in range(spec.num_layers):
        rows, cols = spec.weight_shape(i)
        layers.append(nn.Linear(cols, rows))
        if i < spec.num_layers - 1:
            layers.append(Sine(omega))
    return nn.Sequential(*layers)


def coordinate_grid(height: int, width: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """(height·width, 2) pixel centres' coordinates in [-1, 1]², row-major (y, x)."""
    ys = torch.linspace(-1, 1, height, dtype=dtype)
    xs = torch.linspace(-1, 1, width, dtype=dtype)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([yy, xx], dim=-1).reshape(-1, 2)


def render(ws: WeightSpace | tuple, coords: Tensor, omega: float = OMEGA_0) -> Tensor:
    """Outputs (B, N, channels) of a batch of SIRENs at ``coords`` (N, 2) or (B, N, 2) (module docstring)."""
    weights, biases = _params(ws)
    return batched_mlp(weights, biases, coords, lambda h: torch.sin(omega * h))


def render_images(ws: WeightSpace, height: int, width: int, omega: float = OMEGA_0) -> Tensor:
    """(B, channels, height, width) images in [0, 1] rendered by a batch of SIRENs."""
    out = render(ws, coordinate_grid(height, width, ws.dtype).to(ws.device), omega)
    return ((out + 1) / 2).clamp(0, 1).permute(0, 2, 1).reshape(ws.batch_size, -1, height, width)


def _params(ws: WeightSpace | tuple) -> tuple[list[Tensor], list[Tensor]]:
    if isinstance(ws, WeightSpace):
        return [w[:, 0] for w in ws.weights], [b[:, 0] for b in ws.biases]
    return list(ws[0]), list(ws[1])


def image_targets(images: Tensor) -> Tensor:
    """Images (N, C, H, W) in [0, 1] → SIREN targets (N, H·W, C) in [-1, 1]."""
    n, c, h, w = images.shape
    return (images * 2 - 1).reshape(n, c, h * w).permute(0, 2, 1)


def fit_sirens(images: Tensor, init: WeightSpace, steps: int, lr: float = 1e-3, chunk: int = 512,
               omega: float = OMEGA_0, callback: Callable[[int, Tensor], None] | None = None
               ) -> tuple[WeightSpace, Tensor]:
    """Fit one SIREN per image (N, C, H, W) in [0, 1], every one from the shared ``init`` (a batch of one).

    Minimises Σ_images mean_pixels (f(x) - y)² with Adam on the stacked parameters, ``chunk`` images at a
    time. Returns the fitted weights (N networks) and each image's final mean squared error (on [-1, 1]).
    ``callback(step, per-image loss)`` sees the first chunk's losses."""
    if init.batch_size != 1:
        raise ValueError("fit_sirens: init must hold one network (the shared initialisation)")
    n, c, h, w = images.shape
    coords = coordinate_grid(h, w, init.dtype).to(init.device)
    targets = image_targets(images.to(init.dtype).to(init.device))
    fitted, losses = [], []
    for start in range(0, n, chunk):
        y = targets[start:start + chunk]
        b = y.shape[0]
        params = [p[:, 0].expand(b, *p.shape[2:]).clone().requires_grad_(True) for p in init.weights + init.biases]
        opt = torch.optim.Adam(params, lr=lr)
        L = init.num_layers
        for step in range(steps):
            out = render((params[:L], params[L:]), coords, omega)
            per_image = ((out - y) ** 2).mean(dim=(1, 2))
            opt.zero_grad(set_to_none=True)
            per_image.sum().backward()
            opt.step()
            if callback is not None and start == 0:
                callback(step, per_image.detach())
        with torch.no_grad():
            out = render((params[:L], params[L:]), coords, omega)
            losses.append(((out - y) ** 2).mean(dim=(1, 2)))
        fitted.append(WeightSpace(tuple(p.detach()[:, None] for p in params[:L]),
                                  tuple(p.detach()[:, None] for p in params[L:])))
    return WeightSpace.cat(fitted), torch.cat(losses)


def psnr(mse: Tensor, value_range: float = 2.0) -> Tensor:
    """Peak signal-to-noise ratio 10·log10(range² / MSE) in dB (targets in [-1, 1]: range 2)."""
    return 10 * torch.log10(value_range ** 2 / mse.clamp_min(1e-12))
