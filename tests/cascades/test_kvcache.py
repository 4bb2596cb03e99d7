"""Cached decoding gives the same samples and log-probs as recomputing the prefix."""
import pytest
import torch

from workbench.methods.cascades.kvcache import CachedTinyLM
from workbench.lib.lm import CharTokenizer, TinyLM


def test_cached_decoding_matches_full_recomputation():
    torch.manual_seed(0)
    lm = TinyLM(CharTokenizer(list("0123456789+=\n:AQ")), n_layer=2, d_model=32, n_head=4, context=40).eval()
    cached = CachedTinyLM.from_lm(lm).eval()
    prompts = ["Q:12+5\n", "Q:1+2\n1+2", "", "Q:99+999\n9+9+0=18\n"]  # different lengths: left padding
    ids = [lm.encode_prompt(p) for p in prompts]
    width = max(map(len, ids))
    x = torch.tensor([[0] * (width - len(i)) + i for i in ids])
    mask = x != 0
    ref, cache = lm.next_token_logits(x, mask)
    got, cache = cached.next_token_logits(x, mask)
    assert torch.allclose(got, ref, atol=1e-5)
    for step in range(5):  # append a column (one row finished: a pad with mask False)
        nxt = ref.argmax(-1)
        alive = torch.tensor([True, True, step < 2, True])
        nxt = torch.where(alive, nxt, torch.zeros_like(nxt))
        x, mask = torch.cat([x, nxt[:, None]], 1), torch.cat([mask, alive[:, None]], 1)
        ref, _ = lm.next_token_logits(x, mask)
        got, cache = cached.next_token_logits(x, mask, cache)
        assert torch.allclose(got[alive], ref[alive], atol=1e-4)
    a = lm.sample(prompts * 4, max_new_tokens=10, stop=["\n"], generator=torch.Generator().manual_seed(3))
    b = cached.sample(prompts * 4, max_new_tokens=10, stop=["\n"], generator=torch.Generator().manual_seed(3))
    assert [s.text for s in a] == [s.text for s in b]
    assert [s.logp for s in a] == pytest.approx([s.logp for s in b], abs=1e-4)
