"""Baselines on the same data: the Latent ODE (Rubanova et al., NeurIPS 2019) and a GRU VAE.

- :class:`LatentODE`: an ODE-RNN encoder run backwards in time (between observations the hidden state follows
  dh/dt = f_enc(h), solved with ``torchdiffeq``; at an observation a GRU cell updates it; Rubanova et al. §3.2-3.3)
  gives q(z_0 | x); the latent path solves dz/dt = f(z) from z_0 (``torchdiffeq.odeint`` or, with ``adjoint``,
  ``odeint_adjoint``); an MLP decodes x_t ~ N(g(z_t), σ²). ELBO = Σ_t log p(x_t | z_t) − KL(q(z_0 | x) ‖ N(0, I))
  (Rubanova et al. Eq. 6-7).
- :class:`GRUVAE`: the LS4 factorisation (:class:`~workbench.methods.ls4.model.SequenceVAE`) with GRU stacks in place of
  the S4 stacks (the decoder reads [z_t, x_{t−1}] concatenated).

Both offer ``loss``, ``sample``, ``extrapolate`` and ``reconstruct`` with the same signatures as :class:`LS4` (a
``shard`` included: noise drawn for the global batch, this rank's rows kept). The Latent ODE's rows are independent
except under ``dopri5``, whose adaptive steps follow the error of the whole batch.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from workbench.core.context import Shard

from .losses import gaussian_kl, gaussian_nll, masked_sum, training_loss
from .model import SequenceVAE, gaussian_head, local_rows, normal

METHODS = ("rk4", "euler", "midpoint", "dopri5")


class GRUStack(nn.Module):
    """Linear([u, aux] → H) → ``layers``-layer GRU → Linear(H → d_out), with a one-step mode."""

    def __init__(self, d_in: int, d_model: int, d_out: int, layers: int = 1, aux_in: int = 0):
        super().__init__()
        self.inp = nn.Linear(d_in + aux_in, d_model)
        self.gru = nn.GRU(d_model, d_model, num_layers=layers, batch_first=True)
        self.head = nn.Linear(d_model, d_out)
        self.layers, self.d_model = layers, d_model

    def forward(self, u: Tensor, aux: Tensor | None = None) -> Tensor:
        u = u if aux is None else torch.cat([u, aux], -1)
        return self.head(self.gru(self.inp(u))[0])

    def default_state(self, batch: int, device: Any = None) -> Tensor:
        w = self.head.weight
        return torch.zeros(self.layers, batch, self.d_model, dtype=w.dtype, device=device or w.device)

    def step(self, u: Tensor, state: Tensor, aux: Tensor | None = None) -> tuple[Tensor, Tensor]:
        u = u if aux is None else torch.cat([u, aux], -1)
        out, state = self.gru(self.inp(u)[:, None], state)
        return self.head(out[:, 0]), state


class GRUVAE(SequenceVAE):
    """The GRU VAE baseline: encoder, prior and decoder are GRU stacks (``layers`` GRU layers of width ``hidden``)."""

    name = "gru_vae"

    def __init__(self, x_dim: int, z_dim: int = 8, hidden: int = 32, layers: int = 1, sigma: float = 0.1,
                 decoder_x: bool = True, time_dim: int = 0, min_std: float = 1e-3, time_ref: float = 100.0,
                 **_: Any):
        super().__init__(x_dim, z_dim, hidden, 0, layers, "gru", sigma, decoder_x, time_dim, min_std, time_ref)

    def make_stack(self, d_in: int, d_out: int, aux_in: int = 0) -> nn.Module:
        return GRUStack(d_in, self.hidden, d_out, self.layers, aux_in)


class ODEFunc(nn.Module):
    """dz/dt = f(z): an MLP (``hidden`` units, tanh); ``hidden = 0`` makes it linear, f(z) = W z. Counts calls."""

    def __init__(self, dim: int, hidden: int = 32, layers: int = 1):
        super().__init__()
        if hidden == 0:
            self.net: nn.Module = nn.Linear(dim, dim, bias=False)
        else:
            mods: list[nn.Module] = [nn.Linear(dim, hidden), nn.Tanh()]
            for _ in range(layers - 1):
                mods += [nn.Linear(hidden, hidden), nn.Tanh()]
            mods.append(nn.Linear(hidden, dim))
            self.net = nn.Sequential(*mods)
        self.nfe = 0

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        self.nfe += 1
        return self.net(z)


class LatentODE(nn.Module):
    """The Latent ODE with an ODE-RNN encoder (see the module docstring)."""

    name = "latent_ode"

    def __init__(self, x_dim: int, z_dim: int = 8, hidden: int = 32, rec_dim: int = 32, ode_hidden: int = 32,
                 sigma: float = 0.1, method: str = "rk4", adjoint: bool = False, rtol: float = 1e-3,
                 atol: float = 1e-4, time_ref: float = 100.0, min_std: float = 1e-3):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.config = dict(x_dim=x_dim, z_dim=z_dim, hidden=hidden, rec_dim=rec_dim, ode_hidden=ode_hidden,
                           sigma=sigma, method=method, adjoint=adjoint, rtol=rtol, atol=atol, time_ref=time_ref,
                           min_std=min_std)
        self.x_dim, self.z_dim, self.sigma, self.min_std, self.time_ref = x_dim, z_dim, sigma, min_std, time_ref
        self.method, self.adjoint, self.rtol, self.atol = method, adjoint, rtol, atol
        self.enc_dynamics = ODEFunc(rec_dim, ode_hidden)
        self.gru = nn.GRUCell(2 * x_dim, rec_dim)
        self.to_z0 = nn.Sequential(nn.Linear(rec_dim, hidden), nn.Tanh(), nn.Linear(hidden, 2 * z_dim))
        self.dynamics = ODEFunc(z_dim, ode_hidden)
        self.decoder = nn.Sequential(nn.Linear(z_dim, hidden), nn.Tanh(), nn.Linear(hidden, x_dim))
        self.rec_dim = rec_dim

    def spec(self) -> dict[str, Any]:
        return {"model": self.name, **self.config}

    def times(self, L: int, ref: Tensor) -> Tensor:
        """The regular grid t_l = l / time_ref."""
        return torch.arange(L, dtype=ref.dtype, device=ref.device) / self.time_ref

    def odeint(self, func: nn.Module, y0: Tensor, t: Tensor) -> Tensor:
        """Solve dy/dt = func(t, y) from y(t_0) = y0 at the times t (torchdiffeq; adjoint when configured)."""
        import torchdiffeq

        kw: dict[str, Any] = {"method": self.method}
        if self.method == "dopri5":
            kw.update(rtol=self.rtol, atol=self.atol)
        if self.adjoint:
            return torchdiffeq.odeint_adjoint(func, y0, t, adjoint_params=tuple(func.parameters()), **kw)
        return torchdiffeq.odeint(func, y0, t, **kw)

    def encode(self, x: Tensor, mask: Tensor | None = None, t: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """q(z_0 | x): the ODE-RNN run from the last observation back to the first (Rubanova et al. Alg. 1)."""
        B, L, _ = x.shape
        t = self.times(L, x) if t is None else t.to(x)
        xo, m = SequenceVAE._observed(x, mask)
        inp = torch.cat([xo, m], -1)
        seen = m.amax(-1, keepdim=True) > 0  # (B, L, 1): anything observed at step i
        h = torch.zeros(B, self.rec_dim, dtype=x.dtype, device=x.device)
        for i in range(L - 1, -1, -1):
            if i < L - 1:
                h = self.odeint(self.enc_dynamics, h, torch.stack([t[i + 1], t[i]]))[-1]
            h = torch.where(seen[:, i], self.gru(inp[:, i], h), h)
        return gaussian_head(self.to_z0(h), self.min_std)

    def trajectory(self, z0: Tensor, t: Tensor) -> Tensor:
        """z(t) for every t (B, L, Z), solving dz/dt = f(z) from z0 at t[0]."""
        return self.odeint(self.dynamics, z0, t).transpose(0, 1)

    def forward(self, x: Tensor, mask: Tensor | None = None, time_mask: Tensor | None = None, t: Tensor | None = None,
                generator: torch.Generator | None = None, sample: bool = True,
                shard: Shard | None = None) -> dict[str, Tensor]:
        B, L, _ = x.shape
        t = self.times(L, x) if t is None else t.to(x)
        mu0, std0 = self.encode(x, mask, t)
        eps = normal(tuple(mu0.shape), generator, mu0, shard) if sample else 0.0
        z0 = mu0 + std0 * eps
        z = self.trajectory(z0, t)
        x_mean = self.decoder(z)
        tm = torch.ones(B, L, dtype=torch.bool, device=x.device) if time_mask is None else time_mask.bool()
        om = tm[..., None].expand_as(x) if mask is None else mask.bool() & tm[..., None]
        nll = masked_sum(gaussian_nll(x, x_mean, self.sigma), om)
        kl = gaussian_kl(mu0, std0, torch.zeros_like(mu0), torch.ones_like(std0)).sum(-1)
        steps = tm.sum(-1).to(x.dtype)
        return {"nll": nll, "kl": kl, "observed": om.sum((1, 2)).to(x.dtype), "steps": steps,
                "neg_elbo_per_step": (nll + kl).sum() / steps.sum().clamp_min(1), "x_mean": x_mean, "z": z,
                "mu_q": mu0, "std_q": std0}

    def loss(self, x: Tensor, mask: Tensor | None = None, generator: torch.Generator | None = None,
             objective: str = "elbo", time_mask: Tensor | None = None, t: Tensor | None = None,
             kl_weight: float = 1.0, shard: Shard | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        out = self(x, mask, time_mask, t, generator, shard=shard)
        return training_loss(out, objective, self.z_dim, kl_weight), out

    def posterior(self, x: Tensor, mask: Tensor | None = None, t: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Posterior mean path z(t) from the mean of q(z_0 | x), and q's scale at z_0 broadcast over time."""
        mu0, std0 = self.encode(x, mask, t)
        L = x.shape[1]
        z = self.trajectory(mu0, self.times(L, x) if t is None else t.to(x))
        return z, std0[:, None].expand_as(z)

    @torch.no_grad()
    def reconstruct(self, x: Tensor, mask: Tensor | None = None, t: Tensor | None = None) -> Tensor:
        z, _ = self.posterior(x, mask, t)
        return self.decoder(z)

    @torch.no_grad()
    def sample(self, n: int, length: int, generator: torch.Generator | None = None, temperature: float = 1.0,
               t: Tensor | None = None, mode: str = "recurrent", obs_noise: bool = False,
               shard: Shard | None = None) -> dict[str, Tensor]:
        """z_0 ~ N(0, temperature² I), z(t) by the ODE solver, x_t = g(z_t) (+ σ-noise if ``obs_noise``); with
        ``shard`` (of ``n`` rows) this rank's rows of the ``n`` series."""
        ref = self.decoder[0].weight
        t = self.times(length, ref) if t is None else t.to(ref)
        z0 = temperature * normal((local_rows(n, shard), self.z_dim), generator, ref, shard)
        z = self.trajectory(z0, t)
        x = self.decoder(z)
        if obs_noise:
            x = x + self.sigma * normal(tuple(x.shape), generator, ref, shard)
        return {"x": x, "z": z}

    @torch.no_grad()
    def extrapolate(self, x: Tensor, mask: Tensor | None, horizon: int, generator: torch.Generator | None = None,
                    temperature: float = 1.0, n_samples: int = 1, t: Tensor | None = None,
                    obs_noise: bool = False, shard: Shard | None = None) -> dict[str, Tensor]:
        """Encode the prefix, draw z_0 ~ q(z_0 | prefix) (scale × ``temperature``), solve over prefix + horizon;
        with ``shard`` (of the global B series) ``x`` holds this rank's series."""
        B, P, _ = x.shape
        rows = None if shard is None else shard.repeat(n_samples)
        t = self.times(P + horizon, x) if t is None else t.to(x)
        mu0, std0 = self.encode(x, mask, t[:P])
        mu0, std0 = mu0.repeat(n_samples, 1), std0.repeat(n_samples, 1)
        z0 = mu0 + temperature * std0 * normal(tuple(mu0.shape), generator, x, rows)
        z = self.trajectory(z0, t)
        xf = self.decoder(z[:, P:])
        if obs_noise:
            xf = xf + self.sigma * normal(tuple(xf.shape), generator, x, rows)
        return {"x": xf.reshape(n_samples, B, horizon, self.x_dim),
                "z": z.reshape(n_samples, B, P + horizon, self.z_dim)}
