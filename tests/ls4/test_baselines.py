"""Baselines: the Latent ODE's latent path against a hand-integrated linear ODE; the ODE-RNN encoder against its
definition; the GRU VAE's step mode against its full-sequence mode."""
import torch

from workbench.methods.ls4.baselines import GRUVAE, LatentODE, ODEFunc


def _linear_lode(method, **kw):
    torch.manual_seed(0)
    model = LatentODE(2, z_dim=3, hidden=8, rec_dim=4, ode_hidden=0, method=method, **kw).double()
    W = torch.tensor([[-0.3, 1.0, 0.0], [-1.0, -0.3, 0.2], [0.1, 0.0, -0.5]], dtype=torch.float64)
    with torch.no_grad():
        model.dynamics.net.weight.copy_(W)
    return model, W


def test_latent_path_matches_the_matrix_exponential_of_a_linear_ode():
    """dz/dt = W z has z(t) = exp(W t) z0; dopri5 at tight tolerances reproduces it."""
    model, W = _linear_lode("dopri5", rtol=1e-10, atol=1e-12)
    z0 = torch.tensor([[1.0, -0.5, 2.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    t = torch.linspace(0, 2.0, 9, dtype=torch.float64)
    z = model.trajectory(z0, t)
    ref = torch.stack([z0 @ torch.linalg.matrix_exp(W * s).T for s in t], 1)
    assert (z - ref).abs().max() < 1e-8


def test_rk4_on_the_grid_is_the_hand_written_rk4_step():
    """Classical RK4 on a linear ODE is z ← (I + hW + (hW)²/2 + (hW)³/6 + (hW)⁴/24) z, one step per grid
    interval."""
    model, W = _linear_lode("rk4")
    z0 = torch.tensor([[0.3, 0.2, -1.0]], dtype=torch.float64)
    t = torch.arange(6, dtype=torch.float64) / 4
    z = model.trajectory(z0, t)
    hW = W * 0.25
    step = torch.eye(3, dtype=torch.float64) + hW + hW @ hW / 2 + hW @ hW @ hW / 6 + hW @ hW @ hW @ hW / 24
    ref, cur = [z0], z0
    for _ in range(5):
        cur = cur @ step.T
        ref.append(cur)
    assert (z - torch.stack(ref, 1)).abs().max() < 1e-13


def test_ode_rnn_encoder_follows_its_definition_backwards_in_time():
    """h evolves by the encoder ODE between observations (exp(W Δt) for linear dynamics, Δt < 0 going back) and a
    GRU cell updates it at each observed step; an unobserved step leaves it alone."""
    torch.manual_seed(1)
    model = LatentODE(1, z_dim=2, hidden=4, rec_dim=3, ode_hidden=0, method="dopri5", rtol=1e-10, atol=1e-12).double()
    model.enc_dynamics = ODEFunc(3, hidden=0).double()
    W = model.enc_dynamics.net.weight.detach()
    x = torch.randn(2, 5, 1, dtype=torch.float64)
    mask = torch.ones(2, 5, 1, dtype=torch.bool)
    mask[0, 2] = False
    t = torch.arange(5, dtype=torch.float64) / 5
    mu, std = model.encode(x, mask, t)
    h = torch.zeros(2, 3, dtype=torch.float64)
    for i in range(4, -1, -1):
        if i < 4:
            h = h @ torch.linalg.matrix_exp(W * (t[i] - t[i + 1])).T
        new = model.gru(torch.cat([x[:, i] * mask[:, i], mask[:, i].double()], -1), h)
        h = torch.where(mask[:, i].any(-1, keepdim=True), new, h)
    out = model.to_z0(h)
    assert torch.allclose(mu, out[:, :2], atol=1e-8)
    assert torch.allclose(std, torch.nn.functional.softplus(out[:, 2:]) + model.min_std, atol=1e-8)


def test_gru_vae_sampling_by_steps_equals_the_full_sequence_path():
    torch.manual_seed(2)
    model = GRUVAE(2, z_dim=3, hidden=6, layers=2).double()
    a = model.sample(3, 10, torch.Generator().manual_seed(4))["x"]
    b = model.sample(3, 10, torch.Generator().manual_seed(4), mode="conv")["x"]
    assert (a - b).abs().max() < 1e-12


def test_latent_ode_sampling_and_extrapolation_shapes():
    model, _ = _linear_lode("rk4")
    out = model.sample(4, 7, torch.Generator().manual_seed(0), temperature=0.0)
    assert out["x"].shape == (4, 7, 2) and out["z"].abs().max() == 0  # temperature 0: z0 = 0 stays at 0
    ext = model.extrapolate(torch.randn(3, 5, 2, dtype=torch.float64), None, 4, torch.Generator().manual_seed(0),
                            n_samples=2)
    assert ext["x"].shape == (2, 3, 4, 2) and ext["z"].shape == (2, 3, 9, 3)
