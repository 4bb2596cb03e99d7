"""S4 layers with two computation paths that give the same numbers: convolution (FFT; training) and recurrence
(one step at a time; sampling).

- :class:`SSM`: H independent state space systems (one per channel), diagonal (``s4d``: S4D-Lin, zero-order hold)
  or diagonal-plus-low-rank (``dplr``: HiPPO-LegS, bilinear). With ``n_inputs = 2`` the systems take two inputs
  through two input matrices that share A and C: the LS4 joint layer h' = Ah + Bz + Ex, y = Ch + Dz + Fx.
- :class:`S4Block`: SSM → GELU → linear → residual → LayerNorm, pointwise except for the SSM, so causal.
- :class:`S4Stack`: input projection, blocks, output head; the first block is joint when an auxiliary input is given.

Every module has ``forward(u, aux=None)`` on (B, L, ·) and ``step(u_t, state, aux_t=None)`` on (B, ·) with
``default_state(batch)``. Wrap sampling loops in ``with stepping(model):`` so the discrete matrices are computed
once. ``param_groups`` gives the state-space parameters (Δ, A, P, B) their own learning rate and no weight decay.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator

import torch
from torch import Tensor, nn

from .kernels import dplr_dense, dplr_kernel, nplr_legs, s4d_kernel

KINDS = ("s4d", "dplr")


def _complex(p: Tensor) -> Tensor:
    return torch.view_as_complex(p)


def causal_conv(u: Tensor, K: Tensor) -> Tensor:
    """y_t = Σ_{l ≤ t} K_l u_{t−l} along the last axis via FFT with zero padding to ≥ 2L (S4 Eq. 5)."""
    L = u.shape[-1]
    n = 1 << (2 * L - 1).bit_length()
    return torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(K, n=n), n=n)[..., :L]


class SSM(nn.Module):
    """H channels, each a state space system with N complex states (2N real), ``n_inputs`` inputs.

    Parameters: log Δ (H,) uniform in [log dt_min, log dt_max]; A (through −Re A = exp(a_log_re) > 0 and Im A);
    for ``dplr`` also P (A = diag(Λ) − P P*); input matrices B (n_inputs, H, N); output C (H, N); feedthrough
    D (n_inputs, H). The state-space parameters (``SSM_PARAMS``: Δ, A, P, B) get their own group in
    :func:`param_groups`.
    """

    SSM_PARAMS = ("log_dt", "a_log_re", "a_im", "P", "B")

    def __init__(self, channels: int, state: int = 32, kind: str = "s4d", n_inputs: int = 1,
                 dt_min: float = 1e-3, dt_max: float = 1e-1):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        H, N = channels, state
        self.channels, self.state, self.kind, self.n_inputs = H, N, kind, n_inputs
        log_dt = torch.rand(H) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        self.log_dt = nn.Parameter(log_dt)
        if kind == "s4d":  # S4D-Lin: A_n = −1/2 + iπn, B = 1
            a_im = (math.pi * torch.arange(N, dtype=torch.float64)).float().expand(H, N).clone()
            b = torch.zeros(n_inputs, H, N, 2)
            b[..., 0] = 1.0
        else:  # HiPPO-LegS in normal-plus-low-rank diagonal form (2N real states → N conjugate pairs)
            Lam, P, B, _ = nplr_legs(2 * N)
            a_im = Lam.imag.float().expand(H, N).clone()
            self.P = nn.Parameter(torch.view_as_real(P.to(torch.complex64)).expand(H, N, 2).clone())
            b = torch.view_as_real(B.to(torch.complex64)).expand(n_inputs, H, N, 2).clone()
        self.a_log_re = nn.Parameter(torch.full((H, N), math.log(0.5)))
        self.a_im = nn.Parameter(a_im)
        self.B = nn.Parameter(b)
        self.C = nn.Parameter(torch.randn(H, N, 2) * math.sqrt(0.5))
        self.D = nn.Parameter(torch.randn(n_inputs, H))
        self._cache: tuple[Tensor, Tensor, Tensor] | None = None

    # -- parameters as complex tensors -------------------------------------------------------------------
    def dt(self) -> Tensor:
        return torch.exp(self.log_dt)

    def A(self) -> Tensor:
        """Diagonal part Λ (H, N): Re = −exp(a_log_re) < 0."""
        return torch.complex(-torch.exp(self.a_log_re), self.a_im)

    def kernel(self, L: int) -> Tensor:
        """Convolution kernels (n_inputs, H, L): S4D (Vandermonde) or DPLR (Cauchy + Woodbury + FFT)."""
        A, B, C, dt = self.A(), _complex(self.B), _complex(self.C), self.dt()
        if self.kind == "s4d":
            return s4d_kernel(A, B, C, dt, L)
        P = _complex(self.P)
        return dplr_kernel(A, P, P, B, C, dt, L)

    def discrete(self) -> tuple[Tensor, Tensor, Tensor]:
        """(Ā, B̄, C): Ā (H, N) diagonal (s4d, zero-order hold) or (H, N, N) dense (dplr, bilinear);
        B̄ (n_inputs, H, N). Cached inside :func:`stepping`."""
        if self._cache is not None:
            return self._cache
        A, B, C, dt = self.A(), _complex(self.B), _complex(self.C), self.dt()
        if self.kind == "s4d":
            dA = dt[:, None] * A
            Abar = torch.exp(dA)
            Bbar = (Abar - 1) / A * B
        else:
            P = _complex(self.P)
            dense = dplr_dense(A, P, P)
            eye = torch.eye(self.state, dtype=dense.dtype, device=dense.device)
            d = dt[:, None, None].to(dense.dtype)
            left = eye - d / 2 * dense
            Abar = torch.linalg.solve(left, eye + d / 2 * dense)
            Bbar = torch.linalg.solve(left, (d[..., 0] * B)[..., None])[..., 0]
        return Abar, Bbar, C

    # -- the two paths ----------------------------------------------------------------------------------
    def forward(self, *inputs: Tensor) -> Tensor:
        """Convolution mode: inputs ``n_inputs`` tensors (B, L, H) → (B, L, H), y = Σ_i K_i * u_i + D_i u_i."""
        if len(inputs) != self.n_inputs:
            raise ValueError(f"SSM expects {self.n_inputs} input(s), got {len(inputs)}")
        L = inputs[0].shape[1]
        K = self.kernel(L)
        y = 0
        for i, u in enumerate(inputs):
            ut = u.transpose(1, 2)
            y = y + causal_conv(ut, K[i]) + self.D[i][:, None] * ut
        return y.transpose(1, 2)

    def default_state(self, batch: int, device: Any = None) -> Tensor:
        dtype = torch.complex128 if self.C.dtype == torch.float64 else torch.complex64
        return torch.zeros(batch, self.channels, self.state, dtype=dtype, device=device or self.C.device)

    def step(self, inputs: list[Tensor], state: Tensor) -> tuple[Tensor, Tensor]:
        """Recurrent mode, one time step: h ← Ā h + Σ_i B̄_i u_i, y = 2·Re(C h) + Σ_i D_i u_i (S4 Eq. 3)."""
        Abar, Bbar, C = self.discrete()
        h = Abar * state if Abar.dim() == 2 else torch.einsum("hnm,bhm->bhn", Abar, state)
        for i, u in enumerate(inputs):
            h = h + Bbar[i] * u[..., None]
        y = 2 * (C * h).sum(-1).real
        for i, u in enumerate(inputs):
            y = y + self.D[i] * u
        return y, h


class S4Block(nn.Module):
    """u → LayerNorm(u + Linear(GELU(SSM(u[, aux])))): the residual S4 block (post-norm)."""

    def __init__(self, d_model: int, state: int = 32, kind: str = "s4d", joint: bool = False, dropout: float = 0.0):
        super().__init__()
        self.ssm = SSM(d_model, state, kind, n_inputs=2 if joint else 1)
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.out = nn.Linear(d_model, d_model)
        self.norm = nn.LayerNorm(d_model)

    def _post(self, u: Tensor, y: Tensor) -> Tensor:
        return self.norm(u + self.drop(self.out(self.act(y))))

    def forward(self, u: Tensor, aux: Tensor | None = None) -> Tensor:
        y = self.ssm(u) if aux is None else self.ssm(u, aux)
        return self._post(u, y)

    def default_state(self, batch: int, device: Any = None) -> Tensor:
        return self.ssm.default_state(batch, device)

    def step(self, u: Tensor, state: Tensor, aux: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y, state = self.ssm.step([u] if aux is None else [u, aux], state)
        return self._post(u, y), state


class S4Stack(nn.Module):
    """Linear(d_in → H) → ``layers`` S4 blocks → Linear(H → d_out). With ``aux_in > 0`` the first block is the
    LS4 joint layer and takes Linear(aux_in → H)(aux) as its second input (the decoder's x-conditioning)."""

    def __init__(self, d_in: int, d_model: int, d_out: int, layers: int = 2, state: int = 32, kind: str = "s4d",
                 aux_in: int = 0, dropout: float = 0.0):
        super().__init__()
        self.inp = nn.Linear(d_in, d_model)
        self.aux = nn.Linear(aux_in, d_model) if aux_in else None
        self.blocks = nn.ModuleList(
            S4Block(d_model, state, kind, joint=bool(aux_in) and i == 0, dropout=dropout) for i in range(layers))
        self.head = nn.Linear(d_model, d_out)

    def forward(self, u: Tensor, aux: Tensor | None = None) -> Tensor:
        h = self.inp(u)
        a = self.aux(aux) if self.aux is not None else None
        for i, block in enumerate(self.blocks):
            h = block(h, a if i == 0 else None)
        return self.head(h)

    def default_state(self, batch: int, device: Any = None) -> list[Tensor]:
        return [b.default_state(batch, device) for b in self.blocks]

    def step(self, u: Tensor, state: list[Tensor], aux: Tensor | None = None) -> tuple[Tensor, list[Tensor]]:
        h = self.inp(u)
        a = self.aux(aux) if self.aux is not None else None
        new = []
        for i, (block, s) in enumerate(zip(self.blocks, state)):
            h, s = block.step(h, s, a if i == 0 else None)
            new.append(s)
        return self.head(h), new

    def kernels(self, L: int) -> list[Tensor]:
        """The first input's kernel (H, L) of every block."""
        return [b.ssm.kernel(L)[0] for b in self.blocks]


@contextlib.contextmanager
def stepping(model: nn.Module) -> Iterator[nn.Module]:
    """Compute every SSM's discrete matrices once for a sampling loop (no gradients), then forget them."""
    ssms = [m for m in model.modules() if isinstance(m, SSM)]
    try:
        with torch.no_grad():
            for m in ssms:
                m._cache = None
                m._cache = m.discrete()
        yield model
    finally:
        for m in ssms:
            m._cache = None


def param_groups(model: nn.Module, lr: float, ssm_lr: float, weight_decay: float = 0.0) -> list[dict[str, Any]]:
    """Optimizer groups: state-space parameters (Δ, A, P, B of every :class:`SSM`) at ``ssm_lr`` without weight
    decay; matrices at ``lr`` with ``weight_decay``; vectors (biases, norms, D) at ``lr`` without."""
    ssm_ids = {id(p) for m in model.modules() if isinstance(m, SSM)
               for name, p in m.named_parameters(recurse=False) if name in SSM.SSM_PARAMS}
    ssm, decay, plain = [], [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        if id(p) in ssm_ids:
            ssm.append(p)
        elif p.dim() >= 2:
            decay.append(p)
        else:
            plain.append(p)
    groups = [{"params": decay, "lr": lr, "weight_decay": weight_decay},
              {"params": plain, "lr": lr, "weight_decay": 0.0},
              {"params": ssm, "lr": ssm_lr, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]
