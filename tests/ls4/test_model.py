"""The LS4 VAE: recurrent sampling equals sampling by re-running the convolution; extrapolation equals its
convolution-mode definition; causality of the encoder; rebuilding from a stored spec."""
import pytest
import torch

from workbench.methods.ls4.layers import stepping
from workbench.methods.ls4.model import LS4, build_model, gaussian_head


@pytest.mark.parametrize("kind,decoder_x,time_dim", [("s4d", True, 0), ("dplr", True, 4), ("s4d", False, 3),
                                                      ("dplr", False, 0)])
def test_recurrent_sampling_equals_convolution_sampling(kind, decoder_x, time_dim):
    torch.manual_seed(0)
    model = LS4(2, z_dim=3, hidden=8, state=4, layers=2, kind=kind, decoder_x=decoder_x, time_dim=time_dim).double()
    a = model.sample(3, 15, torch.Generator().manual_seed(1), temperature=0.7)
    b = model.sample(3, 15, torch.Generator().manual_seed(1), temperature=0.7, mode="conv")
    assert (a["x"] - b["x"]).abs().max() < 1e-10 and (a["z"] - b["z"]).abs().max() < 1e-10
    c = model.sample(3, 15, torch.Generator().manual_seed(1), obs_noise=True)["x"]
    assert (c - a["x"]).abs().max() > 1e-3


def test_extrapolation_equals_its_convolution_mode_definition():
    """Prefix through the encoder, z_post sampled; then each new z_t from the prior run (convolution mode) on
    (z_start, z_1..z_{t−1}), each x_t from the decoder run on z_≤t and x_<t."""
    torch.manual_seed(3)
    model = LS4(1, z_dim=2, hidden=6, state=4, layers=2, kind="dplr").double()
    x = torch.randn(2, 7, 1, dtype=torch.float64)
    mask = torch.rand(2, 7, 1) > 0.2
    g = torch.Generator().manual_seed(9)
    out = model.extrapolate(x, mask, 5, g, temperature=0.8)
    g = torch.Generator().manual_seed(9)
    mu, std = model.posterior(x, mask)
    zs = mu + std * torch.randn(mu.shape, generator=g, dtype=torch.float64)
    xs, ms = torch.where(mask, x, 0.0), mask.double()
    with torch.no_grad():
        for _ in range(5):
            mp, sp = model.prior_params(torch.cat([zs, zs[:, :1]], 1))  # the appended step only feeds nothing
            z = mp[:, -1] + 0.8 * sp[:, -1] * torch.randn(2, 2, generator=g, dtype=torch.float64)
            zs = torch.cat([zs, z[:, None]], 1)
            xs = torch.cat([xs, torch.zeros(2, 1, 1, dtype=torch.float64)], 1)
            ms = torch.cat([ms, torch.ones(2, 1, 1, dtype=torch.float64)], 1)
            xt = model.decode(zs, xs, ms.bool())[:, -1]
            xs[:, -1] = xt
    assert (out["x"][0] - xs[:, 7:]).abs().max() < 1e-10
    assert (out["z"][0] - zs).abs().max() < 1e-10


def test_posterior_at_t_ignores_later_observations():
    torch.manual_seed(4)
    model = LS4(1, z_dim=2, hidden=6, state=4, layers=2).double()
    x = torch.randn(2, 20, 1, dtype=torch.float64)
    mu, _ = model.posterior(x)
    x2 = x.clone()
    x2[:, 12:] += 3
    mu2, _ = model.posterior(x2)
    assert (mu[:, :12] - mu2[:, :12]).abs().max() < 1e-12 and (mu[:, 12:] - mu2[:, 12:]).abs().max() > 1e-4


def test_training_step_reaches_every_parameter_and_the_model_rebuilds_from_its_spec():
    torch.manual_seed(5)
    model = LS4(2, z_dim=2, hidden=6, state=4, layers=1, kind="dplr", time_dim=2)
    x = torch.randn(4, 10, 2)
    loss, out = model.loss(x, None, torch.Generator().manual_seed(0))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert out["x_mean"].shape == x.shape and out["z"].shape == (4, 10, 2)
    twin = build_model(model.spec())
    twin.load_state_dict(model.state_dict())
    a = model.sample(2, 6, torch.Generator().manual_seed(1))["x"]
    b = twin.sample(2, 6, torch.Generator().manual_seed(1))["x"]
    assert torch.equal(a, b)
    assert set(model.kernels(10)) == {"encoder/0", "prior/0", "decoder/0"}
    with pytest.raises(ValueError, match="unknown model"):
        build_model({"model": "wavenet"})
    with pytest.raises(ValueError, match="mode"):
        model.sample(1, 3, mode="parallel")


def test_temperature_zero_follows_the_prior_means():
    torch.manual_seed(6)
    model = LS4(1, z_dim=2, hidden=6, state=4, layers=1).double()
    out = model.sample(2, 6, torch.Generator().manual_seed(0), temperature=0.0)
    # no noise: every sample is the same path (up to rounding: BLAS may treat batch rows differently)
    assert torch.equal(out["z"][0], out["z"][1]) and torch.allclose(out["x"][0], out["x"][1], rtol=0, atol=1e-12)
    with torch.no_grad(), stepping(model):
        o, _ = model.prior.step(model.z_start.expand(1, 2), model.prior.default_state(1))
    assert torch.allclose(out["z"][0, 0], gaussian_head(o, model.min_std)[0][0])
