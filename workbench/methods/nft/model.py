"""Models that read weight spaces: the NFT encoder and its invariant head, and the NP/HNP networks.

* :class:`NFTEncoder`: Fourier features + embeddings → ``depth`` pre-LN NFT blocks → LayerNorm (NFT §3).
* :class:`NFTInvariant`: the encoder, invariant cross-attention pooling to M vectors, an MLP to ``out_dim``.
  Invariant to permutations of hidden neurons (every block is equivariant, the pooling invariant).
* :class:`NFNInvariant`: NP or HNP layers with ReLU, their invariant pooling and an MLP (Zhou et al. 2023a §3.3).

Every model standardises its input with one scalar mean/std per weight and bias tensor
(:class:`~workbench.methods.nft.layers.WeightSpaceNormalizer`), fitted on the training networks with ``fit(ws)``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from workbench.lib.weightspace import NetworkSpec, WeightSpace

from .attention import CrossAttentionPool, Feats, Layout, NFTBlock, from_channels_last
from .encoding import WeightSpaceEmbedding
from .layers import (
    EquivariantLinear,
    EquivariantPool,
    FeatureStandardizer,
    HNPLinear,
    HNPPool,
    NPLinear,
    NPPool,
    TupleReLU,
    WeightSpaceLift,
    WeightSpaceNormalizer,
)


def invariant_head(d_in: int, hidden: int, out_dim: int) -> nn.Sequential:
    """The MLP on pooled invariant features, each feature standardised over the networks first
    (:class:`~workbench.methods.nft.layers.FeatureStandardizer`)."""
    return nn.Sequential(FeatureStandardizer(d_in), *mlp_head(d_in, hidden, out_dim))


def mlp_head(d_in: int, hidden: int, out_dim: int, layers: int = 2) -> nn.Sequential:
    mods: list[nn.Module] = []
    d = d_in
    for _ in range(layers - 1):
        mods += [nn.Linear(d, hidden), nn.GELU()]
        d = hidden
    mods.append(nn.Linear(d, out_dim))
    return nn.Sequential(*mods)


class WeightSpaceModel(nn.Module):
    """Base class: a per-tensor input normaliser fitted with ``fit(ws)``."""

    def __init__(self, spec: NetworkSpec) -> None:
        super().__init__()
        self.spec = spec
        self.normalize = WeightSpaceNormalizer(spec.num_layers)

    def fit(self, ws: WeightSpace) -> "WeightSpaceModel":
        self.normalize.fit(ws)
        return self


class NFTEncoder(nn.Module):
    """Embedding (Fourier features, layer and input/output-neuron embeddings) → NFT blocks → LayerNorm."""

    def __init__(self, spec: NetworkSpec, d_model: int = 64, heads: int = 4, depth: int = 2, ff_mult: int = 4,
                 fourier_features: int = 16, fourier_scale: float = 3.0, in_channels: int = 1,
                 io_embeddings: bool = True) -> None:
        super().__init__()
        self.spec, self.d_model = spec, d_model
        self.embed = WeightSpaceEmbedding(spec, d_model, fourier_features, fourier_scale, in_channels, io_embeddings)
        self.blocks = nn.ModuleList(NFTBlock(spec, d_model, heads, ff_mult) for _ in range(depth))
        self.ln = nn.LayerNorm(d_model)
        self.layout = Layout(spec)

    def forward_flat(self, ws: WeightSpace) -> Tensor:
        """Features of every entry as one token axis (B, N, d) in :class:`~workbench.methods.nft.attention.Layout` order."""
        x = self.layout.flatten(*self.embed.forward_cl(ws))
        for block in self.blocks:
            x = block.forward_flat(x)
        return self.ln(x)

    def forward_cl(self, ws: WeightSpace) -> Feats:
        return self.layout.split(self.forward_flat(ws))

    def forward(self, ws: WeightSpace) -> WeightSpace:
        """Equivariant features (B, d, n_{i+1}, n_i) / (B, d, n_{i+1}) of every entry."""
        return from_channels_last(self.forward_cl(ws))


class NFTInvariant(WeightSpaceModel):
    """NFT encoder → cross-attention pooling (M queries) → MLP: a batched WeightSpace → (batch, out_dim),
    invariant to hidden-neuron permutations."""

    def __init__(self, spec: NetworkSpec, d_model: int = 64, heads: int = 4, depth: int = 2, out_dim: int = 1,
                 num_queries: int = 4, head_hidden: int | None = None, ff_mult: int = 4, fourier_features: int = 16,
                 fourier_scale: float = 3.0, in_channels: int = 1, io_embeddings: bool = True) -> None:
        super().__init__(spec)
        self.encoder = NFTEncoder(spec, d_model, heads, depth, ff_mult, fourier_features, fourier_scale,
                                  in_channels, io_embeddings)
        self.pool = CrossAttentionPool(d_model, heads, num_queries)
        self.head = invariant_head(num_queries * d_model, head_hidden or 2 * d_model, out_dim)

    def features(self, ws: WeightSpace) -> Tensor:
        """The pooled invariant vectors (B, M, d)."""
        return self.pool.forward_flat(self.encoder.forward_flat(self.normalize(ws)))

    def forward(self, ws: WeightSpace) -> Tensor:
        return self.head(self.features(ws).flatten(1))

    @torch.no_grad()
    def attention_maps(self, ws: WeightSpace, block: int = 0) -> dict[int | str, Tensor]:
        """Head-averaged attention of block ``block``: {neuron layer h: (B, T_h, T_h), "global": (B, 2L, 2L),
        "pool": (B, M, entries)} (token order: :func:`token_labels`)."""
        attn = self.encoder.blocks[block].attn
        attn.record, self.pool.record = True, True
        try:
            self(ws)
            maps: dict[int | str, Tensor] = {k: v.mean(dim=1) for k, v in attn.maps.items()}
            maps["pool"] = self.pool.last.mean(dim=1)
        finally:
            attn.record, self.pool.record = False, False
            attn.maps, self.pool.last = {}, None
        return maps


def token_labels(spec: NetworkSpec, h: int) -> list[str]:
    """Names of the tokens of neuron layer h's attention: columns of W_{h-1}, b_{h-1}, rows of W_h."""
    out = []
    if h >= 1:
        out += [f"W{h - 1}[:, {s}] (in {s})" for s in range(spec.dims[h - 1])] + [f"b{h - 1}"]
    if h < spec.num_layers:
        out += [f"W{h}[{t}, :] (out {t})" for t in range(spec.dims[h + 1])]
    return out


