"""``WeightSpace``: a batch of networks' weights and biases (or features living on them), layer by layer.

Layout (Zhou et al. 2023a §2; NFT paper §2): for weight layer ``i`` (neuron layer ``i`` → ``i + 1``)

    weights[i] : (batch, channels · filter_i, n_{i+1}, n_i)      biases[i] : (batch, channels, n_{i+1})

Rows of ``weights[i]`` are the layer's output neurons, columns its input neurons; a CNN's filter taps are
folded into the channel axis (tap-major: channel ``t·C + c`` holds tap ``t`` of channel ``c``), so an MLP and a
CNN share one layout. Real networks have one channel; features computed from them (inside an NP layer or
an NFT) have many.

The permutation symmetry: for a permutation π of hidden neuron layer ``h``

    W_{h-1} ← P_π W_{h-1},   b_{h-1} ← P_π b_{h-1},   W_h ← W_h P_πᵀ

leaves the network's function unchanged (NFN paper §2). :meth:`WeightSpace.permute` applies it.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import Tensor, nn

from .spec import NetworkSpec

_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def weighted_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The Linear/Conv layers of ``module`` in definition order, with their qualified names."""
    return [(name, m) for name, m in module.named_modules() if isinstance(m, _WEIGHTED)]


def parameter_names(module: nn.Module) -> list[tuple[str, str]]:
    """``[(weight name, bias name), ...]`` of ``module``'s Linear/Conv layers in order (state-dict keys)."""
    return [(f"{name}.weight" if name else "weight", f"{name}.bias" if name else "bias")
            for name, _ in weighted_layers(module)]


def _fold_one(weight: Tensor) -> Tensor:
    """One network's weight (out, in, *filter) → (prod(filter), out, in)."""
    out, inp = weight.shape[:2]
    return weight.reshape(out, inp, -1).permute(2, 0, 1)


def _unfold_batch(weight: Tensor, filt: tuple[int, ...]) -> Tensor:
    """(B, prod(filter), out, in) → (B, out, in, *filter)."""
    b, _, out, inp = weight.shape
    return weight.permute(0, 2, 3, 1).reshape(b, out, inp, *filt)


