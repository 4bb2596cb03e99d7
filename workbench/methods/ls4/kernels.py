"""State-space convolution kernels (S4D and DPLR/S4) and their initialisations, on any device, in pure PyTorch.

A linear time-invariant state space ``h'(t) = A h(t) + B u(t)``, ``y(t) = C h(t)`` (S4, Gu et al. 2022, Eq. 1),
discretised with step ``dt`` into ``h_l = Ā h_{l-1} + B̄ u_l``, ``y_l = C h_l`` (S4 Eq. 3), is the causal
convolution ``y = K * u`` with ``K_l = C Ā^l B̄`` (S4 Eqs. 4-5). The N complex states stand for N conjugate pairs
of a real 2N-state system, so every kernel here is ``2·Re(...)``: the sum over BOTH conjugate halves, so that the
convolution and the recurrence (see :mod:`workbench.methods.ls4.layers`) agree everywhere.

- :func:`s4d_kernel`: diagonal A, zero-order hold, Vandermonde product (S4D, Gu et al. 2022, §3).
- :func:`dplr_kernel`: A = diag(Λ) − P Q*, bilinear discretisation, Cauchy kernel with the Woodbury correction
  evaluated at the L-th roots of unity, inverted with an FFT (S4 §3.3, Lemma C.3 / Theorem 3).
- :func:`dense_kernel`: the naive O(L) sequential definition from the discrete matrices (reference, benchmark).
- :func:`hippo_legs`, :func:`nplr_legs`, :func:`s4d_lin`: HiPPO-LegS (S4 Eq. 2), its normal-plus-low-rank
  diagonal form (S4 Theorem 1) and the S4D-Lin initialisation A_n = −1/2 + iπn (S4D §4).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def _dt(dt: Tensor | float, like: Tensor) -> Tensor:
    """``dt`` as a real tensor broadcastable to ``like.shape[:-1]`` (a float becomes a 0-d tensor); checked to be
    positive unless it is a trained quantity (exp(log Δ) > 0 by construction; no device sync in training)."""
    real = like.real.dtype if like.is_complex() else like.dtype
    checked = not (isinstance(dt, Tensor) and dt.requires_grad)
    dt = torch.as_tensor(dt, dtype=real, device=like.device)
    if checked and bool((dt <= 0).any()):
        raise ValueError("dt must be positive")
    return dt


def zoh(A: Tensor, B: Tensor, dt: Tensor | float) -> tuple[Tensor, Tensor]:
    """Zero-order hold of a diagonal system: Ā = exp(dt·A), B̄ = (exp(dt·A) − 1)/A · B (S4D §3)."""
    dt = _dt(dt, A)[..., None]
    dA = dt * A
    Abar = torch.exp(dA)
    return Abar, (Abar - 1) / A * B


def s4d_kernel(A: Tensor, B: Tensor, C: Tensor, dt: Tensor | float, L: int) -> Tensor:
    """S4D convolution kernel: K_l = 2·Re(Σ_n C_n B̄_n Ā_n^l), l < L, with Ā, B̄ from :func:`zoh`.

    A, B, C: complex (..., N); dt: positive, broadcastable to (...,) (or a float). Returns real (..., L).
    The Vandermonde product Σ_n w_n Ā_n^l (S4D §3, the "Vandermonde kernel") is computed as a product of two
    √L-sized Vandermonde factors, so the elementwise work is O(N√L) and the O(NL) part is one matrix product.
    """
    if L < 1:
        raise ValueError(f"L must be >= 1, got {L}")
    A, B, C = torch.broadcast_tensors(A, B, C)
    dt = _dt(dt, A)
    dA = dt[..., None] * A
    w = C * (torch.exp(dA) - 1) / A * B  # C_n B̄_n
    # Ā^l with l = c·k + j: Ā^l = Ā^{ck}·Ā^j, so the (N, L) Vandermonde product is a (K, N) @ (N, c) matrix
    # product of two small Vandermonde factors (c ≈ √L; every power an exact exp(l·dt·A), nothing accumulated)
    c = max(1, math.isqrt(L - 1) + 1) if L > 1 else 1
    k = -(-L // c)
    real = A.real.dtype
    low = torch.exp(dA[..., None] * torch.arange(c, device=A.device, dtype=real))  # (..., N, c)
    high = torch.exp(dA[..., None] * (c * torch.arange(k, device=A.device, dtype=real)))  # (..., N, k)
    blocks = torch.matmul((w[..., None] * high).transpose(-1, -2), low)  # (..., k, c)
    return 2 * blocks.reshape(*blocks.shape[:-2], k * c)[..., :L].real


def dplr_dense(Lambda: Tensor, P: Tensor, Q: Tensor) -> Tensor:
    """The dense matrix A = diag(Λ) − P Q* of a diagonal-plus-low-rank (rank 1) system (S4 §3.1)."""
    return torch.diag_embed(Lambda) - P[..., :, None] * Q.conj()[..., None, :]


def bilinear(A: Tensor, B: Tensor, dt: Tensor | float) -> tuple[Tensor, Tensor]:
    """Bilinear (Tustin) discretisation of a dense system (S4 Eq. 3):
    Ā = (I − dt/2·A)⁻¹(I + dt/2·A), B̄ = (I − dt/2·A)⁻¹·dt·B. A: (..., N, N), B: (..., N)."""
    dt = _dt(dt, A)[..., None, None]
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    left = eye - dt / 2 * A
    Abar = torch.linalg.solve(left, eye + dt / 2 * A)
    Bbar = torch.linalg.solve(left, (dt[..., 0] * B)[..., None])[..., 0]
    return Abar, Bbar


def dplr_kernel(Lambda: Tensor, P: Tensor, Q: Tensor, B: Tensor, C: Tensor, dt: Tensor | float, L: int) -> Tensor:
    """DPLR (S4) convolution kernel: K_l = 2·Re(Cᵀ Ā^l B̄), l < L, A = diag(Λ) − P Q* discretised bilinearly.

    All of Λ, P, Q, B, C complex (..., N) (the leading dims batch independent systems, e.g. channels); dt positive,
    broadcastable to (...,). Returns real (..., L).

    Method (S4 §3.3, Lemma C.3): the truncated generating function Σ_{l<L} Cᵀ Ā^l B̄ z^l equals
    C̃ᵀ (I − Ā z)⁻¹ B̄ at the roots of unity z_k = exp(−2πik/L), with C̃ = (I − Ā^L)ᵀ C. Writing
    (I − Ā z)⁻¹ B̄ = M(z)⁻¹·dt·B with M(z) = (1 − z) I − (dt/2)(1 + z) A = R(z)⁻¹ + u P Q*, where
    R(z) = diag(1 / ((1 − z) − u Λ)) is a Cauchy matrix and u = (dt/2)(1 + z), the Woodbury identity gives

        Â(z) = dt·(k_CB − u·k_CP·k_QB / (1 + u·k_QP)),   k_XY = Σ_n X_n Y_n R_n(z)   (X = C̃ or Q*),

    finite at every root including z = −1. The inverse FFT of Â(z_k) is the complex kernel a_l = Cᵀ Ā^l B̄; the
    conjugate half contributes conj(a_l), so K = 2·Re(a) (the full ifft, not an irfft of half the spectrum, which
    would drop one conjugate half and break convolution = recurrence).
    """
    if L < 1:
        raise ValueError(f"L must be >= 1, got {L}")
    Lambda, P, Q, B, C = torch.broadcast_tensors(Lambda, P, Q, B, C)
    dt = _dt(dt, Lambda)
    batch = Lambda.shape[:-1]
    dt_b = torch.broadcast_to(dt, batch)
    # C̃ = (I − Ā^L)ᵀ C, from the dense discrete matrix (N×N; repeated squaring, O(N³ log L))
    Abar, _ = bilinear(dplr_dense(Lambda, P, Q), B, dt_b)
    AL = torch.linalg.matrix_power(Abar, L)
    Ct = C - torch.einsum("...m,...mn->...n", C, AL)
    k = torch.arange(L, device=Lambda.device, dtype=Lambda.real.dtype)
    z = torch.exp(-2j * math.pi * k / L).to(Lambda.dtype)  # (L,)
    u = (dt_b[..., None] / 2) * (1 + z)  # (..., L)
    # the Cauchy matrix R_kn = 1 / ((1 − z_k) − u_k Λ_n) (..., L, N), in real arithmetic (complex elementwise
    # ops on CPU are several times slower): 1/d = conj(d)/|d|²
    a = (1 - z)[..., :, None]
    ur, ui = u.real[..., :, None], u.imag[..., :, None]
    lr, li = Lambda.real[..., None, :], Lambda.imag[..., None, :]
    dr = a.real - (ur * lr - ui * li)
    di = a.imag - (ur * li + ui * lr)
    inv = torch.reciprocal(dr * dr + di * di)
    Rr, Ri = dr * inv, di * inv  # R = Rr − i·Ri
    Qc = Q.conj()
    # the four Cauchy sums k_XY(z_k) = Σ_n X_n Y_n R_kn as one (..., L, N) @ (..., N, 4) product (in real parts)
    W = torch.stack([Ct * B, Ct * P, Qc * B, Qc * P], dim=-1)
    sums = torch.complex(Rr @ W.real + Ri @ W.imag, Rr @ W.imag - Ri @ W.real)
    k_cb, k_cp, k_qb, k_qp = sums.unbind(-1)
    spectrum = dt_b[..., None] * (k_cb - u * k_cp * k_qb / (1 + u * k_qp))
    return 2 * torch.fft.ifft(spectrum, n=L, dim=-1).real


def dense_kernel(Abar: Tensor, Bbar: Tensor, C: Tensor, L: int) -> Tensor:
    """The definition, step by step: K_l = 2·Re(Cᵀ Ā^l B̄) for l < L (S4 Eq. 4), O(L) sequential products.

    Abar: (..., N) (diagonal) or (..., N, N) (dense); Bbar, C: (..., N). The naive path the FFT kernels replace.
    """
    diagonal = Abar.dim() == Bbar.dim()
    v, out = Bbar, []
    for _ in range(L):
        out.append(2 * (C * v).sum(-1).real)
        v = Abar * v if diagonal else torch.einsum("...nm,...m->...n", Abar, v)
    return torch.stack(out, dim=-1)


# -- initialisations ---------------------------------------------------------------------------------------
def hippo_legs(N: int, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """HiPPO-LegS (S4 Eq. 2): A_nk = −√(2n+1)√(2k+1) (n > k), −(n+1) (n = k), 0 (n < k); B_n = √(2n+1)."""
    n = torch.arange(N, dtype=dtype)
    r = torch.sqrt(2 * n + 1)
    A = -torch.tril(r[:, None] * r[None, :], diagonal=-1) - torch.diag(n + 1)
    return A, r.clone()


def nplr_legs(N: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Normal-plus-low-rank form of HiPPO-LegS (S4 Theorem 1), diagonalised, half of each conjugate pair kept.

    A + P Pᵀ = −½I + S with P_n = √(n + ½) and S skew-symmetric, so S = V diag(iω) V* (V unitary) and
    A = V (diag(Λ) − P̃ P̃*) V* with Λ = −½ + iω, P̃ = V* P, B̃ = V* B. ``N`` (even) is the real state size;
    returns (Λ, P̃, B̃, V) for the N/2 eigenvalues with ω > 0, complex128.
    """
    if N < 2 or N % 2:
        raise ValueError(f"N must be an even number >= 2, got {N}")
    A, B = hippo_legs(N)
    P = torch.sqrt(torch.arange(N, dtype=torch.float64) + 0.5)
    S = A + P[:, None] * P[None, :] + 0.5 * torch.eye(N, dtype=torch.float64)
    omega, V = torch.linalg.eigh(-1j * S.to(torch.complex128))  # S = i·(−iS), −iS Hermitian
    keep = omega > 0
    V = V[:, keep]
    Lambda = -0.5 + 1j * omega[keep]
    Vh = V.conj().T
    return Lambda, Vh @ P.to(torch.complex128), Vh @ B.to(torch.complex128), V


def s4d_lin(N: int) -> Tensor:
    """S4D-Lin (S4D §4): A_n = −1/2 + iπn, n < N, complex128."""
    n = torch.arange(N, dtype=torch.float64)
    return torch.complex(torch.full_like(n, -0.5), math.pi * n)
