"""Weight-space attention of the Neural Functional Transformer (Zhou et al., NeurIPS 2023, §3).

Features live on every entry of the weight space: W_i[r, s] ∈ R^d and b_i[r] ∈ R^d. Inside this module they
are held channels-last: ``W[i]`` (B, n_{i+1}, n_i, d), ``b[i]`` (B, n_{i+1}, d).

**Weight-space self-attention** (NFT §3.1) is the sum of three terms:

* *Neuron-layer (row / column) attention.* For every neuron layer h, the entries that touch layer h form a set
  of tokens, each token a whole vector over the n_h neurons of h:

      columns W_{h-1}[·, s] (one per neuron s of layer h-1),  the bias b_{h-1}[·],  rows W_h[t, ·] (one per t ∈ h+1)

  Queries, keys and values are per-entry projections; the logit between two tokens sums over the shared
  neuron index (Σ_{r∈h} ⟨q_u[r], k_{u'}[r]⟩ / √(n_h d_head)) and the softmax runs over the token set. Permuting
  layer h permutes every token's entries alike (logits unchanged, outputs permuted along r); permuting layer
  h±1 permutes the tokens (attention is equivariant to token order). Each weight matrix W_i is updated twice:
  as the *column* tokens of layer i+1's attention and as the *row* tokens of layer i's.
* *Global attention.* The means of every W_i and b_i (2L tokens) attend to each other; the result is
  broadcast back to every entry of its tensor (invariant to every neuron permutation).

The layer is equivariant to permutations of every neuron layer (the NP group); learned input/output-neuron
embeddings (:mod:`workbench.methods.nft.encoding`) break the input/output part so the network as a whole respects
exactly the hidden-neuron symmetry.

**Invariant cross-attention pooling** (NFT §3.2, Fig. 2): M learned queries attend over the set of all entries'
features and return M vectors, invariant to any reordering of the entries.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from workbench.lib.weightspace import NetworkSpec, WeightSpace

Feats = tuple[list[Tensor], list[Tensor]]  # channels-last weights and biases


class Layout:
    """All entries of a weight space as one token axis: W_0, …, W_{L-1} (row-major), then b_0, …, b_{L-1}.

    Per-entry maps (LayerNorm, projections, feed-forward) then run as one call on (B, N, d); :meth:`split`
    returns views of each layer for the attention."""

    def __init__(self, spec: NetworkSpec) -> None:
        self.spec = spec
        self.weight_shapes = [spec.weight_shape(i) for i in range(spec.num_layers)]
        sizes = [r * c for r, c in self.weight_shapes] + [r for r, _ in self.weight_shapes]
        self.offsets = [0]
        for n in sizes:
            self.offsets.append(self.offsets[-1] + n)

    @property
    def num_tokens(self) -> int:
        return self.offsets[-1]

    def flatten(self, W: list[Tensor], b: list[Tensor]) -> Tensor:
        return torch.cat([w.flatten(1, 2) for w in W] + list(b), dim=1)

    def split(self, x: Tensor) -> Feats:
        L, o = len(self.weight_shapes), self.offsets
        W = [x[:, o[i]:o[i + 1]].unflatten(1, self.weight_shapes[i]) for i in range(L)]
        b = [x[:, o[L + i]:o[L + i + 1]] for i in range(L)]
        return W, b


def to_channels_last(ws: WeightSpace) -> Feats:
    return [w.permute(0, 2, 3, 1) for w in ws.weights], [b.permute(0, 2, 1) for b in ws.biases]


def from_channels_last(feats: Feats) -> WeightSpace:
    W, b = feats
    return WeightSpace(tuple(w.permute(0, 3, 1, 2) for w in W), tuple(x.permute(0, 2, 1) for x in b))


def _attend(q: Tensor, k: Tensor, v: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """softmax(q kᵀ · scale) v over the last-but-one axis of k (the token set)."""
    attn = torch.softmax(q @ k.transpose(-2, -1) * scale, dim=-1)
    return attn @ v, attn


class WeightSpaceSelfAttention(nn.Module):
    """Multi-head weight-space self-attention: neuron-layer (row/column) terms + the global term (module
    docstring). ``record = True`` keeps the last attention maps in ``maps`` ({neuron layer: (B, heads, T, T)},
    plus ``"global"``)."""

    def __init__(self, spec: NetworkSpec, d_model: int, heads: int, global_term: bool = True) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model = {d_model} must be divisible by heads = {heads}")
        self.spec, self.d, self.heads, self.dh = spec, d_model, heads, d_model // heads
        self.global_term = global_term
        self.layout = Layout(spec)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.record = False
        self.maps: dict[int | str, Tensor] = {}

    def tokens(self, W: list[Tensor], b: list[Tensor], h: int) -> Tensor:
        """The token set of neuron layer h: (B, T_h, n_h, C) — columns of W_{h-1}, b_{h-1}, rows of W_h."""
        parts = []
        if h >= 1:
            parts += [W[h - 1].transpose(1, 2), b[h - 1][:, None]]
        if h < len(W):
            parts.append(W[h])
        return torch.cat(parts, dim=1)

    def _split(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B, T, n, 3d) → q, k, v of shape (B, heads, T, n·d_head)."""
        B, T, n, _ = t.shape
        t = t.reshape(B, T, n, 3, self.heads, self.dh).permute(3, 0, 4, 1, 2, 5)
        return tuple(x.reshape(B, self.heads, T, n * self.dh) for x in t)  # type: ignore[return-value]

    def attend(self, qW: list[Tensor], qb: list[Tensor]) -> Feats:
        """The three attention terms from per-entry q/k/v (channels-last, 3d channels); before ``out``."""
        L = len(qW)
        rows: list[Tensor] = []  # rows[h]: W_h's rows as tokens of neuron layer h (B, n_{h+1}, n_h, d)
        cols: list[Tensor] = []  # cols[h-1]: W_{h-1}'s columns as tokens of neuron layer h
        bias: list[Tensor] = []
        self.maps = {}
        for h in range(L + 1):
            tok = self.tokens(qW, qb, h)
            B, T, n, _ = tok.shape
            q, k, v = self._split(tok)
            o, attn = _attend(q, k, v, 1.0 / math.sqrt(n * self.dh))
            if self.record:
                self.maps[h] = attn.detach()
            o = o.reshape(B, self.heads, T, n, self.dh).permute(0, 2, 3, 1, 4).reshape(B, T, n, self.d)
            at = 0
            if h >= 1:
                m = qW[h - 1].shape[2]
                cols.append(o[:, :m].transpose(1, 2))
                bias.append(o[:, m])
                at = m + 1
            if h < L:
                rows.append(o[:, at:])
        outW = [r + c for r, c in zip(rows, cols)]
        outb = bias
        if self.global_term:
            means = torch.stack([w.mean(dim=(1, 2)) for w in qW] + [x.mean(dim=1) for x in qb], dim=1)  # (B, 2L, 3d)
            B = means.shape[0]
            q, k, v = means.reshape(B, 2 * L, 3, self.heads, self.dh).permute(2, 0, 3, 1, 4)
            o, attn = _attend(q, k, v, 1.0 / math.sqrt(self.dh))
            if self.record:
                self.maps["global"] = attn.detach()
            o = o.permute(0, 2, 1, 3).reshape(B, 2 * L, self.d)
            outW = [w + o[:, i, None, None] for i, w in enumerate(outW)]
            outb = [x + o[:, L + i, None] for i, x in enumerate(outb)]
        return outW, outb

    def forward_flat(self, x: Tensor) -> Tensor:
        """(B, N, d) tokens in :class:`Layout` order → (B, N, d)."""
        qW, qb = self.layout.split(self.qkv(x))
        return self.out(self.layout.flatten(*self.attend(qW, qb)))

    def forward_cl(self, W: list[Tensor], b: list[Tensor]) -> Feats:
        return self.layout.split(self.forward_flat(self.layout.flatten(W, b)))

    def forward(self, ws: WeightSpace) -> WeightSpace:
        return from_channels_last(self.forward_cl(*to_channels_last(ws)))


