"""S4D and DPLR kernels against their dense definitions in float64; HiPPO-LegS and its NPLR form."""
import cmath

import numpy as np
import pytest
import torch

from workbench.methods.ls4.kernels import (bilinear, dense_kernel, dplr_dense, dplr_kernel, hippo_legs, nplr_legs, s4d_kernel,
                                   s4d_lin, zoh)

TOL = 1e-9


def _c(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(*shape, generator=g, dtype=torch.float64),
                         torch.randn(*shape, generator=g, dtype=torch.float64))


def _stable(*shape, seed=0):
    g = torch.Generator().manual_seed(seed + 100)
    re = -(0.05 + torch.rand(*shape, generator=g, dtype=torch.float64))
    return torch.complex(re, 3 * torch.randn(*shape, generator=g, dtype=torch.float64))


@pytest.mark.parametrize("L", [1, 2, 9, 32])
def test_s4d_kernel_equals_its_definition_elementwise(L):
    """K_l = 2·Re(Σ_n C_n B̄_n Ā_n^l), Ā = exp(dt·A), B̄ = (exp(dt·A) − 1)/A · B, written out with cmath."""
    H, N = 3, 5
    A, B, C = _stable(H, N), _c(H, N, seed=1), _c(H, N, seed=2)
    dt = torch.tensor([0.01, 0.1, 0.7], dtype=torch.float64)
    K = s4d_kernel(A, B, C, dt, L)
    assert K.shape == (H, L) and K.dtype == torch.float64
    for h in range(H):
        for l in range(L):
            total = 0j
            for n in range(N):
                a, b, c, d = complex(A[h, n]), complex(B[h, n]), complex(C[h, n]), float(dt[h])
                total += c * (cmath.exp(d * a) - 1) / a * b * cmath.exp(d * a) ** l
            assert abs(K[h, l].item() - 2 * total.real) < TOL


def test_s4d_kernel_broadcasts_a_float_dt_and_batch_dims():
    A, B, C = _stable(2, 3, 4), _c(2, 3, 4, seed=1), _c(2, 3, 4, seed=2)
    K = s4d_kernel(A, B, C, 0.05, 11)
    Abar, Bbar = zoh(A, B, 0.05)
    assert K.shape == (2, 3, 11)
    assert torch.allclose(K, dense_kernel(Abar, Bbar, C, 11), atol=TOL, rtol=0)


def _dense_dplr(Lam, P, Q, B, C, dt, L):
    """The definition with numpy: A = diag(Λ) − P Q*, bilinear Ā, B̄, K_l = 2·Re(Cᵀ Ā^l B̄)."""
    Lam, P, Q, B, C = (x.numpy() for x in (Lam, P, Q, B, C))
    N = len(Lam)
    A = np.diag(Lam) - np.outer(P, Q.conj())
    left = np.linalg.inv(np.eye(N) - dt / 2 * A)
    Abar, Bbar = left @ (np.eye(N) + dt / 2 * A), left @ (dt * B)
    return np.array([2 * (C @ np.linalg.matrix_power(Abar, l) @ Bbar).real for l in range(L)])


@pytest.mark.parametrize("L", [1, 2, 7, 16, 33, 64])
def test_dplr_kernel_equals_the_dense_definition(L):
    N = 6
    for seed, dt in ((0, 0.1), (1, 0.01), (2, 1.3)):
        Lam, P, Q = _stable(N, seed=seed), _c(N, seed=seed + 1), _c(N, seed=seed + 2)
        B, C = _c(N, seed=seed + 3), _c(N, seed=seed + 4)
        K = dplr_kernel(Lam, P, Q, B, C, dt, L)
        ref = _dense_dplr(Lam, P, Q, B, C, dt, L)
        assert K.shape == (L,)
        assert np.max(np.abs(K.numpy() - ref)) < TOL * max(1.0, np.max(np.abs(ref)))


