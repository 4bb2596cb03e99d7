"""ELBO pieces: the Gaussian KL and NLL against torch.distributions, masks (values under the mask never change the
loss), the per-step normalisation, the two objectives."""
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from workbench.methods.ls4.baselines import GRUVAE, LatentODE
from workbench.methods.ls4.losses import (elbo_terms, gaussian_kl, gaussian_nll, masked_sum, prefix_mask, random_mask,
                                  span_mask, training_loss)
from workbench.methods.ls4.model import LS4


def _randn(g, *shape):
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def _rand(g, *shape):
    return torch.rand(*shape, generator=g, dtype=torch.float64)


def test_kl_is_zero_when_posterior_equals_prior_and_matches_torch():
    g = torch.Generator().manual_seed(0)
    mu, std = _randn(g, 4, 5), _rand(g, 4, 5) + .1
    assert gaussian_kl(mu, std, mu, std).abs().max() == 0
    mu2, std2 = _randn(g, 4, 5), _rand(g, 4, 5) + .1
    ref = kl_divergence(Normal(mu, std), Normal(mu2, std2))
    assert torch.allclose(gaussian_kl(mu, std, mu2, std2), ref, atol=1e-12)
    assert bool((gaussian_kl(mu, std, mu2, std2) > 0).all())
    x = _randn(g, 4, 5)
    assert torch.allclose(gaussian_nll(x, mu, 0.3), -Normal(mu, 0.3).log_prob(x), atol=1e-12)


def test_elbo_terms_sum_and_normalise_per_time_step():
    g = torch.Generator().manual_seed(1)
    x, xm = _randn(g, 2, 6, 3), _randn(g, 2, 6, 3)
    mq, sq = _randn(g, 2, 6, 4), _rand(g, 2, 6, 4) + .5
    mp, sp = _randn(g, 2, 6, 4), _rand(g, 2, 6, 4) + .5
    obs = torch.rand(2, 6, 3, generator=g) > 0.3
    tm = torch.ones(2, 6, dtype=torch.bool)
    tm[1, 4:] = False  # series 1 has 4 steps, padding after
    t = elbo_terms(x, xm, 0.2, mq, sq, mp, sp, obs, tm)
    nll = (gaussian_nll(x, xm, 0.2) * (obs & tm[..., None])).sum((1, 2))
    kl = (gaussian_kl(mq, sq, mp, sp) * tm[..., None]).sum((1, 2))
    assert torch.allclose(t["nll"], nll) and torch.allclose(t["kl"], kl)
    assert t["steps"].tolist() == [6.0, 4.0]
    assert torch.allclose(t["neg_elbo_per_step"], (nll + kl).sum() / 10)
    assert torch.allclose(training_loss(t, "elbo"), t["neg_elbo_per_step"])
    rew = nll.sum() / (obs & tm[..., None]).sum() + kl.sum() / (10 * 4)
    assert torch.allclose(training_loss(t, "reweighted", z_dim=4), rew)
    with pytest.raises(ValueError, match="objective"):
        training_loss(t, "iwae")


def test_masked_sum_ignores_nan_under_the_mask():
    v = torch.tensor([[1.0, float("nan")], [2.0, 3.0]])
    assert masked_sum(v, torch.tensor([[True, False], [True, True]])).tolist() == [1.0, 5.0]


@pytest.mark.parametrize("make", [lambda: LS4(2, z_dim=3, hidden=8, state=4, layers=1),
                                  lambda: LS4(2, z_dim=3, hidden=8, state=4, layers=1, kind="dplr", decoder_x=False),
                                  lambda: GRUVAE(2, z_dim=3, hidden=8),
                                  lambda: LatentODE(2, z_dim=3, hidden=8, rec_dim=8, ode_hidden=8)],
                         ids=["ls4", "ls4-dplr-nox", "gru_vae", "latent_ode"])
def test_values_under_the_mask_do_not_change_the_loss(make):
    torch.manual_seed(0)
    model = make().double()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 12, 2, generator=g, dtype=torch.float64)
    mask = torch.rand(3, 12, 2, generator=g) > 0.4
    x2 = torch.where(mask, x, torch.full_like(x, 1e6))
    x3 = torch.where(mask, x, torch.full_like(x, float("nan")))
    losses = [model.loss(v, mask, torch.Generator().manual_seed(5))[0] for v in (x, x2, x3)]
    assert losses[0] == losses[1] == losses[2] and torch.isfinite(losses[0])
    changed = x.clone()
    changed[mask] += 1.0  # an observed value does change it
    assert model.loss(changed, mask, torch.Generator().manual_seed(5))[0] != losses[0]


def test_masks():
    g = torch.Generator().manual_seed(3)
    m = span_mask((5, 20, 2), 6, g)
    for b in range(5):
        hidden = (~m[b, :, 0]).nonzero().flatten()
        assert len(hidden) == 6 and hidden.diff().eq(1).all() and hidden.min() >= 1 and hidden.max() <= 18
        assert (m[b, :, 0] == m[b, :, 1]).all()
    assert prefix_mask((2, 5, 1), 3)[:, :, 0].tolist() == [[True] * 3 + [False] * 2] * 2
    r = random_mask((200, 50), 0.3, g)
    assert abs(r.float().mean().item() - 0.7) < 0.02
