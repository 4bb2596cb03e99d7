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
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.lib.weightspace import NetworkSpec, WeightSpace

Feats = tuple[list[Tensor], list[Tensor]]  # channels-last weights and biases


class Layout:
    """All entries of a weight space as one token axis: W_0, …, W_{L-1} (row-major), then b_0, …, b_{L-1}.

    Per-entry maps (LayerNorm, projections, feed-forward) then run as one call on (B, N, d); :meth:`split`
    returns views of each layer for the attention (one ``torch.split``, whose backward is one concatenation)."""

    def __init__(self, spec: NetworkSpec) -> None:
        self.spec = spec
        self.weight_shapes = [spec.weight_shape(i) for i in range(spec.num_layers)]
        self.sizes = [r * c for r, c in self.weight_shapes] + [r for r, _ in self.weight_shapes]
        self.offsets = [0]
        for n in self.sizes:
            self.offsets.append(self.offsets[-1] + n)

    @property
    def num_tokens(self) -> int:
        return self.offsets[-1]

    def flatten(self, W: list[Tensor], b: list[Tensor], dim: int = 1) -> Tensor:
        """Inverse of :meth:`split`: weights (…, n_r, n_c, …) and biases (…, n_r, …) → one entry axis ``dim``."""
        return torch.cat([w.flatten(dim, dim + 1) for w in W] + list(b), dim=dim)

    def split(self, x: Tensor, dim: int = 1) -> Feats:
        """Views of each layer along the entry axis ``dim``: weights unflattened to (n_r, n_c), biases (n_r)."""
        parts = torch.split(x, self.sizes, dim=dim)
        L = len(self.weight_shapes)
        return [p.unflatten(dim, s) for p, s in zip(parts[:L], self.weight_shapes)], list(parts[L:])


def to_channels_last(ws: WeightSpace) -> Feats:
    return [w.permute(0, 2, 3, 1) for w in ws.weights], [b.permute(0, 2, 1) for b in ws.biases]


def from_channels_last(feats: Feats) -> WeightSpace:
    W, b = feats
    return WeightSpace(tuple(w.permute(0, 3, 1, 2) for w in W), tuple(x.permute(0, 2, 1) for x in b))


