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
from workbench.lib.lm.core import CausalLM, EncodedBatch, LogProbs
from workbench.core.context import Shard, reduce_gradients
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
    fixed: dict[tuple[int, ...], "FixedBatch"] = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.prompt_ids)


@dataclass
class FixedBatch:
    """A batch with fixed mismatched pairs, ready on the model's device: the rows and their pairs collated, the
    cached reference log-probs (None: live) and the labels. Built once per batch: with the reference cache the
    KTO batches are fixed chunks that recur every epoch, so a step re-collates nothing and copies nothing."""

    batch: EncodedBatch
    kl_batch: EncodedBatch
    ref: Tensor | None
    kl_ref: Tensor | None
    desirable: Tensor


def fixed_batch(lm: CausalLM, data: Unpaired, idx: Sequence[int]) -> FixedBatch:
    """The :class:`FixedBatch` of rows ``idx`` (after :func:`fix_kl_pairs`), built on first use and kept."""
    key = tuple(idx)
    hit = data.fixed.get(key)
    if hit is None:
        if data.kl_completion_ids is None:
            raise ValueError("fixed_batch needs fixed mismatched pairs: call fix_kl_pairs first")
        idx, device = list(idx), lm.device
        prompts = _take(data.prompt_ids, idx)
        hit = data.fixed[key] = FixedBatch(
            lm.collate(prompts, _take(data.completion_ids, idx)).to(device),
            lm.collate(prompts, _take(data.kl_completion_ids, idx)).to(device),
            None if data.ref_logps is None else data.ref_logps[idx].to(device),
            None if data.ref_kl_logps is None else data.ref_kl_logps[idx].to(device),
            data.desirable[idx].to(device))
    return hit


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


class Ranks:
    """The processes sharing one global batch under torchrun (``rank`` of ``world_size``); in a one-process run
    every method is the identity. Each rank computes its shard's part; these sums make it the global batch's."""

    def __init__(self, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"Ranks(rank={rank}, world_size={world_size}): rank must be in [0, world_size)")
        self.rank, self.world_size = rank, world_size

    def sum(self, tensor: Tensor) -> Tensor:
        """The elementwise sum over the ranks (``tensor`` itself in one process)."""
        return tensor if self.world_size == 1 else _all_reduce(tensor, "sum")

    def max(self, tensor: Tensor) -> Tensor:
        """The elementwise maximum over the ranks."""
        return tensor if self.world_size == 1 else _all_reduce(tensor, "max")

    def gather_objects(self, obj: object) -> list:
        """Every rank's ``obj`` (picklable), in rank order."""
        if self.world_size == 1:
            return [obj]
        import torch.distributed as dist

        out: list = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def sum_gradients(self, *modules: nn.Module) -> None:
        """Sum the parameters' gradients over the ranks in one flat all-reduce: each rank's loss is its shard's
        share of the global batch's mean (:func:`batch_loss`), so the sum is the global batch's gradient."""
        reduce_gradients(modules, self.world_size, average=False)


ONE = Ranks()


def _all_reduce(tensor: Tensor, op: str) -> Tensor:
    """A reduced copy of ``tensor`` on its own device (a CPU tensor travels through CUDA under NCCL)."""
    import torch.distributed as dist

    out = tensor.detach().clone()
    reduce_op = dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM
    if out.device.type == "cpu" and dist.get_backend() == "nccl":
        moved = out.cuda()
        dist.all_reduce(moved, op=reduce_op)
        return moved.cpu()
    dist.all_reduce(out, op=reduce_op)
    return out


def adam(params: Sequence[nn.Parameter], lr: float, weight_decay: float = 0.0, decoupled: bool = False
         ) -> torch.optim.Optimizer:
    """Adam (AdamW when ``decoupled``) with the fused kernel where every parameter is a floating tensor on a CPU or
    CUDA device: the same update, one kernel per step instead of a Python loop of small ops per parameter (as TRL's
    default ``adamw_torch_fused``)."""
    params = list(params)
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params) or None
    kind = torch.optim.AdamW if decoupled else torch.optim.Adam
    return kind(params, lr=lr, weight_decay=weight_decay, fused=fused)


def batch_loss(losses: Tensor, ranks: Ranks = ONE, total: int | None = None) -> Tensor:
    """The loss to differentiate: the batch mean in one process; under torchrun this rank's share of the global
    batch's mean (sum of its rows' losses / ``total`` rows of the global batch), whose gradients
    :meth:`Ranks.sum_gradients` adds up."""
    if ranks.world_size == 1:
        return losses.mean()
    return losses.sum() / (total if total is not None else len(losses))


