"""The weight SDE of an SDE-BNN: the Ornstein–Uhlenbeck prior, the approximate posterior and the path KL.

Xu, Chen, Li & Duvenaud, "Infinitely Deep Bayesian Neural Networks with Stochastic Differential Equations"
(AISTATS 2022), the section that defines the model. The weights of an infinitely deep network are a process w(t),
t ∈ [0, T]. The equation labels are ours (the docstrings cite them); the equations are the paper's:

    (P)   prior (Ornstein–Uhlenbeck)   dw = f_p(t, w) dt + σ dB,   f_p(t, w) = −w
    (Q)   approximate posterior        dw = f_q(t, w) dt + σ dB,   f_q(t, w) = −w + g_φ(t, w)
    (KL)  KL(q ‖ p) = E_q ∫ ½ ‖u(t, w_t)‖² dt,   u(t, w) = (f_q − f_p) / σ = g_φ(t, w) / σ

with g_φ a ConcatSquash MLP whose last layer starts at zero, so that q = p at initialisation. (KL) is Girsanov's
theorem for two SDEs sharing the diffusion σ; it is accumulated here as one extra state of the solve.
``sample_weights`` returns the weight paths and that integral.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
import torchsde
from torch import nn

Drift = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: solvers of ``sample_weights``: Itô Euler–Maruyama, or the Stratonovich ones (equal to Itô here: the noise is additive)
ITO_METHODS = ("euler",)
STRATONOVICH_METHODS = ("midpoint", "heun", "euler_heun", "reversible_heun")
METHODS = ITO_METHODS + STRATONOVICH_METHODS


class ConcatSquashLinear(nn.Module):
    """A time-conditioned linear layer (FFJORD's ConcatSquash): ``(W x + b) · sigmoid(a t + c) + d t``."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)
        self.gate = nn.Linear(1, d_out)
        self.shift = nn.Linear(1, d_out, bias=False)

    def forward(self, t: torch.Tensor | float, x: torch.Tensor, detached: bool = False) -> torch.Tensor:
        """``detached``: the same value with the parameters' gradients stopped (x keeps its graph)."""
        tt = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(1, 1)
        p = (lambda w: w.detach()) if detached else (lambda w: w)  # noqa: E731
        lin, gate = self.linear, self.gate
        return (F.linear(x, p(lin.weight), p(lin.bias)) * torch.sigmoid(F.linear(tt, p(gate.weight), p(gate.bias)))
                + F.linear(tt, p(self.shift.weight)))

    def zero_(self) -> "ConcatSquashLinear":
        """Make the layer output exactly 0 for every (t, x)."""
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.bias.zero_()
            self.shift.weight.zero_()
        return self


class ConcatSquashMLP(nn.Module):
    """g_φ(t, w): ConcatSquash layers with softplus in between; the last layer starts at zero (q = p at init, (Q))."""

    def __init__(self, dims: Sequence[int], zero_last: bool = True):
        super().__init__()
        if len(dims) < 2:
            raise ValueError(f"dims = {list(dims)} needs at least an input and an output size")
        self.layers = nn.ModuleList(ConcatSquashLinear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        if zero_last:
            self.layers[-1].zero_()

    def forward(self, t: torch.Tensor | float, x: torch.Tensor, detached: bool = False) -> torch.Tensor:
        """g(t, x); ``detached``: with stop-gradient on the parameters (the STL term), no gradient to φ."""
        for i, layer in enumerate(self.layers):
            x = layer(t, x, detached)
            if i < len(self.layers) - 1:
                x = nn.functional.softplus(x)
        return x


class WeightSDE(nn.Module):
    """The posterior weight SDE dw = (−w + g(t, w)) dt + σ dB with diagonal noise, usable with ``torchsde.sdeint``.

    ``g`` is a zero-initialised :class:`ConcatSquashMLP` (hidden sizes ``hidden``), or the callable ``drift(t, w)``
    when one is given (then the module has no parameters of its own). ``h`` is the prior drift −w (torchsde's name
    for it), so ``torchsde.sdeint(..., logqp=True)`` computes the same KL as :func:`sample_weights`. σ = 0 is the
    ODE limit (a neural ODE whose weights follow dw/dt = −w + g): the path KL is then undefined and
    :func:`sample_weights` refuses it.
    """

    noise_type = "diagonal"
    sde_type = "ito"

    def __init__(self, dim: int, sigma: float, drift: Drift | None = None, hidden: Sequence[int] = (64,)):
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim = {dim} is out of range; allowed >= 1")
        if not sigma >= 0:
            raise ValueError(f"sigma = {sigma} is out of range; allowed >= 0 (0: the ODE limit, no path KL)")
        self.dim, self.sigma = int(dim), float(sigma)
        self.drift = drift
        self.net = ConcatSquashMLP([dim, *hidden, dim]) if drift is None else None

    def offset(self, t: torch.Tensor | float, w: torch.Tensor) -> torch.Tensor:
        """g(t, w) = f_q − f_p: the posterior's departure from the prior drift, (Q) − (P)."""
        return self.drift(t, w) if self.drift is not None else self.net(t, w)

    def prior_drift(self, t: torch.Tensor | float, w: torch.Tensor) -> torch.Tensor:
        """f_p(t, w) = −w: the Ornstein–Uhlenbeck prior, (P)."""
        return -w

    h = prior_drift

    def f(self, t: torch.Tensor | float, w: torch.Tensor) -> torch.Tensor:
        """f_q(t, w) = −w + g(t, w): the approximate posterior's drift, (Q)."""
        return self.prior_drift(t, w) + self.offset(t, w)

    def g(self, t: torch.Tensor | float, w: torch.Tensor) -> torch.Tensor:
        """σ on every weight (diagonal noise, shared by prior and posterior)."""
        return torch.full_like(w, self.sigma)

    def kl_rate(self, t: torch.Tensor | float, w: torch.Tensor) -> torch.Tensor:
        """½ ‖u‖² with u = g(t, w)/σ: the integrand of the path KL, (KL); shape (batch,)."""
        return 0.5 * (self.offset(t, w) / self.sigma).pow(2).sum(-1)


class _WithKL(nn.Module):
    """[w, KL] as one torchsde SDE: general noise with the Brownian motion on w only (``f_and_g_prod``)."""

    noise_type = "general"

    def __init__(self, sde: WeightSDE, sde_type: str):
        super().__init__()
        self.sde, self.sde_type = sde, sde_type

    def f(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        w = y[:, : self.sde.dim]
        off = self.sde.offset(t, w)
        return torch.cat([self.sde.prior_drift(t, w) + off, 0.5 * (off / self.sde.sigma).pow(2).sum(-1, keepdim=True)], 1)

    def g_prod(self, t: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.sde.sigma * v, v.new_zeros(v.shape[0], 1)], 1)

    def f_and_g_prod(self, t: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.f(t, y), self.g_prod(t, y, v)


def sde_type_of(method: str) -> str:
    """'ito' for Euler–Maruyama, 'stratonovich' for midpoint/Heun (additive noise: both calculi agree)."""
    if method not in METHODS:
        raise ValueError(f"method = {method!r} is not supported; allowed: {', '.join(METHODS)}")
    return "ito" if method in ITO_METHODS else "stratonovich"


def brownian(batch: int, dim: int, t0: float = 0.0, t1: float = 1.0, entropy: int | None = None,
             dt: float | None = None, dtype: torch.dtype = torch.float32,
             device: torch.device | str = "cpu") -> torchsde.BrownianInterval:
    """A ``torchsde.BrownianInterval`` of shape (batch, dim) on [t0, t1], seeded by ``entropy``."""
    return torchsde.BrownianInterval(t0=t0, t1=t1, size=(batch, dim), entropy=entropy, dt=dt, dtype=dtype,
                                     device=device)


def sample_weights(sde: WeightSDE, w0: torch.Tensor, ts: torch.Tensor | Sequence[float], method: str = "euler",
                   dt: float = 0.05, bm: torchsde.BrownianInterval | None = None, adaptive: bool = False,
                   adjoint: bool = False, rtol: float = 1e-3, atol: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample posterior weight paths (Q) and their path KL (KL): ``(ws, kl)``.

    ws: (len(ts), batch, dim), the paths at ``ts`` started from ``w0`` (batch, dim); kl: (batch,), the accumulated
    ∫ ½‖g(t, w)/σ‖² dt of each path. ``method`` is Itô ``euler`` (Euler–Maruyama) or a Stratonovich solver
    (``midpoint``, ...; with additive noise the SDE is the same in both calculi); ``adaptive`` steps adaptively;
    ``adjoint`` backpropagates with the stochastic adjoint (a Stratonovich method is needed). ``bm`` of shape
    (batch, dim) fixes the Brownian motion.
    """
    if sde.sigma == 0:
        raise ValueError("sample_weights needs sigma > 0 (sigma = 0 is an ODE: solve it with torchdiffeq)")
    if w0.ndim != 2 or w0.shape[1] != sde.dim:
        raise ValueError(f"w0 must have shape (batch, {sde.dim}); got {tuple(w0.shape)}")
    kind = sde_type_of(method)
    if adjoint and kind != "stratonovich":
        raise ValueError(f"adjoint = True needs a Stratonovich method ({', '.join(STRATONOVICH_METHODS)}); "
                         f"got method = {method!r}")
    ts = torch.as_tensor(ts, dtype=w0.dtype, device=w0.device)
    aug = _WithKL(sde, kind)
    if bm is None:
        bm = brownian(w0.shape[0], sde.dim, float(ts[0]), float(ts[-1]), dt=dt, dtype=w0.dtype, device=w0.device)
    y0 = torch.cat([w0, w0.new_zeros(w0.shape[0], 1)], 1)
    kwargs = dict(bm=bm, method=method, dt=dt, adaptive=adaptive, rtol=rtol, atol=atol)
    if adjoint:
        ys = torchsde.sdeint_adjoint(aug, y0, ts, adjoint_method=method, **kwargs)
    else:
        ys = torchsde.sdeint(aug, y0, ts, **kwargs)
    return ys[..., : sde.dim], ys[-1, :, -1]


def euler_maruyama(sde: nn.Module, y0: torch.Tensor, ts: torch.Tensor, bm: torchsde.BrownianInterval,
                   dt: float) -> torch.Tensor:
    """Itô Euler–Maruyama, y_{k+1} = y_k + f(t_k, y_k) Δt + G(t_k, y_k) ΔB_k, on torchsde's fixed-step grid.

    ``sde`` provides ``f_and_g_prod(t, y, ΔB)``. The reference loop against which torchsde's ``euler`` is tested:
    steps of ``dt`` from ts[0] (the last one clipped at ts[-1]), outputs at ``ts`` linearly interpolated between
    the two grid points around them, exactly as torchsde does. Returns (len(ts), batch, state).
    """
    t_end = ts[-1]
    prev_t = t = ts[0]
    prev_y = y = y0
    out = [y0]
    for out_t in ts[1:]:
        while t < out_t:
            nxt = torch.minimum(t + dt, t_end)
            f, g_db = sde.f_and_g_prod(t, y, bm(t, nxt))
            prev_t, prev_y = t, y
            y = y + f * (nxt - t) + g_db
            t = nxt
        out.append((t - out_t) / (t - prev_t) * prev_y + (out_t - prev_t) / (t - prev_t) * y)
    return torch.stack(out)
