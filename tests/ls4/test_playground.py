"""The headless playground re-samples a model from plain Python (no widgets): seeded draws repeat, temperature 0
follows the prior means, continuations keep their shapes for every model kind, bad values name the parameter."""

import numpy as np
import pytest
import torch

from workbench.methods.ls4 import GRUVAE, LS4, LatentODE, continue_series, resample, sample_series


def _models():
    torch.manual_seed(0)
    return {"ls4": LS4(2, z_dim=2, hidden=6, state=4, layers=1),
            "latent_ode": LatentODE(2, z_dim=2, hidden=8, rec_dim=8, ode_hidden=8),
            "gru_vae": GRUVAE(2, z_dim=2, hidden=8)}


@pytest.mark.parametrize("name", ["ls4", "latent_ode", "gru_vae"])
def test_draws_repeat_for_a_seed_and_continue_a_prefix(name):
    model = _models()[name]
    a = sample_series(model, n=3, horizon=9, generator=5, temperature=0.7)
    b = sample_series(model, n=3, horizon=9, generator=torch.Generator().manual_seed(5), temperature=0.7)
    assert a["x"].shape == (3, 9, 2) and np.array_equal(a["x"], b["x"])
    assert not np.array_equal(a["x"], sample_series(model, n=3, horizon=9, generator=6, temperature=0.7)["x"])
    obs = np.random.default_rng(0).standard_normal((2, 5, 2))
    mask = np.ones_like(obs, dtype=bool)
    mask[0, 1] = False
    cont = continue_series(model, obs, mask, horizon=4, generator=1, n_samples=3)
    assert cont["x"].shape == (3, 2, 4, 2) and np.isfinite(cont["x"]).all()


def test_resample_is_the_explorer_draw():
    model = _models()["ls4"]
    real = np.random.default_rng(1).standard_normal((3, 12, 2))
    free = resample(model, real, n=4, generator=2, temperature=0.0)
    assert free["observed"] is None and free["x"].shape == (4, 12, 2)
    assert np.allclose(free["x"][0], free["x"][1], atol=1e-6)  # temperature 0: the prior means, one path
    cond = resample(model, real, n=4, generator=2, prefix=5, horizon=7)
    assert cond["observed"].shape == (4, 5, 2) and cond["x"].shape == (4, 7, 2)
    assert np.allclose(cond["observed"][3], real[0, :5])  # the prefixes cycle through the real series


def test_bad_values_name_the_parameter():
    model = _models()["ls4"]
    real = np.zeros((2, 6, 2))
    with pytest.raises(ValueError, match="prefix = 6"):
        resample(model, real, prefix=6)
    with pytest.raises(ValueError, match="temperature"):
        sample_series(model, temperature=-1.0)
    with pytest.raises(ValueError, match="horizon"):
        sample_series(model, horizon=0)
    with pytest.raises(ValueError, match="generator"):
        sample_series(model, generator=-3)
    with pytest.raises(ValueError, match="real must be"):
        resample(model, np.zeros((6, 2)))
    with pytest.raises(ValueError, match="observed must be"):
        continue_series(model, np.zeros((2, 6)))
