"""KTO's unit checks for the suite's one torchrun launch (``tests.ddp``: ``tests/contract/ddp_driver.py`` calls
``z0`` and ``step`` on every rank; each returns differences whose worst over the ranks comes back)."""
from __future__ import annotations

import torch

from workbench.core.context import Shard


def _diff(a: torch.Tensor | float, b: torch.Tensor | float) -> float:
    return float((torch.as_tensor(a).double() - torch.as_tensor(b).double()).abs().max())


def unit_z0(rank: int, world: int) -> list[float]:
    """KTO's z₀ all-reduced over the shards equals the one-process z₀ of the global batch, for batches whose shards'
    own estimates differ in sign (so a per-shard clamp, or an average of clamped shard estimates, would not).
    Returns [max |z₀(ranks) − z₀(global)|, min |mean of per-shard clamped z₀ − z₀(global)|]."""
    from workbench.methods.kto.losses import kto_reference_point
    from workbench.methods.kto.train import Ranks

    ranks = Ranks(rank, world)
    worst, naive_gap = 0.0, float("inf")
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        n = 8
        kl_pol, kl_ref = -5 + torch.randn(n, generator=g), -5 + torch.randn(n, generator=g)
        kl_pol[0::2] += 3.0 + seed  # rank 0's rows: πθ above πref; rank 1's: below
        kl_pol[1::2] -= 2.0
        shard = Shard(n, rank, world)
        full = kto_reference_point(kl_pol, kl_ref)
        mine = kto_reference_point(shard.take(kl_pol), shard.take(kl_ref), ranks.sum)
        worst = max(worst, _diff(mine, full))
        own = kto_reference_point(shard.take(kl_pol), shard.take(kl_ref))  # this shard alone
        naive = float(ranks.sum(own.double().reshape(1))[0]) / world
        naive_gap = min(naive_gap, abs(naive - float(full)))
    return [worst, -naive_gap]  # reduced by MAX over the ranks: the smallest gap comes back negated


def unit_step(rank: int, world: int) -> list[float]:
    """One sharded KTO step (live reference: a row's mismatched completion may sit on the other rank) and one
    paired (DPO) step: the summed gradients, the loss and the metrics equal the one-process step on the global
    batch. Returns max |difference| of [KTO grads, KTO loss, KTO metrics, DPO grads, DPO loss, DPO metrics]."""
    import copy

    from workbench.lib.lm.core import TinyLM
    from workbench.methods.kto import toyworld as W
    from workbench.methods.kto.train import LossParams, Ranks, method_step, tokenise_paired, tokenise_unpaired

    ranks = Ranks(rank, world)
    torch.manual_seed(0)  # the same initial weights on every rank (a test, not a method)
    ref = TinyLM(W.tokenizer(), n_layer=1, d_model=16, n_head=2, context=W.CONTEXT).eval()
    reviews = W.generate_reviews(8, torch.Generator().manual_seed(1))
    prompts, completions = [p for p, _ in reviews], [c for _, c in reviews]
    labels = [i % 3 != 0 for i in range(8)]
    un = tokenise_unpaired(ref, prompts, completions, labels)
    pairs = tokenise_paired(ref, prompts, completions, completions[::-1])
    s = LossParams.bind(beta=0.5)
    out: list[float] = []
    for method, batch in (("kto", [5, 2, 7, 0, 3, 6]), ("dpo", [1, 4, 6, 2])):
        full_pol, part_pol = copy.deepcopy(ref).train(), copy.deepcopy(ref).train()
        with torch.no_grad():  # move the policy off the reference so that z₀ and the rewards are not trivial
            for p in list(full_pol.parameters()):
                p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
        part_pol.load_state_dict(full_pol.state_dict())
        loss_full, m_full, _ = method_step(method, full_pol, ref, un, pairs, batch, s)
        loss_full.backward()
        n = len(batch)
        rows = Shard(n, rank, world).rows().tolist()
        kl_rows = [batch[(i - 1) % n] for i in rows]
        loss_part, m_part, _ = method_step(method, part_pol, ref, un, pairs, [batch[i] for i in rows], s,
                                           ranks=ranks, total=n, kl_rows=kl_rows)
        loss_part.backward()
        ranks.sum_gradients(part_pol)
        grads = lambda m: torch.cat([p.grad.reshape(-1) for p in m.parameters()])  # noqa: E731
        assert set(m_full) == set(m_part), (m_full, m_part)
        out += [_diff(grads(part_pol), grads(full_pol)), _diff(ranks.sum(loss_part.detach()), loss_full.detach()),
                max(abs(m_part[k] - m_full[k]) for k in m_full)]
    return out
