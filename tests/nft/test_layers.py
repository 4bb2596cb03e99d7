"""Equivariance of the NP/HNP layers and the NFT blocks in float64, sensitivity of the checks, completeness of
the linear layers (they span every equivariant linear map), invariance of the pooled models."""
import itertools
import math

import pytest
import torch

from workbench.methods.nft import (
    CrossAttentionPool,
    FlatMLP,
    HNPLinear,
    HNPPool,
    NFNInvariant,
    NFTBlock,
    NFTInvariant,
    NPLinear,
    NPPool,
    StatNet,
    WeightSpaceSelfAttention,
    equivariance_error,
    invariance_error,
    token_labels,
    uncoupled_permute,
)
from workbench.methods.nft.layers import WeightSpaceLift
from workbench.lib.weightspace import NetworkSpec, WeightSpace

TOL = 1e-11


def _ws(spec: NetworkSpec, channels: int, batch: int = 2, seed: int = 0) -> WeightSpace:
    g = torch.Generator().manual_seed(seed)
    weights = tuple(torch.randn(batch, channels * spec.filter_size(i), *spec.weight_shape(i), generator=g,
                                dtype=torch.float64) for i in range(spec.num_layers))
    biases = tuple(torch.randn(batch, channels, spec.dims[i + 1], generator=g, dtype=torch.float64)
                   for i in range(spec.num_layers))
    return WeightSpace(weights, biases, spec.filters)


def _perms(ws: WeightSpace, layers, seed: int = 1):
    return ws.random_permutations(torch.Generator().manual_seed(seed), layers=layers)


SPEC = NetworkSpec((4, 5, 6, 3))
SQUARE = NetworkSpec((5, 5, 5, 5))
ALL = tuple(range(SPEC.num_layers + 1))


def test_np_layer_is_equivariant_to_every_neuron_permutation():
    layer = NPLinear(SPEC, 3, 4).double()
    ws = _ws(SPEC, 3)
    assert equivariance_error(layer, ws, _perms(ws, ALL)) < TOL
    assert layer(ws).max_abs_diff(ws.map(lambda t: t[:, :1].expand(-1, 4, *t.shape[2:]))) > 0.1  # not trivial


def test_hnp_layer_is_equivariant_to_hidden_permutations_only():
    layer = HNPLinear(SPEC, 3, 4).double()
    ws = _ws(SPEC, 3)
    assert equivariance_error(layer, ws, _perms(ws, SPEC.hidden)) < TOL
    # it uses the identity of input and output neurons: permuting them is not a symmetry of the layer
    assert equivariance_error(layer, ws, _perms(ws, (0,))) > 1e-3
    assert equivariance_error(layer, ws, _perms(ws, (SPEC.num_layers,))) > 1e-3


@pytest.mark.parametrize("make", [lambda s: NPLinear(s, 2, 3), lambda s: HNPLinear(s, 2, 3),
                                  lambda s: WeightSpaceSelfAttention(s, 8, 2), lambda s: NFTBlock(s, 8, 2)],
                         ids=["np", "hnp", "attention", "nft-block"])
def test_layers_fail_under_uncoupled_permutations(make):
    """Rows of W_{h-1} and columns of W_h permuted differently is not a symmetry: a layer that couples them
    (every layer here) must not be equivariant to it."""
    ws = _ws(SPEC, 2 if "NP" in make(SPEC).__class__.__name__ else 8)
    layer = make(SPEC).double()
    perms, other = _perms(ws, SPEC.hidden, seed=1), _perms(ws, SPEC.hidden, seed=2)
    assert equivariance_error(layer, ws, perms) < TOL
    assert equivariance_error(layer, ws, perms, act=lambda w, p: uncoupled_permute(w, p, other)) > 1e-3


class _NPIgnoringCoupling(NPLinear):
    """A wrong NP layer: it attributes an edge's column means to its *row* neurons (shapes agree when all
    widths are equal), i.e. it ignores which side of W_i is shared with W_{i±1}."""

    def gather(self, ws):
        xs, _, g = super().gather(ws)
        parts = {h: [] for h in self.layers_on}
        for o, x in zip(self.objs, xs):
            if o.kind == "edge":
                parts[o.rows].append(x.mean(dim=2))  # wrong: column means put on the row neurons
                parts[o.rows - 1].append(x.mean(dim=3))  # wrong: row means put on the column neurons
            elif o.kind == "node":
                parts[o.on].append(x)
        return xs, {h: torch.cat(p, dim=1) for h, p in parts.items()}, g


class _AttentionIgnoringCoupling(WeightSpaceSelfAttention):
    """A wrong attention: rows of W_h are taken as columns (square matrices only)."""

    def tokens(self, W, b, h):
        parts = []
        if h >= 1:
            parts += [W[h - 1].transpose(-3, -2), b[h - 1].unsqueeze(-3)]
        if h < len(W):
            parts.append(W[h].transpose(-3, -2))
        return torch.cat(parts, dim=-3)


