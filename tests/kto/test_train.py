"""One step of every method on a tiny model; KTO at πθ = πref; the HF path for a few steps."""
import copy

import pytest
import torch
import torch.nn as nn

from workbench.kto import toyworld as W
from workbench.kto.train import (METHODS, LossParams, kto_step, method_step, tokenise_paired, tokenise_unpaired)
from workbench.lm import TinyLM

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
    from workbench.lm import HFLM, tiny_gpt2

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
    from workbench.kto.train import evaluate

    ref, _ = models
    prompts = W.prompts(12)
    ev = evaluate(ref, ref, prompts, prompts, torch.Generator().manual_seed(0), 8, W.sentiment_score,
                  threshold=1, keep_rows=12)
    assert abs(ev.kl) < 1e-4  # log πθ − log πref of the same model: only float noise
    assert len(ev.rows) == 12 and all(r["desirable"] == (r["score"] >= 1) for r in ev.rows)
    assert all(r["score"] == W.sentiment_score(r["completion"]) for r in ev.rows)
    assert ev.reward_rate == pytest.approx(sum(r["desirable"] for r in ev.rows) / 12)