class NFNInvariant(WeightSpaceModel):
    """NP or HNP network: lift → (equivariant linear + ReLU) × depth → invariant pooling → MLP."""

    def __init__(self, spec: NetworkSpec, mode: str = "hnp", channels: int = 32, depth: int = 2, out_dim: int = 1,
                 head_hidden: int = 128, in_channels: int = 1) -> None:
        super().__init__(spec)
        if mode not in ("np", "hnp"):
            raise ValueError(f"mode = {mode!r}; allowed: np, hnp")
        layer: type[EquivariantLinear] = NPLinear if mode == "np" else HNPLinear
        mods: list[nn.Module] = [WeightSpaceLift(spec, in_channels, channels)]
        for _ in range(depth):
            mods += [layer(spec, channels, channels), TupleReLU()]
        self.body = nn.Sequential(*mods)
        self.pool: EquivariantPool = NPPool(spec) if mode == "np" else HNPPool(spec)
        self.head = invariant_head(self.pool.out_features(channels), head_hidden, out_dim)

    def forward(self, ws: WeightSpace) -> Tensor:
        return self.head(self.pool(self.body(self.normalize(ws))))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_model(kind: str, spec: NetworkSpec, out_dim: int, *, d_model: int = 32, heads: int = 4, depth: int = 2,
                num_queries: int = 4, channels: int = 32, hidden: int = 128, fourier_features: int = 16,
                fourier_scale: float = 3.0, in_channels: int = 1) -> nn.Module:
    """One of the models compared by the experiment: ``nft``, ``np``, ``hnp``, ``stats`` or ``flat``."""
    from .baselines import FlatMLP, StatNet

    if kind == "nft":
        return NFTInvariant(spec, d_model, heads, depth, out_dim, num_queries=num_queries, head_hidden=hidden,
                            fourier_features=fourier_features, fourier_scale=fourier_scale, in_channels=in_channels)
    if kind in ("np", "hnp"):
        return NFNInvariant(spec, kind, channels, depth, out_dim, head_hidden=hidden, in_channels=in_channels)
    if kind == "stats":
        return StatNet(spec, out_dim, hidden)
    if kind == "flat":
        return FlatMLP(spec, out_dim, hidden, in_channels=in_channels)
    raise ValueError(f"model kind = {kind!r}; allowed: nft, np, hnp, stats, flat")


def build_saved(kind: str, dims: list[int], filters: list[list[int]], out_dim: int, **kwargs: Any) -> nn.Module:
    """:func:`build_model` from plain values (a saved model's spec: ``NetworkSpec`` as its ``dims`` and ``filters``)."""
    return build_model(kind, NetworkSpec(tuple(dims), tuple(tuple(f) for f in filters)), out_dim, **kwargs)


MODEL_KINDS = ("nft", "np", "hnp", "stats", "flat")
INVARIANT_KINDS = ("nft", "np", "hnp", "stats")


def describe(kind: str) -> dict[str, Any]:
    return {"nft": "NFT (weight-space attention)", "np": "NFN-NP", "hnp": "NFN-HNP",
            "stats": "weight statistics + MLP", "flat": "flat MLP on all weights",
            "inr2array": "Inr2Array latent + MLP"}.get(kind, kind)  # type: ignore[return-value]
