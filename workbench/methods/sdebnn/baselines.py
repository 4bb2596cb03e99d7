"""Baselines trained on the same data, budget and seed as the SDE-BNN.

- ODE-net: the σ = 0 limit of the same model (dh/dt = f_h(h, w), dw/dt = −w + g(t, w)), solved with torchdiffeq;
- Bayes-by-backprop (Blundell et al. 2015, "Weight Uncertainty in Neural Networks"): a mean-field Gaussian MLP,
  w = μ + log(1 + exp ρ)·ε, trained on their cost KL[q(w | θ) ‖ P(w)] − E_q log P(D | w) with the prior
  P = N(0, p²) (divided by N);
- a residual network of the same f_h: h_{l+1} = h_l + f_h(h_l; θ_l)/L, the Euler discretisation of a neural ODE
  with one weight set per step.

Every model is called as ``model(x, samples, entropy=..., generator=...) -> (outputs (S, B, out), kl (S,))``;
deterministic ones return S = 1 and KL 0.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .losses import gaussian_kl
from .model import SDEBNN, Backbone


def odenet(in_shape: Sequence[int], out_dim: int, **kwargs: Any) -> SDEBNN:
    """The ODE-net: the SDE-BNN with σ = 0 (same f_h, w(0), g and readout), solved by ``torchdiffeq``."""
    kwargs = {**kwargs, "sigma": 0.0, "estimator": "kl", "w0": "point"}
    return SDEBNN(in_shape, out_dim, **kwargs)


class MeanFieldLinear(nn.Module):
    """A linear layer with independent Gaussian weights N(μ, softplus(ρ)²) and the prior N(0, prior_std²)."""

    def __init__(self, d_in: int, d_out: int, prior_std: float = 1.0, init_std: float = 1e-3):
        super().__init__()
        bound = 1 / math.sqrt(d_in)
        self.w_mu = nn.Parameter(torch.empty(d_out, d_in).uniform_(-bound, bound))
        self.b_mu = nn.Parameter(torch.empty(d_out).uniform_(-bound, bound))
        rho = math.log(math.expm1(init_std))
        self.w_rho = nn.Parameter(torch.full((d_out, d_in), rho))
        self.b_rho = nn.Parameter(torch.full((d_out,), rho))
        self.prior_std = prior_std

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x (S, B, d_in) with one weight sample per path s: w = μ + softplus(ρ)·ε."""
        s = x.shape[0]
        eps_w = torch.randn(s, *self.w_mu.shape, generator=generator).to(x)
        eps_b = torch.randn(s, *self.b_mu.shape, generator=generator).to(x)
        w = self.w_mu + F.softplus(self.w_rho) * eps_w
        b = self.b_mu + F.softplus(self.b_rho) * eps_b
        return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))

    def kl(self) -> torch.Tensor:
        """KL(q ‖ p) of the weights and biases, closed form."""
        return (gaussian_kl(self.w_mu, F.softplus(self.w_rho), self.prior_std)
                + gaussian_kl(self.b_mu, F.softplus(self.b_rho), self.prior_std))


class BayesByBackprop(nn.Module):
    """Mean-field Bayes-by-backprop MLP on the flattened input: ``depth`` hidden layers of ``hidden`` tanh units."""

    def __init__(self, in_shape: Sequence[int], out_dim: int, hidden: int = 64, depth: int = 2, prior_std: float = 1.0):
        super().__init__()
        dims = [math.prod(in_shape), *([hidden] * depth), out_dim]
        self.layers = nn.ModuleList(MeanFieldLinear(a, b, prior_std) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor, samples: int = 1, *, generator: torch.Generator | None = None,
                **_: Any) -> tuple[torch.Tensor, torch.Tensor]:
        h = x.reshape(1, x.shape[0], -1).expand(samples, -1, -1)
        for i, layer in enumerate(self.layers):
            h = layer(h, generator)
            if i < len(self.layers) - 1:
                h = torch.tanh(h)
        kl = sum(layer.kl() for layer in self.layers)
        return h, kl.expand(samples)


class ResidualNet(nn.Module):
    """h_{l+1} = h_l + f_h(h_l; θ_l)/L for l < L = ``blocks``: the SDE-BNN's f_h, encoder and readout, point weights."""

    def __init__(self, in_shape: Sequence[int], out_dim: int, *, aug: int = 2, hidden: int = 32, blocks: int = 2,
                 pool: int = 1):
        super().__init__()
        self.backbone = Backbone(in_shape, out_dim, aug, hidden, pool)
        layout = self.backbone.layout
        self.blocks = blocks
        self.weights = nn.Parameter(torch.stack([layout.flatten(self.backbone.dynamics.init()) for _ in range(blocks)]))

    def forward(self, x: torch.Tensor, samples: int = 1, **_: Any) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.backbone.encode(x).unsqueeze(0)
        for l in range(self.blocks):
            h = h + self.backbone.dynamics(h, self.backbone.layout.unflatten(self.weights[l : l + 1])) / self.blocks
        return self.backbone.read(h), x.new_zeros(1)
