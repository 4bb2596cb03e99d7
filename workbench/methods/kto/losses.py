"""KTO and the human-aware losses it is compared with, as pure tensor functions.

Paper: Ethayarajh, Xu, Muennighoff, Jurafsky, Kiela, "KTO: Model Alignment as Prospect Theoretic
Optimization" (2024). Equation numbers below refer to that paper unless stated otherwise.

Every function takes *summed* completion log-probabilities (one number per example, shape ``(B,)``)
unless its docstring says otherwise, and returns one loss per example (or per pair); the batch loss
is the mean. ``log πθ(y|x) − log πref(y|x)`` is called the *log-ratio*; the implied reward is
``r(x, y) = β · log-ratio`` (the DPO implied reward, reused by KTO's Eq. 7).
"""
from __future__ import annotations

import warnings
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "kto_loss",
    "kto_z0_loss",
    "kto_reference_point",
    "dpo_loss",
    "cdpo_loss",
    "ipo_loss",
    "slic_loss",
    "sft_loss",
    "ppo_offline_loss",
    "mismatched_indices",
    "check_kto_weights",
    "ratio_rule_desirable_weight",
    "GOOD_TOKEN",
    "BAD_TOKEN",
    "csft_prompt",
    "implied_rewards",
]

GOOD_TOKEN = "<|good|>"
BAD_TOKEN = "<|bad|>"


def _check_beta(beta: float) -> None:
    if not beta > 0:
        raise ValueError(f"beta = {beta} must be > 0")


def _same_shape(**tensors: Tensor) -> None:
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"inputs must have the same shape, got {shapes}")


def implied_rewards(policy_logps: Tensor, reference_logps: Tensor, beta: float = 0.1) -> Tensor:
    """r(x, y) = β · (log πθ(y|x) − log πref(y|x)), detached (the implied reward of Eq. 7; for logging)."""
    return (beta * (policy_logps - reference_logps)).detach()


def mismatched_indices(batch_size: int) -> Tensor:
    """Completion index for each prompt in the mismatched batch used for KTO's reference point.

    Completions are rotated by one: prompt i is paired with completion i − 1 (mod m), i.e.
    (x₁, y_m), (x₂, y₁), …, (x_m, y_{m−1}) (the biased KL estimate that follows Eq. 8). A batch of one has no
    mismatched pair and is refused.
    """
    if batch_size < 2:
        raise ValueError(f"batch_size = {batch_size}: KTO needs at least 2 examples per batch to form mismatched pairs")
    return torch.roll(torch.arange(batch_size), shifts=1)


