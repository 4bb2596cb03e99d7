"""The weight SDE against closed forms, torchdiffeq, torchsde and a reference Euler–Maruyama loop."""
import math

import pytest
import torch
import torchdiffeq
import torchsde

from workbench.methods.sdebnn import SDEBNN, WeightLayout, WeightSDE, brownian, euler_maruyama, sample_weights
from workbench.methods.sdebnn.model import ConvDynamics, MLPDynamics, _JointSDE
from workbench.methods.sdebnn.sde import _WithKL


def _perturb(net: torch.nn.Module, seed: int = 0, scale: float = 0.5) -> None:
    """Give the zero-initialised last layer of a drift network non-zero weights (so that q ≠ p)."""
    gen = torch.Generator().manual_seed(seed)
    last = net.layers[-1]
    with torch.no_grad():
        for p in (last.linear.weight, last.linear.bias, last.shift.weight):
            p.copy_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def test_kl_is_exactly_zero_at_initialisation():
    torch.manual_seed(0)
    sde = WeightSDE(7, sigma=0.3)
    ws, kl = sample_weights(sde, torch.randn(5, 7), torch.linspace(0, 1, 4), dt=0.1)
    assert ws.shape == (4, 5, 7) and kl.shape == (5,)
    assert torch.equal(kl, torch.zeros(5))
    for estimator in ("stl", "full", "kl"):  # the joint solve: the martingale terms vanish too
        model = SDEBNN((1,), 1, aug=1, hidden=4, sigma=0.3, estimator=estimator, steps=5)
        _, kl = model(torch.randn(6, 1), samples=3, entropy=1)
        assert torch.equal(kl.detach(), torch.zeros(3)), estimator


