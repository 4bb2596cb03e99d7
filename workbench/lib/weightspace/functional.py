"""Forward passes of many networks at once with batched matrix products (no Python loop over networks).

``weights[i]`` is (B, n_{i+1}, n_i) and ``biases[i]`` (B, n_{i+1}): network ``b`` of the batch computes

    h_0 = x,   h_{i+1} = σ_b(W_i^{(b)} h_i + b_i^{(b)}),   output = W_{L-1}^{(b)} h_{L-1} + b_{L-1}^{(b)}

for every row of its inputs; ``torch.einsum`` runs all B networks in one product per layer.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

Activation = Callable[[Tensor], Tensor]


def batched_linear(weight: Tensor, bias: Tensor, h: Tensor) -> Tensor:
    """(B, out, in), (B, out), (B, N, in) → (B, N, out); ``h`` may also be (N, in), shared by all networks."""
    if h.dim() == 2:
        return torch.einsum("boi,ni->bno", weight, h) + bias[:, None, :]
    return torch.einsum("boi,bni->bno", weight, h) + bias[:, None, :]


def batched_mlp(weights: Sequence[Tensor], biases: Sequence[Tensor], x: Tensor, activation: Activation) -> Tensor:
    """Outputs (B, N, n_L) of B MLPs on inputs ``x`` (B, N, n_0) or (N, n_0) shared (module docstring)."""
    h = x
    for i, (w, b) in enumerate(zip(weights, biases)):
        h = batched_linear(w, b, h)
        if i < len(weights) - 1:
            h = activation(h)
    return h


def mixed_activation(relu_mask: Tensor) -> Activation:
    """σ_b = ReLU for networks with ``relu_mask[b]`` true and tanh for the others (one kernel for all)."""
    def act(h: Tensor) -> Tensor:
        mask = relu_mask.reshape(-1, *([1] * (h.dim() - 1))).to(h.dtype)
        return mask * F.relu(h) + (1 - mask) * torch.tanh(h)

    return act


def batched_conv2d(x: Tensor, weight: Tensor, bias: Tensor, stride: int = 1, padding: int = 1) -> Tensor:
    """B convolutions at once as one grouped convolution.

    x: (B, N, C_in, H, W) (network b's own images), weight: (B, C_out, C_in, k, k), bias: (B, C_out)
    → (B, N, C_out, H', W'). Network b's channels form group b of a ``groups=B`` convolution."""
    b, n, c, h, w = x.shape
    out = F.conv2d(x.permute(1, 0, 2, 3, 4).reshape(n, b * c, h, w), weight.reshape(-1, *weight.shape[2:]),
                   bias.reshape(-1), stride=stride, padding=padding, groups=b)
    return out.reshape(n, b, weight.shape[1], *out.shape[2:]).permute(1, 0, 2, 3, 4)
