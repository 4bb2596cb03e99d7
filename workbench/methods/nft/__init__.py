"""Neural Functional Transformers (Zhou et al., NeurIPS 2023) and the NP/HNP neural functionals they build on.

Public API::

    from workbench.methods.nft import NFTInvariant, NPLinear, HNPLinear, NPPool, HNPPool, Inr2Array
    model = NFTInvariant(ws.spec, d_model=32, heads=4, depth=2, out_dim=1)   # WeightSpace → (batch, out_dim)
    model.fit(train_ws)                       # per-tensor input standardisation from the training networks
    invariance_error(model, ws, ws.random_permutations())                 # ≈ 0 (float64: round-off)
"""
from .attention import CrossAttentionPool, NFTBlock, WeightSpaceSelfAttention, from_channels_last, to_channels_last
from .baselines import FlatMLP, StatNet, weight_statistics
from .encoding import GaussianFourierFeatures, WeightSpaceEmbedding
from .inr2array import HyperDecoder, Inr2Array, LatentClassifier, build_inr2array
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
from .model import (
    INVARIANT_KINDS,
    MODEL_KINDS,
    NFNInvariant,
    NFTEncoder,
    NFTInvariant,
    WeightSpaceModel,
    build_model,
    build_saved,
    count_parameters,
    token_labels,
)
from .metrics import kendall_tau, r2_score
from .symmetry import equivariance_error, invariance_error, random_permutations, uncoupled_permute

__all__ = [
    "CrossAttentionPool", "NFTBlock", "WeightSpaceSelfAttention", "from_channels_last", "to_channels_last",
    "FlatMLP", "StatNet", "weight_statistics", "GaussianFourierFeatures", "WeightSpaceEmbedding",
    "EquivariantLinear", "EquivariantPool", "FeatureStandardizer", "HNPLinear", "HNPPool", "NPLinear", "NPPool", "TupleReLU",
    "WeightSpaceLift", "WeightSpaceNormalizer", "INVARIANT_KINDS", "MODEL_KINDS", "NFNInvariant", "NFTEncoder",
    "NFTInvariant", "WeightSpaceModel", "build_model", "count_parameters", "token_labels",
    "equivariance_error", "invariance_error", "random_permutations", "uncoupled_permute",
    "HyperDecoder", "Inr2Array", "LatentClassifier", "build_inr2array", "build_saved", "kendall_tau", "r2_score",
]
