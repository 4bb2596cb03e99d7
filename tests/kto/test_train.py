"""One step of every method on a tiny model; KTO at πθ = πref; the HF path for a few steps."""
import copy

import pytest
import torch
import torch.nn as nn

from workbench.methods.kto import toyworld as W
from workbench.methods.kto.train import (METHODS, LossParams, kto_step, method_step, tokenise_paired, tokenise_unpaired)
from workbench.lib.lm import TinyLM

PROMPTS = ["<food>", "<movie>", "<hotel>", "<phone>", "<food>", "<movie>"]
COMPLETIONS = ["great tasty lovely", "dull bad", "clean cozy good", "slow buggy awful", "soup was bland", "funny"]
LABELS = [True, False, True, False, False, True]


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    ref = TinyLM(W.tokenizer(), n_layer=1, d_model=32, n_head=2, context=W.CONTEXT)
    return ref, copy.deepcopy(ref)


def data(lm):
    un = tokenise_unpaired(lm, PROMPTS, COMPLETIONS, LABELS)
    pairs = tokenise_paired(lm, PROMPTS[:3], ["great", "good lovely", "superb"], ["bad", "awful", "poor"])
    return un, pairs


def test_kto_step_at_reference_is_half_lambda(models):
    ref, pol = models
    un, _ = data(ref)
    s = LossParams.bind(beta=0.3, desirable_weight=1.5, undesirable_weight=0.8)
    loss, metrics, losses = kto_step(pol, ref, un, range(6), s)
    expected = torch.tensor([0.75 if d else 0.4 for d in LABELS])
    assert torch.equal(losses, expected)
    assert metrics["kl"] == 0.0 and metrics["rewards/chosen"] == 0.0 and metrics["rewards/margins"] == 0.0
    assert metrics["logps/chosen"] < 0 and metrics["logps/rejected"] < 0


def test_kto_step_refuses_batch_of_one(models):
    ref, pol = models
    un, _ = data(ref)
    with pytest.raises(ValueError, match="batch_size"):
        kto_step(pol, ref, un, [0], LossParams.bind())


@pytest.mark.parametrize("method", METHODS)
def test_every_method_steps_and_moves_the_policy(models, method):
    ref, _ = models
    pol = copy.deepcopy(ref)
    un, pairs = data(ref)
    head = nn.Linear(32, 1)
    opt = torch.optim.Adam(list(pol.parameters()) + list(head.parameters()), lr=1e-2)
    idx = [0, 1, 2] if method in ("dpo", "cdpo", "ipo", "slic") else ([0, 2, 5] if method == "sft" else range(6))
    first, metrics, _ = method_step(method, pol, ref, un, pairs, list(idx), LossParams.bind(), head)
    assert torch.isfinite(first) and first.requires_grad
    assert {"loss", "rewards/chosen", "logps/chosen"} <= set(metrics)
    for _ in range(5):
        loss, _, _ = method_step(method, pol, ref, un, pairs, list(idx), LossParams.bind(), head)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after, metrics, _ = method_step(method, pol, ref, un, pairs, list(idx), LossParams.bind(), head)
    if "rewards/margins" in metrics and method != "csft":  # desirable completions gained likelihood against undesirable ones
        assert metrics["rewards/margins"] > 0
    if method != "ppo_offline":  # PPO's surrogate moves with its value head; the margin is the check
        assert after.item() < first.item()


def test_hf_backend_kto_steps(tmp_path):
    pytest.importorskip("transformers")
    from workbench.lib.lm import HFLM, tiny_gpt2

    tok = W.tokenizer()
    path = tiny_gpt2(str(tmp_path / "m"), tok.tokens, n_layer=1, n_embd=32, n_head=2)
    ref = HFLM.from_pretrained(path, device="cpu")
    pol = copy.deepcopy(ref)
    un, _ = data(ref)
    opt = torch.optim.Adam(pol.parameters(), lr=1e-2)
    s = LossParams.bind(beta=0.5)
    losses_seen = []
    for step in range(4):
        loss, metrics, losses = kto_step(pol, ref, un, range(6), s)
        if step == 0:
            assert torch.allclose(losses, torch.full((6,), 0.5))
        losses_seen.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses_seen[-1] < losses_seen[0]


def test_evaluate_reference_against_itself(models):
    from workbench.methods.kto.train import evaluate

    ref, _ = models
    prompts = W.prompts(12)
    ev = evaluate(ref, ref, prompts, prompts, torch.Generator().manual_seed(0), 8, lambda p, c: W.sentiment_score(c),
                  threshold=1, keep_rows=12)
    assert abs(ev.kl) < 1e-4 and ev.kl_se < 1e-4  # log πθ − log πref of the same model: only float noise
    assert len(ev.rows) == 12 and all(r["desirable"] == (r["score"] >= 1) for r in ev.rows)
    assert all(r["score"] == W.sentiment_score(r["completion"]) for r in ev.rows)
    assert ev.reward_rate == pytest.approx(sum(r["desirable"] for r in ev.rows) / 12)