def _forward(policy: CausalLM, reference: CausalLM, prompts: list[list[int]] | EncodedBatch,
             completions: list[list[int]] | None = None, hidden: bool = False,
             cached: Tensor | None = None) -> tuple[LogProbs, Tensor]:
    """The policy's log-probs (with gradient) and the reference's summed log-probs: ``cached`` (precomputed for
    these rows) or one reference forward on the same batch (``prompts`` may be a collated batch)."""
    batch = prompts if isinstance(prompts, EncodedBatch) else policy.collate(prompts, completions)
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
    data.fixed.clear()


@torch.no_grad()
def precompute_reference(reference: CausalLM, data: Unpaired | Paired, batches: Sequence[Sequence[int]],
                         ranks: Ranks = ONE, split: bool = False) -> None:
    """The reference's summed log-probs of every row, computed once, batch by batch (use the training batches:
    the same shapes give bit-identical numbers to a live reference forward, so the policy still equals the
    reference exactly at the start). The reference is fixed, so nothing is lost (TRL's ``precompute_ref_log_probs``).

    Under torchrun the work is shared and the parts summed, so every rank holds every row's log-probs: with
    ``split`` each rank computes its shard of every batch (the rows, and shapes, of its training forward),
    otherwise batch i is computed whole on rank i mod world_size.
    """
    def logps(prompts: list[list[int]], completions: list[list[int]]) -> Tensor:
        with torch.inference_mode():
            return reference.batch_logps(reference.collate(prompts, completions)).logps.float().cpu()

    def mine(k: int, idx: Sequence[int]) -> list[int]:
        if ranks.world_size == 1:
            return list(idx)
        if split:
            return [idx[i] for i in Shard(len(idx), ranks.rank, ranks.world_size).rows().tolist()]
        return list(idx) if k % ranks.world_size == ranks.rank else []

    n = len(data)
    if isinstance(data, Paired):
        chosen, rejected = torch.zeros(n), torch.zeros(n)
        for k, idx in enumerate(batches):
            if idx := mine(k, idx):
                prompts = _take(data.prompt_ids, idx)
                both = logps(prompts + prompts, _take(data.chosen_ids, idx) + _take(data.rejected_ids, idx))
                chosen[idx], rejected[idx] = both[: len(idx)], both[len(idx):]
        data.ref_chosen, data.ref_rejected = ranks.sum(chosen), ranks.sum(rejected)
        return
    main, kl = torch.zeros(n), torch.zeros(n)
    for k, idx in enumerate(batches):
        if idx := mine(k, idx):
            prompts = _take(data.prompt_ids, idx)
            main[idx] = logps(prompts, _take(data.completion_ids, idx))
            if data.kl_completion_ids is not None:
                kl[idx] = logps(prompts, _take(data.kl_completion_ids, idx))
    data.ref_logps = ranks.sum(main)
    data.ref_kl_logps = ranks.sum(kl) if data.kl_completion_ids is not None else None
    data.fixed.clear()


def _cached(values: Tensor | None, idx: Sequence[int]) -> Tensor | None:
    return None if values is None else values[list(idx)]


def _metrics(losses: Tensor, pol_c: Tensor, ref_c: Tensor, pol_r: Tensor, ref_r: Tensor, beta: float,
             ranks: Ranks, kl: Tensor | None = None) -> dict[str, float]:
    """TRL's metrics of a step over the global batch: the loss and, for the chosen (desirable) and rejected rows,
    the mean implied reward and log-prob (and KTO's ``kl``, global already). One vector of sums and counts (summed
    over the ranks), one host sync."""
    def part(pol: Tensor, ref: Tensor) -> list[Tensor]:
        pol, ref = pol.detach().double(), ref.detach().double()
        return [beta * (pol - ref).sum(), pol.sum(), pol.new_tensor(float(pol.numel()))]

    loss = losses.detach().double()
    stats = torch.stack([loss.sum(), loss.new_tensor(float(loss.numel())), *part(pol_c, ref_c), *part(pol_r, ref_r)])
    stats = ranks.sum(stats)
    if kl is not None:
        stats = torch.cat([stats, kl.detach().double().reshape(1)])
    loss_sum, n, reward_c, logp_c, n_c, reward_r, logp_r, n_r, *z0 = stats.tolist()
    out = {"loss": loss_sum / n}
    if z0:
        out["kl"] = z0[0]
    if n_c:
        out["rewards/chosen"], out["logps/chosen"] = reward_c / n_c, logp_c / n_c
    if n_r:
        out["rewards/rejected"], out["logps/rejected"] = reward_r / n_r, logp_r / n_r
    if n_c and n_r:
        out["rewards/margins"] = out["rewards/chosen"] - out["rewards/rejected"]
    return out