def test_dplr_kernel_batches_channels_with_their_own_dt():
    H, N, L = 3, 4, 20
    Lam, P, Q, B, C = _stable(H, N), _c(H, N, seed=1), _c(H, N, seed=2), _c(H, N, seed=3), _c(H, N, seed=4)
    dt = torch.tensor([0.02, 0.2, 0.5], dtype=torch.float64)
    K = dplr_kernel(Lam, P, Q, B, C, dt, L)
    for h in range(H):
        ref = _dense_dplr(Lam[h], P[h], Q[h], B[h], C[h], float(dt[h]), L)
        assert np.max(np.abs(K[h].numpy() - ref)) < TOL * max(1.0, np.max(np.abs(ref)))


def test_both_conjugate_halves_are_summed():
    """The N-state complex kernel with 2·Re equals the kernel of the real 2N-state system that holds both halves
    (block-diagonal A and its conjugate): nothing of the conjugate half is dropped."""
    N, L, dt = 4, 25, 0.3
    Lam, P, Q, B, C = _stable(N), _c(N, seed=1), _c(N, seed=2), _c(N, seed=3), _c(N, seed=4)
    A = dplr_dense(Lam, P, Q)
    A2 = torch.block_diag(A, A.conj())
    Abar2, Bbar2 = bilinear(A2, torch.cat([B, B.conj()]), dt)
    C2 = torch.cat([C, C.conj()])
    full = torch.stack([(C2 @ torch.linalg.matrix_power(Abar2, l) @ Bbar2) for l in range(L)])
    assert full.imag.abs().max() < TOL
    K = dplr_kernel(Lam, P, Q, B, C, dt, L)
    assert torch.allclose(K, full.real, atol=TOL, rtol=0)
    # treating the one-half spectrum as Hermitian (an irfft of 2·FFT(a), a_l = Cᵀ Ā^l B̄) drops the conjugate half
    Abar, Bbar = bilinear(A, B, dt)
    a = torch.stack([C @ torch.linalg.matrix_power(Abar, l) @ Bbar for l in range(L)])
    dropped = torch.fft.irfft(2 * torch.fft.fft(a)[: L // 2 + 1], n=L)
    assert (dropped - K).abs().max() > 1e-2


def test_dense_kernel_diagonal_and_dense_agree():
    A, B, C = _stable(5), _c(5, seed=1), _c(5, seed=2)
    Abar, Bbar = zoh(A, B, 0.1)
    assert torch.allclose(dense_kernel(Abar, Bbar, C, 12), dense_kernel(torch.diag(Abar), Bbar, C, 12), atol=TOL)


def test_hippo_legs_and_its_normal_plus_low_rank_form():
    N = 8
    A, B = hippo_legs(N)
    assert A[3, 1] == -np.sqrt(7 * 3) and A[2, 2] == -3 and A[1, 3] == 0 and B[4] == 3.0
    Lam, Pt, Bt, V = nplr_legs(N)
    assert Lam.shape == (N // 2,) and torch.allclose(Lam.real, torch.full((N // 2,), -0.5, dtype=torch.float64))
    assert bool((Lam.imag > 0).all())
    # A = −½I + S − P Pᵀ with S = V diag(iω) V* + its conjugate (the dropped half of each pair)
    S = V @ torch.diag(1j * Lam.imag) @ V.conj().T
    P = torch.sqrt(torch.arange(N, dtype=torch.float64) + 0.5)
    rebuilt = -0.5 * torch.eye(N, dtype=torch.float64) + 2 * S.real - torch.outer(P, P)
    assert torch.allclose(rebuilt, A, atol=1e-10)
    assert torch.allclose(V.conj().T @ P.to(torch.complex128), Pt) and torch.allclose(V.conj().T @ B.to(V.dtype), Bt)


def test_s4d_lin_and_bad_arguments():
    A = s4d_lin(4)
    assert torch.allclose(A, torch.tensor([-0.5 + 0j, -0.5 + np.pi * 1j, -0.5 + 2j * np.pi, -0.5 + 3j * np.pi],
                                          dtype=torch.complex128))
    with pytest.raises(ValueError, match="dt"):
        s4d_kernel(A, A, A, -1.0, 4)
    with pytest.raises(ValueError, match="L"):
        dplr_kernel(A, A, A, A, A, 0.1, 0)
    with pytest.raises(ValueError, match="even"):
        nplr_legs(5)