@pytest.mark.parametrize("wrong", [lambda: _NPIgnoringCoupling(SQUARE, 2, 2), lambda: _AttentionIgnoringCoupling(SQUARE, 8, 2)],
                         ids=["np-linear", "attention"])
def test_a_layer_that_ignores_the_coupling_fails_the_equivariance_check(wrong):
    layer = wrong().double()
    ws = _ws(SQUARE, 2 if isinstance(layer, NPLinear) else 8)
    assert equivariance_error(layer, ws, _perms(ws, SQUARE.hidden)) > 1e-3


def _orbits_of_pairs(spec: NetworkSpec, permuted) -> int:
    """Burnside: the number of orbits of the permutation group on (output entry, input entry) pairs equals the
    dimension of the space of equivariant linear maps; it is the mean over group elements of fix(g)²."""
    groups = [list(itertools.permutations(range(spec.dims[h]))) if h in permuted else [tuple(range(spec.dims[h]))]
              for h in range(spec.num_layers + 1)]
    total = 0
    count = 0
    for g in itertools.product(*groups):
        fixed = 0
        for i in range(spec.num_layers):
            rows, cols = g[i + 1], g[i]
            fixed += sum(1 for r in range(len(rows)) for s in range(len(cols)) if rows[r] == r and cols[s] == s)
            fixed += sum(1 for r in range(len(rows)) if rows[r] == r)
        total += fixed ** 2
        count += 1
    return total // count


@pytest.mark.parametrize("layer_cls,permuted", [(NPLinear, "all"), (HNPLinear, "hidden")])
def test_linear_layers_span_every_equivariant_linear_map(layer_cls, permuted):
    """The dense matrices of the layer over random parameters span a space of exactly the dimension given by
    Burnside's count: the layer is equivariant *and* complete (NFN paper Thm. 3.1)."""
    spec = NetworkSpec((2, 3, 2))
    perm_layers = range(spec.num_layers + 1) if permuted == "all" else spec.hidden
    expected = _orbits_of_pairs(spec, set(perm_layers))
    ws = _ws(spec, 1, batch=1)
    n = ws.flatten().shape[1]
    rows = []
    for seed in range(expected + 10):
        torch.manual_seed(seed)
        layer = layer_cls(spec, 1, 1).double()

        def f(flat):
            return layer(WeightSpace.from_flat(flat[None], spec)).flatten()[0]

        jac = torch.autograd.functional.jacobian(f, torch.zeros(n, dtype=torch.float64))
        rows.append(jac.flatten())
    rank = int(torch.linalg.matrix_rank(torch.stack(rows), tol=1e-8))
    assert rank == expected, (rank, expected)


def test_nft_block_and_attention_are_equivariant_in_float64():
    ws = _ws(SPEC, 8)
    perms = _perms(ws, ALL)
    for layer in (WeightSpaceSelfAttention(SPEC, 8, 2), NFTBlock(SPEC, 8, 2),
                  WeightSpaceSelfAttention(SPEC, 8, 4, global_term=False)):
        assert equivariance_error(layer.double(), ws, perms) < TOL


