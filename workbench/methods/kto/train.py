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

from workbench.methods.kto import losses as L
from workbench.lib.lm.core import CausalLM, LogProbs
from workbench.core.params import Param, ParamGroup

#: every method, in the order the comparison runs them
METHODS = ("kto", "dpo", "cdpo", "ipo", "slic", "csft", "ppo_offline", "sft", "kto_z0")
PAIRED_METHODS = frozenset({"dpo", "cdpo", "ipo", "slic"})
KTO_METHODS = frozenset({"kto", "kto_z0"})


class LossParams(ParamGroup):
    """Hyper-parameters of the losses (see :mod:`workbench.methods.kto.losses`), declared once: ``KTOConfig`` composes
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
    """Tokenised (prompt, completion + eos, label) rows; ``csft_prompt_ids`` carry the control token.

    After :func:`fix_kl_pairs` each row has a fixed mismatched completion (``kl_completion_ids``) and after
    :func:`precompute_reference` the reference's log-probs of both (``ref_logps``, ``ref_kl_logps``), so a
    training step needs no reference forward.
    """

    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    desirable: Tensor
    csft_prompt_ids: list[list[int]] = field(default_factory=list)
    kl_completion_ids: list[list[int]] | None = None
    ref_logps: Tensor | None = None
    ref_kl_logps: Tensor | None = None

    def __len__(self) -> int:
        return len(self.prompt_ids)


@dataclass
class Paired:
    """Tokenised (prompt, chosen + eos, rejected + eos) pairs; ``ref_*`` after :func:`precompute_reference`."""

    prompt_ids: list[list[int]]
    chosen_ids: list[list[int]]
    rejected_ids: list[list[int]]
    ref_chosen: Tensor | None = None
    ref_rejected: Tensor | None = None

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
             hidden: bool = False, cached: Tensor | None = None) -> tuple[LogProbs, Tensor]:
    """The policy's log-probs (with gradient) and the reference's summed log-probs: ``cached`` (precomputed for
    these rows) or one reference forward on the same batch."""
    batch = policy.collate(prompts, completions)
    pol = policy.batch_logps(batch, return_hidden=hidden)
    if cached is not None:
        return pol, cached.to(pol.logps.device)
    with torch.inference_mode():
        ref = reference.batch_logps(batch).logps
    return pol, ref.clone()


def kl_chunks(n: int, batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """The rows in one fixed random order, cut into batches of ``batch_size`` (a last batch of one joins the one
    before): with :func:`fix_kl_pairs` every batch's mismatched completions are its own completions rotated by one
    (the set the paper recommends), fixed for the run so that the reference's log-probs can be computed once."""
    if n < 2:
        raise ValueError(f"KTO needs at least 2 rows, got {n}")
    order = torch.randperm(n, generator=generator).tolist()
    chunks = [order[i: i + batch_size] for i in range(0, n, batch_size)]
    if len(chunks) > 1 and len(chunks[-1]) < 2:
        chunks[-2].extend(chunks.pop())
    return chunks


def fix_kl_pairs(data: Unpaired, chunks: Sequence[Sequence[int]]) -> None:
    """Give each row the completion of the row before it in its chunk (rotation by one, as in training batches)."""
    kl: list[list[int]] = [[] for _ in range(len(data))]
    for chunk in chunks:
        for row, partner in zip(chunk, L.mismatched_indices(len(chunk)).tolist()):
            kl[row] = data.completion_ids[chunk[partner]]
    data.kl_completion_ids = kl