def kto_reference_point(kl_policy_logps: Tensor, kl_reference_logps: Tensor,
                        all_reduce_sum: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """KTO's reference point z₀ = max(0, mean_j[log πθ(y'_j|x_j) − log πref(y'_j|x_j)]) over the mismatched
    pairs, detached (Eq. 7-8): a 0-dim tensor.

    Under data parallelism each rank holds a shard of the global batch: ``all_reduce_sum`` (a sum over the ranks)
    turns this rank's (sum, count) into the global batch's, so every rank gets the global batch's z₀ (the paper's
    estimate), not its shard's.
    """
    if kl_policy_logps.shape != kl_reference_logps.shape:
        raise ValueError("kl_policy_logps and kl_reference_logps must have the same shape")
    diff = (kl_policy_logps - kl_reference_logps).detach()
    if all_reduce_sum is None:
        if diff.numel() == 0:
            raise ValueError("the mismatched batch for the KL estimate is empty")
        return diff.mean().clamp(min=0)
    total = all_reduce_sum(torch.stack([diff.sum().double(), diff.new_tensor(diff.numel(), dtype=torch.float64)]))
    if total[1] == 0:
        raise ValueError("the mismatched batch for the KL estimate is empty")
    return (total[0] / total[1]).to(diff.dtype).clamp(min=0)


def kto_loss(
    policy_logps: Tensor,
    reference_logps: Tensor,
    desirable: Tensor,
    kl_policy_logps: Tensor | None,
    kl_reference_logps: Tensor | None,
    beta: float = 0.1,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
    reference_point: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Kahneman-Tversky Optimization loss (Eq. 8), one value per example, and the reference point.

    r = log πθ(y|x) − log πref(y|x) (summed over completion tokens);
    z₀ = max(0, mean_j[log πθ(y'_j|x_j) − log πref(y'_j|x_j)]) over the mismatched pairs, detached (Eq. 7-8);
    v(x, y) = λ_D σ(β(r − z₀)) if desirable, λ_U σ(β(z₀ − r)) if undesirable;
    loss = λ_y − v(x, y), i.e. λ_D(1 − σ(β(r − z₀))) or λ_U(1 − σ(β(z₀ − r))).

    Returns ``(losses, kl)`` where ``losses`` has shape (B,) and ``kl`` is the clamped, detached z₀
    (a 0-dim tensor). With πθ = πref every loss equals 0.5·λ_y exactly. ``reference_point``: z₀ computed already
    (:func:`kto_reference_point`, e.g. over the global batch of several ranks); the kl inputs are then unused.
    """
    _check_beta(beta)
    _same_shape(policy_logps=policy_logps, reference_logps=reference_logps, desirable=desirable)
    if desirable_weight < 0 or undesirable_weight < 0:
        raise ValueError("desirable_weight and undesirable_weight must be >= 0")
    if reference_point is not None:
        kl = reference_point.detach()
    elif kl_policy_logps is None or kl_reference_logps is None:
        raise ValueError("kto_loss needs kl_policy_logps and kl_reference_logps, or reference_point")
    else:
        kl = kto_reference_point(kl_policy_logps, kl_reference_logps)
    logratio = policy_logps - reference_logps
    desirable = desirable.bool()
    losses = torch.where(
        desirable,
        desirable_weight * (1 - torch.sigmoid(beta * (logratio - kl))),
        undesirable_weight * (1 - torch.sigmoid(beta * (kl - logratio))),
    )
    return losses, kl


def kto_z0_loss(
    policy_logps: Tensor,
    reference_logps: Tensor,
    desirable: Tensor,
    beta: float = 0.1,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> Tensor:
    """KTO with the reference point fixed at z₀ = 0 (the paper's ablation without a reference point)."""
    zeros = torch.zeros(1, dtype=policy_logps.dtype, device=policy_logps.device)
    losses, _ = kto_loss(
        policy_logps, reference_logps, desirable, zeros, zeros, beta, desirable_weight, undesirable_weight
    )
    return losses


def _pair_logits(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    reference_chosen_logps: Tensor,
    reference_rejected_logps: Tensor,
) -> Tensor:
    _same_shape(
        policy_chosen_logps=policy_chosen_logps,
        policy_rejected_logps=policy_rejected_logps,
        reference_chosen_logps=reference_chosen_logps,
        reference_rejected_logps=reference_rejected_logps,
    )
    return (policy_chosen_logps - reference_chosen_logps) - (policy_rejected_logps - reference_rejected_logps)


def dpo_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    reference_chosen_logps: Tensor,
    reference_rejected_logps: Tensor,
    beta: float = 0.1,
) -> Tensor:
    """Direct Preference Optimization (Rafailov et al. 2023, Eq. 7).

    loss = −log σ(β[(log πθ(y_w|x) − log πref(y_w|x)) − (log πθ(y_l|x) − log πref(y_l|x))]).
    """
    _check_beta(beta)
    h = _pair_logits(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps)
    return -F.logsigmoid(beta * h)


def cdpo_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    reference_chosen_logps: Tensor,
    reference_rejected_logps: Tensor,
    beta: float = 0.1,
    label_smoothing: float = 0.1,
) -> Tensor:
    """Conservative DPO: DPO with label smoothing ε (the preference is assumed flipped with prob. ε).

    loss = −(1 − ε) log σ(βh) − ε log σ(−βh), h the DPO log-ratio difference.
    """
    _check_beta(beta)
    if not 0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing = {label_smoothing} must be in [0, 0.5)")
    h = _pair_logits(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps)
    return -(1 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)


def ipo_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    reference_chosen_logps: Tensor,
    reference_rejected_logps: Tensor,
    beta: float = 0.1,
) -> Tensor:
    """Identity Preference Optimization (Azar et al. 2023, Eq. 17), with τ = β.

    loss = (h − 1/(2τ))², h the DPO log-ratio difference: regresses the margin to a fixed target
    instead of pushing it to infinity.
    """
    _check_beta(beta)
    h = _pair_logits(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps)
    return (h - 1 / (2 * beta)) ** 2


def slic_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    margin: float = 1.0,
    nll_weight: float = 0.1,
    chosen_lengths: Tensor | None = None,
) -> Tensor:
    """Sequence Likelihood Calibration (SLiC-HF, Zhao et al. 2023: calibration hinge plus the SFT regulariser).

    loss = max(0, δ − log πθ(y_w|x) + log πθ(y_l|x)) − λ · log πθ(y_w|x) / |y_w|,
    a hinge on the likelihood margin plus a negative log-likelihood term on the chosen completion
    (per token when ``chosen_lengths`` is given). No reference model.
    """
    _same_shape(policy_chosen_logps=policy_chosen_logps, policy_rejected_logps=policy_rejected_logps)
    if margin < 0 or nll_weight < 0:
        raise ValueError("margin and nll_weight must be >= 0")
    hinge = torch.clamp(margin - policy_chosen_logps + policy_rejected_logps, min=0)
    nll = -policy_chosen_logps
    if chosen_lengths is not None:
        nll = nll / chosen_lengths.clamp(min=1)
    return hinge + nll_weight * nll


