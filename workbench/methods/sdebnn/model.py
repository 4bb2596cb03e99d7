"""The SDE-BNN: hidden units driven by weights that follow the weight SDE, solved jointly (Xu et al. 2022).

    (H)   h(0) = x (zero-augmented),   dh/dt = f_h(t, h, w(t)),   t ∈ [0, 1],   w(t) from (Q) of ``sde.py``,

and the KL of the weight paths as a third state, so that one ``torchsde`` solve of [h, w, KL] gives the output
h(1) (read out by a linear layer) and the KL term of the ELBO. f_h is a small network (an MLP on vectors, a
two-layer convolution on images) whose weights are the flat vector w(t); :class:`WeightLayout` packs them.

Gradient estimators of the KL (``estimator``), the three the paper compares in its variance-reduction section
("sticking the landing"); labels ours:

- (FMC) ``full``: the Monte Carlo estimate of log dq/dp along the sampled path, ∫ ½‖u‖² dt + ∫ u · dB;
- (STL) ``stl``: the same with the variational parameters φ detached inside the martingale term,
  ∫ ½‖u‖² dt + ∫ u(t, w_t; stop_grad φ) · dB (the path still depends on φ): its gradient variance vanishes as q
  approaches the true posterior;
- (KLO) ``kl``: ∫ ½‖u‖² dt only (the martingale term has mean zero).
All three have the same expectation and the same expected gradient; u = g_φ(t, w)/σ.
The martingale term needs the Itô calculus: ``full`` and ``stl`` run with Euler–Maruyama only.
σ = 0 gives the ODE-net limit, solved with ``torchdiffeq``.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
import torchsde
from torch import nn

from .losses import gaussian_kl
from .sde import STRATONOVICH_METHODS, WeightSDE, brownian, sample_weights, sde_type_of

ESTIMATORS = ("stl", "full", "kl")


class WeightLayout:
    """Named weight tensors packed into one flat vector w (the state of the weight SDE)."""

    def __init__(self, shapes: dict[str, tuple[int, ...]]):
        self.shapes = {k: tuple(int(d) for d in v) for k, v in shapes.items()}
        self.sizes = {k: math.prod(v) for k, v in self.shapes.items()}
        self.offsets: dict[str, int] = {}
        start = 0
        for k, n in self.sizes.items():
            self.offsets[k] = start
            start += n
        self.dim = start

    def flatten(self, tensors: dict[str, torch.Tensor], batch_dims: int = 0) -> torch.Tensor:
        """{name: (*batch, *shape)} -> (*batch, D), in the layout's order."""
        if set(tensors) != set(self.shapes):
            raise ValueError(f"expected weights {sorted(self.shapes)}, got {sorted(tensors)}")
        parts = []
        for k, shape in self.shapes.items():
            t = tensors[k]
            if tuple(t.shape[batch_dims:]) != shape:
                raise ValueError(f"weight {k!r} has shape {tuple(t.shape[batch_dims:])}, expected {shape}")
            parts.append(t.reshape(*t.shape[:batch_dims], -1))
        return torch.cat(parts, -1)

    def unflatten(self, w: torch.Tensor) -> dict[str, torch.Tensor]:
        """(*batch, D) -> {name: (*batch, *shape)} (views, no copies)."""
        if w.shape[-1] != self.dim:
            raise ValueError(f"weight vector has {w.shape[-1]} entries, the layout needs {self.dim}")
        lead = w.shape[:-1]
        return {k: w[..., o : o + self.sizes[k]].reshape(*lead, *self.shapes[k]) for k, o in self.offsets.items()}

    def names(self) -> list[str]:
        """One readable name per entry of w, e.g. ``W1[3,0]``."""
        out = []
        for k, shape in self.shapes.items():
            for idx in range(self.sizes[k]):
                pos = []
                for d in reversed(shape):
                    pos.append(idx % d)
                    idx //= d
                out.append(f"{k}[{','.join(str(p) for p in reversed(pos))}]")
        return out