@torch.no_grad()
def precompute_reference(reference: CausalLM, data: Unpaired | Paired, batches: Sequence[Sequence[int]]) -> None:
    """The reference's summed log-probs of every row, computed once, batch by batch (use the training batches:
    the same shapes give bit-identical numbers to a live reference forward, so the policy still equals the
    reference exactly at the start). The reference is fixed, so nothing is lost (TRL's ``precompute_ref_log_probs``)."""
    def logps(prompts: list[list[int]], completions: list[list[int]]) -> Tensor:
        with torch.inference_mode():
            return reference.batch_logps(reference.collate(prompts, completions)).logps.float().cpu()

    n = len(data)
    if isinstance(data, Paired):
        chosen, rejected = torch.zeros(n), torch.zeros(n)
        for idx in batches:
            idx = list(idx)
            prompts = _take(data.prompt_ids, idx)
            both = logps(prompts + prompts, _take(data.chosen_ids, idx) + _take(data.rejected_ids, idx))
            chosen[idx], rejected[idx] = both[: len(idx)], both[len(idx):]
        data.ref_chosen, data.ref_rejected = chosen, rejected
        return
    main, kl = torch.zeros(n), torch.zeros(n)
    for idx in batches:
        idx = list(idx)
        prompts = _take(data.prompt_ids, idx)
        main[idx] = logps(prompts, _take(data.completion_ids, idx))
        if data.kl_completion_ids is not None:
            kl[idx] = logps(prompts, _take(data.kl_completion_ids, idx))
    data.ref_logps = main
    data.ref_kl_logps = kl if data.kl_completion_ids is not None else None


def _cached(values: Tensor | None, idx: Sequence[int]) -> Tensor | None:
    return None if values is None else values[list(idx)]


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
    """KTO (Eq. 8) with the reference point estimated on mismatched pairs: each row's fixed pair
    (:func:`fix_kl_pairs`) or, without them, the batch's completions rotated by one."""
    idx = list(idx)
    prompts, completions = _take(data.prompt_ids, idx), _take(data.completion_ids, idx)
    if data.kl_completion_ids is not None:
        kl_completions = _take(data.kl_completion_ids, idx)
    else:
        kl_completions = [completions[j] for j in L.mismatched_indices(len(idx)).tolist()]
    pol, ref = _forward(policy, reference, prompts, completions, cached=_cached(data.ref_logps, idx))
    with torch.inference_mode():  # z0 is detached: no graph (and no backward) through the mismatched pairs
        kl_pol, kl_ref = _forward(policy, reference, prompts, kl_completions, cached=_cached(data.ref_kl_logps, idx))
        kl_pol_logps, kl_ref = kl_pol.logps.clone(), kl_ref.clone()
    d = data.desirable[idx].to(pol.logps.device)
    losses, kl = L.kto_loss(pol.logps, ref, d, kl_pol_logps, kl_ref, s.beta, s.desirable_weight, s.undesirable_weight)
    metrics = {"loss": float(losses.detach().mean()), "kl": float(kl),
               **_unpaired_metrics(pol.logps, ref, d, s.beta)}
    return losses.mean(), metrics, losses.detach()


def kto_z0_step(policy: CausalLM, reference: CausalLM, data: Unpaired, idx: Sequence[int], s: LossParams) -> StepResult:
    idx = list(idx)
    pol, ref = _forward(policy, reference, _take(data.prompt_ids, idx), _take(data.completion_ids, idx),
                        cached=_cached(data.ref_logps, idx))
    d = data.desirable[idx].to(pol.logps.device)
    losses = L.kto_z0_loss(pol.logps, ref, d, s.beta, s.desirable_weight, s.undesirable_weight)
    metrics = {"loss": float(losses.detach().mean()), **_unpaired_metrics(pol.logps, ref, d, s.beta)}
    return losses.mean(), metrics, losses.detach()


def sft_step(policy: CausalLM, reference: CausalLM, data: Unpaired, idx: Sequence[int], s: LossParams,
             csft: bool = False) -> StepResult:
    """SFT on the rows ``idx`` (the caller passes desirable rows only); CSFT on control-token prompts."""
    idx = list(idx)
    prompts = _take(data.csft_prompt_ids if csft else data.prompt_ids, idx)
    pol, ref = _forward(policy, reference, prompts, _take(data.completion_ids, idx),
                        cached=None if csft else _cached(data.ref_logps, idx))
    losses = L.sft_loss(pol.logps, pol.lengths.to(pol.logps.dtype))
    d = data.desirable[idx].to(pol.logps.device)
    metrics = {"loss": float(losses.detach().mean()), **_unpaired_metrics(pol.logps, ref, d, s.beta)}
    return losses.mean(), metrics, losses.detach()