def test_tiny_sigma_zero_drift_decays_like_exp_minus_t():
    torch.manual_seed(0)
    w0 = torch.randn(4, 6, dtype=torch.float64)
    ts = torch.linspace(0, 1, 6, dtype=torch.float64)
    sde = WeightSDE(6, sigma=1e-9).double().requires_grad_(False)
    ws, kl = sample_weights(sde, w0, ts, method="euler", dt=0.01)
    ode = torchdiffeq.odeint(lambda t, w: -w, w0, ts, method="euler", options={"step_size": 0.01})
    torch.testing.assert_close(ws, ode, atol=1e-7, rtol=0)  # the same scheme: equal up to the σ-noise
    closed = w0 * torch.exp(-ts).reshape(-1, 1, 1)
    ws_mid, _ = sample_weights(sde, w0, ts, method="midpoint", dt=0.01)
    dopri = torchdiffeq.odeint(lambda t, w: -w, w0, ts, method="dopri5", rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(dopri, closed, atol=1e-8, rtol=0)
    torch.testing.assert_close(ws_mid, closed, atol=5e-5, rtol=0)
    coarse, _ = sample_weights(sde, w0, ts, method="midpoint", dt=0.02)
    ratio = float((coarse - closed).abs().max() / (ws_mid - closed).abs().max())
    assert 3.5 < ratio < 4.5  # midpoint is second order: halving dt divides the error by 4
    euler_err = float((ws - closed).abs().max())
    assert 5e-4 < euler_err < 5e-3  # Euler: O(dt), far from midpoint's O(dt²)
    assert torch.equal(kl, torch.zeros_like(kl))


@pytest.mark.parametrize("method", ["euler", "midpoint"])
def test_constant_drift_offset_gives_the_closed_form_kl(method):
    sigma, t0, t1 = 0.4, 0.5, 2.5
    c = torch.tensor([0.3, -1.2, 0.7], dtype=torch.float64)
    sde = WeightSDE(3, sigma, drift=lambda t, w: c.expand_as(w))
    w0 = torch.randn(5, 3, dtype=torch.float64)
    _, kl = sample_weights(sde, w0, torch.tensor([t0, 1.0, t1], dtype=torch.float64), method=method, dt=0.1)
    expected = 0.5 * c.pow(2).sum() * (t1 - t0) / sigma**2
    torch.testing.assert_close(kl, expected.expand(5), atol=1e-12, rtol=1e-12)
    # torchsde's own log-ratio (its logqp option, with WeightSDE.h as the prior drift) agrees
    _, log_ratio = torchsde.sdeint(sde, w0, torch.tensor([t0, t1], dtype=torch.float64), method="euler", dt=0.1,
                                   logqp=True)
    torch.testing.assert_close(log_ratio.sum(0), expected.expand(5), atol=1e-10, rtol=1e-10)


def test_kl_equals_the_riemann_sum_along_the_returned_path():
    torch.manual_seed(1)
    sde = WeightSDE(4, sigma=0.5, hidden=(8,)).double()
    _perturb(sde.net)
    dt = 0.05
    ts = torch.arange(0, 21, dtype=torch.float64) * dt  # every grid point is an output time
    ws, kl = sample_weights(sde, torch.randn(3, 4, dtype=torch.float64), ts, dt=dt,
                            bm=brownian(3, 4, 0.0, 1.0, entropy=3, dtype=torch.float64))
    dense = sum(0.5 * (sde.offset(t, w) / 0.5).pow(2).sum(-1) * dt for t, w in zip(ts[:-1], ws[:-1]))
    torch.testing.assert_close(kl, dense, atol=1e-9, rtol=1e-9)
    assert float(kl.detach().min()) > 0


def test_our_euler_maruyama_loop_equals_torchsde_euler_on_the_same_brownian_interval():
    torch.manual_seed(2)
    sde = WeightSDE(5, sigma=0.7, hidden=(6,)).double()
    _perturb(sde.net, seed=2)
    aug = _WithKL(sde, "ito")
    y0 = torch.cat([torch.randn(4, 5, dtype=torch.float64), torch.zeros(4, 1, dtype=torch.float64)], 1)
    ts = torch.tensor([0.0, 0.3, 0.65, 1.0], dtype=torch.float64)  # outputs between grid points: interpolated
    bm = brownian(4, 5, 0.0, 1.0, entropy=11, dtype=torch.float64)
    ours = euler_maruyama(aug, y0, ts, bm, dt=0.07)
    theirs = torchsde.sdeint(aug, y0, ts, bm=bm, method="euler", dt=0.07)
    torch.testing.assert_close(ours, theirs, atol=1e-12, rtol=0)
    # the joint [h, w, KL] solve of the model, full Monte Carlo estimator (martingale term included)
    model = SDEBNN((2,), 1, aug=1, hidden=3, sigma=0.5, estimator="full", steps=8).double()
    _perturb(model.sde.net, seed=5)
    x = torch.randn(3, 2, dtype=torch.float64)
    joint = _JointSDE(model, batch=3)
    y0 = torch.cat([model.backbone.encode(x).reshape(1, -1).expand(2, -1), model.w0.expand(2, -1),
                    torch.zeros(2, 1, dtype=torch.float64)], 1).detach()
    bm = brownian(2, model.dim, 0.0, 1.0, entropy=4, dtype=torch.float64)
    ts = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(euler_maruyama(joint, y0, ts, bm, dt=model.dt),
                                   torchsde.sdeint(joint, y0, ts, bm=bm, method="euler", dt=model.dt),
                                   atol=1e-12, rtol=0)


def test_joint_solve_moves_the_weights_exactly_like_sample_weights():
    torch.manual_seed(3)
    model = SDEBNN((1,), 1, aug=2, hidden=5, sigma=0.3, estimator="kl", steps=10).double()
    _perturb(model.sde.net, seed=1)
    ts = torch.linspace(0, 1, 3, dtype=torch.float64)
    bm = brownian(4, model.dim, 0.0, 1.0, entropy=9, dtype=torch.float64)
    x = torch.randn(7, 1, dtype=torch.float64)
    with torch.no_grad():
        _, kl, ys = model(x, samples=4, bm=bm, ts=ts, return_states=True)
        ws, kl_w = sample_weights(model.sde, model.w0.expand(4, -1), ts, dt=model.dt, bm=bm)
    nh = 7 * model.backbone.state_size
    torch.testing.assert_close(ys[:, :, nh : nh + model.dim], ws, atol=1e-12, rtol=0)
    torch.testing.assert_close(kl, kl_w, atol=1e-12, rtol=0)


@pytest.mark.parametrize("dynamics", [MLPDynamics(3, 5), ConvDynamics(2, 4)], ids=["mlp", "conv"])
def test_flatten_and_unflatten_are_inverse(dynamics):
    layout = dynamics.layout
    w = torch.randn(2, 3, layout.dim)
    parts = layout.unflatten(w)
    assert {k: tuple(v.shape[2:]) for k, v in parts.items()} == layout.shapes
    assert torch.equal(layout.flatten(parts, batch_dims=2), w)
    named = dynamics.init()
    back = layout.unflatten(layout.flatten(named))
    assert all(torch.equal(back[k], named[k]) for k in named)
    first = "[0,0]" if isinstance(dynamics, MLPDynamics) else "[0,0,0,0]"
    assert len(layout.names()) == layout.dim and layout.names()[0].endswith(first)
    with pytest.raises(ValueError, match="entries"):
        layout.unflatten(torch.zeros(layout.dim + 1))


def test_per_path_weights_match_a_dense_per_path_network():
    torch.manual_seed(4)
    dyn = ConvDynamics(2, 3)
    w = torch.randn(2, dyn.layout.dim)
    h = torch.randn(2, 5, 2, 4, 4)
    out = dyn(h, dyn.layout.unflatten(w))
    for s in range(2):
        p = dyn.layout.unflatten(w[s])
        ref = torch.nn.functional.conv2d(torch.tanh(torch.nn.functional.conv2d(h[s], p["K1"], p["b1"], padding=1)),
                                         p["K2"], p["b2"], padding=1)
        torch.testing.assert_close(out[s], ref, atol=1e-5, rtol=1e-5)
    mlp = MLPDynamics(3, 4)
    w = torch.randn(2, mlp.layout.dim)
    h = torch.randn(2, 6, 3)
    out = mlp(h, mlp.layout.unflatten(w))
    p = mlp.layout.unflatten(w[1])
    torch.testing.assert_close(out[1], torch.tanh(h[1] @ p["W1"].T + p["b1"]) @ p["W2"].T + p["b2"])


def test_sample_weights_rejects_what_it_cannot_do():
    sde = WeightSDE(3, 0.1)
    with pytest.raises(ValueError, match="Stratonovich"):
        sample_weights(sde, torch.zeros(2, 3), [0.0, 1.0], method="euler", adjoint=True)
    with pytest.raises(ValueError, match="method"):
        sample_weights(sde, torch.zeros(2, 3), [0.0, 1.0], method="rk4")
    with pytest.raises(ValueError, match="shape"):
        sample_weights(sde, torch.zeros(2, 4), [0.0, 1.0])
    with pytest.raises(ValueError, match="sigma"):
        sample_weights(WeightSDE(3, 0.0), torch.zeros(2, 3), [0.0, 1.0])
    with pytest.raises(ValueError, match="Itô"):
        SDEBNN((1,), 1, estimator="stl", method="midpoint")


def test_adjoint_gradients_match_direct_backpropagation():
    torch.manual_seed(5)
    w0 = torch.randn(3, 4, dtype=torch.float64)
    grads = []
    for adjoint in (False, True):
        torch.manual_seed(6)  # the same drift network both times
        sde = WeightSDE(4, sigma=0.2, hidden=(5,)).double()
        _perturb(sde.net, seed=7, scale=0.3)
        bm = brownian(3, 4, 0.0, 1.0, entropy=2, dtype=torch.float64)
        ws, kl = sample_weights(sde, w0, [0.0, 1.0], method="midpoint", dt=0.01, bm=bm, adjoint=adjoint)
        (ws[-1].pow(2).sum() + kl.sum()).backward()
        grads.append(torch.cat([p.grad.flatten() for p in sde.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], atol=2e-3, rtol=2e-2)
    assert math.isfinite(float(grads[0].norm())) and float(grads[0].norm()) > 0


def test_the_detached_drift_is_the_drift_with_stopped_parameter_gradients():
    """ConcatSquashMLP(detached=True), the STL term's g(t, w; stop_grad φ), equals torch.func.functional_call with
    detached parameters: the same value, the same gradient to w, and no gradient to φ."""
    from workbench.methods.sdebnn.sde import ConcatSquashMLP

    torch.manual_seed(0)
    net = ConcatSquashMLP([5, 7, 5], zero_last=False)
    w = torch.randn(3, 5, requires_grad=True)
    t = torch.tensor(0.3)
    ref = torch.func.functional_call(net, {k: p.detach() for k, p in net.named_parameters()}, (t, w))
    (g_ref,) = torch.autograd.grad(ref.square().sum(), w)
    out = net(t, w, detached=True)
    assert torch.allclose(out, ref, atol=1e-6) and torch.allclose(out, net(t, w), atol=1e-6)
    out.square().sum().backward()
    assert torch.allclose(w.grad, g_ref, atol=1e-6)
    assert all(p.grad is None for p in net.parameters())
