"""Input encodings of the NFT (NFT paper §3.3 and Appendix B): Gaussian Fourier features of each scalar weight
and learned embeddings of layers and of input/output neurons.

Gaussian Fourier features (Tancik et al. 2020, Gaussian random Fourier features): a scalar x becomes

    γ(x) = [sin(2π b_1 x), …, sin(2π b_m x), cos(2π b_1 x), …, cos(2π b_m x)],   b_k ~ N(0, σ²) fixed,

so small differences between weights are resolved at frequency σ. An entry with k scalars (a CNN's folded
filter taps) is encoded tap by tap and projected to d channels. Learned embeddings are then added: one per
weight layer and per bias layer (so the shared attention projections know which layer an entry belongs to),
one per input neuron on the columns of W_0, one per output neuron on the rows of W_{L-1} and on b_{L-1}. The
latter two break the permutation symmetry of inputs and outputs, which is not a symmetry of the network.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from workbench.lib.weightspace import NetworkSpec, WeightSpace

from .attention import Feats


class GaussianFourierFeatures(nn.Module):
    """γ(x) for every scalar of the input: (...) → (..., 2m) (module docstring)."""

    def __init__(self, m: int, scale: float) -> None:
        super().__init__()
        self.register_buffer("freqs", torch.randn(m) * scale)

    def forward(self, x: Tensor) -> Tensor:
        a = 2 * math.pi * x.unsqueeze(-1) * self.freqs.to(x.dtype)
        return torch.cat([torch.sin(a), torch.cos(a)], dim=-1)


class WeightSpaceEmbedding(nn.Module):
    """WeightSpace (k_i channels on W_i, c on b_i) → channels-last features of width d (module docstring)."""

    def __init__(self, spec: NetworkSpec, d_model: int, fourier_features: int = 16, fourier_scale: float = 3.0,
                 in_channels: int = 1, io_embeddings: bool = True) -> None:
        super().__init__()
        self.spec, self.io = spec, io_embeddings
        self.ff = GaussianFourierFeatures(fourier_features, fourier_scale)
        m2 = 2 * fourier_features
        sizes = sorted({in_channels * spec.filter_size(i) for i in range(spec.num_layers)})
        self.weight_proj = nn.ModuleDict({str(k): nn.Linear(k * m2, d_model) for k in sizes})
        self.bias_proj = nn.Linear(in_channels * m2, d_model)
        L = spec.num_layers
        self.layer_weight = nn.Parameter(torch.randn(L, d_model) * 0.1)
        self.layer_bias = nn.Parameter(torch.randn(L, d_model) * 0.1)
        if io_embeddings:
            self.input_neuron = nn.Parameter(torch.randn(spec.n_in, d_model) * 0.1)
            self.output_neuron = nn.Parameter(torch.randn(spec.n_out, d_model) * 0.1)

    def forward_cl(self, ws: WeightSpace) -> Feats:
        L = ws.num_layers
        W, b = [], []
        for i, (w, x) in enumerate(ws):
            k = w.shape[1]
            e = self.ff(w.permute(0, 2, 3, 1)).flatten(-2)  # (B, n_r, n_c, k·2m)
            e = self.weight_proj[str(k)](e) + self.layer_weight[i]
            f = self.bias_proj(self.ff(x.permute(0, 2, 1)).flatten(-2)) + self.layer_bias[i]
            if self.io and i == 0:
                e = e + self.input_neuron[None, None]
            if self.io and i == L - 1:
                e = e + self.output_neuron[None, :, None]
                f = f + self.output_neuron[None]
            W.append(e)
            b.append(f)
        return W, b
