"""The same interface over a Hugging Face model: a tiny random GPT-2 built and saved locally."""
import pytest
import torch

transformers = pytest.importorskip("transformers")

from workbench.lib.lm import HFLM, tiny_gpt2  # noqa: E402

WORDS = "<food> <movie> great tasty bad awful fun boring plot lovely".split()


@pytest.fixture(scope="module")
def hflm(tmp_path_factory) -> HFLM:
    path = tiny_gpt2(str(tmp_path_factory.mktemp("tiny_gpt2")), WORDS, n_layer=2, n_embd=32, n_head=2)
    return HFLM.from_pretrained(path, device="cpu").eval()


def test_loads_offline_and_roundtrips(hflm):
    assert hflm.net.config.model_type == "gpt2"
    assert next(hflm.parameters()).dtype == torch.float32
    assert hflm.decode(hflm.encode("great tasty bad")) == "great tasty bad"
    assert hflm.encode_prompt("") == [hflm.bos_id]


def test_hf_sampling_logps_equal_scoring(hflm):
    g = torch.Generator().manual_seed(0)
    samples = hflm.sample(["<food>", "<movie> fun", ""] * 4, max_new_tokens=6, generator=g, batch_size=5)
    scored = hflm.score([s.prompt for s in samples], [s.text for s in samples], add_eos=[s.ended for s in samples])
    assert scored.logps.tolist() == pytest.approx([s.logp for s in samples], abs=1e-4)
    assert all(t not in hflm.banned_ids for s in samples for t in s.token_ids)


def test_hf_padding_invisible(hflm):
    one = hflm.score(["<food>"], ["great tasty"], add_eos=True)
    many = hflm.score(["<food>", "<movie> fun fun fun", "<food>"], ["great tasty", "bad", "great tasty"], add_eos=True)
    assert many.logps[0].item() == pytest.approx(one.logps[0].item(), abs=1e-5)
    assert many.logps[2].item() == pytest.approx(one.logps[0].item(), abs=1e-5)


def test_kv_cache_decoding_equals_recomputation(hflm, monkeypatch):
    from workbench.lib.lm import CausalLM

    prompts = ["<food> great", "", "<movie> fun boring plot"]
    cached = hflm.sample(prompts, max_new_tokens=8, greedy=True)
    monkeypatch.setattr(hflm, "next_token_logits", lambda ids, attn, cache=None: CausalLM.next_token_logits(
        hflm, ids, attn, cache))
    plain = hflm.sample(prompts, max_new_tokens=8, greedy=True)
    assert [s.token_ids for s in cached] == [s.token_ids for s in plain]
    assert [s.logp for s in cached] == pytest.approx([s.logp for s in plain], abs=1e-4)