def _attend(q: Tensor, k: Tensor, v: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """softmax(q kᵀ · scale) v over the last-but-one axis of k (the token set), with the attention weights."""
    attn = torch.softmax(q @ k.transpose(-2, -1) * scale, dim=-1)
    return attn @ v, attn


class WeightSpaceSelfAttention(nn.Module):
    """Multi-head weight-space self-attention: neuron-layer (row/column) terms + the global term (module
    docstring). ``record = True`` keeps the last attention maps in ``maps`` ({neuron layer: (B, heads, T, T)},
    plus ``"global"``).

    The fast path (:meth:`attend_flat`) moves q/k/v to a head-major layout once, builds each token set with one
    concatenation (none for a set of rows only), runs ``scaled_dot_product_attention`` and takes the global
    term's q/k/v from each tensor's mean input (q/k/v are affine in it); :meth:`attend` is the same maths written out
    token set by token set in channels-last form (it returns the attention maps, so ``record`` uses it, and a
    test checks the two agree)."""

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
        member = torch.zeros(2 * spec.num_layers, self.layout.num_tokens)  # row j: 1 on tensor j's entries
        for j, (lo, hi) in enumerate(zip(self.layout.offsets[:-1], self.layout.offsets[1:])):
            member[j, lo:hi] = 1.0
        self.register_buffer("members", member, persistent=False)
        self.register_buffer("counts", torch.tensor(self.layout.sizes, dtype=torch.float32)[:, None], persistent=False)

    def tokens(self, W: list[Tensor], b: list[Tensor], h: int) -> Tensor:
        """The token set of neuron layer h: columns of W_{h-1}, b_{h-1}, rows of W_h, stacked on the token
        axis ``-3`` of tensors shaped (…, n_r, n_c, C) / (…, n_r, C): → (…, T_h, n_h, C)."""
        parts = []
        if h >= 1:
            parts += [W[h - 1].transpose(-3, -2), b[h - 1].unsqueeze(-3)]
        if h < len(W):
            parts.append(W[h])
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-3)

    def _untoken(self, o: Tensor, h: int) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        """Split a token set's output (…, T_h, n_h, C) back into (columns of W_{h-1} as (…, n_h, n_{h-1}, C),
        b_{h-1} (…, n_h, C), rows of W_h (…, n_{h+1}, n_h, C)); None where absent."""
        L = len(self.layout.weight_shapes)
        sizes = ([self.spec.dims[h - 1], 1] if h >= 1 else []) + ([self.spec.dims[h + 1]] if h < L else [])
        parts = list(torch.split(o, sizes, dim=-3))
        cols = bias = rows = None
        if h >= 1:
            cols, bias = parts[0].transpose(-3, -2), parts[1].squeeze(-3)
        if h < L:
            rows = parts[-1]
        return cols, bias, rows

    def attend_flat(self, qkv: Tensor, mean_qkv: Tensor | None) -> Tensor:
        """The three attention terms from per-entry q/k/v (B, N, 3d) in :class:`Layout` order and q/k/v of the
        2L tensor means (B, 2L, 3d) → (B, N, d), before ``out`` (fused attention, no attention maps)."""
        B, N, _ = qkv.shape
        H, dh, L = self.heads, self.dh, len(self.layout.weight_shapes)
        hm = qkv.view(B, N, 3, H, dh).permute(2, 0, 3, 1, 4).contiguous()  # (3, B, H, N, dh): the one transpose
        W, b = self.layout.split(hm, dim=3)  # (3, B, H, n_r, n_c, dh), (3, B, H, n_r, dh)
        rows: list[Tensor] = []
        cols: list[Tensor] = []
        bias: list[Tensor] = []
        for h in range(L + 1):
            n = self.spec.dims[h]
            q, k, v = self.tokens(W, b, h).flatten(-2).unbind(0)  # (B, H, T_h, n_h·dh)
            o = F.scaled_dot_product_attention(q, k, v, scale=1.0 / math.sqrt(n * dh)).unflatten(-1, (n, dh))
            c, x, r = self._untoken(o, h)
            if c is not None:
                cols.append(c)
                bias.append(x)
            if r is not None:
                rows.append(r)
        outW = [torch.add(r, c) for r, c in zip(rows, cols)]
        if mean_qkv is not None:
            means = mean_qkv.view(B, 2 * L, 3, H, dh).permute(2, 0, 3, 1, 4)  # (3, B, H, 2L, dh)
            g = F.scaled_dot_product_attention(*means.unbind(0))  # scale 1/√d_head
            outW = [w.add_(g[:, :, i, None, None]) for i, w in enumerate(outW)]
            bias = [x + g[:, :, L + i, None] for i, x in enumerate(bias)]
        pieces = [w.flatten(2, 3).transpose(1, 2) for w in outW] + [x.transpose(1, 2) for x in bias]
        return torch.cat(pieces, dim=1).view(B, N, self.d)  # back to entry-major (B, N, H·dh): one copy

    def _split(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B, T, n, 3d) → q, k, v of shape (B, heads, T, n·d_head)."""
        B, T, n, _ = t.shape
        t = t.reshape(B, T, n, 3, self.heads, self.dh).permute(3, 0, 4, 1, 2, 5)
        return tuple(x.reshape(B, self.heads, T, n * self.dh) for x in t)  # type: ignore[return-value]

    def attend(self, qW: list[Tensor], qb: list[Tensor]) -> Feats:
        """Reference form of :meth:`attend_flat` on channels-last q/k/v (3d channels), token set by token set
        with explicit softmax; fills ``maps``."""
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
            self.maps[h] = attn.detach()
            o = o.reshape(B, self.heads, T, n, self.dh).permute(0, 2, 3, 1, 4).reshape(B, T, n, self.d)
            c, x, r = self._untoken(o, h)
            if c is not None:
                cols.append(c)
                bias.append(x)
            if r is not None:
                rows.append(r)
        outW = [r + c for r, c in zip(rows, cols)]
        outb = bias
        if self.global_term:
            means = torch.stack([w.mean(dim=(1, 2)) for w in qW] + [x.mean(dim=1) for x in qb], dim=1)  # (B, 2L, 3d)
            B = means.shape[0]
            q, k, v = means.reshape(B, 2 * L, 3, self.heads, self.dh).permute(2, 0, 3, 1, 4)
            o, attn = _attend(q, k, v, 1.0 / math.sqrt(self.dh))
            self.maps["global"] = attn.detach()
            o = o.permute(0, 2, 1, 3).reshape(B, 2 * L, self.d)
            outW = [w + o[:, i, None, None] for i, w in enumerate(outW)]
            outb = [x + o[:, L + i, None] for i, x in enumerate(outb)]
        return outW, outb

    def forward_flat(self, x: Tensor, reference: bool = False) -> Tensor:
        """(B, N, d) tokens in :class:`Layout` order → (B, N, d) (``reference`` or ``record``: :meth:`attend`)."""
        qkv = self.qkv(x)
        if reference or self.record:
            y = self.layout.flatten(*self.attend(*self.layout.split(qkv)))
        else:  # q/k/v are affine in x: the q/k/v of each tensor's mean entry are those of its mean input
            means = (self.members.to(x.dtype) @ x) / self.counts.to(x.dtype) if self.global_term else None
            y = self.attend_flat(qkv, self.qkv(means) if means is not None else None)
        return self.out(y)

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
