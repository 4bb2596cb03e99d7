"""WeightSpace: round trips through modules and state dicts, the permutation symmetry, batched calls."""
import pytest
import torch
from torch import nn

from workbench.lib.weightspace import NetworkSpec, WeightSpace, parameter_names


def _mlp(dims=(5, 7, 6, 3), seed=0, act=nn.Tanh, dtype=torch.float64):
    torch.manual_seed(seed)
    layers = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(act())
    return nn.Sequential(*layers).to(dtype)


def _cnn(seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, (3, 2), padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3)).to(dtype)


def test_spec_counts_and_hidden_layers():
    spec = NetworkSpec((2, 32, 32, 1))
    assert spec.num_layers == 3 and spec.hidden == (1, 2) and spec.num_params == 2 * 32 + 32 + 32 * 32 + 32 + 32 + 1
    assert not spec.is_permutable(0) and spec.is_permutable(1) and not spec.is_permutable(3)
    conv = NetworkSpec((1, 8, 10), ((3, 3), ()))
    assert conv.filter_size(0) == 9 and conv.num_params == 9 * 8 + 8 + 80 + 10
    with pytest.raises(ValueError, match="filter shapes"):
        NetworkSpec((1, 2, 3), ((3, 3),))


def test_from_mlp_to_mlp_round_trip():
    net = _mlp()
    ws = WeightSpace.from_mlp(net)
    assert ws.spec.dims == (5, 7, 6, 3) and ws.batch_size == 1 and ws.channels == 1
    assert ws.weights[1].shape == (1, 1, 6, 7) and ws.biases[2].shape == (1, 1, 3)
    back = ws.to_mlp(nn.Tanh())
    for (n1, p1), (n2, p2) in zip(net.state_dict().items(), back.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)
    x = torch.randn(11, 5, dtype=torch.float64)
    assert torch.equal(net(x), back(x))
    assert WeightSpace.from_mlp(back).allclose(ws, atol=0, rtol=0)


def test_from_mlp_rejects_layers_with_parameters():
    with pytest.raises(ValueError, match="BatchNorm1d"):
        WeightSpace.from_mlp(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)))
    with pytest.raises(TypeError):
        WeightSpace.from_mlp(nn.Linear(3, 4))


def test_state_dict_round_trip_and_batches():
    nets = [_mlp(seed=s) for s in range(3)]
    ws = WeightSpace.from_state_dicts([n.state_dict() for n in nets], nets[0])
    assert ws.batch_size == 3
    for i, n in enumerate(nets):
        sd = ws.to_state_dict(n, i)
        assert sd.keys() == n.state_dict().keys()
        assert all(torch.equal(sd[k], v) for k, v in n.state_dict().items())
    assert WeightSpace.cat([WeightSpace.from_mlp(n) for n in nets]).allclose(ws, atol=0, rtol=0)
    # flatten follows the state dict's order and inverts
    flat = ws.flatten()
    assert torch.equal(flat[1], torch.cat([v.flatten() for v in nets[1].state_dict().values()]))
    assert WeightSpace.from_flat(flat, ws.spec).allclose(ws, atol=0, rtol=0)


