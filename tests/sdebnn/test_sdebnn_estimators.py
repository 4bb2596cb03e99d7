"""The three KL gradient estimators (full Monte Carlo, sticking the landing, KL only) and the model's pieces."""
import math

import torch

from workbench.methods.sdebnn import (SDEBNN, BayesByBackprop, MeanFieldLinear, ResidualNet, brownian, gaussian_kl,
                              gaussian_nll, odenet, predictive_log_probs, predictive_moments)

from .test_sdebnn_sde import _perturb


def _small_model(estimator: str) -> SDEBNN:
    torch.manual_seed(0)  # the same weights for every estimator
    model = SDEBNN((1,), 1, aug=1, hidden=4, sigma=0.5, drift_hidden=(8,), estimator=estimator, steps=10).double()
    _perturb(model.sde.net, seed=3, scale=0.4)
    return model


def _grads(model: SDEBNN, x, y, entropy: int, samples: int, likelihood: bool = True) -> torch.Tensor:
    model.zero_grad()
    out, kl = model(x, samples=samples, entropy=entropy)
    loss = kl.mean() + (gaussian_nll(out, y, 0.3) if likelihood else 0.0)
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.sde.parameters()] + [model.w0.grad.flatten()])


def test_the_three_estimators_agree_in_mean():
    x = torch.linspace(-1, 1, 6, dtype=torch.float64).unsqueeze(1)
    y = torch.cos(3 * x).squeeze(1)
    groups, per_group = 10, 400
    g = {e: torch.stack([_grads(_small_model(e), x, y, entropy=k, samples=per_group) for k in range(groups)])
         for e in ("full", "stl", "kl")}
    # paired: group k of every estimator sees the same Brownian paths, so differences are the martingale terms only
    for a, b in (("full", "kl"), ("stl", "kl"), ("full", "stl")):
        d = g[a] - g[b]
        mean, se = d.mean(0), d.std(0) / math.sqrt(groups)
        z = mean.abs() / (se + 1e-12)
        assert float(z.max()) < 5.0, (a, b, float(z.max()))
        assert float(mean.norm()) < 0.05 * float(g["kl"].mean(0).norm()), (a, b)
    # and the estimators are really different per sample (not one estimator under three names)
    assert float((g["full"] - g["kl"]).abs().max()) > 1e-3 and float((g["stl"] - g["kl"]).abs().max()) > 1e-5


def test_sticking_the_landing_has_zero_variance_when_q_equals_p():
    torch.manual_seed(1)
    x = torch.randn(5, 1, dtype=torch.float64)
    full, stl = [], []
    for k in range(8):
        for est, store in (("full", full), ("stl", stl)):
            torch.manual_seed(0)
            model = SDEBNN((1,), 1, aug=1, hidden=4, sigma=0.5, drift_hidden=(8,), estimator=est, steps=10).double()
            store.append(_grads(model, x, None, entropy=k, samples=1, likelihood=False))
    stl, full = torch.stack(stl), torch.stack(full)
    assert torch.equal(stl, torch.zeros_like(stl))  # q = p: the STL gradient of the KL is exactly 0, every sample
    assert float(full.std(0).max()) > 1e-2  # full Monte Carlo: mean zero but noisy


def test_odenet_is_the_zero_noise_limit_of_the_sdebnn():
    torch.manual_seed(2)
    sde_model = SDEBNN((3,), 2, aug=1, hidden=5, sigma=1e-9, estimator="kl", steps=20).double()
    _perturb(sde_model.sde.net, seed=1)
    ode_model = odenet((3,), 2, aug=1, hidden=5, steps=20).double()
    ode_model.load_state_dict(sde_model.state_dict())
    x = torch.randn(4, 3, dtype=torch.float64)
    with torch.no_grad():
        a, _ = sde_model(x, samples=1, entropy=0)
        b, kl = ode_model(x, samples=1)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    assert ode_model.sigma == 0 and float(kl.abs().max()) == 0.0