def ppo_offline_step(policy: CausalLM, reference: CausalLM, data: Unpaired, idx: Sequence[int], s: LossParams,
                     value_head: nn.Module) -> StepResult:
    idx = list(idx)
    batch = policy.collate(_take(data.prompt_ids, idx), _take(data.completion_ids, idx))
    pol = policy.batch_logps(batch, return_hidden=True)
    with torch.inference_mode():  # per-token reference log-probs: not cached (the cache holds sums)
        ref = reference.batch_logps(batch)
    ref_tokens = ref.token_logps.clone()
    d = data.desirable[idx].to(pol.logps.device)
    values = value_head(pol.hidden.detach().float()).squeeze(-1)
    rewards = torch.where(d, 1.0, -1.0).to(values.dtype)
    losses = L.ppo_offline_loss(pol.token_logps, ref_tokens, values, rewards, pol.mask, s.ppo_clip,
                                s.ppo_value_weight)
    metrics = {"loss": float(losses.detach().mean()), **_unpaired_metrics(pol.logps, ref.logps.clone(), d, s.beta)}
    return losses.mean(), metrics, losses.detach()


def paired_step(method: str, policy: CausalLM, reference: CausalLM, data: Paired, idx: Sequence[int],
                s: LossParams) -> StepResult:
    """DPO, conservative DPO, IPO or SLiC on pairs ``idx`` (chosen and rejected in one forward)."""
    idx = list(idx)
    n = len(idx)
    prompts = _take(data.prompt_ids, idx)
    cached = None if data.ref_chosen is None else torch.cat([data.ref_chosen[idx], data.ref_rejected[idx]])
    pol, ref = _forward(policy, reference, prompts + prompts, _take(data.chosen_ids, idx) + _take(data.rejected_ids, idx),
                        cached=cached)
    pc, pr, rc, rr = pol.logps[:n], pol.logps[n:], ref[:n], ref[n:]
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
    """One sampled evaluation: the desirable rate and KL̂ with its standard error, the first ``keep_rows`` rows,
    and per sample (one per prompt, in prompt order) the verdict (None: no reward) and log πθ/πref, from which a
    claim bootstraps over prompts."""

    reward_rate: float
    kl: float
    kl_se: float
    rows: list[dict]
    desirable: list[bool | None] = field(default_factory=list)
    log_ratio: list[float] = field(default_factory=list)


@torch.no_grad()
def evaluate(policy: CausalLM, reference: CausalLM, prompts: Sequence[str], policy_prompts: Sequence[str],
             generator: torch.Generator, max_new_tokens: int, reward: Callable[[str, str], float | bool] | None,
             threshold: float = 2, keep_rows: int = 16, source: str = "policy") -> Evaluation:
    """Sample from the policy, then the reward rate (share desirable) and the sampled KL(πθ‖πref) with its
    standard error.

    KL̂ = mean over samples y ~ πθ(·|x) of log πθ(y|x) − log πref(y|x), a Monte Carlo estimate of the
    sequence-level KL: unbiased but, per sample, of either sign, so a small KL can come out negative; its standard
    error says by how much it can. ``reward(prompt, completion)`` returns a bool (the verdict) or a number
    (desirable when ≥ ``threshold``). ``policy_prompts`` may differ from ``prompts`` (CSFT's control token).
    """
    from workbench.methods.kto.rewards import desirable as verdicts

    samples = policy.sample(list(policy_prompts), max_new_tokens=max_new_tokens, generator=generator)
    ref = reference.score(list(prompts), [x.text for x in samples], add_eos=[x.ended for x in samples])
    log_ratio = torch.tensor([x.logp for x in samples], dtype=torch.float64) - ref.logps.double()
    kl = float(log_ratio.mean())
    kl_se = float(log_ratio.std(unbiased=True) / len(log_ratio) ** 0.5) if len(log_ratio) > 1 else float("nan")
    scores = [reward(p, x.text) if reward is not None else float("nan") for p, x in zip(prompts, samples)]
    desirable = verdicts(scores, threshold) if reward is not None else [None] * len(samples)  # None: no reward
    rate = sum(desirable) / len(desirable) if reward is not None else float("nan")
    rows = [{"source": source, "prompt": p, "completion": x.text,
             "score": float(sc) if not isinstance(sc, bool) else sc, "desirable": dsr, "logp": round(x.logp, 3)}
            for p, x, sc, dsr in list(zip(prompts, samples, scores, desirable))[:keep_rows]]
    return Evaluation(rate, kl, kl_se, rows, list(desirable), log_ratio.tolist())


