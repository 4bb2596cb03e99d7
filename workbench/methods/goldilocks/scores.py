"""Per-point selection scores as pure tensor functions.

Paper: Mindermann et al., "Prioritized Training on Points that are Learnable, Worth Learning, and Not Yet
Learnt" (ICML 2022; workshop version "Goldilocks Selection"). Equation numbers refer to the ICML version.

All functions take logits (or per-point losses) of a candidate batch of n_B points and return one score per
point; *higher means selected first*. Nothing here touches a model: the selectors in :mod:`.selection`
compute logits once and pass them in.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _check_k(k: int, n: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool):
        raise ValueError(f"parameter 'k' must be an int, got {type(k).__name__}")
    if not 0 <= k <= n:
        raise ValueError(f"parameter 'k' = {k} is out of range; allowed range [0, {n}] (the candidate batch size)")


def per_point_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy L[y | x] of each point (no reduction), computed in float32."""
    return F.cross_entropy(logits.float(), y, reduction="none")


def reducible_loss(train_loss: Tensor, irreducible_loss: Tensor) -> Tensor:
    """RHO-LOSS score, Eq. (3): L[y|x; D_t] − L[y|x; D_ho].

    The training loss of the current model minus the *irreducible* loss, i.e. the loss of a model trained
    on the holdout set D_ho. High when a point is not yet learnt (high training loss) but learnable and
    worth learning (low irreducible loss); noisy labels have a high irreducible loss and a low score.
    """
    if train_loss.shape != irreducible_loss.shape:
        raise ValueError(
            f"train_loss {tuple(train_loss.shape)} and irreducible_loss {tuple(irreducible_loss.shape)} must have one shape"
        )
    return train_loss.float() - irreducible_loss.float()


def top_k_positions(scores: Tensor, k: int, check_nan: bool | None = None) -> Tensor:
    """Positions of the k highest scores, highest first.

    Ties are resolved deterministically: among equal scores the earlier position comes first (stable sort).
    NaN scores are refused (they would make the order depend on the sort implementation). ``check_nan``
    (default: on for CPU tensors) can be turned off on an accelerator, where the check is a host round trip per
    step; a NaN score there comes from a NaN loss, which the run refuses when it logs the loss.
    """
    if scores.dim() != 1:
        raise ValueError(f"scores must be 1-D, got shape {tuple(scores.shape)}")
    _check_k(k, scores.numel())
    if (scores.device.type == "cpu" if check_nan is None else check_nan) and torch.isnan(scores).any():
        raise ValueError("scores contain NaN; cannot rank candidate points")
    order = torch.sort(scores.float(), descending=True, stable=True).indices
    return order[:k]


def reducible_loss_select(train_loss: Tensor, irreducible_loss: Tensor, k: int) -> Tensor:
    """Indices (positions in the candidate batch) of the k points with the highest reducible loss.

    Implements the selection rule of Algorithm 1 / Eq. (3): b_t = top-n_b of {L[y|x; D_t] − L[y|x; D_ho]}
    over the n_B candidates. Ordered by score (highest first); ties go to the lower position.
    """
    return top_k_positions(reducible_loss(train_loss, irreducible_loss), k)


def grad_norm_bound(logits: Tensor, y: Tensor) -> Tensor:
    """Upper bound on the per-point gradient norm: ‖softmax(z) − onehot(y)‖₂.

    The gradient of the cross-entropy with respect to the logits (Katharopoulos & Fleuret 2018, the
    "gradient norm" baseline of the paper's Section 4); it bounds the parameter-gradient norm up to a
    factor that does not depend on the point's label.
    """
    probs = logits.float().softmax(-1)
    onehot = F.one_hot(y, probs.shape[-1]).float()
    return (probs - onehot).norm(dim=-1)


def entropy(probs: Tensor) -> Tensor:
    """Shannon entropy H[p] = −Σ_c p_c log p_c along the last axis (nats), with 0·log 0 = 0."""
    p = probs.float()
    return -(p * torch.where(p > 0, p.log(), torch.zeros_like(p))).sum(-1)


def predictive_entropy(mc_probs: Tensor) -> Tensor:
    """Entropy of the MC-averaged predictive distribution, H[(1/T) Σ_t p_t(y|x)].

    ``mc_probs`` has shape (T, n, C): T stochastic forward passes (MC dropout).
    """
    return entropy(mc_probs.float().mean(0))


def bald(mc_probs: Tensor) -> Tensor:
    """BALD mutual information I[y; θ | x] = H[E_θ p(y|x,θ)] − E_θ H[p(y|x,θ)] (Houlsby et al. 2011).

    Estimated with T MC-dropout samples, ``mc_probs`` of shape (T, n, C). Non-negative up to rounding
    (Jensen's inequality); zero when all samples agree.
    """
    return predictive_entropy(mc_probs) - entropy(mc_probs.float()).mean(0)


def gumbel_top_k(scores: Tensor, k: int, temperature: float, generator: torch.Generator | None = None) -> Tensor:
    """Sample k positions without replacement with probabilities ∝ exp(score / temperature).

    The Gumbel-top-k trick (Kool et al. 2019): perturb score/τ with i.i.d. Gumbel(0, 1) noise and keep the top
    k; the first pick has probability softmax(score/τ), each later pick the softmax over the remaining ones.
    τ → 0 recovers deterministic top-k; τ → ∞ uniform sampling. This is the paper's "Boltzmann" variant of
    RHO-LOSS selection (stochastic selection to keep diversity).
    """
    if not (isinstance(temperature, (int, float)) and temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"parameter 'temperature' = {temperature!r} must be a finite number > 0")
    if scores.dim() != 1:
        raise ValueError(f"scores must be 1-D, got shape {tuple(scores.shape)}")
    _check_k(k, scores.numel())
    u = torch.rand(scores.shape, generator=generator, dtype=torch.float64, device="cpu")
    u = u.clamp_(min=1e-12, max=1.0 - 1e-12)
    gumbel = -torch.log(-torch.log(u)).to(scores.device)
    return top_k_positions(scores.double() / temperature + gumbel, k)
