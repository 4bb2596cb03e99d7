"""Checks of the permutation symmetry: equivariance and invariance errors of any map on weight spaces.

A map F is *equivariant* to neuron permutations σ when F(σ·W) = σ·F(W) and *invariant* when F(σ·W) = F(W)
(NFN paper §2; NFT paper §2). The coupling matters: σ acting on hidden layer h permutes the rows of W_{h-1}
and b_{h-1} *and* the columns of W_h with the same permutation. :func:`uncoupled_permute` applies different
permutations to the two sides, which is not a symmetry of the network and must not be one of a layer that
uses the coupling.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import Tensor

from workbench.lib.weightspace import WeightSpace


def random_permutations(ws: WeightSpace, layers: Iterable[int], generator: torch.Generator | None = None,
                        per_network: bool = True) -> dict[int, Tensor]:
    """Random permutations of the given neuron layers (derangement-free: just uniform permutations)."""
    return ws.random_permutations(generator, per_network=per_network, layers=layers)


def equivariance_error(fn: Callable[[WeightSpace], WeightSpace], ws: WeightSpace, perms: dict[int, Tensor],
                       act: Callable[[WeightSpace, dict[int, Tensor]], WeightSpace] | None = None) -> float:
    """max |F(σ·W) − σ·F(W)| over every entry (``act`` defaults to coupled permutation)."""
    act = act or (lambda w, p: w.permute_all(p))
    return fn(act(ws, perms)).max_abs_diff(act(fn(ws), perms))


def invariance_error(fn: Callable[[WeightSpace], Tensor], ws: WeightSpace, perms: dict[int, Tensor]) -> float:
    """max |F(σ·W) − F(W)|."""
    return float((fn(ws.permute_all(perms)) - fn(ws)).detach().abs().max())


def uncoupled_permute(ws: WeightSpace, perms: dict[int, Tensor], other: dict[int, Tensor]) -> WeightSpace:
    """Permute the rows of W_{h-1}, b_{h-1} by ``perms[h]`` but the columns of W_h by ``other[h]``."""
    weights, biases = list(ws.weights), list(ws.biases)
    for h, p in perms.items():
        rows = ws.permute_neurons(h, p)
        cols = ws.permute_neurons(h, other[h])
        if h > 0:
            weights[h - 1], biases[h - 1] = rows.weights[h - 1], rows.biases[h - 1]
        if h < ws.num_layers:
            weights[h] = cols.weights[h]
    return WeightSpace(tuple(weights), tuple(biases), ws.filters)