def _unpaired_metrics(losses: Tensor, pol: Tensor, ref: Tensor, desirable: Tensor, beta: float,
                      ranks: Ranks, kl: Tensor | None = None) -> dict[str, float]:
    return _metrics(losses, pol[desirable], ref[desirable], pol[~desirable], ref[~desirable], beta, ranks, kl)


StepResult = tuple[Tensor, dict[str, float], Tensor]


def kto_step(policy: CausalLM, reference: CausalLM, data: Unpaired, idx: Sequence[int], s: LossParams,
             ranks: Ranks = ONE, total: int | None = None, kl_rows: Sequence[int] | None = None) -> StepResult:
    """KTO (Eq. 8) with the reference point estimated on mismatched pairs: each row's fixed pair
    (:func:`fix_kl_pairs`), the completions of ``kl_rows`` (one per row of ``idx``: under torchrun the global
    batch's rotation, which may take a completion from another rank's rows) or the batch's completions rotated by
    one. Under torchrun ``idx`` is this rank's shard of a global batch of ``total`` rows and z₀ is all-reduced: the
    global batch's estimate (:func:`~workbench.methods.kto.losses.kto_reference_point`)."""
    idx = list(idx)
    if data.kl_completion_ids is not None:  # fixed pairs: the batch's tensors are built once (FixedBatch)
        fixed = fixed_batch(policy, data, idx)
        main, kl_main, cached, kl_cached, d = fixed.batch, fixed.kl_batch, fixed.ref, fixed.kl_ref, fixed.desirable
    else:
        prompts, completions = _take(data.prompt_ids, idx), _take(data.completion_ids, idx)
        if kl_rows is not None:
            kl_completions = _take(data.completion_ids, kl_rows)
        else:
            kl_completions = [completions[j] for j in L.mismatched_indices(len(idx)).tolist()]
        main, kl_main = policy.collate(prompts, completions), policy.collate(prompts, kl_completions)
        cached, kl_cached, d = _cached(data.ref_logps, idx), _cached(data.ref_kl_logps, idx), data.desirable[idx]
    pol, ref = _forward(policy, reference, main, cached=cached)
    with torch.inference_mode():  # z0 is detached: no graph (and no backward) through the mismatched pairs
        kl_pol, kl_ref = _forward(policy, reference, kl_main, cached=kl_cached)
        z0 = L.kto_reference_point(kl_pol.logps, kl_ref, None if ranks.world_size == 1 else ranks.sum)
    z0 = z0.clone()  # out of inference mode
    d = d.to(pol.logps.device)
    losses, kl = L.kto_loss(pol.logps, ref, d, None, None, s.beta, s.desirable_weight, s.undesirable_weight,
                            reference_point=z0)
    metrics = _unpaired_metrics(losses, pol.logps, ref, d, s.beta, ranks, kl=kl)
    return batch_loss(losses, ranks, total), metrics, losses.detach()


def kto_z0_step(policy: CausalLM, reference: CausalLM, data: Unpaired, idx: Sequence[int], s: LossParams,
                ranks: Ranks = ONE, total: int | None = None) -> StepResult:
    idx = list(idx)
    if data.kl_completion_ids is not None:  # the fixed chunks of the reference cache: built once
        fixed = fixed_batch(policy, data, idx)
        pol, ref = _forward(policy, reference, fixed.batch, cached=fixed.ref)
        d = fixed.desirable
    else:
        pol, ref = _forward(policy, reference, _take(data.prompt_ids, idx), _take(data.completion_ids, idx),
                            cached=_cached(data.ref_logps, idx))
        d = data.desirable[idx].to(pol.logps.device)
    losses = L.kto_z0_loss(pol.logps, ref, d, s.beta, s.desirable_weight, s.undesirable_weight)
    metrics = _unpaired_metrics(losses, pol.logps, ref, d, s.beta, ranks)
    return batch_loss(losses, ranks, total), metrics, losses.detach()


def sft_step(policy: CausalLM, reference: CausalLM, data: Unpaired, idx: Sequence[int], s: LossParams,
             csft: bool = False, ranks: Ranks = ONE, total: int | None = None) -> StepResult:
    """SFT on the rows ``idx`` (the caller passes desirable rows only); CSFT on control-token prompts."""
    idx = list(idx)
    prompts = _take(data.csft_prompt_ids if csft else data.prompt_ids, idx)
    pol, ref = _forward(policy, reference, prompts, _take(data.completion_ids, idx),
                        cached=None if csft else _cached(data.ref_logps, idx))
    losses = L.sft_loss(pol.logps, pol.lengths.to(pol.logps.dtype))
    d = data.desirable[idx].to(pol.logps.device)
    metrics = _unpaired_metrics(losses, pol.logps, ref, d, s.beta, ranks)
    return batch_loss(losses, ranks, total), metrics, losses.detach()


