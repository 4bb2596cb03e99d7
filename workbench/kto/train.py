"""One optimisation step of every alignment method on tokenised feedback, and the sampled evaluation.

Each ``*_step`` returns the batch loss (mean over examples) and the metrics TRL logs under the same
names: ``loss``, ``kl`` (KTO only), ``rewards/chosen``, ``rewards/rejected``, ``rewards/margins``,
``logps/chosen``, ``logps/rejected`` (chosen = desirable for unpaired methods). Rewards are the
implied rewards β·log πθ/πref, also for methods whose loss does not use a reference.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from workbench.kto import losses as L
from workbench.lm.core import CausalLM, LogProbs
from workbench.params import Param, ParamGroup

#: every method, in the order the comparison runs them
METHODS = ("kto", "dpo", "cdpo", "ipo", "slic", "csft", "ppo_offline", "sft", "kto_z0")
PAIRED_METHODS = frozenset({"dpo", "cdpo", "ipo", "slic"})
KTO_METHODS = frozenset({"kto", "kto_z0"})


class LossParams(ParamGroup):
    """Hyper-parameters of the losses (see :mod:`workbench.kto.losses`), declared once: ``KTOConfig`` composes
    them, and ``LossParams.bind(cfg, desirable_weight=...)`` gives one method's values."""

    title = "losses"
    beta: float = Param(0.1, bounds=(1e-3, 10.0), log=True, doc="β: scale of the implied reward β·log πθ/πref")
    desirable_weight: float = Param(1.0, bounds=(0.0, 100.0), soft=(0.0, 10.0), step=0.1,
                                    doc="λ_D: weight of desirable examples (KTO)")
    undesirable_weight: float = Param(1.0, bounds=(0.0, 100.0), soft=(0.0, 10.0), step=0.1,
                                      doc="λ_U: weight of undesirable examples (KTO)")
    label_smoothing: float = Param(0.1, bounds=(0.0, 0.49), step=0.01, doc="ε of conservative DPO")
    slic_margin: float = Param(1.0, bounds=(0.0, 100.0), soft=(0.0, 10.0), doc="δ: SLiC hinge margin (nats)")
    slic_nll_weight: float = Param(0.1, bounds=(0.0, 100.0), soft=(0.0, 2.0), doc="λ: SLiC's NLL regulariser weight")
    ppo_clip: float = Param(0.2, bounds=(0.01, 0.99), step=0.01, doc="ε: PPO ratio clipping")
    ppo_value_weight: float = Param(0.5, bounds=(0.0, 10.0), step=0.05, doc="weight of offline PPO's value loss")