@pytest.mark.parametrize("global_term", [True, False], ids=["global", "no-global"])
def test_fused_attention_equals_the_token_by_token_reference(global_term):
    """The fast path (head-major layout, scaled_dot_product_attention, q/k/v of tensor means from mean inputs)
    computes the same values and gradients as the explicit softmax over each token set."""
    layer = WeightSpaceSelfAttention(SPEC, 8, 2, global_term).double()
    x = torch.randn(3, layer.layout.num_tokens, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    x.requires_grad_(True)
    fast, ref = layer.forward_flat(x), layer.forward_flat(x, reference=True)
    assert float(ref.detach().abs().max()) > 0.1 and float((fast - ref).detach().abs().max()) < 1e-12
    g_fast = torch.autograd.grad(fast.square().sum(), [x, *layer.parameters()])
    g_ref = torch.autograd.grad(ref.square().sum(), [x, *layer.parameters()])
    assert all(float((a - b).abs().max()) < 1e-10 for a, b in zip(g_fast, g_ref))


def test_attention_maps_are_distributions_over_each_token_set():
    layer = WeightSpaceSelfAttention(SPEC, 8, 2).double()
    layer.record = True
    layer(_ws(SPEC, 8))
    for h in range(SPEC.num_layers + 1):
        attn = layer.maps[h]
        t = len(token_labels(SPEC, h))
        assert attn.shape == (2, 2, t, t) and torch.allclose(attn.sum(-1), torch.ones(2, 2, t, dtype=torch.float64))
    assert layer.maps["global"].shape == (2, 2, 6, 6)


def test_cross_attention_pool_is_invariant_to_entry_order():
    pool = CrossAttentionPool(8, 2, 3).double()
    ws = _ws(SPEC, 8)
    assert invariance_error(pool, ws, _perms(ws, ALL)) < TOL
    assert pool(ws).shape == (2, 3, 8)


CNN = NetworkSpec((2, 4, 5, 3), ((3, 3), (3, 3), ()))


@pytest.mark.parametrize("spec", [SPEC, CNN], ids=["mlp", "cnn"])
@pytest.mark.parametrize("kind", ["nft", "np", "hnp", "stats"])
def test_pooled_models_are_invariant_to_hidden_permutations(spec, kind):
    torch.manual_seed(0)
    model = {"nft": lambda: NFTInvariant(spec, d_model=8, heads=2, depth=2, out_dim=3, num_queries=2),
             "np": lambda: NFNInvariant(spec, "np", channels=4, depth=2, out_dim=3),
             "hnp": lambda: NFNInvariant(spec, "hnp", channels=4, depth=2, out_dim=3),
             "stats": lambda: StatNet(spec, 3, hidden=8)}[kind]().double()
    ws = _ws(spec, 1, batch=3)
    model.fit(ws)
    out = model(ws)
    assert out.shape == (3, 3) and float(out.detach().std()) > 0
    assert invariance_error(model, ws, _perms(ws, spec.hidden)) < 1e-10


def test_flat_mlp_is_not_invariant_and_nft_tells_inputs_apart():
    ws = _ws(SPEC, 1, batch=3)
    perms = _perms(ws, SPEC.hidden)
    torch.manual_seed(0)
    assert invariance_error(FlatMLP(SPEC, 1, 16).double().fit(ws), ws, perms) > 1e-4
    nft = NFTInvariant(SPEC, d_model=8, heads=2, depth=1, out_dim=1).double().fit(ws)
    assert invariance_error(nft, ws, _perms(ws, (0,))) > 1e-6  # input neurons carry learned embeddings


def test_pools_return_the_documented_features():
    ws = _ws(SPEC, 2)
    g = NPPool(SPEC)(ws)
    assert g.shape == (2, 2 * 2 * SPEC.num_layers)
    assert torch.allclose(g[:, :2], ws.weights[0].mean(dim=(2, 3)))
    h = HNPPool(SPEC)(ws)  # W_0: columns kept (4 inputs × 2 ch), b_2 kept (3 outputs × 2 ch), W_2: rows kept
    assert h.shape[1] == HNPPool(SPEC).out_features(2) == 2 * 4 + 2 + 2 + 2 + 2 * 3 + 2 * 3
    lift = WeightSpaceLift(CNN, 1, 4).double()
    cnn = _ws(CNN, 1)
    assert lift(cnn).weights[0].shape == (2, 4, 4, 2) and math.isfinite(float(lift(cnn).flatten().sum()))


@pytest.mark.parametrize("name", ["NPLinear", "HNPLinear"])
def test_the_nfn_package_layers_lie_in_the_span_of_ours(name):
    """Two implementations of the same layer family: the dense matrices of the ``nfn`` package's layer (the
    optional bench extra) are linear combinations of ours — adding them does not raise the rank."""
    nfn_layers = pytest.importorskip("nfn.layers")
    from nfn.common import WeightSpaceFeatures, network_spec_from_wsfeat

    spec = NetworkSpec((2, 3, 2))
    ours_cls = {"NPLinear": NPLinear, "HNPLinear": HNPLinear}[name]
    ws = _ws(spec, 1, batch=1)
    n = ws.flatten().shape[1]
    nspec = network_spec_from_wsfeat(WeightSpaceFeatures(list(ws.weights), list(ws.biases)))

    def dense(f) -> torch.Tensor:
        return torch.autograd.functional.jacobian(f, torch.zeros(n, dtype=torch.float64)).flatten()

    def ours(seed):
        torch.manual_seed(seed)
        layer = ours_cls(spec, 1, 1).double()
        return dense(lambda flat: layer(WeightSpace.from_flat(flat[None], spec)).flatten()[0])

    def theirs(seed):
        torch.manual_seed(seed)
        layer = getattr(nfn_layers, name)(nspec, 1, 1).double()

        def f(flat):
            x = WeightSpace.from_flat(flat[None], spec)
            out = layer(WeightSpaceFeatures(list(x.weights), list(x.biases)))
            return WeightSpace(tuple(out.weights), tuple(out.biases)).flatten()[0]

        return dense(f)

    basis = torch.stack([ours(s) for s in range(90)])
    rank = int(torch.linalg.matrix_rank(basis, tol=1e-8))
    both = torch.cat([basis, torch.stack([theirs(s) for s in range(5)])])
    assert int(torch.linalg.matrix_rank(both, tol=1e-8)) == rank
