"""Non-equivariant baselines of the NFT paper's tables.

* Weight statistics (Unterthiner et al. 2020, "Predicting Neural Network Accuracy from Weights", §3): for every
  weight and bias tensor its mean, variance and the quantiles q ∈ {0, 0.25, 0.5, 0.75, 1} — permutation
  invariant by construction — standardised on the training networks and fed to an MLP.
* A flat MLP on the concatenation of every weight and bias (the state-dict order): it sees each network in one
  arbitrary neuron order, so permuting hidden neurons moves its prediction.
"""
from __future__ import annotations

import torch
from torch import Tensor

from workbench.lib.weightspace import NetworkSpec, WeightSpace

from .model import WeightSpaceModel, mlp_head

QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)


def weight_statistics(ws: WeightSpace) -> Tensor:
    """(B, 7 · 2L): mean, variance and five quantiles of each weight and bias tensor of every network."""
    feats = []
    q = torch.tensor(QUANTILES, dtype=ws.dtype, device=ws.device)
    for t in ws.weights + ws.biases:
        flat = t.reshape(t.shape[0], -1)
        feats += [flat.mean(dim=1, keepdim=True), flat.var(dim=1, keepdim=True, unbiased=False),
                  torch.quantile(flat, q, dim=1).T]
    return torch.cat(feats, dim=1)


class StatNet(WeightSpaceModel):
    """MLP on standardised weight statistics (invariant to every neuron permutation)."""

    def __init__(self, spec: NetworkSpec, out_dim: int = 1, hidden: int = 128) -> None:
        super().__init__(spec)
        n = 7 * 2 * spec.num_layers
        self.register_buffer("feat_mean", torch.zeros(n))
        self.register_buffer("feat_std", torch.ones(n))
        self.head = mlp_head(n, hidden, out_dim, layers=3)

    @torch.no_grad()
    def fit(self, ws: WeightSpace) -> "StatNet":
        super().fit(ws)
        s = weight_statistics(ws).double()
        self.feat_mean.copy_(s.mean(0).to(self.feat_mean.dtype))
        self.feat_std.copy_(s.std(0).clamp_min(1e-8).to(self.feat_std.dtype))
        return self

    def forward(self, ws: WeightSpace) -> Tensor:
        s = weight_statistics(ws)
        return self.head((s - self.feat_mean.to(s.dtype)) / self.feat_std.to(s.dtype))


class FlatMLP(WeightSpaceModel):
    """MLP on all weights and biases concatenated (after per-tensor standardisation)."""

    def __init__(self, spec: NetworkSpec, out_dim: int = 1, hidden: int = 128, in_channels: int = 1) -> None:
        super().__init__(spec)
        self.head = mlp_head(spec.num_params * in_channels, hidden, out_dim, layers=3)

    def forward(self, ws: WeightSpace) -> Tensor:
        return self.head(self.normalize(ws).flatten())