@dataclass
class Unpaired:
    """Tokenised (prompt, completion + eos, label) rows; ``csft_prompt_ids`` carry the control token."""

    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    desirable: Tensor
    csft_prompt_ids: list[list[int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.prompt_ids)


@dataclass
class Paired:
    prompt_ids: list[list[int]]
    chosen_ids: list[list[int]]
    rejected_ids: list[list[int]]

    def __len__(self) -> int:
        return len(self.prompt_ids)


def tokenise_unpaired(lm: CausalLM, prompts: Sequence[str], completions: Sequence[str],
                      labels: Sequence[bool]) -> Unpaired:
    return Unpaired(
        [lm.encode_prompt(p) for p in prompts],
        [lm.encode(c) + [lm.eos_id] for c in completions],
        torch.tensor([bool(x) for x in labels], dtype=torch.bool),
        [lm.encode_prompt(L.csft_prompt(p, bool(x))) for p, x in zip(prompts, labels)],
    )


def tokenise_paired(lm: CausalLM, prompts: Sequence[str], chosen: Sequence[str], rejected: Sequence[str]) -> Paired:
    return Paired([lm.encode_prompt(p) for p in prompts], [lm.encode(c) + [lm.eos_id] for c in chosen],
                  [lm.encode(r) + [lm.eos_id] for r in rejected])


def _take(rows: list[list[int]], idx: Sequence[int]) -> list[list[int]]:
    return [rows[i] for i in idx]


def _forward(policy: CausalLM, reference: CausalLM, prompts: list[list[int]], completions: list[list[int]],
             hidden: bool = False) -> tuple[LogProbs, LogProbs]:
    batch = policy.collate(prompts, completions)
    pol = policy.batch_logps(batch, return_hidden=hidden)
    with torch.no_grad():
        ref = reference.batch_logps(batch)
    return pol, ref


def _reward_metrics(pol_c: Tensor, ref_c: Tensor, pol_r: Tensor, ref_r: Tensor, beta: float) -> dict[str, float]:
    out: dict[str, float] = {}
    if pol_c.numel():
        out["rewards/chosen"] = float(beta * (pol_c - ref_c).detach().mean())
        out["logps/chosen"] = float(pol_c.detach().mean())
    if pol_r.numel():
        out["rewards/rejected"] = float(beta * (pol_r - ref_r).detach().mean())
        out["logps/rejected"] = float(pol_r.detach().mean())
    if pol_c.numel() and pol_r.numel():
        out["rewards/margins"] = out["rewards/chosen"] - out["rewards/rejected"]
    return out


def _unpaired_metrics(pol: Tensor, ref: Tensor, desirable: Tensor, beta: float) -> dict[str, float]:
    d = desirable.to(pol.device)
    return _reward_metrics(pol[d], ref[d], pol[~d], ref[~d], beta)


StepResult = tuple[Tensor, dict[str, float], Tensor]


def kto_step(policy: CausalLM, reference: CausalLM, data: Unpaired, idx: Sequence[int], s: LossParams) -> StepResult:
    """KTO (Eq. 8) with the reference point estimated on the batch's mismatched pairs."""
    idx = list(idx)
    n = len(idx)
    mis = L.mismatched_indices(n).tolist()
    prompts, completions = _take(data.prompt_ids, idx), _take(data.completion_ids, idx)
    pol, ref = _forward(policy, reference, prompts, completions)
    with torch.no_grad():  # z0 is detached: no graph (and no backward) through the mismatched pairs
        kl_pol, kl_ref = _forward(policy, reference, prompts, [completions[j] for j in mis])
    d = data.desirable[idx].to(pol.logps.device)
    losses, kl = L.kto_loss(pol.logps, ref.logps, d, kl_pol.logps, kl_ref.logps, s.beta,
                            s.desirable_weight, s.undesirable_weight)
    metrics = {"loss": float(losses.detach().mean()), "kl": float(kl),
               **_unpaired_metrics(pol.logps, ref.logps, d, s.beta)}
    return losses.mean(), metrics, losses.detach()


def kto_z0_step(policy: CausalLM, reference: CausalLM, data: Unpaired, idx: Sequence[int], s: LossParams) -> StepResult:
    idx = list(idx)
    pol, ref = _forward(policy, reference, _take(data.prompt_ids, idx), _take(data.completion_ids, idx))
    d = data.desirable[idx].to(pol.logps.device)
    losses = L.kto_z0_loss(pol.logps, ref.logps, d, s.beta, s.desirable_weight, s.undesirable_weight)
    metrics = {"loss": float(losses.detach().mean()), **_unpaired_metrics(pol.logps, ref.logps, d, s.beta)}
    return losses.mean(), metrics, losses.detach()


def sft_step(policy: CausalLM, reference: CausalLM, data: Unpaired, idx: Sequence[int], s: LossParams,
             csft: bool = False) -> StepResult:
    """SFT on the rows ``idx`` (the caller passes desirable rows only); CSFT on control-token prompts."""
    idx = list(idx)
    prompts = _take(data.csft_prompt_ids if csft else data.prompt_ids, idx)
    pol, ref = _forward(policy, reference, prompts, _take(data.completion_ids, idx))
    losses = L.sft_loss(pol.logps, pol.lengths.to(pol.logps.dtype))
    d = data.desirable[idx].to(pol.logps.device)
    metrics = {"loss": float(losses.detach().mean()), **_unpaired_metrics(pol.logps, ref.logps, d, s.beta)}
    return losses.mean(), metrics, losses.detach()


def ppo_offline_step(policy: CausalLM, reference: CausalLM, data: Unpaired, idx: Sequence[int], s: LossParams,
                     value_head: nn.Module) -> StepResult:
    idx = list(idx)
    pol, ref = _forward(policy, reference, _take(data.prompt_ids, idx), _take(data.completion_ids, idx), hidden=True)
    d = data.desirable[idx].to(pol.logps.device)
    values = value_head(pol.hidden.detach().float()).squeeze(-1)
    rewards = torch.where(d, 1.0, -1.0).to(values.dtype)
    losses = L.ppo_offline_loss(pol.token_logps, ref.token_logps, values, rewards, pol.mask, s.ppo_clip,
                                s.ppo_value_weight)
    metrics = {"loss": float(losses.detach().mean()), **_unpaired_metrics(pol.logps, ref.logps, d, s.beta)}
    return losses.mean(), metrics, losses.detach()


def paired_step(method: str, policy: CausalLM, reference: CausalLM, data: Paired, idx: Sequence[int],
                s: LossParams) -> StepResult:
    """DPO, conservative DPO, IPO or SLiC on pairs ``idx`` (chosen and rejected in one forward)."""
    idx = list(idx)
    n = len(idx)
    prompts = _take(data.prompt_ids, idx)
    pol, ref = _forward(policy, reference, prompts + prompts, _take(data.chosen_ids, idx) + _take(data.rejected_ids, idx))
    pc, pr, rc, rr = pol.logps[:n], pol.logps[n:], ref.logps[:n], ref.logps[n:]
    if method == "dpo":
        losses = L.dpo_loss(pc, pr, rc, rr, s.beta)
    elif method == "cdpo":
        losses = L.cdpo_loss(pc, pr, rc, rr, s.beta, s.label_smoothing)
    elif method == "ipo":
        losses = L.ipo_loss(pc, pr, rc, rr, s.beta)
    elif method == "slic":
        losses = L.slic_loss(pc, pr, s.slic_margin, s.slic_nll_weight, pol.lengths[:n].to(pc.dtype))
    else:
        raise ValueError(f"method = {method!r} is not a paired method ({sorted(PAIRED_METHODS)})")
    metrics = {"loss": float(losses.detach().mean()), **_reward_metrics(pc, rc, pr, rr, s.beta)}
    return losses.mean(), metrics, losses.detach()


def method_step(method: str, policy: CausalLM, reference: CausalLM, unpaired: Unpaired, paired: Paired,
                idx: Sequence[int], s: LossParams, value_head: nn.Module | None = None) -> StepResult:
    """Dispatch one step of ``method`` (idx indexes pairs, desirable rows or all rows as the method needs)."""
    steps: dict[str, Callable[[], StepResult]] = {
        "kto": lambda: kto_step(policy, reference, unpaired, idx, s),
        "kto_z0": lambda: kto_z0_step(policy, reference, unpaired, idx, s),
        "sft": lambda: sft_step(policy, reference, unpaired, idx, s),
        "csft": lambda: sft_step(policy, reference, unpaired, idx, s, csft=True),
        "ppo_offline": lambda: ppo_offline_step(policy, reference, unpaired, idx, s, value_head),
    }
    if method in PAIRED_METHODS:
        return paired_step(method, policy, reference, paired, idx, s)
    if method not in steps:
        raise ValueError(f"method = {method!r}; known: {', '.join(METHODS)}")
    return steps[method]()


@dataclass
class Evaluation:
    reward_rate: float
    kl: float
    rows: list[dict]


@torch.no_grad()
def evaluate(policy: CausalLM, reference: CausalLM, prompts: Sequence[str], policy_prompts: Sequence[str],
             generator: torch.Generator, max_new_tokens: int, reward: Callable[[str], float] | None,
             threshold: float = 2, keep_rows: int = 16, source: str = "policy") -> Evaluation:
    """Sample from the policy, then reward rate (share desirable) and sampled KL(πθ‖πref).

    KL̂ = mean over samples y ~ πθ(·|x) of log πθ(y|x) − log πref(y|x) (a Monte Carlo estimate of the
    sequence-level KL). ``policy_prompts`` may differ from ``prompts`` (CSFT's control token).
    """
    samples = policy.sample(list(policy_prompts), max_new_tokens=max_new_tokens, generator=generator)
    ref = reference.score(list(prompts), [x.text for x in samples], add_eos=[x.ended for x in samples])
    kl = float(torch.tensor([x.logp for x in samples]).sub(ref.logps).mean())
    scores = [reward(x.text) if reward is not None else float("nan") for x in samples]
    desirable = [sc >= threshold for sc in scores]
    rate = sum(desirable) / len(desirable) if reward is not None else float("nan")
    rows = [{"source": source, "prompt": p, "completion": x.text, "score": sc, "desirable": dsr,
             "logp": round(x.logp, 3)}
            for p, x, sc, dsr in list(zip(prompts, samples, scores, desirable))[:keep_rows]]
    return Evaluation(rate, kl, rows)