class MLPDynamics:
    """f_h(h; w) = W2 tanh(W1 h + b1) + b2 on hidden states (S, B, d), one weight set per sampled path s."""

    def __init__(self, dim: int, hidden: int):
        self.dim, self.hidden = dim, hidden
        self.layout = WeightLayout({"W1": (hidden, dim), "b1": (hidden,), "W2": (dim, hidden), "b2": (dim,)})

    def __call__(self, h: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
        z = torch.tanh(torch.baddbmm(p["b1"].unsqueeze(1), h, p["W1"].transpose(1, 2)))
        return torch.baddbmm(p["b2"].unsqueeze(1), z, p["W2"].transpose(1, 2))

    def init(self) -> dict[str, torch.Tensor]:
        """nn.Linear's default: U(−1/√fan_in, 1/√fan_in) for weights and biases."""
        a, b = 1 / math.sqrt(self.dim), 1 / math.sqrt(self.hidden)
        return {"W1": torch.empty(self.hidden, self.dim).uniform_(-a, a), "b1": torch.empty(self.hidden).uniform_(-a, a),
                "W2": torch.empty(self.dim, self.hidden).uniform_(-b, b), "b2": torch.empty(self.dim).uniform_(-b, b)}


class ConvDynamics:
    """f_h(h; w) = K2 ∗ tanh(K1 ∗ h + b1) + b2, 3×3 convolutions, states (S, B, C, H, W), weights per path s
    (one grouped convolution over the S paths)."""

    def __init__(self, channels: int, hidden: int):
        self.channels, self.hidden = channels, hidden
        self.layout = WeightLayout({"K1": (hidden, channels, 3, 3), "b1": (hidden,),
                                    "K2": (channels, hidden, 3, 3), "b2": (channels,)})

    def __call__(self, h: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
        s, b, c, hh, ww = h.shape
        x = h.transpose(0, 1).reshape(b, s * c, hh, ww)
        z = torch.tanh(F.conv2d(x, p["K1"].reshape(s * self.hidden, c, 3, 3), p["b1"].reshape(-1), padding=1, groups=s))
        out = F.conv2d(z, p["K2"].reshape(s * c, self.hidden, 3, 3), p["b2"].reshape(-1), padding=1, groups=s)
        return out.reshape(b, s, c, hh, ww).transpose(0, 1)

    def init(self) -> dict[str, torch.Tensor]:
        a, b = 1 / math.sqrt(9 * self.channels), 1 / math.sqrt(9 * self.hidden)
        return {"K1": torch.empty(self.hidden, self.channels, 3, 3).uniform_(-a, a),
                "b1": torch.empty(self.hidden).uniform_(-a, a),
                "K2": torch.empty(self.channels, self.hidden, 3, 3).uniform_(-b, b),
                "b2": torch.empty(self.channels).uniform_(-b, b)}


class Backbone(nn.Module):
    """What the SDE-BNN, the ODE-net and the residual net share: h(0) from the input, f_h, and the linear readout.

    Vectors (d,) get ``aug`` zero features; images (C, H, W) are average-pooled by ``pool`` and get ``aug`` zero
    channels. ``hidden`` is f_h's hidden width (MLP units or convolution channels).
    """

    def __init__(self, in_shape: Sequence[int], out_dim: int, aug: int, hidden: int, pool: int = 1):
        super().__init__()
        self.in_shape, self.out_dim, self.aug, self.hidden, self.pool = tuple(in_shape), out_dim, aug, hidden, pool
        if len(self.in_shape) == 1:
            self.state_shape: tuple[int, ...] = (self.in_shape[0] + aug,)
            self.dynamics: MLPDynamics | ConvDynamics = MLPDynamics(self.state_shape[0], hidden)
        elif len(self.in_shape) == 3:
            c, h, w = self.in_shape
            self.state_shape = (c + aug, h // pool, w // pool)
            self.dynamics = ConvDynamics(c + aug, hidden)
        else:
            raise ValueError(f"in_shape = {self.in_shape}: expected (features,) or (channels, height, width)")
        self.state_size = math.prod(self.state_shape)
        self.readout = nn.Linear(self.state_size, out_dim)

    @property
    def layout(self) -> WeightLayout:
        return self.dynamics.layout

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """h(0): the input with zero augmentation, (B, *state_shape)."""
        if len(self.in_shape) == 3 and self.pool > 1:
            x = F.avg_pool2d(x, self.pool)
        if self.aug:
            x = torch.cat([x, x.new_zeros(x.shape[0], self.aug, *x.shape[2:])], 1)
        return x

    def read(self, h: torch.Tensor) -> torch.Tensor:
        """Linear readout of h(1): (S, B, *state) -> (S, B, out)."""
        return self.readout(h.reshape(*h.shape[:2], -1))


class _JointSDE(nn.Module):
    """[h, w, KL] as one torchsde SDE with general noise (the Brownian motion drives w only)."""

    noise_type = "general"

    def __init__(self, model: "SDEBNN", batch: int):
        super().__init__()
        object.__setattr__(self, "model", model)  # not a submodule: its parameters stay the model's
        self.batch, self.sde_type = batch, sde_type_of(model.method)
        self.nh = batch * model.backbone.state_size

    def _parts(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        return y[:, : self.nh].reshape(y.shape[0], self.batch, *m.backbone.state_shape), y[:, self.nh : self.nh + m.dim]

    def f_and_g_prod(self, t: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Drift [f_h (H), −w + g (Q), ½‖u‖² (KL)]; diffusion·ΔB = [0, σ ΔB, martingale term of (FMC)/(STL)]."""
        m = self.model
        h, w = self._parts(y)
        s = y.shape[0]
        dh = m.backbone.dynamics(h, m.layout.unflatten(w)).reshape(s, -1)
        off = m.sde.offset(t, w)
        u = off / m.sigma
        f = torch.cat([dh, off - w, 0.5 * u.pow(2).sum(-1, keepdim=True)], 1)
        if m.estimator == "full":
            mart = (u * v).sum(-1, keepdim=True)
        elif m.estimator == "stl":
            u_bar = m.detached_offset(t, w) / m.sigma
            mart = (u_bar * v).sum(-1, keepdim=True)
        else:
            mart = v.new_zeros(s, 1)
        return f, torch.cat([v.new_zeros(s, self.nh), m.sigma * v, mart], 1)

    def f(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.f_and_g_prod(t, y, y.new_zeros(y.shape[0], self.model.dim))[0]

    def g_prod(self, t: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.f_and_g_prod(t, y, v)[1]


class _JointODE(nn.Module):
    """[h, w] of the σ = 0 limit for ``torchdiffeq``: dh/dt = f_h(h, w), dw/dt = −w + g(t, w)."""

    def __init__(self, model: "SDEBNN", batch: int):
        super().__init__()
        object.__setattr__(self, "model", model)
        self.batch, self.nh = batch, batch * model.backbone.state_size

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        m = self.model
        h = y[:, : self.nh].reshape(y.shape[0], self.batch, *m.backbone.state_shape)
        w = y[:, self.nh :]
        dh = m.backbone.dynamics(h, m.layout.unflatten(w)).reshape(y.shape[0], -1)
        return torch.cat([dh, m.sde.f(t, w)], 1)


class SDEBNN(nn.Module):
    """SDE-BNN classifier / regressor (module docstring). ``forward(x, samples, ...) -> (outputs (S, B, out), kl (S,))``.

    in_shape: (features,) or (C, H, W); aug: zero features/channels added to h(0); hidden: f_h's width;
    sigma: the weight diffusion σ (0: the ODE-net, solved with torchdiffeq); drift_hidden: hidden sizes of g_φ;
    estimator: ``stl`` | ``full`` | ``kl``; method: ``euler`` (Itô) or a Stratonovich solver (``midpoint``; KL-only
    estimator); steps: fixed solver steps on [0, t1]; adjoint: stochastic adjoint (Stratonovich) / ODE adjoint;
    adaptive: adaptive steps; w0: ``point`` (a learned w(0)) or ``gaussian`` (a learned N(μ, s²) with KL to
    N(0, w0_prior_std²)).
    """

    def __init__(self, in_shape: Sequence[int], out_dim: int, *, aug: int = 2, hidden: int = 32, sigma: float = 0.1,
                 drift_hidden: Sequence[int] = (64,), estimator: str = "stl", method: str = "euler", steps: int = 10,
                 adjoint: bool = False, adaptive: bool = False, w0: str = "point", w0_prior_std: float = 1.0,
                 pool: int = 1, t1: float = 1.0):
        super().__init__()
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator = {estimator!r}; allowed: {', '.join(ESTIMATORS)}")
        sde_type_of(method)
        if estimator != "kl" and method in STRATONOVICH_METHODS and sigma > 0:
            raise ValueError(f"estimator = {estimator!r} needs the Itô calculus (method = 'euler'); "
                             f"{method!r} supports estimator = 'kl' only")
        if adjoint and method not in STRATONOVICH_METHODS and sigma > 0:
            raise ValueError("adjoint = True needs a Stratonovich method (e.g. 'midpoint') and estimator = 'kl'")
        if w0 not in ("point", "gaussian"):
            raise ValueError(f"w0 = {w0!r}; allowed: point, gaussian")
        self.spec: dict[str, Any] = dict(in_shape=list(in_shape), out_dim=out_dim, aug=aug, hidden=hidden, sigma=sigma,
                                         drift_hidden=list(drift_hidden), estimator=estimator, method=method,
                                         steps=steps, adjoint=adjoint, adaptive=adaptive, w0=w0,
                                         w0_prior_std=w0_prior_std, pool=pool, t1=t1)
        self.backbone = Backbone(in_shape, out_dim, aug, hidden, pool)
        self.layout = self.backbone.layout
        self.dim = self.layout.dim
        self.estimator, self.method, self.steps = estimator, method, steps
        self.adjoint, self.adaptive, self.t1 = adjoint, adaptive, float(t1)
        self.w0_kind, self.w0_prior_std = w0, w0_prior_std
        self.w0 = nn.Parameter(self.layout.flatten(self.backbone.dynamics.init()))
        if w0 == "gaussian":
            self.w0_rho = nn.Parameter(torch.full((self.dim,), math.log(math.expm1(0.01))))
        self.sde = WeightSDE(self.dim, sigma, hidden=tuple(drift_hidden))

    # -- the σ knob: the prior and posterior share it --------------------------------------------------------
    @property
    def sigma(self) -> float:
        return self.sde.sigma

    @sigma.setter
    def sigma(self, value: float) -> None:
        if not value >= 0:
            raise ValueError(f"sigma = {value} is out of range; allowed >= 0")
        self.sde.sigma = float(value)

    @property
    def dt(self) -> float:
        return self.t1 / self.steps

    def detached_offset(self, t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """g(t, w; stop_grad φ): the drift network with detached parameters (the martingale term of (STL))."""
        return self.sde.net(t, w, detached=True)

    def initial_weights(self, samples: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """w(0) for S paths and its KL: the point estimate (KL 0), or μ + s·ε with KL(N(μ, s²) ‖ N(0, p²))."""
        if self.w0_kind == "point":
            return self.w0.unsqueeze(0).expand(samples, -1), self.w0.new_zeros(samples)
        std = F.softplus(self.w0_rho)
        eps = torch.randn(samples, self.dim, generator=generator, dtype=self.w0.dtype).to(self.w0.device)
        kl = gaussian_kl(self.w0, std, self.w0_prior_std)
        return self.w0 + std * eps, kl.expand(samples)

    def forward(self, x: torch.Tensor, samples: int = 1, *, entropy: int | None = None,
                bm: torchsde.BrownianInterval | None = None, generator: torch.Generator | None = None,
                ts: torch.Tensor | None = None, return_states: bool = False) -> Any:
        """Outputs (S, B, out) and the KL of each path (S,); with ``return_states`` also the solution (T, S, state).

        The Brownian motion is ``bm`` (shape (S, D) on [0, t1]) or a fresh one seeded by ``entropy``; ``generator``
        draws w(0) when it is Gaussian.
        """
        b = x.shape[0]
        h0 = self.backbone.encode(x).reshape(1, -1)
        w0, kl0 = self.initial_weights(samples, generator)
        ts = torch.tensor([0.0, self.t1], dtype=x.dtype, device=x.device) if ts is None else ts
        if self.sigma == 0:
            ys = self._solve_ode(torch.cat([h0.expand(samples, -1), w0], 1), ts, b)
            kl = kl0
        else:
            y0 = torch.cat([h0.expand(samples, -1), w0, x.new_zeros(samples, 1)], 1)
            if bm is None:
                bm = brownian(samples, self.dim, float(ts[0]), float(ts[-1]), entropy=entropy, dt=self.dt,
                              dtype=x.dtype, device=x.device)
            sde = _JointSDE(self, b)
            kwargs = dict(bm=bm, method=self.method, dt=self.dt, adaptive=self.adaptive, rtol=1e-3, atol=1e-3)
            if self.adjoint:
                ys = torchsde.sdeint_adjoint(sde, y0, ts, adjoint_method=self.method,
                                             adjoint_params=tuple(self.sde.parameters()), **kwargs)
            else:
                ys = torchsde.sdeint(sde, y0, ts, **kwargs)
            kl = ys[-1, :, -1] + kl0
        nh = b * self.backbone.state_size
        out = self.backbone.read(ys[-1, :, :nh].reshape(samples, b, *self.backbone.state_shape))
        return (out, kl, ys) if return_states else (out, kl)

    def _solve_ode(self, y0: torch.Tensor, ts: torch.Tensor, batch: int) -> torch.Tensor:
        import torchdiffeq  # (it imports scipy.integrate: only where σ = 0 is solved)

        func = _JointODE(self, batch)
        method = "dopri5" if self.adaptive else {"euler": "euler", "midpoint": "midpoint"}.get(self.method, "rk4")
        options = None if self.adaptive else {"step_size": self.dt}
        if self.adjoint:
            return torchdiffeq.odeint_adjoint(func, y0, ts, method=method, options=options, rtol=1e-3, atol=1e-4,
                                              adjoint_params=tuple(self.sde.parameters()))
        return torchdiffeq.odeint(func, y0, ts, method=method, options=options, rtol=1e-3, atol=1e-4)

    def weight_paths(self, ts: torch.Tensor, samples: int, *, prior: bool = False, entropy: int | None = None,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """w(t) at ``ts`` for S paths (T, S, D): the posterior, or the OU prior (g = 0) from the same w(0)."""
        w0, _ = self.initial_weights(samples, generator)
        sde = WeightSDE(self.dim, self.sigma, drift=lambda t, w: torch.zeros_like(w)) if prior else self.sde
        if self.sigma == 0:
            import torchdiffeq

            return torchdiffeq.odeint(sde.f, w0, ts, method="euler", options={"step_size": self.dt})
        bm = brownian(samples, self.dim, float(ts[0]), float(ts[-1]), entropy=entropy, dt=self.dt, dtype=w0.dtype,
                      device=w0.device)
        method = self.method if self.method == "euler" else "midpoint"
        return sample_weights(sde, w0, ts, method=method, dt=self.dt, bm=bm)[0]
