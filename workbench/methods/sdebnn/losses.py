"""The SDE-BNN objective and predictive distribution as pure tensor functions (Xu et al. 2022).

The evidence lower bound of a data set of N points, divided by N (label ours):

    (ELBO)  ELBO / N = E_q [ (1/N) Σ_i log p(y_i | x_i, w) ] − (1/N) · KL(q ‖ p),

with the path KL of ``sde.py`` (plus the KL of w(0) when it is Gaussian). The loss minimised is
NLL + kl_coeff · KL with kl_coeff = 1/N by default. Test-time predictions average S sampled weight paths:
p(y | x) ≈ (1/S) Σ_s p(y | x, w^(s)).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_kl(mu: torch.Tensor, std: torch.Tensor, prior_std: float) -> torch.Tensor:
    """KL(N(μ, diag s²) ‖ N(0, p² I)) = Σ log(p/s) + (s² + μ²)/(2p²) − ½ with p = prior_std (Gaussian w(0) and
    Bayes-by-backprop)."""
    var_ratio = (std / prior_std).pow(2)
    return 0.5 * (var_ratio + (mu / prior_std).pow(2) - 1.0 - var_ratio.log()).sum()


def classification_nll(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the S sampled paths and the batch: −E_q log p(y | x, w), logits (S, B, K)."""
    s, b, k = logits.shape
    return F.cross_entropy(logits.reshape(s * b, k), y.repeat(s))


def gaussian_nll(pred: torch.Tensor, y: torch.Tensor, noise_std: float) -> torch.Tensor:
    """Mean −log N(y; f(x, w), noise_std²) over paths and batch; pred (S, B, 1), y (B,) or (B, 1)."""
    y = y.reshape(1, -1, 1)
    return (0.5 * ((pred - y) / noise_std).pow(2) + math.log(noise_std) + 0.5 * math.log(2 * math.pi)).mean()


def elbo_loss(nll: torch.Tensor, kl: torch.Tensor, kl_coeff: float) -> torch.Tensor:
    """−(ELBO)/N = NLL + kl_coeff · E_q KL, kl of shape (S,) (one value per sampled path)."""
    return nll + kl_coeff * kl.mean()


def predictive_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """log (1/S) Σ_s softmax(logits_s): the Monte Carlo predictive p(y | x) ≈ (1/S) Σ_s p(y | x, w^(s)).

    logits (S, B, K) -> log-probabilities (B, K)."""
    return torch.logsumexp(F.log_softmax(logits, -1), 0) - math.log(logits.shape[0])


def predictive_moments(pred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation over the S sampled paths of a regression output (S, B, 1) -> (B,), (B,)."""
    pred = pred.squeeze(-1)
    std = pred.std(0, unbiased=False) if pred.shape[0] > 1 else torch.zeros_like(pred[0])
    return pred.mean(0), std
