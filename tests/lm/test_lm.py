"""The LM toolkit: tokenizers, padding invariance, filtering, and sampling = scoring log-probs."""
import math

import pytest
import torch

from workbench.lib.lm import CharTokenizer, TinyLM, WordTokenizer, filter_logits

CORPUS = ["<food> great tasty bad food", "<movie> fun boring plot", "<food> awful lovely"]


@pytest.fixture(scope="module")
def lm() -> TinyLM:
    torch.manual_seed(0)
    tok = WordTokenizer.from_corpus(CORPUS, specials=["<|good|>", "<|bad|>"])
    return TinyLM(tok, n_layer=2, d_model=32, n_head=4, context=24).eval()


def test_word_tokenizer_roundtrip_and_specials():
    tok = WordTokenizer.from_corpus(CORPUS, specials=["<|good|>"])
    assert tok.tokens[:5] == ["<pad>", "<bos>", "<eos>", "<unk>", "<|good|>"]
    ids = tok.encode("<|good|> <food>  great   tasty")
    assert tok.decode(ids) == "<|good|> <food> great tasty"
    assert tok.encode("great zebra") == [tok.index["great"], tok.unk_id]
    assert tok.decode([tok.bos_id, tok.index["fun"], tok.eos_id, tok.pad_id]) == "fun"
    again = WordTokenizer.from_dict(tok.to_dict())
    assert again.tokens == tok.tokens and again.encode("<|good|>great") == tok.encode("<|good|> great")


def test_char_tokenizer_roundtrip():
    tok = CharTokenizer.from_corpus(["hello world"], specials=["<|good|>"])
    text = "<|good|>hello world"
    assert tok.decode(tok.encode(text)) == text
    assert len(tok.encode("<|good|>ab")) == 3


def test_positions_make_padding_invisible(lm):
    ids = torch.tensor([[1, 5, 7, 9]])
    ref = lm(ids, torch.ones_like(ids, dtype=torch.bool)).logits
    left = torch.tensor([[0, 0, 1, 5, 7, 9]])
    lmask = torch.tensor([[0, 0, 1, 1, 1, 1]], dtype=torch.bool)
    right = torch.tensor([[1, 5, 7, 9, 0, 0]])
    assert torch.allclose(lm(left, lmask).logits[:, 2:], ref, atol=1e-5)
    assert torch.allclose(lm(right, lmask.flip(-1)).logits[:, :4], ref, atol=1e-5)
    assert not torch.isnan(lm(left, lmask).logits).any()


def test_score_is_chain_rule_of_softmax(lm):
    prompt, completion = "<food>", "great tasty bad"
    scores = lm.score([prompt, "<movie>"], [completion, "fun"], add_eos=True)
    ids = lm.encode_prompt(prompt) + lm.encode(completion) + [lm.eos_id]
    logp = lm(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.bool)).logits.log_softmax(-1)[0]
    manual = [logp[t - 1, ids[t]].item() for t in range(2, len(ids))]
    assert scores.mask[0].sum().item() == len(manual) == 4
    assert scores.token_logps[0][scores.mask[0]].tolist() == pytest.approx(manual, abs=1e-5)
    assert scores.logps[0].item() == pytest.approx(sum(manual), abs=1e-5)
    assert torch.allclose(scores.logps, scores.token_logps.sum(-1))
    assert scores.mask[1].sum().item() == 2


def test_sampling_logps_equal_scoring_logps(lm):
    g = torch.Generator().manual_seed(1)
    prompts = ["<food>", "<|good|> <movie>", "", "<food> great"] * 4
    samples = lm.sample(prompts, max_new_tokens=6, generator=g, batch_size=7)
    reasons = {s.finish_reason for s in samples}
    assert "length" in reasons
    scored = lm.score([s.prompt for s in samples], [s.text for s in samples], add_eos=[s.ended for s in samples])
    assert scored.logps.tolist() == pytest.approx([s.logp for s in samples], abs=1e-4)
    for s in samples:
        assert lm.pad_id not in s.token_ids and lm.bos_id not in s.token_ids


