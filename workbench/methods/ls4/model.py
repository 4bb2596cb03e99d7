"""The LS4 model (Zhou et al., ICML 2023): a VAE over sequences whose encoder, prior and decoder are S4 stacks.

- Inference q(z_t | x_≤t) (LS4 §3, inference model): a causal S4 stack on (x·mask, mask) → Gaussian mean, scale.
- Prior p(z_t | z_<t) (LS4 §3, the latent state space "h' = Ah + Bz, y = Ch + Dz"): an S4 stack fed a learned
  start token and the shifted posterior samples (teacher forcing, convolution mode) in training, stepped
  recurrently on its own samples in generation.
- Decoder p(x_t | z_≤t, x_<t) (LS4 §3, generative model): the joint layer h' = Ah + Bz + Ex, y = Ch + Dz + Fx on
  z_t and the shifted observations; ``decoder_x=False`` drops the x-conditioning (p(x_t | z_≤t)). Gaussian with a
  fixed observation σ.

Training uses convolution mode for all three; ``sample``/``extrapolate`` use the recurrent step mode (``mode="conv"``
re-runs the convolution on the growing prefix instead: the same numbers, O(L²) work, the benchmark's baseline).
Data parallelism: given a ``shard`` (:class:`~workbench.core.context.Shard` of the global batch), every noise draw is
made for the global batch from the same generator and this rank's rows are kept (:func:`normal`), so the ranks'
union is one process's draw.
:class:`SequenceVAE` is the shared skeleton; the GRU VAE baseline swaps the stacks (``baselines.GRUVAE``).
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.core.context import Shard

from .layers import S4Stack, stepping
from .losses import elbo_terms, training_loss


def time_features(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of observation times t (..., L) → (..., L, dim): sin/cos(π·2^k·t), k < dim/2 (the
    optional time embedding for irregular sampling)."""
    k = torch.arange((dim + 1) // 2, dtype=t.dtype, device=t.device)
    angles = t[..., None] * math.pi * 2.0 ** k
    return torch.cat([torch.sin(angles), torch.cos(angles)], -1)[..., :dim]


def normal(shape: tuple[int, ...], generator: torch.Generator | None, like: Tensor,
           shard: Shard | None = None) -> Tensor:
    """N(0, 1) noise of ``shape`` (rows first) drawn on the CPU generator, on ``like``'s dtype and device; with
    ``shard``, drawn for the global batch (``shard.size`` rows) and this rank's rows kept."""
    if shard is None:
        return torch.randn(shape, generator=generator, dtype=like.dtype).to(like.device)
    full = torch.randn((shard.size, *shape[1:]), generator=generator, dtype=like.dtype)
    mine = shard.take(full)
    if mine.shape[0] != shape[0]:
        raise ValueError(f"this rank holds {shape[0]} rows, its shard of {shard.size} has {mine.shape[0]}")
    return mine.to(like.device)


def gaussian_head(out: Tensor, min_std: float) -> tuple[Tensor, Tensor]:
    """Split (…, 2Z) into a mean and a scale softplus(·) + min_std."""
    mu, raw = out.chunk(2, dim=-1)
    return mu, F.softplus(raw) + min_std


class SequenceVAE(nn.Module):
    """Encoder q(z_t | x_≤t), prior p(z_t | z_<t), decoder p(x_t | z_≤t, x_<t): three causal sequence stacks."""

    name = "sequence_vae"

    def __init__(self, x_dim: int, z_dim: int = 8, hidden: int = 32, state: int = 32, layers: int = 2,
                 kind: str = "s4d", sigma: float = 0.1, decoder_x: bool = True, time_dim: int = 0,
                 min_std: float = 1e-3, time_ref: float = 100.0):
        super().__init__()
        self.config = dict(x_dim=x_dim, z_dim=z_dim, hidden=hidden, state=state, layers=layers, kind=kind,
                           sigma=sigma, decoder_x=decoder_x, time_dim=time_dim, min_std=min_std, time_ref=time_ref)
        self.x_dim, self.z_dim, self.sigma, self.decoder_x = x_dim, z_dim, sigma, decoder_x
        self.time_dim, self.min_std, self.time_ref = time_dim, min_std, time_ref
        self.hidden, self.state, self.layers, self.kind = hidden, state, layers, kind
        self.encoder = self.make_stack(2 * x_dim + time_dim, 2 * z_dim)
        self.prior = self.make_stack(z_dim + time_dim, 2 * z_dim)
        self.decoder = self.make_stack(z_dim + time_dim, x_dim, aux_in=2 * x_dim if decoder_x else 0)
        self.z_start = nn.Parameter(torch.zeros(z_dim))
        self.x_start = nn.Parameter(torch.zeros(x_dim))

    def make_stack(self, d_in: int, d_out: int, aux_in: int = 0) -> nn.Module:
        return S4Stack(d_in, self.hidden, d_out, self.layers, self.state, self.kind, aux_in=aux_in)

    def spec(self) -> dict[str, Any]:
        """What :func:`build_model` needs to rebuild this model (json-able)."""
        return {"model": self.name, **self.config}

    # -- helpers -----------------------------------------------------------------------------------------------
    def _tf(self, t: Tensor | None, B: int, L: int, ref: Tensor) -> Tensor | None:
        if not self.time_dim:
            return None
        if t is None:
            t = torch.arange(L, dtype=ref.dtype, device=ref.device) / self.time_ref
        t = t.to(ref.dtype).to(ref.device)
        feats = time_features(t, self.time_dim)
        return feats.expand(B, L, self.time_dim) if feats.dim() == 2 else feats

    @staticmethod
    def _cat(u: Tensor, extra: Tensor | None) -> Tensor:
        return u if extra is None else torch.cat([u, extra], -1)

    @staticmethod
    def _observed(x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """(x with missing entries set to 0, mask as x's dtype); a NaN under the mask never reaches a network."""
        if mask is None:
            return x, torch.ones_like(x)
        m = mask.bool()
        return torch.where(m, x, torch.zeros((), dtype=x.dtype, device=x.device)), m.to(x.dtype)

    def _x_input(self, xo: Tensor, m: Tensor) -> Tensor:
        """Decoder x-input at step t: (x_{t−1}·m, m), a learned start token (x_start, 1) at t = 0."""
        B = xo.shape[0]
        start = torch.cat([self.x_start, torch.ones_like(self.x_start)]).expand(B, 1, 2 * self.x_dim)
        return torch.cat([start, torch.cat([xo, m], -1)[:, :-1]], 1)

    # -- the three distributions (convolution mode) -------------------------------------------------------------
    def posterior(self, x: Tensor, mask: Tensor | None = None, t: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """q(z_t | x_≤t): mean and scale (B, L, Z)."""
        xo, m = self._observed(x, mask)
        tf = self._tf(t, x.shape[0], x.shape[1], x)
        return gaussian_head(self.encoder(self._cat(torch.cat([xo, m], -1), tf)), self.min_std)

    def prior_params(self, z: Tensor, t: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """p(z_t | z_<t) under teacher forcing: the stack reads (z_start, z_1, …, z_{L−1})."""
        B, L = z.shape[:2]
        z_in = torch.cat([self.z_start.expand(B, 1, self.z_dim), z[:, :-1]], 1)
        return gaussian_head(self.prior(self._cat(z_in, self._tf(t, B, L, z))), self.min_std)

    def decode(self, z: Tensor, x: Tensor, mask: Tensor | None = None, t: Tensor | None = None) -> Tensor:
        """Mean of p(x_t | z_≤t, x_<t) (B, L, C)."""
        xo, m = self._observed(x, mask)
        aux = self._x_input(xo, m) if self.decoder_x else None
        return self.decoder(self._cat(z, self._tf(t, z.shape[0], z.shape[1], z)), aux)

    def forward(self, x: Tensor, mask: Tensor | None = None, time_mask: Tensor | None = None, t: Tensor | None = None,
                generator: torch.Generator | None = None, sample: bool = True,
                shard: Shard | None = None) -> dict[str, Tensor]:
        """One-sample negative-ELBO terms of a batch (see :func:`losses.elbo_terms`) and what produced them; ``x``
        is this rank's rows of ``shard``'s global batch when one is given."""
        mu_q, std_q = self.posterior(x, mask, t)
        eps = normal(tuple(mu_q.shape), generator, mu_q, shard) if sample else 0.0
        z = mu_q + std_q * eps
        mu_p, std_p = self.prior_params(z, t)
        x_mean = self.decode(z, x, mask, t)
        terms = elbo_terms(x, x_mean, self.sigma, mu_q, std_q, mu_p, std_p, mask, time_mask)
        return {**terms, "x_mean": x_mean, "z": z, "mu_q": mu_q, "std_q": std_q, "mu_p": mu_p, "std_p": std_p}

    def loss(self, x: Tensor, mask: Tensor | None = None, generator: torch.Generator | None = None,
             objective: str = "elbo", time_mask: Tensor | None = None, t: Tensor | None = None,
             kl_weight: float = 1.0, shard: Shard | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        out = self(x, mask, time_mask, t, generator, shard=shard)
        return training_loss(out, objective, self.z_dim, kl_weight), out

    @torch.no_grad()
    def reconstruct(self, x: Tensor, mask: Tensor | None = None, t: Tensor | None = None) -> Tensor:
        """Decoder mean at the posterior mean z (interpolation: missing values are predicted from the observed)."""
        mu_q, _ = self.posterior(x, mask, t)
        return self.decode(mu_q, x, mask, t)

    # -- generation (recurrent step mode) ---------------------------------------------------------------------
    def _step_t(self, tf: Tensor | None, i: int) -> Tensor | None:
        return None if tf is None else tf[:, i]

    def _generate(self, steps: int, generator: torch.Generator | None, temperature: float, prior_state: Any,
                  dec_state: Any, z_prev: Tensor, x_prev: Tensor, tf: Tensor | None, offset: int,
                  obs_noise: bool, shard: Shard | None = None) -> tuple[Tensor, Tensor]:
        """``steps`` recurrent steps from the given states: z_t ~ p(z_t | z_<t) (scale × temperature), then
        x_t = decoder mean (+ σ-noise) fed back (LS4 §3, generation)."""
        ref = self.z_start
        zs, xs = [], []
        for i in range(steps):
            ti = self._step_t(tf, offset + i)
            out, prior_state = self.prior.step(self._cat(z_prev, ti), prior_state)
            mu, std = gaussian_head(out, self.min_std)
            z = mu + temperature * std * normal(tuple(mu.shape), generator, ref, shard)
            x, dec_state = self.decoder.step(self._cat(z, ti), dec_state, x_prev if self.decoder_x else None)
            if obs_noise:
                x = x + self.sigma * normal(tuple(x.shape), generator, ref, shard)
            zs.append(z)
            xs.append(x)
            z_prev, x_prev = z, torch.cat([x, torch.ones_like(x)], -1)
        return torch.stack(xs, 1), torch.stack(zs, 1)

    @torch.no_grad()
    def sample(self, n: int, length: int, generator: torch.Generator | None = None, temperature: float = 1.0,
               t: Tensor | None = None, mode: str = "recurrent", obs_noise: bool = False,
               shard: Shard | None = None) -> dict[str, Tensor]:
        """Generate ``n`` series of ``length`` steps: z_t ~ p(z_t | z_<t) with its scale × ``temperature``, then the
        decoder mean (plus σ-noise if ``obs_noise``) fed back as x_t. ``mode``: ``recurrent`` (step mode, O(L))
        or ``conv`` (the convolution re-run on the prefix at every step, O(L²); the same numbers). With ``shard``
        (of ``n`` rows) only this rank's rows of the ``n`` series are generated."""
        ref = self.z_start
        n = local_rows(n, shard)
        tf = self._tf(t, n, length, ref)
        z0 = self.z_start.expand(n, self.z_dim)
        x0 = torch.cat([self.x_start, torch.ones_like(self.x_start)]).expand(n, 2 * self.x_dim)
        if mode == "conv":
            return self._sample_conv(n, length, generator, temperature, tf, obs_noise, shard)
        if mode != "recurrent":
            raise ValueError(f"mode must be 'recurrent' or 'conv', got {mode!r}")
        with stepping(self):
            x, z = self._generate(length, generator, temperature, self.prior.default_state(n, ref.device),
                                  self.decoder.default_state(n, ref.device), z0, x0, tf, 0, obs_noise, shard)
        return {"x": x, "z": z}

    def _sample_conv(self, n: int, length: int, generator: torch.Generator | None, temperature: float,
                     tf: Tensor | None, obs_noise: bool, shard: Shard | None = None) -> dict[str, Tensor]:
        ref = self.z_start
        zs = torch.zeros(n, 0, self.z_dim, dtype=ref.dtype, device=ref.device)
        xs = torch.zeros(n, 0, self.x_dim, dtype=ref.dtype, device=ref.device)
        for i in range(length):
            z_in = torch.cat([self.z_start.expand(n, 1, self.z_dim), zs], 1)
            sub = None if tf is None else tf[:, : i + 1]
            mu, std = gaussian_head(self.prior(self._cat(z_in, sub))[:, -1], self.min_std)
            z = mu + temperature * std * normal(tuple(mu.shape), generator, ref, shard)
            zs = torch.cat([zs, z[:, None]], 1)
            aux = self._x_input(torch.cat([xs, xs.new_zeros(n, 1, self.x_dim)], 1),
                                torch.ones(n, i + 1, self.x_dim, dtype=ref.dtype, device=ref.device))
            x = self.decoder(self._cat(zs, sub), aux if self.decoder_x else None)[:, -1]
            if obs_noise:
                x = x + self.sigma * normal(tuple(x.shape), generator, ref, shard)
            xs = torch.cat([xs, x[:, None]], 1)
        return {"x": xs, "z": zs}

    @torch.no_grad()
    def extrapolate(self, x: Tensor, mask: Tensor | None, horizon: int, generator: torch.Generator | None = None,
                    temperature: float = 1.0, n_samples: int = 1, t: Tensor | None = None,
                    obs_noise: bool = False, shard: Shard | None = None) -> dict[str, Tensor]:
        """Conditional generation: encode the observed prefix x (B, P, C), run the prior and the decoder over it
        (step mode) to their states, then sample ``horizon`` further steps. ``t``: times (P + horizon,) or None (the
        regular grid). Returns ``x`` (n_samples, B, horizon, C) and ``z`` (n_samples, B, P + horizon, Z). With
        ``shard`` (of the global B series), ``x`` holds this rank's series and the draws are the global batch's."""
        B, P = x.shape[:2]
        S = n_samples
        rows = None if shard is None else shard.repeat(S)  # the S copies of the batch, sample-major
        xr = x.repeat(S, 1, 1)
        mr = None if mask is None else mask.repeat(S, 1, 1)
        ref = self.z_start
        tf = self._tf(t, B * S, P + horizon, ref)
        mu_q, std_q = self.posterior(xr, mr, None if t is None else t[..., :P])
        z_post = mu_q + std_q * normal(tuple(mu_q.shape), generator, ref, rows)
        xo, m = self._observed(xr, mr)
        x_in = self._x_input(xo, m)
        with stepping(self):
            ps = self.prior.default_state(B * S, ref.device)
            ds = self.decoder.default_state(B * S, ref.device)
            z_prev = self.z_start.expand(B * S, self.z_dim)
            for i in range(P):
                ti = self._step_t(tf, i)
                _, ps = self.prior.step(self._cat(z_prev, ti), ps)
                _, ds = self.decoder.step(self._cat(z_post[:, i], ti), ds, x_in[:, i] if self.decoder_x else None)
                z_prev = z_post[:, i]
            x_prev = torch.cat([xo[:, -1], m[:, -1]], -1)
            xf, zf = self._generate(horizon, generator, temperature, ps, ds, z_prev, x_prev, tf, P, obs_noise, rows)
        return {"x": xf.reshape(S, B, horizon, self.x_dim),
                "z": torch.cat([z_post, zf], 1).reshape(S, B, P + horizon, self.z_dim)}


def local_rows(n: int, shard: Shard | None) -> int:
    """This rank's number of rows of a global batch of ``n`` (``n`` without a shard)."""
    if shard is None:
        return n
    if shard.total != n:
        raise ValueError(f"the shard covers {shard.total} rows, the batch has {n}")
    return len(shard.rows())


class LS4(SequenceVAE):
    """LS4: :class:`SequenceVAE` with S4 stacks (``kind`` = ``s4d`` or ``dplr``), the decoder's first block joint."""

    name = "ls4"

    def kernels(self, L: int) -> dict[str, Tensor]:
        """|kernel| material for the kernel viewer: ``{"encoder/0": (H, L), ...}`` (first input of every block)."""
        out = {}
        for part in ("encoder", "prior", "decoder"):
            for i, k in enumerate(getattr(self, part).kernels(L)):
                out[f"{part}/{i}"] = k
        return out


def build_model(spec: dict[str, Any]) -> nn.Module:
    """Rebuild a model from ``model.spec()`` (e.g. a stored checkpoint artifact)."""
    spec = dict(spec)
    name = spec.pop("model")
    if name == "ls4":
        return LS4(**spec)
    from .baselines import GRUVAE, LatentODE

    if name == "gru_vae":
        return GRUVAE(**spec)
    if name == "latent_ode":
        return LatentODE(**spec)
    raise ValueError(f"unknown model {name!r}; known: ls4, gru_vae, latent_ode")