@torch.no_grad()
def heldout_rewards(policy: CausalLM, data: Unpaired, beta: float, batch_size: int = 64) -> tuple[Tensor, Tensor]:
    """(policy log-probs, implied rewards β·(log πθ − log πref)) of every held-out row; ``data.ref_logps`` must hold
    the reference's log-probs (:func:`precompute_reference`)."""
    if data.ref_logps is None:
        raise ValueError("heldout_metrics needs the reference's log-probs: call precompute_reference first")
    n = len(data)
    pol = torch.zeros(n)
    was = policy.training
    policy.eval()
    for start in range(0, n, batch_size):
        idx = list(range(start, min(n, start + batch_size)))
        batch = policy.collate(_take(data.prompt_ids, idx), _take(data.completion_ids, idx))
        pol[idx] = policy.batch_logps(batch).logps.float().cpu()
    policy.train(was)
    return pol, beta * (pol - data.ref_logps)


def heldout_metrics(policy: CausalLM, data: Unpaired, beta: float, batch_size: int = 64) -> dict[str, float]:
    """What alignment did to held-out feedback, without a reward function (TRL's names): the implied rewards
    β·log πθ/πref of desirable and undesirable completions, their margin, the implied reward accuracy (how often a
    desirable completion outranks an undesirable one of the same prompt; of any prompt when no prompt has both),
    and the policy's log-probs of each kind with their change from the reference."""
    pol, reward = heldout_rewards(policy, data, beta, batch_size)
    d = data.desirable.cpu()
    out: dict[str, float] = {}
    for kind, mask in (("chosen", d), ("rejected", ~d)):
        if mask.any():
            out[f"rewards/{kind}"] = float(reward[mask].mean())
            out[f"logps/{kind}"] = float(pol[mask].mean())
            out[f"logps_change/{kind}"] = float((pol - data.ref_logps)[mask].mean())
    if d.any() and (~d).any():
        out["rewards/margins"] = out["rewards/chosen"] - out["rewards/rejected"]
        out["rewards/accuracy"] = ranking_accuracy(reward, d, prompt_groups(data.prompt_ids))
    return out


def prompt_groups(prompts: Sequence[Sequence[int]]) -> Tensor:
    """One integer per row naming its prompt (rows with the same prompt share it)."""
    ids: dict[tuple[int, ...], int] = {}
    return torch.tensor([ids.setdefault(tuple(p), len(ids)) for p in prompts], dtype=torch.long)


def ranking_accuracy(reward: Tensor, desirable: Tensor, groups: Tensor) -> float:
    """Share of (desirable, undesirable) pairs with the same prompt (``groups``) where the desirable one has the
    higher reward (ties count half); when no prompt has both kinds, over all pairs (the AUC). NaN without pairs."""
    d = desirable.bool()
    pairs = d[:, None] & ~d[None, :]
    same = pairs & (groups[:, None] == groups[None, :])
    if same.any():
        pairs = same
    if not pairs.any():
        return float("nan")
    diff = reward[:, None] - reward[None, :]
    wins = (diff > 0).double() + 0.5 * (diff == 0).double()
    return float(wins[pairs].mean())