def ppo_offline_step(policy: CausalLM, reference: CausalLM, data: Unpaired, idx: Sequence[int], s: LossParams,
                     value_head: nn.Module, ranks: Ranks = ONE, total: int | None = None) -> StepResult:
    idx = list(idx)
    batch = policy.collate(_take(data.prompt_ids, idx), _take(data.completion_ids, idx))
    pol = policy.batch_logps(batch, return_hidden=True)
    with torch.inference_mode():  # per-token reference log-probs: not cached (the cache holds sums)
        ref = reference.batch_logps(batch)
    ref_tokens, ref_logps = ref.token_logps.clone(), ref.logps.clone()
    d = data.desirable[idx].to(pol.logps.device)
    values = value_head(pol.hidden.detach().float()).squeeze(-1)
    rewards = torch.where(d, 1.0, -1.0).to(values.dtype)
    losses = L.ppo_offline_loss(pol.token_logps, ref_tokens, values, rewards, pol.mask, s.ppo_clip,
                                s.ppo_value_weight)
    metrics = _unpaired_metrics(losses, pol.logps, ref_logps, d, s.beta, ranks)
    return batch_loss(losses, ranks, total), metrics, losses.detach()


def paired_step(method: str, policy: CausalLM, reference: CausalLM, data: Paired, idx: Sequence[int],
                s: LossParams, ranks: Ranks = ONE, total: int | None = None) -> StepResult:
    """DPO, conservative DPO, IPO or SLiC on pairs ``idx`` (chosen and rejected in one forward: a pair stays on
    one rank under torchrun)."""
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
    return batch_loss(losses, ranks, total), _metrics(losses, pc, rc, pr, rr, s.beta, ranks), losses.detach()


def method_step(method: str, policy: CausalLM, reference: CausalLM, unpaired: Unpaired, paired: Paired,
                idx: Sequence[int], s: LossParams, value_head: nn.Module | None = None, ranks: Ranks = ONE,
                total: int | None = None, kl_rows: Sequence[int] | None = None) -> StepResult:
    """Dispatch one step of ``method`` (idx indexes pairs, desirable rows or all rows as the method needs; under
    torchrun this rank's shard of a global batch of ``total``)."""
    steps: dict[str, Callable[[], StepResult]] = {
        "kto": lambda: kto_step(policy, reference, unpaired, idx, s, ranks, total, kl_rows),
        "kto_z0": lambda: kto_z0_step(policy, reference, unpaired, idx, s, ranks, total),
        "sft": lambda: sft_step(policy, reference, unpaired, idx, s, ranks=ranks, total=total),
        "csft": lambda: sft_step(policy, reference, unpaired, idx, s, csft=True, ranks=ranks, total=total),
        "ppo_offline": lambda: ppo_offline_step(policy, reference, unpaired, idx, s, value_head, ranks, total),
    }
    if method in PAIRED_METHODS:
        return paired_step(method, policy, reference, paired, idx, s, ranks, total)
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


#: prompts sampled together in an evaluation, each block from its own stream: the samples do not depend on how
#: many processes share the blocks
EVAL_BLOCK = 32


