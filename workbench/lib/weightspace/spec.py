"""The shape of a feedforward network's weight space: neuron counts per layer and filter shapes.

A network with ``L`` weight layers maps neuron layer 0 (its inputs) through hidden neuron layers 1..L-1 to
neuron layer L (its outputs). Weight layer ``i`` (0-based) maps neuron layer ``i`` to neuron layer ``i + 1``:

    W_i : (n_{i+1}, n_i, *filter_i),   b_i : (n_{i+1},)

Hidden neurons (layers 1..L-1) have no inherent order: permuting them (rows of W_i and b_i, columns of
W_{i+1}) leaves the function unchanged (Zhou et al. 2023a, "Permutation Equivariant Neural Functionals", §2).
Input and output neurons (layers 0 and L) are fixed. A CNN fits the same picture: its channels are the
neurons, its filters an extra trailing shape per weight layer (folded into channels by :class:`WeightSpace`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class NetworkSpec:
    """Neuron counts ``dims = (n_0, ..., n_L)`` and one filter shape per weight layer (``()`` for a Linear)."""

    dims: tuple[int, ...]
    filters: tuple[tuple[int, ...], ...] = ()

    def __post_init__(self) -> None:
        dims = tuple(int(d) for d in self.dims)
        if len(dims) < 2 or any(d < 1 for d in dims):
            raise ValueError(f"NetworkSpec dims = {self.dims!r}: need at least two positive neuron counts")
        filters = tuple(tuple(int(k) for k in f) for f in self.filters) or ((),) * (len(dims) - 1)
        if len(filters) != len(dims) - 1:
            raise ValueError(f"NetworkSpec: {len(filters)} filter shapes for {len(dims) - 1} weight layers")
        object.__setattr__(self, "dims", dims)
        object.__setattr__(self, "filters", filters)

    @classmethod
    def mlp(cls, *dims: int) -> "NetworkSpec":
        """The spec of an MLP ``dims[0] → dims[1] → … → dims[-1]``."""
        return cls(tuple(dims))

    @property
    def num_layers(self) -> int:
        """L: the number of weight layers."""
        return len(self.dims) - 1

    @property
    def n_in(self) -> int:
        return self.dims[0]

    @property
    def n_out(self) -> int:
        return self.dims[-1]

    @property
    def hidden(self) -> tuple[int, ...]:
        """Indices of the hidden neuron layers (permutable): 1..L-1."""
        return tuple(range(1, self.num_layers))

    def is_permutable(self, neuron_layer: int) -> bool:
        """Hidden neuron layers are permutable; inputs (0) and outputs (L) are fixed."""
        return 0 < neuron_layer < self.num_layers

    def filter_size(self, layer: int) -> int:
        """Number of filter taps of weight layer ``layer`` (1 for a Linear layer)."""
        return math.prod(self.filters[layer]) if self.filters[layer] else 1

    def weight_shape(self, layer: int) -> tuple[int, int]:
        """(n_{i+1}, n_i): rows are the layer's output neurons, columns its input neurons."""
        return self.dims[layer + 1], self.dims[layer]

    @property
    def num_params(self) -> int:
        """Number of scalar parameters of one network."""
        return sum(self.filter_size(i) * self.dims[i + 1] * self.dims[i] + self.dims[i + 1]
                   for i in range(self.num_layers))

    @property
    def is_mlp(self) -> bool:
        return all(not f for f in self.filters)

    def __str__(self) -> str:
        arrows = " → ".join(map(str, self.dims))
        conv = [i for i in range(self.num_layers) if self.filters[i]]
        return arrows + (f" (filters {', '.join('×'.join(map(str, self.filters[i])) for i in conv)})" if conv else "")