def test_cnn_filters_fold_into_channels_and_back():
    net = _cnn()
    ws = WeightSpace.from_module(net)
    assert ws.spec.dims == (2, 4, 5, 3) and ws.filters == ((3, 3), (3, 2), ())
    w = net[0].weight  # (out, in, kh, kw)
    assert ws.weights[0].shape == (1, 9, 4, 2)
    for t in range(9):  # tap-major channels: channel t holds tap (t // 3, t % 3)
        assert torch.equal(ws.weights[0][0, t], w[:, :, t // 3, t % 3])
    fresh = _cnn(seed=1)
    fresh.load_state_dict(ws.to_state_dict(fresh))
    x = torch.randn(4, 2, 6, 5, dtype=torch.float64)
    assert torch.equal(fresh(x), net(x))


def test_permute_by_hand_on_a_tiny_network():
    net = _mlp((2, 3, 2))
    ws = WeightSpace.from_mlp(net)
    perm = torch.tensor([2, 0, 1])
    p = ws.permute(0, perm)
    W0, b0, W1 = net[0].weight, net[0].bias, net[2].weight
    assert torch.equal(p.weights[0][0, 0], W0[perm]) and torch.equal(p.biases[0][0, 0], b0[perm])
    assert torch.equal(p.weights[1][0, 0], W1[:, perm]) and torch.equal(p.biases[1], ws.biases[1])


@pytest.mark.parametrize("act", [nn.Tanh, nn.ReLU, nn.Sigmoid])
def test_permuted_networks_compute_the_same_function(act):
    net = _mlp((6, 9, 8, 7, 4), act=act)
    ws = WeightSpace.from_mlp(net)
    g = torch.Generator().manual_seed(1)
    permuted = ws
    for layer in range(3):
        permuted = permuted.permute(layer, torch.randperm(ws.spec.dims[layer + 1], generator=g))
    assert permuted.max_abs_diff(ws) > 0.1  # the weights did move
    x = torch.randn(32, 6, dtype=torch.float64)
    assert torch.allclose(permuted.to_mlp(act())(x), net(x), atol=1e-12, rtol=0)
    # permuting the inputs or the outputs is not a symmetry
    moved_in = ws.permute_neurons(0, torch.roll(torch.arange(6), 1)).to_mlp(act())(x)
    moved_out = ws.permute_neurons(4, torch.roll(torch.arange(4), 1)).to_mlp(act())(x)
    assert (moved_in - net(x)).abs().max() > 1e-3 and (moved_out - net(x)).abs().max() > 1e-3


def test_permuted_cnn_channels_compute_the_same_function():
    net = _cnn()
    ws = WeightSpace.from_module(net)
    perms = ws.random_permutations(torch.Generator().manual_seed(0), per_network=False)
    permuted = ws.permute_all(perms)
    x = torch.randn(3, 2, 7, 7, dtype=torch.float64)
    out = permuted.functional_call(net, x)[0]
    assert permuted.max_abs_diff(ws) > 0.05 and torch.allclose(out, net(x), atol=1e-12, rtol=0)


def test_per_network_permutations_of_a_batch():
    nets = [_mlp(seed=s) for s in range(4)]
    ws = WeightSpace.cat([WeightSpace.from_mlp(n) for n in nets])
    perms = ws.random_permutations(torch.Generator().manual_seed(3))
    assert perms[1].shape == (4, 7) and perms[2].shape == (4, 6)
    batched = ws.permute_all(perms)
    for i in range(4):
        one = ws[i].permute_all({h: p[i] for h, p in perms.items()})
        assert one.allclose(batched[i], atol=0, rtol=0)


def test_permute_checks_its_arguments():
    ws = WeightSpace.from_mlp(_mlp())
    with pytest.raises(ValueError, match="layer = 2"):
        ws.permute(2, torch.arange(3))  # the outputs of the last layer are fixed
    with pytest.raises(ValueError, match="perm of shape"):
        ws.permute(0, torch.arange(5))


def test_functional_call_over_a_batch_equals_each_network():
    nets = [_mlp(seed=s) for s in range(5)]
    ws = WeightSpace.cat([WeightSpace.from_mlp(n) for n in nets])
    x = torch.randn(8, 5, dtype=torch.float64)
    out = ws.functional_call(nets[0], x)
    assert out.shape == (5, 8, 3)
    for i, n in enumerate(nets):
        assert torch.allclose(out[i], n(x), atol=1e-13, rtol=0)
    xs = torch.randn(5, 8, 5, dtype=torch.float64)
    per = ws.functional_call(nets[0], xs, per_network_inputs=True)
    assert torch.allclose(per[2], nets[2](xs[2]), atol=1e-13, rtol=0)


def test_weightspace_validates_shapes():
    with pytest.raises(ValueError, match="disagree"):
        WeightSpace((torch.zeros(1, 1, 3, 2),), (torch.zeros(1, 1, 4),))
    with pytest.raises(ValueError, match="input neurons"):
        WeightSpace((torch.zeros(1, 1, 3, 2), torch.zeros(1, 1, 2, 4)), (torch.zeros(1, 1, 3), torch.zeros(1, 1, 2)))
    assert parameter_names(_cnn()) == [("0.weight", "0.bias"), ("2.weight", "2.bias"), ("6.weight", "6.bias")]