def test_gaussian_initial_weights_add_their_closed_form_kl():
    torch.manual_seed(3)
    model = SDEBNN((1,), 1, aug=1, hidden=3, sigma=0.2, w0="gaussian", w0_prior_std=0.5, steps=4).double()
    std = torch.nn.functional.softplus(model.w0_rho)
    q = torch.distributions.Normal(model.w0, std)
    p = torch.distributions.Normal(torch.zeros_like(model.w0), 0.5 * torch.ones_like(model.w0))
    expected = torch.distributions.kl_divergence(q, p).sum()
    _, kl = model(torch.randn(3, 1, dtype=torch.float64), samples=2, entropy=0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(kl.detach(), expected.detach().expand(2))  # the path KL is 0 at initialisation


def test_bayes_by_backprop_kl_and_sampling():
    torch.manual_seed(4)
    layer = MeanFieldLinear(3, 2, prior_std=0.7, init_std=0.1).double()
    std = torch.nn.functional.softplus(layer.w_rho)
    expected = torch.distributions.kl_divergence(torch.distributions.Normal(layer.w_mu, std),
                                                 torch.distributions.Normal(0.0, 0.7)).sum()
    expected = expected + torch.distributions.kl_divergence(
        torch.distributions.Normal(layer.b_mu, torch.nn.functional.softplus(layer.b_rho)),
        torch.distributions.Normal(0.0, 0.7)).sum()
    torch.testing.assert_close(layer.kl(), expected)
    x = torch.randn(1, 5, 3, dtype=torch.float64).expand(20000, -1, -1)
    out = layer(x, torch.Generator().manual_seed(0))
    mean = x[0] @ layer.w_mu.T + layer.b_mu  # E[out] = μ_W x + μ_b; Var = Σ std_W² x² + std_b²
    var = x[0].pow(2) @ std.pow(2).T + torch.nn.functional.softplus(layer.b_rho).pow(2)
    torch.testing.assert_close(out.mean(0), mean.detach(), atol=0.01, rtol=0)
    torch.testing.assert_close(out.var(0), var.detach(), atol=0, rtol=0.05)
    net = BayesByBackprop((1, 4, 4), 3, hidden=8, depth=1)
    out, kl = net(torch.randn(6, 1, 4, 4), samples=4)
    assert out.shape == (4, 6, 3) and kl.shape == (4,) and float(kl[0].detach()) > 0


def test_residual_net_with_one_block_is_one_euler_step_of_the_odenet():
    torch.manual_seed(5)
    res = ResidualNet((2,), 1, aug=1, hidden=4, blocks=1).double()
    ode = odenet((2,), 1, aug=1, hidden=4, steps=1).double()
    with torch.no_grad():
        ode.w0.copy_(res.weights[0])  # dh/dt = f_h(h, w(0)) for the one Euler step; w's own step does not matter
        ode.backbone.readout.load_state_dict(res.backbone.readout.state_dict())
    x = torch.randn(5, 2, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(res(x)[0], ode(x)[0])


def test_predictive_averages_probabilities_not_logits():
    logits = torch.tensor([[[4.0, 0.0]], [[0.0, 4.0]]])  # two paths that disagree
    probs = predictive_log_probs(logits).exp()
    torch.testing.assert_close(probs, torch.tensor([[0.5, 0.5]]))
    mean, std = predictive_moments(torch.tensor([[[1.0]], [[3.0]]]))
    assert float(mean) == 2.0 and float(std) == 1.0
    assert float(gaussian_kl(torch.zeros(3), torch.ones(3), 1.0)) == 0.0


def test_model_round_trips_through_the_saved_model_format_and_resamples_with_another_sigma():
    import io

    from workbench.store.models import pack, unpack

    torch.manual_seed(6)
    model = SDEBNN((1,), 1, aug=1, hidden=4, sigma=0.3, steps=5)
    _perturb(model.sde.net, seed=2)
    buf = io.BytesIO()
    torch.save(pack(model, model.spec), buf)  # what ctx.save_model stores and runs.load_model reads
    back = unpack(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    assert isinstance(back, SDEBNN) and back.spec == model.spec
    x = torch.randn(4, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(x, 3, entropy=5)[0], back(x, 3, entropy=5)[0])
        back.sigma = 0.0  # the ODE limit of the same trained weights: no spread between paths
        out, _ = back(x, 3)
    assert float(out.std(0).max()) < 1e-6
    ws = model.weight_paths(torch.linspace(0, 1, 5), samples=2, prior=True, entropy=1)
    assert ws.shape == (5, 2, model.dim)
    torch.testing.assert_close(ws[0], model.w0.detach().expand(2, -1))
    fresh = SDEBNN((1,), 1, aug=1, hidden=4, sigma=0.3, steps=5)  # g = 0: with the same noise, posterior = prior
    with torch.no_grad():
        torch.testing.assert_close(fresh.weight_paths(torch.linspace(0, 1, 5), 3, entropy=4),
                                   fresh.weight_paths(torch.linspace(0, 1, 5), 3, prior=True, entropy=4))
    assert brownian(2, 3, entropy=1)(0.0, 1.0).shape == (2, 3)