@torch.no_grad()
def evaluate(policy: CausalLM, reference: CausalLM, prompts: Sequence[str], policy_prompts: Sequence[str],
             generator: torch.Generator | Callable[[int], torch.Generator], max_new_tokens: int,
             reward: Callable[[str, str], float | bool] | None, threshold: float = 2, keep_rows: int = 16,
             source: str = "policy", ranks: Ranks = ONE, block: int | None = None) -> Evaluation:
    """Sample from the policy, then the reward rate (share desirable) and the sampled KL(πθ‖πref) with its
    standard error.

    KL̂ = mean over samples y ~ πθ(·|x) of log πθ(y|x) − log πref(y|x), a Monte Carlo estimate of the
    sequence-level KL: unbiased but, per sample, of either sign, so a small KL can come out negative; its standard
    error says by how much it can. ``reward(prompt, completion)`` returns a bool (the verdict) or a number
    (desirable when ≥ ``threshold``). ``policy_prompts`` may differ from ``prompts`` (CSFT's control token).

    ``block``: prompts are sampled in blocks of that many, block b from the stream ``generator(b)``, and the blocks
    are shared among the ranks (block b on rank b mod world_size: sampling, scoring and reward) and gathered; the
    result is the same under any number of processes. ``None``: one block drawing from ``generator``.
    """
    from workbench.methods.kto.rewards import desirable as verdicts

    prompts, policy_prompts = list(prompts), list(policy_prompts)
    size = max(1, len(prompts) if block is None else block)
    mine = []
    for b, start in enumerate(range(0, len(prompts), size)):
        if b % ranks.world_size == ranks.rank:
            gen = generator(b) if callable(generator) else generator
            mine.append((b, _sample_block(policy, reference, prompts[start: start + size],
                                          policy_prompts[start: start + size], gen, max_new_tokens, reward)))
    samples = [row for _, part in sorted(p for parts in ranks.gather_objects(mine) for p in parts) for row in part]
    texts, logps, scores = [x[0] for x in samples], [x[1] for x in samples], [x[3] for x in samples]
    log_ratio = torch.tensor([x[2] for x in samples], dtype=torch.float64)
    kl = float(log_ratio.mean())
    kl_se = float(log_ratio.std(unbiased=True) / len(log_ratio) ** 0.5) if len(log_ratio) > 1 else float("nan")
    desirable = verdicts(scores, threshold) if reward is not None else [None] * len(samples)  # None: no reward
    rate = sum(desirable) / len(desirable) if reward is not None else float("nan")
    rows = [{"source": source, "prompt": p, "completion": text,
             "score": float(sc) if not isinstance(sc, bool) else sc, "desirable": dsr, "logp": round(lp, 3)}
            for p, text, lp, sc, dsr in list(zip(prompts, texts, logps, scores, desirable))[:keep_rows]]
    return Evaluation(rate, kl, kl_se, rows, list(desirable), log_ratio.tolist())


def _sample_block(policy: CausalLM, reference: CausalLM, prompts: list[str], policy_prompts: list[str],
                  generator: torch.Generator, max_new_tokens: int,
                  reward: Callable[[str, str], float | bool] | None) -> list[tuple[str, float, float, float | bool]]:
    """(completion, log πθ, log πθ − log πref, reward score) of one sample per prompt."""
    samples = policy.sample(policy_prompts, max_new_tokens=max_new_tokens, generator=generator)
    ref = reference.score(prompts, [x.text for x in samples], add_eos=[x.ended for x in samples])
    log_ratio = (torch.tensor([x.logp for x in samples], dtype=torch.float64) - ref.logps.double()).tolist()
    scores = [reward(p, x.text) if reward is not None else float("nan") for p, x in zip(prompts, samples)]
    return [(x.text, x.logp, lr, sc) for x, lr, sc in zip(samples, log_ratio, scores)]


@torch.no_grad()
def heldout_rewards(policy: CausalLM, data: Unpaired, beta: float, batch_size: int = 64,
                    ranks: Ranks = ONE) -> tuple[Tensor, Tensor]:
    """(policy log-probs, implied rewards β·(log πθ − log πref)) of every held-out row; ``data.ref_logps`` must hold
    the reference's log-probs (:func:`precompute_reference`). Under torchrun batch i is scored on rank
    i mod world_size and the parts summed."""
    if data.ref_logps is None:
        raise ValueError("heldout_metrics needs the reference's log-probs: call precompute_reference first")
    n = len(data)
    pol = torch.zeros(n)
    was = policy.training
    policy.eval()
    for k, start in enumerate(range(0, n, batch_size)):
        if k % ranks.world_size == ranks.rank:
            idx = list(range(start, min(n, start + batch_size)))
            batch = policy.collate(_take(data.prompt_ids, idx), _take(data.completion_ids, idx))
            pol[idx] = policy.batch_logps(batch).logps.float().cpu()
    policy.train(was)
    pol = ranks.sum(pol)
    return pol, beta * (pol - data.ref_logps)


def heldout_metrics(policy: CausalLM, data: Unpaired, beta: float, batch_size: int = 64,
                    ranks: Ranks = ONE) -> dict[str, float]:
    """What alignment did to held-out feedback, without a reward function (TRL's names): the implied rewards
    β·log πθ/πref of desirable and undesirable completions, their margin, the implied reward accuracy (how often a
    desirable completion outranks an undesirable one of the same prompt; of any prompt when no prompt has both),
    and the policy's log-probs of each kind with their change from the reference."""
    pol, reward = heldout_rewards(policy, data, beta, batch_size, ranks)
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
