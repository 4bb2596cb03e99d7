"""The ELBO of a sequential latent-variable model, as pure tensor functions (LS4 §3, the evidence lower bound).

For p(x, z) = Π_t p(x_t | x_<t, z_≤t) p(z_t | z_<t) and q(z | x) = Π_t q(z_t | x_≤t) (LS4 §3: generative model,
prior and inference network), one posterior sample z ~ q gives the estimate

    −ELBO = Σ_t [ −log p(x_t | x_<t, z_≤t) ] + Σ_t KL( q(z_t | x_≤t) ‖ p(z_t | z_<t) ),

the KL of two diagonal Gaussians in closed form. Observation masks remove missing values from the first sum (the
data term of LS4 §3 on irregular / missing data); time masks remove padded steps from both.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

LOG_2PI = math.log(2 * math.pi)


def gaussian_kl(mu_q: Tensor, std_q: Tensor, mu_p: Tensor, std_p: Tensor) -> Tensor:
    """Elementwise KL(N(μ_q, σ_q²) ‖ N(μ_p, σ_p²)) = log(σ_p/σ_q) + (σ_q² + (μ_q − μ_p)²)/(2σ_p²) − ½
    (the analytic Gaussian KL of the ELBO's latent term)."""
    return torch.log(std_p / std_q) + (std_q ** 2 + (mu_q - mu_p) ** 2) / (2 * std_p ** 2) - 0.5


def gaussian_nll(x: Tensor, mu: Tensor, std: Tensor | float) -> Tensor:
    """Elementwise −log N(x; μ, σ²) = ½ log 2π + log σ + (x − μ)²/(2σ²)."""
    std = torch.as_tensor(std, dtype=mu.dtype, device=mu.device)
    return 0.5 * LOG_2PI + torch.log(std) + (x - mu) ** 2 / (2 * std ** 2)


def masked_sum(values: Tensor, mask: Tensor | None) -> Tensor:
    """Σ values·mask over every axis but the first (the batch): (B,). ``where`` (not a product) so a NaN under
    the mask cannot leak into the sum."""
    if mask is not None:
        values = torch.where(mask.bool(), values, torch.zeros((), dtype=values.dtype, device=values.device))
    return values.reshape(values.shape[0], -1).sum(-1)


def elbo_terms(x: Tensor, x_mean: Tensor, sigma: Tensor | float, mu_q: Tensor, std_q: Tensor, mu_p: Tensor,
               std_p: Tensor, obs_mask: Tensor | None = None, time_mask: Tensor | None = None) -> dict[str, Tensor]:
    """The pieces of the negative ELBO of a batch.

    x, x_mean: (B, L, C); mu/std: (B, L, Z); obs_mask: (B, L, C) (1 = observed); time_mask: (B, L) (1 = a real
    step, 0 = padding). Returns per-series sums ``nll`` and ``kl`` (B,), the counts ``observed`` (B,) and ``steps``
    (B,), and ``neg_elbo_per_step`` = Σ_b (nll + kl) / Σ_b steps (a scalar: the full negative ELBO per time step).
    """
    B, L = x.shape[:2]
    tm = torch.ones(B, L, dtype=torch.bool, device=x.device) if time_mask is None else time_mask.bool()
    om = tm[..., None].expand_as(x) if obs_mask is None else obs_mask.bool() & tm[..., None]
    nll = masked_sum(gaussian_nll(x, x_mean, sigma), om)
    kl = masked_sum(gaussian_kl(mu_q, std_q, mu_p, std_p), tm[..., None].expand_as(mu_q))
    steps = tm.sum(-1).to(x.dtype)
    return {"nll": nll, "kl": kl, "observed": om.sum((1, 2)).to(x.dtype), "steps": steps,
            "neg_elbo_per_step": (nll + kl).sum() / steps.sum().clamp_min(1)}


def training_loss(terms: dict[str, Tensor], objective: str = "elbo", z_dim: int = 1, kl_weight: float = 1.0,
                  totals: dict[str, Tensor] | None = None) -> Tensor:
    """The loss minimised: ``elbo`` = (Σ nll + β Σ kl) / Σ steps (the negative ELBO per step for β = 1);
    ``reweighted`` = Σ nll / Σ observed + β Σ kl / (Σ steps · z_dim), each term averaged over its own elements
    (the per-element form of the LS4 reference training code). ``totals`` (data parallelism: the global batch's
    ``steps`` and ``observed``) replace the denominators, so the result is this rank's share of the global loss
    (the ranks' shares sum to it)."""
    den = terms if totals is None else totals
    nll, kl = terms["nll"].sum(), terms["kl"].sum()

    def total(key: str, scale: int = 1) -> Tensor:
        return (den[key].sum() * scale).to(nll.dtype).clamp_min(1)

    if objective == "elbo":
        return (nll + kl_weight * kl) / total("steps")
    if objective == "reweighted":
        return nll / total("observed") + kl_weight * kl / total("steps", z_dim)
    raise ValueError(f"objective must be 'elbo' or 'reweighted', got {objective!r}")


# -- masks ----------------------------------------------------------------------------------------------------
def random_mask(shape: tuple[int, ...], rate: float, generator: torch.Generator | None = None) -> Tensor:
    """A boolean mask with each entry missing (False) with probability ``rate`` (irregular sampling)."""
    return torch.rand(shape, generator=generator) >= rate


def span_mask(shape: tuple[int, ...], span: int, generator: torch.Generator | None = None) -> Tensor:
    """(B, L, C) boolean, True except one random contiguous span of ``span`` steps per series (all channels)
    that lies strictly inside the series (interpolation: something observed on both sides)."""
    B, L = shape[0], shape[1]
    span = max(1, min(span, L - 2))
    start = torch.randint(1, max(2, L - span), (B,), generator=generator)
    t = torch.arange(L)
    hidden = (t[None] >= start[:, None]) & (t[None] < start[:, None] + span)
    return (~hidden)[..., None].expand(shape).clone()


def prefix_mask(shape: tuple[int, ...], prefix: int) -> Tensor:
    """(B, L, C) boolean: True on the first ``prefix`` steps (the observed part in extrapolation)."""
    m = torch.zeros(shape, dtype=torch.bool)
    m[:, :prefix] = True
    return m
