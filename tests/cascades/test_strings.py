"""String distributions: the log-prob of a sampled string equals its score, and scores are the exact
probability that sampling returns the string (they sum to one over every possible string)."""
import itertools
import math
from collections import Counter

import pytest
import torch

from workbench.methods.cascades import LocalBackend, String, infer, run, sample
from workbench.lib.lm import CharTokenizer, TinyLM

from .scripted import ScriptedLM


def all_strings(alphabet: str, max_len: int):
    for k in range(max_len + 1):
        for chars in itertools.product(alphabet, repeat=k):
            yield "".join(chars)


@pytest.mark.parametrize("stop,temperature", [(("\n",), 1.0), (("\n",), 0.6), (("ab",), 1.0), ((), 1.3),
                                              (("\n", "ba"), 0.8)])
def test_string_probabilities_sum_to_one(stop, temperature):
    """Σ_s P(sampling returns s) = 1 over all strings up to max_tokens: end of text, stop strings and
    the token budget are all accounted for, at any temperature."""
    lm = ScriptedLM()
    max_tokens = 4
    values = [s for s in all_strings("ab\n", max_tokens)]
    dist = String(lm, "a", stop=stop, max_tokens=max_tokens, temperature=temperature)
    lps = String.log_prob_batch([dist] * len(values), values)
    assert math.fsum(math.exp(lp) for lp in lps) == pytest.approx(1.0, abs=1e-6)  # float32 scores
    for v, lp in zip(values, lps):  # a value never contains a stop string
        if any(s in v for s in stop):
            assert lp == -math.inf


def test_string_probability_by_hand():
    """P("ab" then end of text | prompt "b") from the bigram table, multiplied out by hand."""
    lm = ScriptedLM()
    t = 0.7
    p = lambda prev, nxt: lm.next_prob(prev, t)[nxt]  # noqa: E731
    expected = p("b", "a") * p("a", "b") * p("b", "<eos>") + p("b", "a") * p("a", "b") * p("b", "\n")
    got = String(lm, "b", stop="\n", max_tokens=5, temperature=t).log_prob("ab")
    assert got == pytest.approx(math.log(expected), abs=1e-6)
    # with a budget of exactly two tokens, "ab" can also end by filling it
    got2 = String(lm, "b", stop="\n", max_tokens=2, temperature=t).log_prob("ab")
    assert got2 == pytest.approx(math.log(p("b", "a") * p("a", "b")), abs=1e-6)


def test_sampling_frequencies_match_scores():
    lm = ScriptedLM()
    dist = String(lm, "", stop="\n", max_tokens=3, temperature=1.0)
    g = torch.Generator().manual_seed(3)
    n = 3000
    drawn = LocalBackend(lm).sample([""] * n, max_tokens=3, stop=("\n",), generator=g)
    counts = Counter(c.text for c in drawn)
    for value, k in counts.most_common(6):
        p = math.exp(dist.log_prob(value))
        assert abs(k / n - p) < 4 * math.sqrt(p * (1 - p) / n) + 1e-3, value


def test_sampled_log_prob_equals_score_tiny_transformer():
    """The log-prob recorded for a sampled string equals the score of the same string (and, for
    samples that ended with end of text at temperature 1, the decoder's own path log-prob)."""
    torch.manual_seed(0)
    tok = CharTokenizer(list("0123456789+=\n:"))
    lm = TinyLM(tok, n_layer=1, d_model=16, n_head=2, context=40).eval()

    def cascade():
        x = yield sample(String(lm, "1+2=", stop="\n", max_tokens=8), "x")
        y = yield sample(String(lm, f"1+2={x}\n", max_tokens=6, temperature=0.7), "y")
        return x, y

    post = infer(cascade, "forward", 24, seed=1)
    for t in post.traces:
        for name in ("x", "y"):
            site = t.sites[name]
            alone = site.dist.log_prob(site.value)  # scored on its own, not in the batch
            assert site.log_prob == pytest.approx(alone, abs=1e-4)
            assert math.isfinite(site.log_prob)


def test_score_equals_the_decoders_path_log_prob():
    """Without stop strings, a sample ends with end of text or by filling the budget; its score is then
    the chain-rule log-prob of the decoded tokens that the toolkit's decoder reports."""
    lm = ScriptedLM()
    samples = lm.sample(["a"] * 64, max_new_tokens=5, generator=torch.Generator().manual_seed(4))
    assert {s.finish_reason for s in samples} == {"eos", "length"}
    scores = String.log_prob_batch([String(lm, "a", max_tokens=5)] * len(samples), [s.text for s in samples])
    assert scores == pytest.approx([s.logp for s in samples], abs=1e-5)


def test_string_validation():
    lm = ScriptedLM()
    with pytest.raises(ValueError, match="max_tokens"):
        String(lm, "a", max_tokens=0)
    with pytest.raises(ValueError, match="temperature"):
        String(lm, "a", temperature=0)
    with pytest.raises(ValueError, match="stop"):
        String(lm, "a", stop=[""])
    with pytest.raises(TypeError, match="Backend"):
        String(object(), "a")
    assert String(lm, "a").log_prob(3) == -math.inf  # not a string


def test_run_records_string_sites_with_parents():
    lm = ScriptedLM()

    def cascade():
        x = yield sample(String(lm, "a", stop="\n", max_tokens=3), "x")
        y = yield sample(String(lm, "b" + x + "\n", stop="\n", max_tokens=3), "y")
        return x + y

    for s in range(20):
        t = run(cascade, seed=s)
        if len(t["x"]) >= 2:
            assert t.sites["y"].parents == ("x",)
            break
    else:
        pytest.fail("no sample with a two-character x")


def test_a_full_context_gives_the_empty_string_with_certainty():
    lm = ScriptedLM(context=6)
    dist = String(lm, "abab", max_tokens=3)  # bos + 4 tokens: room for 1 more
    assert sum(math.exp(dist.log_prob(v)) for v in ("a", "b", "\n", "")) == pytest.approx(1.0, abs=1e-6)
    full = String(lm, "ababa", max_tokens=3)  # no room left
    assert full.log_prob("") == 0.0 and full.log_prob("a") == -math.inf
    assert full.sample_with_log_prob(torch.Generator().manual_seed(0)) == ("", 0.0)
    assert String(lm, "ababab", max_tokens=3).log_prob("") == 0.0  # even a prompt longer than the context