def test_cached_reference_gives_the_same_step_as_a_live_reference(models):
    """precompute_reference on the training batches: at πθ = πref the losses are exactly 0.5·λ again (bit-identical
    shapes), and after updates cached and live steps agree (the reference is fixed)."""
    from workbench.methods.kto.train import fix_kl_pairs, kl_chunks, precompute_reference

    ref, _ = models
    pol = copy.deepcopy(ref)
    live, _ = data(ref)
    cached, _ = data(ref)
    chunks = kl_chunks(len(cached), 3, torch.Generator().manual_seed(0))
    assert sorted(i for c in chunks for i in c) == list(range(6)) and all(len(c) == 3 for c in chunks)
    fix_kl_pairs(cached, chunks)
    fix_kl_pairs(live, chunks)  # the same pairs, reference run every step
    precompute_reference(ref, cached, chunks)
    for chunk in chunks:  # each row's mismatched completion comes from its own batch, rotated by one
        assert [cached.kl_completion_ids[i] for i in chunk] == [cached.completion_ids[chunk[j]] for j in (2, 0, 1)]
    s = LossParams.bind(beta=0.3, desirable_weight=1.5, undesirable_weight=0.8)
    _, m_cached, l_cached = kto_step(pol, ref, cached, chunks[0], s)
    _, m_live, l_live = kto_step(pol, ref, live, chunks[0], s)
    d = cached.desirable[chunks[0]]
    assert torch.equal(l_cached, torch.where(d, 0.75, 0.4)) and torch.equal(l_cached, l_live)
    opt = torch.optim.SGD(pol.parameters(), lr=0.5)
    for _ in range(3):
        loss, _, _ = kto_step(pol, ref, cached, chunks[1], s)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for chunk in chunks:
        a, ma, _ = kto_step(pol, ref, cached, chunk, s)
        b, mb, _ = kto_step(pol, ref, live, chunk, s)
        assert float(a) == pytest.approx(float(b), abs=1e-6) and ma["kl"] == pytest.approx(mb["kl"], abs=1e-6)


def test_cached_reference_for_pairs_matches_the_live_reference(models):
    from workbench.methods.kto.train import paired_step, precompute_reference

    ref, _ = models
    pol = copy.deepcopy(ref)
    _, live = data(ref)
    _, cached = data(ref)
    precompute_reference(ref, cached, [[0, 1], [2]])
    for p in pol.parameters():
        p.data.add_(0.01 * torch.randn_like(p))
    for method in ("dpo", "ipo"):
        a, _, la = paired_step(method, pol, ref, cached, [0, 1, 2], LossParams.bind())
        b, _, lb = paired_step(method, pol, ref, live, [0, 1, 2], LossParams.bind())
        assert torch.allclose(la, lb, atol=1e-6)


def test_fused_gelu_is_the_same_function():
    pytest.importorskip("transformers")
    from transformers.activations import NewGELUActivation

    from workbench.lib.lm.hf import fuse_gelu

    net = nn.Sequential(nn.Linear(4, 8), NewGELUActivation(), nn.Linear(8, 2))
    x = torch.randn(16, 4) * 3
    before = net(x)
    assert fuse_gelu(net) == 1 and isinstance(net[1], nn.GELU)
    assert torch.allclose(net(x), before, atol=1e-6)


def test_heldout_metrics_by_hand(models):
    """Implied rewards, margin and ranking accuracy on held-out rows, checked against their definitions."""
    from workbench.methods.kto.train import heldout_metrics, precompute_reference, ranking_accuracy

    ref, _ = models
    pol = copy.deepcopy(ref)
    un, _ = data(ref)
    precompute_reference(ref, un, [list(range(6))])
    at_start = heldout_metrics(pol, un, beta=0.5)
    assert at_start["rewards/chosen"] == 0 and at_start["rewards/margins"] == 0
    assert at_start["rewards/accuracy"] == 0.5  # all ties
    for p in pol.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    m = heldout_metrics(pol, un, beta=0.5)
    live = pol.score(PROMPTS, COMPLETIONS, add_eos=True).logps
    r = 0.5 * (live - un.ref_logps)
    d = torch.tensor(LABELS)
    assert m["rewards/chosen"] == pytest.approx(float(r[d].mean()), abs=1e-5)
    assert m["rewards/margins"] == pytest.approx(float(r[d].mean() - r[~d].mean()), abs=1e-5)
    assert m["logps_change/rejected"] == pytest.approx(float((live - un.ref_logps)[~d].mean()), abs=1e-5)
    # accuracy: same-prompt pairs only (<food>: rows 0 good, 4 bad; <movie>: row 5 good, 1 bad)
    expected = ((r[0] > r[4]).float() + (r[5] > r[1]).float()) / 2
    assert m["rewards/accuracy"] == pytest.approx(float(expected))
    # no prompt with both kinds: all desirable/undesirable pairs (the AUC)
    auc = ranking_accuracy(torch.tensor([3.0, 1.0, 2.0]), torch.tensor([True, False, False]), torch.tensor([1, 2, 3]))
    assert auc == 1.0


def test_rewards_from_a_callable_or_refused_clearly():
    from workbench.methods.kto.rewards import desirable, load_reward
    from workbench.core.params import ConfigError

    fn = load_reward("operator:contains")  # any callable(prompt, completion)
    assert fn("<food> great", "great") is True and fn("<food>", "bad") is False
    assert desirable([True, False, 2.0, -1.0], threshold=0.5) == [True, False, True, False]
    for bad in ("nosuchmodule:f", "workbench.methods.kto.toyworld:nosuch", "no-colon"):
        with pytest.raises(ConfigError, match="parameter 'reward'"):
            load_reward(bad)