@dataclass(frozen=True)
class WeightSpace:
    """Weights and biases of a batch of networks (see the module docstring for the layout)."""

    weights: tuple[Tensor, ...]
    biases: tuple[Tensor, ...]
    filters: tuple[tuple[int, ...], ...] = ()

    def __post_init__(self) -> None:
        weights, biases = tuple(self.weights), tuple(self.biases)
        if len(weights) != len(biases) or not weights:
            raise ValueError(f"WeightSpace: {len(weights)} weight and {len(biases)} bias tensors (need equal, >0)")
        for i, (w, b) in enumerate(zip(weights, biases)):
            if w.dim() != 4 or b.dim() != 3:
                raise ValueError(f"layer {i}: weights must be (batch, channels, n_out, n_in) and biases "
                                 f"(batch, channels, n_out); got {tuple(w.shape)} and {tuple(b.shape)}")
            if w.shape[0] != b.shape[0] or w.shape[2] != b.shape[2]:
                raise ValueError(f"layer {i}: weights {tuple(w.shape)} and biases {tuple(b.shape)} disagree")
            if i and weights[i - 1].shape[2] != w.shape[3]:
                raise ValueError(f"layer {i}: {w.shape[3]} input neurons but layer {i - 1} has "
                                 f"{weights[i - 1].shape[2]} outputs")
        filters = tuple(tuple(f) for f in self.filters) or ((),) * len(weights)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "biases", biases)
        object.__setattr__(self, "filters", filters)

    # -- shape ---------------------------------------------------------------------------------------------
    @property
    def spec(self) -> NetworkSpec:
        dims = (self.weights[0].shape[3],) + tuple(w.shape[2] for w in self.weights)
        return NetworkSpec(dims, self.filters)

    @property
    def num_layers(self) -> int:
        return len(self.weights)

    @property
    def batch_size(self) -> int:
        return int(self.weights[0].shape[0])

    def __len__(self) -> int:
        return self.batch_size

    @property
    def channels(self) -> int:
        """Channels per entry (of the biases; weights carry ``channels · filter size``)."""
        return int(self.biases[0].shape[1])

    @property
    def dtype(self) -> torch.dtype:
        return self.weights[0].dtype

    @property
    def device(self) -> torch.device:
        return self.weights[0].device

    def __iter__(self):
        return iter(zip(self.weights, self.biases))

    # -- elementwise ---------------------------------------------------------------------------------------
    def map(self, fn: Callable[[Tensor], Tensor]) -> "WeightSpace":
        """Apply ``fn`` to every weight and bias tensor."""
        return WeightSpace(tuple(fn(w) for w in self.weights), tuple(fn(b) for b in self.biases), self.filters)

    def zip_map(self, other: "WeightSpace", fn: Callable[[Tensor, Tensor], Tensor]) -> "WeightSpace":
        return WeightSpace(tuple(fn(a, b) for a, b in zip(self.weights, other.weights)),
                           tuple(fn(a, b) for a, b in zip(self.biases, other.biases)), self.filters)

    def __add__(self, other: "WeightSpace") -> "WeightSpace":
        return self.zip_map(other, torch.add)

    def __sub__(self, other: "WeightSpace") -> "WeightSpace":
        return self.zip_map(other, torch.sub)

    def scale(self, factor: float) -> "WeightSpace":
        return self.map(lambda t: t * factor)

    def to(self, *args: Any, **kwargs: Any) -> "WeightSpace":
        return self.map(lambda t: t.to(*args, **kwargs))

    def detach(self) -> "WeightSpace":
        return self.map(Tensor.detach)

    def clone(self) -> "WeightSpace":
        return self.map(Tensor.clone)

    def __getitem__(self, index: int | slice | Tensor | Sequence[int]) -> "WeightSpace":
        """Select networks of the batch (an int keeps the batch axis, with size 1)."""
        if isinstance(index, int):
            index = slice(index, index + 1) if index != -1 else slice(-1, None)
        return self.map(lambda t: t[index])

    @staticmethod
    def cat(spaces: Iterable["WeightSpace"]) -> "WeightSpace":
        """Concatenate batches of networks with the same spec."""
        spaces = list(spaces)
        if not spaces:
            raise ValueError("WeightSpace.cat: nothing to concatenate")
        return WeightSpace(tuple(torch.cat(ws) for ws in zip(*(s.weights for s in spaces))),
                           tuple(torch.cat(bs) for bs in zip(*(s.biases for s in spaces))), spaces[0].filters)

    def allclose(self, other: "WeightSpace", **kw: Any) -> bool:
        return all(torch.allclose(a, b, **kw) for a, b in zip(self.weights + self.biases, other.weights + other.biases))

    def max_abs_diff(self, other: "WeightSpace") -> float:
        return max(float((a - b).detach().abs().max()) for a, b in zip(self.weights + self.biases, other.weights + other.biases))

    # -- flat vectors --------------------------------------------------------------------------------------
    def flatten(self) -> Tensor:
        """(batch, total entries · channels): layer by layer, weights then biases (a state dict's order)."""
        parts = []
        for w, b in self:
            parts += [w.reshape(w.shape[0], -1), b.reshape(b.shape[0], -1)]
        return torch.cat(parts, dim=1)

    @classmethod
    def from_flat(cls, flat: Tensor, spec: NetworkSpec, channels: int = 1) -> "WeightSpace":
        """The inverse of :meth:`flatten` for a given spec."""
        weights, biases, at = [], [], 0
        b = flat.shape[0]
        for i in range(spec.num_layers):
            rows, cols = spec.weight_shape(i)
            cw = channels * spec.filter_size(i)
            n = cw * rows * cols
            weights.append(flat[:, at:at + n].reshape(b, cw, rows, cols))
            at += n
            biases.append(flat[:, at:at + channels * rows].reshape(b, channels, rows))
            at += channels * rows
        if at != flat.shape[1]:
            raise ValueError(f"from_flat: {flat.shape[1]} values but the spec {spec} holds {at}")
        return cls(tuple(weights), tuple(biases), spec.filters)

    # -- permutations --------------------------------------------------------------------------------------
    def permute_neurons(self, neuron_layer: int, perm: Tensor) -> "WeightSpace":
        """Reorder neuron layer ``h`` by ``perm`` (``new[r] = old[perm[r]]``): rows of W_{h-1} and b_{h-1},
        columns of W_h (NFN paper §2). Works for any layer, including inputs and outputs (which change the
        function: use :meth:`permute` for the symmetry). ``perm`` is (n_h,) or (batch, n_h)."""
        h, L = neuron_layer, self.num_layers
        if not 0 <= h <= L:
            raise ValueError(f"neuron_layer = {h} is out of range; allowed 0..{L}")
        n = self.spec.dims[h]
        perm = torch.as_tensor(perm, device=self.device, dtype=torch.long)
        if perm.shape[-1] != n or perm.dim() not in (1, 2) or (perm.dim() == 2 and perm.shape[0] != self.batch_size):
            raise ValueError(f"perm of shape {tuple(perm.shape)} for a layer of {n} neurons and a batch of "
                             f"{self.batch_size}; allowed ({n},) or ({self.batch_size}, {n})")
        if perm.dim() == 1:
            perm = perm.expand(self.batch_size, n)
        weights, biases = list(self.weights), list(self.biases)
        if h > 0:
            w = weights[h - 1]
            weights[h - 1] = w.gather(2, perm[:, None, :, None].expand(-1, w.shape[1], -1, w.shape[3]))
            b = biases[h - 1]
            biases[h - 1] = b.gather(2, perm[:, None, :].expand(-1, b.shape[1], -1))
        if h < L:
            w = weights[h]
            weights[h] = w.gather(3, perm[:, None, None, :].expand(-1, w.shape[1], w.shape[2], -1))
        return WeightSpace(tuple(weights), tuple(biases), self.filters)

    def permute(self, layer: int, perm: Tensor) -> "WeightSpace":
        """Permute the hidden neurons between weight layer ``layer`` and ``layer + 1``: rows of W and b of
        layer ``layer``, columns of W of layer ``layer + 1``. The networks compute the same function."""
        if not 0 <= layer < self.num_layers - 1:
            raise ValueError(f"layer = {layer} is out of range; hidden neurons sit after weight layers "
                             f"0..{self.num_layers - 2} (the outputs of layer {self.num_layers - 1} are fixed)")
        return self.permute_neurons(layer + 1, perm)

    def permute_all(self, perms: dict[int, Tensor]) -> "WeightSpace":
        """Apply ``{neuron layer: perm}`` for several neuron layers at once."""
        out = self
        for h, p in perms.items():
            out = out.permute_neurons(h, p)
        return out

    def random_permutations(self, generator: torch.Generator | None = None, per_network: bool = True,
                            layers: Iterable[int] | None = None) -> dict[int, Tensor]:
        """Random permutations of the hidden neuron layers (or of ``layers``): {layer: (batch, n) or (n,)}."""
        dims = self.spec.dims
        layers = self.spec.hidden if layers is None else tuple(layers)
        out = {}
        for h in layers:
            if per_network:
                out[h] = torch.argsort(torch.rand(self.batch_size, dims[h], generator=generator), dim=1)
            else:
                out[h] = torch.randperm(dims[h], generator=generator)
        return {h: p.to(self.device) for h, p in out.items()}

    # -- modules and state dicts ---------------------------------------------------------------------------
    @classmethod
    def from_module(cls, module: nn.Module) -> "WeightSpace":
        """A batch of one network from the Linear/Conv layers of ``module`` in order (missing biases: 0)."""
        layers = weighted_layers(module)
        if not layers:
            raise ValueError(f"{type(module).__name__} has no Linear or Conv layers")
        weights, biases, filters = [], [], []
        for _, m in layers:
            w = m.weight.detach()
            weights.append(_fold_one(w)[None])
            b = m.bias.detach() if m.bias is not None else torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)
            biases.append(b[None, None])
            filters.append(tuple(w.shape[2:]))
        return cls(tuple(weights), tuple(biases), tuple(filters))

    @classmethod
    def from_mlp(cls, module: nn.Sequential) -> "WeightSpace":
        """A batch of one network from ``Sequential(Linear, activation, Linear, …)``.

        Every child must be a Linear layer or a parameter-free (elementwise) activation, first and last
        Linear."""
        if not isinstance(module, nn.Sequential):
            raise TypeError(f"from_mlp needs a torch.nn.Sequential, got {type(module).__name__}")
        kids = list(module)
        if not kids or not isinstance(kids[0], nn.Linear) or not isinstance(kids[-1], nn.Linear):
            raise ValueError("from_mlp: the Sequential must start and end with a Linear layer")
        for k in kids:
            if not isinstance(k, nn.Linear) and any(True for _ in k.parameters()):
                raise ValueError(f"from_mlp: {type(k).__name__} has parameters; only Linear layers and "
                                 "parameter-free elementwise activations are allowed")
        return cls.from_module(module)

    def to_mlp(self, activation: nn.Module | Callable[[], nn.Module], index: int = 0) -> nn.Sequential:
        """``Sequential(Linear, activation, …, Linear)`` holding network ``index`` (one channel, no filters)."""
        if self.channels != 1 or any(self.filters):
            raise ValueError("to_mlp needs one channel and Linear layers only (no filters)")
        layers: list[nn.Module] = []
        for i, (w, b) in enumerate(self):
            lin = nn.Linear(w.shape[3], w.shape[2], dtype=w.dtype, device=w.device)
            with torch.no_grad():
                lin.weight.copy_(w[index, 0])
                lin.bias.copy_(b[index, 0])
            layers.append(lin)
            if i < self.num_layers - 1:
                layers.append(copy.deepcopy(activation) if isinstance(activation, nn.Module) else activation())
        return nn.Sequential(*layers)

    def _check_names(self, names: Sequence[tuple[str, str]]) -> None:
        if len(names) != self.num_layers:
            raise ValueError(f"{len(names)} parameter name pairs for {self.num_layers} layers")

    def batched_params(self, names: Sequence[tuple[str, str]]) -> dict[str, Tensor]:
        """{state-dict name: (batch, *parameter shape)} for the whole batch (one channel per network)."""
        self._check_names(names)
        out: dict[str, Tensor] = {}
        for (wn, bn), (w, b), filt in zip(names, self, self.filters):
            if b.shape[1] != 1 or w.shape[1] != max(1, _prod(filt)):
                raise ValueError("state-dict conversion needs real networks (one channel per entry)")
            out[wn] = _unfold_batch(w, filt) if filt else w[:, 0]
            out[bn] = b[:, 0]
        return out

    def to_state_dict(self, names: Sequence[tuple[str, str]] | nn.Module, index: int = 0) -> dict[str, Tensor]:
        """The state dict of network ``index`` (names from :func:`parameter_names` or a module)."""
        if isinstance(names, nn.Module):
            names = parameter_names(names)
        return {k: v[index].clone() for k, v in self.batched_params(names).items()}

    def state_dicts(self, names: Sequence[tuple[str, str]] | nn.Module) -> list[dict[str, Tensor]]:
        return [self.to_state_dict(names, i) for i in range(self.batch_size)]

    @classmethod
    def from_state_dicts(cls, states: Sequence[dict[str, Tensor]], names: Sequence[tuple[str, str]] | nn.Module
                         ) -> "WeightSpace":
        """A batch from state dicts (``names`` say which keys are the layers, in order)."""
        if isinstance(names, nn.Module):
            names = parameter_names(names)
        if not states:
            raise ValueError("from_state_dicts: no state dicts")
        weights, biases, filters = [], [], []
        for wn, bn in names:
            w = torch.stack([s[wn] for s in states])
            filters.append(tuple(w.shape[3:]))
            weights.append(w.reshape(w.shape[0], w.shape[1], w.shape[2], -1).permute(0, 3, 1, 2).contiguous())
            biases.append(torch.stack([s[bn] if s.get(bn) is not None else torch.zeros(w.shape[1], dtype=w.dtype)
                                       for s in states])[:, None])
        return cls(tuple(weights), tuple(biases), tuple(filters))

    def functional_call(self, module: nn.Module, x: Tensor, per_network_inputs: bool = False) -> Tensor:
        """Outputs of every network of the batch on ``x``: ``module``'s architecture with this batch's weights,
        through ``torch.func.functional_call`` vectorised by ``torch.func.vmap``. ``x`` is shared by all networks
        (``per_network_inputs=False``) or has a leading batch axis. Returns (batch, *output shape)."""
        from torch.func import functional_call, vmap

        params = self.batched_params(parameter_names(module))

        def one(p: dict[str, Tensor], inputs: Tensor) -> Tensor:
            return functional_call(module, p, (inputs,))

        return vmap(one, in_dims=(0, 0 if per_network_inputs else None))(params, x)


def _prod(shape: tuple[int, ...]) -> int:
    out = 1
    for s in shape:
        out *= s
    return out
