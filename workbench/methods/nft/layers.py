"""NP and HNP linear equivariant weight-space layers and their invariant pooling (Zhou et al. 2023a,
"Permutation Equivariant Neural Functionals", §3 and Appendix; the baselines of the NFT paper).

Every linear map between weight-space features that commutes with a group of neuron permutations is a sum
of a few *broadcast terms*. Write each object of the weight space by the neuron sets its axes run over:

* an **edge** W_i whose rows (neuron layer i+1) and columns (neuron layer i) are both permuted;
* a **node** feature on one permuted neuron layer h (a bias b_{h-1}; or a weight matrix one of whose axes is
  fixed, that axis folded into channels: W_0 under HNP lives on layer 1 with n_0·c channels, W_{L-1} on layer
  L-1 with n_L·c channels);
* an **invariant** vector (b_{L-1} under HNP; everything when no layer is permuted).

With mean pooling, N_h = [every node feature on h, E[r,·] for edges whose rows are on h, E[·,s] for edges whose
columns are on h] (a vector per neuron of h), and G = [means of every node and edge, every invariant], the
equivariant linear maps are exactly (NFN paper §3 for NP, its appendix for HNP; a test checks completeness)

    edge out   Y_i[r, s] = A E_i[r, s] + B N_{i+1}[r] + C N_i[s] + D G
    node out   y_h[r]    = B' N_h[r] + D' G
    invariant  y         = D'' G

(A, B, C, D… learned channel matrices, one set per output object). **NP** permutes every neuron layer,
inputs and outputs included (all W are edges, all b nodes); **HNP** permutes only the hidden layers 1..L-1,
which keeps the identity of input and output neurons at the price of more parameters. Both are implemented by
one :class:`EquivariantLinear` over the corresponding set of permuted layers; :class:`EquivariantPool` returns G.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import Tensor, nn

from workbench.lib.weightspace import NetworkSpec, WeightSpace


@dataclass(frozen=True)
class _Obj:
    """One weight or bias tensor of the weight space, typed by the neuron sets its axes run over."""

    kind: str  # "edge" | "node" | "inv"
    layer: int  # weight layer i
    is_bias: bool
    on: int = -1  # node: the neuron layer it lives on
    rows: int = -1  # edge: neuron layer of the rows (i + 1); columns are i
    fold: int = 1  # node/inv: how many fixed neurons are folded into channels


def _objects(spec: NetworkSpec, permuted: frozenset[int]) -> list[_Obj]:
    objs = []
    for i in range(spec.num_layers):
        r, c = i + 1, i
        n_r, n_c = spec.dims[r], spec.dims[c]
        pr, pc = r in permuted, c in permuted
        if pr and pc:
            objs.append(_Obj("edge", i, False, rows=r))
        elif pr:
            objs.append(_Obj("node", i, False, on=r, fold=n_c))
        elif pc:
            objs.append(_Obj("node", i, False, on=c, fold=n_r))
        else:
            objs.append(_Obj("inv", i, False, fold=n_r * n_c))
        objs.append(_Obj("node", i, True, on=r) if pr else _Obj("inv", i, True, fold=n_r))
    return objs


def _to_canonical(ws: WeightSpace, obj: _Obj, spec: NetworkSpec) -> Tensor:
    """Edge (B, c, n_r, n_c); node (B, c·fold, n_h); invariant (B, c·fold)."""
    t = ws.biases[obj.layer] if obj.is_bias else ws.weights[obj.layer]
    b = t.shape[0]
    if obj.kind == "edge":
        return t
    if obj.is_bias:
        return t if obj.kind == "node" else t.reshape(b, -1)
    if obj.kind == "node" and obj.on == obj.layer + 1:  # rows permuted, columns folded
        return t.permute(0, 1, 3, 2).reshape(b, -1, t.shape[2])
    if obj.kind == "node":  # columns permuted, rows folded
        return t.reshape(b, -1, t.shape[3])
    return t.reshape(b, -1)


def _from_canonical(x: Tensor, obj: _Obj, spec: NetworkSpec) -> Tensor:
    b = x.shape[0]
    n_r, n_c = spec.weight_shape(obj.layer)
    if obj.is_bias:
        return x if obj.kind == "node" else x.reshape(b, -1, n_r)
    if obj.kind == "edge":
        return x
    if obj.kind == "node" and obj.on == obj.layer + 1:
        return x.reshape(b, -1, n_c, n_r).permute(0, 1, 3, 2)
    return x.reshape(b, -1, n_r, n_c)


def _channels(obj: _Obj, c: int, spec: NetworkSpec) -> int:
    """Channels of ``obj`` in canonical form when the weight space carries ``c`` channels per entry."""
    return c * (1 if obj.kind == "edge" else obj.fold)


def _linear_cl(x: Tensor, layer: nn.Linear) -> Tensor:
    """Apply ``layer`` over the channel axis (dim 1) of x."""
    return layer(x.movedim(1, -1)).movedim(-1, 1)


class EquivariantLinear(nn.Module):
    """The general linear map equivariant to permutations of the neuron layers in ``permuted`` (module
    docstring). Input and output weight spaces carry ``c_in`` and ``c_out`` channels per entry."""

    def __init__(self, spec: NetworkSpec, c_in: int, c_out: int, permuted: Iterable[int]) -> None:
        super().__init__()
        self.spec, self.c_in, self.c_out = spec, c_in, c_out
        self.permuted = frozenset(int(h) for h in permuted)
        self.objs = _objects(spec, self.permuted)
        self.layers_on = sorted({o.on for o in self.objs if o.kind == "node"} |
                                {h for o in self.objs if o.kind == "edge" for h in (o.rows, o.rows - 1)})
        self.n_dim = {h: self._node_channels(h, c_in) for h in self.layers_on}
        self.g_dim = self._global_channels(c_in)
        self.terms = nn.ModuleDict()
        for j, o in enumerate(self.objs):
            out = _channels(o, c_out, spec)
            terms: dict[str, int] = {"g": self.g_dim}
            if o.kind == "edge":
                terms.update(pw=c_in, r=self.n_dim[o.rows], c=self.n_dim[o.rows - 1])
            elif o.kind == "node":
                terms["n"] = self.n_dim[o.on]
            fan_in = sum(terms.values())
            for name, f in terms.items():
                lin = nn.Linear(f, out, bias=(name == "g"))
                bound = 1.0 / math.sqrt(fan_in)
                nn.init.uniform_(lin.weight, -bound, bound)
                if lin.bias is not None:
                    nn.init.uniform_(lin.bias, -bound, bound)
                self.terms[f"{j}_{name}"] = lin

    def _node_channels(self, h: int, c: int) -> int:
        total = 0
        for o in self.objs:
            if o.kind == "node" and o.on == h:
                total += _channels(o, c, self.spec)
            elif o.kind == "edge" and h in (o.rows, o.rows - 1):
                total += c
        return total

    def _global_channels(self, c: int) -> int:
        return sum(_channels(o, c, self.spec) for o in self.objs)

    def gather(self, ws: WeightSpace) -> tuple[list[Tensor], dict[int, Tensor], Tensor]:
        """Canonical objects, the per-neuron vectors N_h and the pooled vector G (module docstring)."""
        xs = [_to_canonical(ws, o, self.spec) for o in self.objs]
        parts: dict[int, list[Tensor]] = {h: [] for h in self.layers_on}
        pooled = []
        for o, x in zip(self.objs, xs):
            if o.kind == "edge":
                parts[o.rows].append(x.mean(dim=3))  # E[r, ·]
                parts[o.rows - 1].append(x.mean(dim=2))  # E[·, s]
                pooled.append(x.mean(dim=(2, 3)))
            elif o.kind == "node":
                parts[o.on].append(x)
                pooled.append(x.mean(dim=2))
            else:
                pooled.append(x)
        nodes = {h: torch.cat(p, dim=1) for h, p in parts.items()}
        return xs, nodes, torch.cat(pooled, dim=1)

    def forward(self, ws: WeightSpace) -> WeightSpace:
        """Y = the sum of broadcast terms of the module docstring, for every output object."""
        xs, nodes, g = self.gather(ws)
        outs = []
        for j, (o, x) in enumerate(zip(self.objs, xs)):
            y = self.terms[f"{j}_g"](g)
            if o.kind == "edge":
                y = (y[:, :, None, None] + _linear_cl(x, self.terms[f"{j}_pw"])
                     + _linear_cl(nodes[o.rows], self.terms[f"{j}_r"])[:, :, :, None]
                     + _linear_cl(nodes[o.rows - 1], self.terms[f"{j}_c"])[:, :, None, :])
            elif o.kind == "node":
                y = y[:, :, None] + _linear_cl(nodes[o.on], self.terms[f"{j}_n"])
            outs.append(_from_canonical(y, o, self.spec))
        return WeightSpace(tuple(outs[0::2]), tuple(outs[1::2]))

    def extra_repr(self) -> str:
        return f"spec={self.spec}, c_in={self.c_in}, c_out={self.c_out}, permuted={sorted(self.permuted)}"


class NPLinear(EquivariantLinear):
    """NP layer: equivariant to permutations of *every* neuron layer, inputs and outputs included."""

    def __init__(self, spec: NetworkSpec, c_in: int, c_out: int) -> None:
        super().__init__(spec, c_in, c_out, range(spec.num_layers + 1))


class HNPLinear(EquivariantLinear):
    """HNP layer: equivariant to permutations of the hidden neuron layers only (inputs and outputs fixed)."""

    def __init__(self, spec: NetworkSpec, c_in: int, c_out: int) -> None:
        super().__init__(spec, c_in, c_out, spec.hidden)


class EquivariantPool(nn.Module):
    """Invariant pooling: G, the means of every node and edge and every invariant (module docstring)."""

    def __init__(self, spec: NetworkSpec, permuted: Iterable[int]) -> None:
        super().__init__()
        self.spec, self.permuted = spec, frozenset(int(h) for h in permuted)
        self.objs = _objects(spec, self.permuted)

    def out_features(self, channels: int) -> int:
        return sum(_channels(o, channels, self.spec) for o in self.objs)

    def forward(self, ws: WeightSpace) -> Tensor:
        pooled = []
        for o in self.objs:
            x = _to_canonical(ws, o, self.spec)
            pooled.append(x.mean(dim=(2, 3)) if o.kind == "edge" else x.mean(dim=2) if o.kind == "node" else x)
        return torch.cat(pooled, dim=1)


class NPPool(EquivariantPool):
    def __init__(self, spec: NetworkSpec) -> None:
        super().__init__(spec, range(spec.num_layers + 1))


class HNPPool(EquivariantPool):
    def __init__(self, spec: NetworkSpec) -> None:
        super().__init__(spec, spec.hidden)


class WeightSpaceLift(nn.Module):
    """Per-entry channel map of each layer: weights (c_in · filter_i → c_out), biases (c_in → c_out).

    It acts on channels only, so it commutes with every neuron permutation; it turns a CNN's folded filter
    taps into ordinary channels so later layers see the same channel count everywhere."""

    def __init__(self, spec: NetworkSpec, c_in: int, c_out: int) -> None:
        super().__init__()
        self.weight_maps = nn.ModuleList(nn.Linear(c_in * spec.filter_size(i), c_out) for i in range(spec.num_layers))
        self.bias_maps = nn.ModuleList(nn.Linear(c_in, c_out) for _ in range(spec.num_layers))

    def forward(self, ws: WeightSpace) -> WeightSpace:
        return WeightSpace(tuple(_linear_cl(w, m) for w, m in zip(ws.weights, self.weight_maps)),
                           tuple(_linear_cl(b, m) for b, m in zip(ws.biases, self.bias_maps)))


class TupleReLU(nn.Module):
    """ReLU on every entry (elementwise, hence equivariant)."""

    def forward(self, ws: WeightSpace) -> WeightSpace:
        return ws.map(torch.relu)


class WeightSpaceNormalizer(nn.Module):
    """Standardise each weight and bias tensor by one scalar mean and standard deviation per tensor, fitted on
    a training set. One scalar per tensor commutes with every neuron permutation."""

    def __init__(self, num_layers: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(2 * num_layers))
        self.register_buffer("std", torch.ones(2 * num_layers))

    @torch.no_grad()
    def fit(self, ws: WeightSpace) -> "WeightSpaceNormalizer":
        tensors = ws.weights + ws.biases
        self.mean.copy_(torch.stack([t.double().mean() for t in tensors]).to(self.mean.dtype))
        self.std.copy_(torch.stack([t.double().std().clamp_min(1e-6) for t in tensors]).to(self.std.dtype))
        return self

    def forward(self, ws: WeightSpace) -> WeightSpace:
        L = ws.num_layers
        m, s = self.mean.to(ws.dtype), self.std.to(ws.dtype)
        return WeightSpace(tuple((w - m[i]) / s[i] for i, w in enumerate(ws.weights)),
                           tuple((b - m[L + i]) / s[L + i] for i, b in enumerate(ws.biases)), ws.filters)


class FeatureStandardizer(nn.BatchNorm1d):
    """Standardise each invariant feature over the networks of a batch (running statistics at evaluation), the
    way the weight-statistics baseline standardises its features (Unterthiner et al. 2020, §3).

    Pooled weight-space features of networks fitted from one shared initialisation differ little from network to
    network next to their common value; unstandardised, the head cannot use them (measured on the demo SIRENs:
    NP at chance on its training set). A per-feature affine map at evaluation keeps the model invariant.
    A training batch of one network uses the running statistics.

    Data-parallel training sets ``reduce`` (a differentiable sum over the ranks, e.g.
    ``torch.distributed.nn.functional.all_reduce``): the statistics are then those of the global batch, every
    rank's shard of it contributing, and the gradient flows through them to every rank's rows."""

    def __init__(self, features: int) -> None:
        super().__init__(features, affine=False)
        self.reduce: Callable[[Tensor], Tensor] | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.training and self.reduce is not None:
            return self._global(x, self.reduce)
        if self.training and x.shape[0] == 1:
            return torch.nn.functional.batch_norm(x, self.running_mean, self.running_var, eps=self.eps)
        return super().forward(x)

    def _global(self, x: Tensor, reduce: Callable[[Tensor], Tensor]) -> Tensor:
        """Batch normalisation with the mean and (biased) variance of the rows of every rank."""
        n = float(reduce(x.new_tensor([float(x.shape[0])])).item())
        if n == 1:
            return torch.nn.functional.batch_norm(x, self.running_mean, self.running_var, eps=self.eps)
        mean = reduce(x.sum(0)) / n
        var = reduce((x - mean).square().sum(0)) / n
        with torch.no_grad():
            self.num_batches_tracked += 1
            m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
            self.running_var.mul_(1 - m).add_(var.detach() * (n / (n - 1)), alpha=m)
        return (x - mean) / torch.sqrt(var + self.eps)