def test_sampling_with_stop_strings_and_truncation(lm):
    g = torch.Generator().manual_seed(2)
    samples = lm.sample(["<food>"] * 32, max_new_tokens=12, generator=g, stop=["bad"], top_k=5, top_p=0.9,
                        temperature=1.5)
    assert any(s.finish_reason == "stop" for s in samples)
    for s in samples:
        assert "bad" not in s.text
        assert len(s.token_ids) <= 12
    scored = lm.score([s.prompt for s in samples], [s.text for s in samples], add_eos=[s.ended for s in samples])
    assert scored.logps.tolist() == pytest.approx([s.logp for s in samples], abs=1e-4)


def test_sampling_reproducible_and_greedy(lm):
    a = lm.sample(["<food>"] * 4, generator=torch.Generator().manual_seed(3), max_new_tokens=5)
    b = lm.sample(["<food>"] * 4, generator=torch.Generator().manual_seed(3), max_new_tokens=5)
    assert [s.token_ids for s in a] == [s.token_ids for s in b]
    g1 = lm.sample(["<movie>"] * 3, greedy=True, max_new_tokens=5)
    assert len({tuple(s.token_ids) for s in g1}) == 1


def test_context_is_respected(lm):
    samples = lm.sample(["<food>"], max_new_tokens=100, temperature=5.0, generator=torch.Generator().manual_seed(0))
    assert len(samples[0].token_ids) <= lm.context - 2
    with pytest.raises(ValueError, match="context"):
        lm.encode_batch(["<food>"], [" ".join(["great"] * 30)])


def test_filter_logits():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    k2 = filter_logits(logits, top_k=2)
    assert torch.isinf(k2[0, 2:]).all() and torch.isfinite(k2[0, :2]).all()
    p = filter_logits(logits, top_p=0.8)  # 0.5 + 0.3 reaches 0.8: keep two
    assert torch.isfinite(p[0, :2]).all() and torch.isinf(p[0, 2:]).all()
    p = filter_logits(logits, top_p=0.81)
    assert torch.isfinite(p[0, :3]).all() and torch.isinf(p[0, 3])
    t = filter_logits(logits, temperature=2.0)
    assert torch.allclose(t.softmax(-1), torch.tensor([[0.5, 0.3, 0.15, 0.05]]).sqrt() / sum(
        math.sqrt(x) for x in (0.5, 0.3, 0.15, 0.05)))
    with pytest.raises(ValueError, match="top_p"):
        filter_logits(logits, top_p=0.0)
    with pytest.raises(ValueError, match="temperature"):
        filter_logits(logits, temperature=0.0)


def test_tinygpt_bad_shape():
    tok = WordTokenizer.from_corpus(CORPUS)
    with pytest.raises(ValueError, match="d_model"):
        TinyLM(tok, d_model=30, n_head=4)


def test_tiny_lm_spec_is_plain_and_rebuilds_the_model(lm):
    """``TinyLM(**lm.spec())`` (the default build of ``ctx.save_model``) and ``build_tiny_lm`` rebuild the same
    architecture; with the state dict, the same numbers. The spec is plain values (weights-only loadable)."""
    import io
    import json

    from workbench.lib.lm import build_tiny_lm
    from workbench.store.models import pack, unpack

    spec = lm.spec()
    assert json.loads(json.dumps(spec)) == spec  # plain values only
    ids = torch.tensor([[1, 5, 7, 9]])
    mask = torch.ones_like(ids, dtype=torch.bool)
    for build in (None, build_tiny_lm):
        payload = pack(lm, spec, build)
        buf = io.BytesIO()
        torch.save(payload, buf)
        again = unpack(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
        assert isinstance(again, TinyLM) and again.tokenizer.tokens == lm.tokenizer.tokens
        assert torch.allclose(again(ids, mask).logits, lm(ids, mask).logits)