class NFTBlock(nn.Module):
    """Pre-LayerNorm Transformer block on weight space (NFT §3.1, Fig. 1):

        X ← X + WSA(LN(X)),   X ← X + FF(LN(X))

    LN normalises each entry's d channels; FF is a pointwise two-layer GELU MLP (d → ff·d → d)."""

    def __init__(self, spec: NetworkSpec, d_model: int, heads: int, ff_mult: int = 4, global_term: bool = True) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = WeightSpaceSelfAttention(spec, d_model, heads, global_term)
        self.ln2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, ff_mult * d_model), nn.GELU(), nn.Linear(ff_mult * d_model, d_model))

    def forward_flat(self, x: Tensor) -> Tensor:
        x = x + self.attn.forward_flat(self.ln1(x))
        return x + self.ff(self.ln2(x))

    def forward_cl(self, W: list[Tensor], b: list[Tensor]) -> Feats:
        layout = self.attn.layout
        return layout.split(self.forward_flat(layout.flatten(W, b)))

    def forward(self, ws: WeightSpace) -> WeightSpace:
        return from_channels_last(self.forward_cl(*to_channels_last(ws)))


class CrossAttentionPool(nn.Module):
    """M learned queries attend over all entries' features → (B, M, d), invariant to entry order (NFT §3.2).

    ``record = True`` keeps the last attention (B, heads, M, entries) in ``last``."""

    def __init__(self, d_model: int, heads: int, num_queries: int) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model = {d_model} must be divisible by heads = {heads}")
        self.heads, self.dh, self.m = heads, d_model // heads, num_queries
        self.queries = nn.Parameter(torch.randn(num_queries, d_model) / math.sqrt(d_model))
        self.ln = nn.LayerNorm(d_model)
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.record = False
        self.last: Tensor | None = None

    def forward_cl(self, W: list[Tensor], b: list[Tensor]) -> Tensor:
        return self.forward_flat(torch.cat([w.flatten(1, 2) for w in W] + list(b), dim=1))

    def forward_flat(self, tokens: Tensor) -> Tensor:
        """(B, N, d) entry features → (B, M, d)."""
        B, N, d = tokens.shape
        k, v = self.kv(self.ln(tokens)).reshape(B, N, 2, self.heads, self.dh).permute(2, 0, 3, 1, 4)
        q = self.q(self.queries).reshape(self.m, self.heads, self.dh).permute(1, 0, 2)  # (heads, M, dh)
        o, attn = _attend(q.unsqueeze(0), k, v, 1.0 / math.sqrt(self.dh))
        if self.record:
            self.last = attn.detach()
        o = o.permute(0, 2, 1, 3).reshape(B, self.m, d)
        return self.queries + self.out(o)

    def forward(self, ws: WeightSpace) -> Tensor:
        return self.forward_cl(*to_channels_last(ws))