def sft_loss(policy_logps: Tensor, lengths: Tensor | None = None) -> Tensor:
    """Supervised fine-tuning: −log πθ(y|x), per token when ``lengths`` is given.

    Used on the desirable examples only (the "SFT" baseline) and, on prompts prefixed with a
    control token, as CSFT (see :func:`csft_prompt`).
    """
    nll = -policy_logps
    if lengths is not None:
        _same_shape(policy_logps=policy_logps, lengths=lengths)
        nll = nll / lengths.clamp(min=1)
    return nll


def csft_prompt(prompt: str, desirable: bool) -> str:
    """Conditional SFT (Korbak et al. 2023): prefix the prompt with a control token.

    Train with ``<|good|>``/``<|bad|>`` according to the label; generate with ``<|good|>``.
    """
    token = GOOD_TOKEN if desirable else BAD_TOKEN
    return f"{token} {prompt}" if prompt else token


def ppo_offline_loss(
    policy_token_logps: Tensor,
    reference_token_logps: Tensor,
    values: Tensor,
    rewards: Tensor,
    mask: Tensor,
    clip: float = 0.2,
    value_weight: float = 0.5,
    gamma: float = 1.0,
) -> Tensor:
    """Offline PPO with dummy ±1 rewards (the "PPO (offline)" baseline of the KTO paper).

    The completions were sampled from πref, so the importance ratio is taken against the frozen
    reference: ρ_t = πθ(y_t|·)/πref(y_t|·). The sequence reward R ∈ {+1, −1} arrives at the last
    token; the return at token t is G_t = γ^(T−1−t)·R, the advantage A_t = G_t − V_t (V detached).
    Per token (Schulman et al. 2017, Eq. 7, plus the value regression):

        ℓ_t = −min(ρ_t A_t, clip(ρ_t, 1 − ε, 1 + ε) A_t) + c_V · ½ (V_t − G_t)²

    and the loss of a sequence is the mean of ℓ_t over its completion tokens (``mask``).
    Inputs are (B, T); ``rewards`` is (B,).
    """
    _same_shape(
        policy_token_logps=policy_token_logps, reference_token_logps=reference_token_logps, values=values, mask=mask
    )
    if not 0 < clip < 1:
        raise ValueError(f"clip = {clip} must be in (0, 1)")
    if not 0 < gamma <= 1:
        raise ValueError(f"gamma = {gamma} must be in (0, 1]")
    mask = mask.to(policy_token_logps.dtype)
    lengths = mask.sum(-1)
    # position counted back from the last completion token: T-1-t for valid tokens
    steps_to_end = (lengths[:, None] - 1 - (mask.cumsum(-1) - 1)).clamp(min=0)
    returns = rewards[:, None].to(values.dtype) * gamma**steps_to_end
    advantages = (returns - values).detach()
    ratio = torch.exp(policy_token_logps - reference_token_logps)
    surrogate = torch.minimum(ratio * advantages, torch.clamp(ratio, 1 - clip, 1 + clip) * advantages)
    per_token = -surrogate + value_weight * 0.5 * (values - returns) ** 2
    return (per_token * mask).sum(-1) / lengths.clamp(min=1)


def ratio_rule_desirable_weight(n_desirable: int, n_undesirable: int, undesirable_weight: float = 1.0,
                                target: float = 1.0) -> float:
    """λ_D such that λ_D·n_D / (λ_U·n_U) = ``target`` (the paper recommends the range [1, 4/3])."""
    if n_desirable <= 0:
        raise ValueError(f"n_desirable = {n_desirable} must be > 0")
    return target * undesirable_weight * n_undesirable / n_desirable


def check_kto_weights(n_desirable: int, n_undesirable: int, desirable_weight: float = 1.0,
                      undesirable_weight: float = 1.0) -> float:
    """Return λ_D·n_D / (λ_U·n_U) and warn when it falls outside [1, 4/3].

    The paper recommends weighting the two classes so that this ratio lies in [1, 4/3].
    """
    if n_desirable < 0 or n_undesirable < 0:
        raise ValueError("counts must be >= 0")
    denominator = undesirable_weight * n_undesirable
    ratio = float("inf") if denominator == 0 else desirable_weight * n_desirable / denominator
    if not 1.0 <= ratio <= 4.0 / 3.0:
        warnings.warn(
            f"KTO weights: λ_D·n_D / (λ_U·n_U) = {desirable_weight}·{n_desirable} / "
            f"({undesirable_weight}·{n_undesirable})"
            f" = {ratio:.3g} is outside the recommended range [1, 4/3]; set desirable_weight ≈ "
            f"{undesirable_weight * n_undesirable / max(n_desirable, 1):.3g}",
            stacklevel=2,
        )
    return ratio
