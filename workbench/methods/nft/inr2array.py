"""Inr2Array (NFT paper §4): a permutation-invariant *array* latent of an implicit neural representation.

encode:  SIREN weights ─NFT encoder─▶ equivariant features ─cross-attention pooling (M = g² queries)─▶ z ∈ R^{M×d}
decode:  each latent z_m ─hypernetwork─▶ the parameters of a SIREN that renders patch m of the g×g grid
loss:    ‖decode(encode(W))(x) − SIREN_W(x)‖² over the pixel grid (the input SIREN's own render is the target)

The encoder is invariant to hidden-neuron permutations (NFT blocks are equivariant, the pooling invariant), so
permuted copies of one SIREN get the same latent; the spatial decoder makes the M latent vectors an ordered
array (latent m is responsible for patch m), which a downstream classifier reads like a tiny image. With
``additive`` the hypernetwork predicts a change to a learned base SIREN started at the shared initialisation
(the paper's additive decoder variant), which trains much faster from few steps.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from workbench.lib.weightspace import NetworkSpec, WeightSpace, batched_mlp, coordinate_grid, render
from workbench.lib.weightspace.siren import OMEGA_0

from .attention import CrossAttentionPool
from .model import NFTEncoder, WeightSpaceModel, mlp_head


class HyperDecoder(nn.Module):
    """z (N, d) → SIREN parameters: a shared ReLU trunk and one linear head per weight/bias tensor (the
    "Sitzmann" hypernetwork of Sitzmann et al. 2020 §4 with a shared trunk), heads started small."""

    def __init__(self, spec: NetworkSpec, d_latent: int, hidden: int = 128, base: WeightSpace | None = None,
                 init_scale: float = 1e-2) -> None:
        super().__init__()
        self.spec = spec
        self.trunk = nn.Sequential(nn.Linear(d_latent, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        shapes = [spec.weight_shape(i) for i in range(spec.num_layers)] + [(spec.dims[i + 1],)
                                                                           for i in range(spec.num_layers)]
        self.shapes = shapes
        self.heads = nn.ModuleList(nn.Linear(hidden, math.prod(s)) for s in shapes)
        for h in self.heads:
            with torch.no_grad():
                h.weight.mul_(init_scale)
                h.bias.zero_()
        if base is not None:
            tensors = [w[0, 0] for w in base.weights] + [b[0, 0] for b in base.biases]
        else:
            tensors = [torch.zeros(s) for s in shapes]
        self.base = nn.ParameterList(nn.Parameter(t.clone().float()) for t in tensors)

    def forward(self, z: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        h = self.trunk(z)
        out = [self.base[j].to(z.dtype) + head(h).reshape(z.shape[0], *s)
               for j, (head, s) in enumerate(zip(self.heads, self.shapes))]
        L = self.spec.num_layers
        return out[:L], out[L:]


class Inr2Array(WeightSpaceModel):
    """Encoder (NFT → cross-attention pooling to a g×g array of latents) and spatial hypernetwork decoder."""

    def __init__(self, spec: NetworkSpec, image_size: tuple[int, int], d_model: int = 32, heads: int = 4,
                 depth: int = 2, grid: int = 2, hyper_hidden: int = 128, base: WeightSpace | None = None,
                 fourier_features: int = 16, fourier_scale: float = 3.0, omega: float = OMEGA_0) -> None:
        super().__init__(spec)
        h, w = image_size
        if h % grid or w % grid:
            raise ValueError(f"grid = {grid} must divide the image size {h}×{w}")
        self.grid, self.omega, self.image_size = grid, omega, (h, w)
        self.encoder = NFTEncoder(spec, d_model, heads, depth, fourier_features=fourier_features,
                                  fourier_scale=fourier_scale)
        self.pool = CrossAttentionPool(d_model, heads, grid * grid)
        self.decoder = HyperDecoder(spec, d_model, hyper_hidden, base)
        coords = coordinate_grid(h, w)  # (H·W, 2), row-major
        ys, xs = torch.div(torch.arange(h * w), w, rounding_mode="floor"), torch.arange(h * w) % w
        patch = (ys // (h // grid)) * grid + xs // (w // grid)
        order = torch.argsort(patch, stable=True).reshape(grid * grid, -1)  # pixel indices of each patch
        self.register_buffer("patch_pixels", order)
        self.register_buffer("patch_coords", coords[order])  # (M, P, 2)
        self.register_buffer("coords", coords)

    @property
    def num_latents(self) -> int:
        return self.grid * self.grid

    def encode(self, ws: WeightSpace) -> Tensor:
        """The array latent (B, g², d), invariant to hidden-neuron permutations of ``ws``."""
        return self.pool.forward_flat(self.encoder.forward_flat(self.normalize(ws)))

    def decode(self, z: Tensor) -> Tensor:
        """Latents (B, M, d) → rendered pixels (B, H·W, channels) in the SIREN's range [-1, 1]."""
        B, M, d = z.shape
        weights, biases = self.decoder(z.reshape(B * M, d))
        coords = self.patch_coords.to(z.dtype).unsqueeze(0).expand(B, -1, -1, -1).reshape(B * M, -1, 2)
        out = batched_mlp(weights, biases, coords, lambda t: torch.sin(self.omega * t))  # (B·M, P, C)
        out = out.reshape(B, M * out.shape[1], -1)
        pixels = torch.empty_like(out)
        pixels[:, self.patch_pixels.flatten()] = out
        return pixels

    def forward(self, ws: WeightSpace) -> Tensor:
        return self.decode(self.encode(ws))

    @torch.no_grad()
    def target(self, ws: WeightSpace) -> Tensor:
        """The input SIRENs' own renders (B, H·W, channels): the reconstruction target."""
        return render(ws, self.coords.to(ws.dtype), self.omega)

    def loss(self, ws: WeightSpace) -> Tensor:
        """Mean squared reconstruction error (module docstring)."""
        return ((self(ws) - self.target(ws)) ** 2).mean()


def build_inr2array(dims: list[int], filters: list[list[int]], image_size: list[int], **kwargs: Any) -> Inr2Array:
    """:class:`Inr2Array` from plain values (a saved model's spec); the shared initialisation comes back with the
    state dict (the decoder's ``base``)."""
    return Inr2Array(NetworkSpec(tuple(dims), tuple(tuple(f) for f in filters)), tuple(image_size), **kwargs)


class LatentClassifier(nn.Module):
    """LayerNorm per latent vector, then an MLP on the flattened array."""

    def __init__(self, num_latents: int, d_latent: int, classes: int, hidden: int = 128) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(d_latent)
        self.head = mlp_head(num_latents * d_latent, hidden, classes, layers=3)

    def forward(self, z: Tensor) -> Tensor:
        return self.head(self.ln(z).flatten(1))
