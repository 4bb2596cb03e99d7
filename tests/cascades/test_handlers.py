"""Effect handlers compose: trace ∘ replay reproduces a trace exactly, condition fixes values, seed
makes runs repeatable, stop-on-reject ends an execution; nested cascades keep names apart."""
import math

import pytest

from workbench.methods.cascades import (Categorical, Constant, Rejected, String, condition, factor, infer, log, observe,
                                reject, replay, run, sample, scope, seed, stop_on_reject, trace)

from .scripted import ScriptedLM

LM = ScriptedLM()


def model():
    x = yield sample(Categorical({0: 0.2, 1: 0.5, 2: 0.3}), "x")
    text = yield sample(String(LM, "a" * (x + 1), stop="\n", max_tokens=4), "text")
    yield observe(Categorical({True: 0.9, False: 0.1}), len(text) > x, "long_enough")
    y = yield sample(String(LM, text + "b", stop="\n", max_tokens=3, temperature=0.8), "y")
    yield log(len(text + y), "length")
    return text + y


def key(t):
    return [(s.name, s.kind, s.value, s.log_prob, s.observed, s.parents) for s in t], t.value, t.log_weight


def test_trace_of_replay_reproduces_a_trace_exactly():
    for s in range(5):
        original = run(model, seed=s)
        h = trace(replay(model, original))
        calls = dict(LM._cascades_backend.stats)
        again = run(h)  # any seed: every sample is replayed
        assert key(h.trace) == key(original) == key(again)
        # replayed strings keep their recorded log-probs: no sampling, no scoring of the samples
        stats = LM._cascades_backend.stats
        assert stats["sample_calls"] == calls["sample_calls"]


def test_replay_rescores_when_the_distribution_changed():
    original = run(model, seed=1)

    def changed():
        x = yield sample(Categorical({0: 0.5, 1: 0.25, 2: 0.25}), "x")
        return x

    t = run(replay(changed, original))
    assert t["x"] == original["x"]
    assert t.sites["x"].log_prob == pytest.approx(math.log({0: 0.5, 1: 0.25, 2: 0.25}[original["x"]]))


def test_seed_makes_runs_repeatable():
    a, b = run(seed(model, 11)), run(seed(model, 11))
    assert key(a) == key(b)
    values = {run(seed(model, s))["text"] for s in range(12)}
    assert len(values) > 1


def test_condition_fixes_values_and_scores_them():
    cond = condition(model, {"x": 2, "text": "ab"})
    for s in range(10):
        t = run(cond, seed=s)
        assert t["x"] == 2 and t["text"] == "ab"
        assert t.sites["x"].observed and t.sites["text"].observed
        lp_text = String(LM, "aaa", stop="\n", max_tokens=4).log_prob("ab")
        expected = math.log(0.3) + lp_text + math.log(0.1)  # len("ab") > 2 is False: p = 0.1
        assert t.log_weight == pytest.approx(expected, abs=1e-6)


def test_condition_gives_the_exact_conditional_under_inference():
    def two():
        a = yield sample(Categorical({0: 0.5, 1: 0.5}), "a")
        b = yield sample(Categorical({0: 0.8, 1: 0.2} if a == 0 else {0: 0.3, 1: 0.7}), "b")
        return a + b

    post = infer(condition(two, {"b": 1}), "importance", 3000, seed=0)
    # p(a = 1 | b = 1) = 0.5·0.7 / (0.5·0.2 + 0.5·0.7) = 0.7777…
    assert post.marginal("a")[1] == pytest.approx(0.35 / 0.45, abs=0.03)
    assert all(t["b"] == 1 for t in post.traces)


def test_handlers_compose_in_either_order():
    a = run(condition(seed(model, 3), {"x": 1}))
    b = run(seed(condition(model, {"x": 1}), 3))
    assert key(a) == key(b)


def counted():
    counted.after = getattr(counted, "after", 0)
    x = yield sample(Categorical({0: 0.5, 1: 0.5}), "x")
    if x == 0:
        yield reject("x is zero")
    yield factor(-math.inf if x == 2 else 0.0, "never")
    counted.after += 1
    return x


def test_stop_on_reject_ends_the_execution():
    h = trace(stop_on_reject(counted))
    gen = h()
    msg = next(gen)
    msg.value, msg.log_prob = 0, math.log(0.5)  # perform the sample by hand: x = 0
    msg = gen.send(0)
    assert msg.kind == "reject"
    msg.log_prob = -math.inf
    before = counted.after
    with pytest.raises(Rejected, match="x is zero"):
        gen.send(msg.value)
    assert counted.after == before and h.trace.status == "rejected" and h.trace.reason == "x is zero"
    # the runtime stops a zero-weight execution on its own too
    for s in range(6):
        t = run(counted, seed=s)
        assert (t.status == "rejected") == (t["x"] == 0)
        assert ("never" in t) == (t["x"] == 1)


def inner(lm, prompt):
    q = yield sample(String(lm, prompt, stop="\n", max_tokens=3), "question")
    ok = yield sample(Categorical({True: 0.5, False: 0.5}), "ok", parents=["question"])
    return q, ok


def test_nested_cascades_keep_names_apart():
    def outer():
        a = yield from scope("alice", inner(LM, "a"))
        b = yield from scope("bob", inner(LM, "b"))
        c = yield from scope("game", scope("carol", inner(LM, "ab")))
        return a, b, c

    t = run(outer, seed=0)
    assert list(t.sites) == ["alice/question", "alice/ok", "bob/question", "bob/ok", "game/carol/question",
                             "game/carol/ok"]
    assert t.sites["bob/ok"].parents == ("bob/question",)  # explicit parents are scoped too
    assert t.value == tuple((t[f"{p}/question"], t[f"{p}/ok"]) for p in ("alice", "bob", "game/carol"))
    # conditioning reaches into a scope by the full name
    c = run(condition(outer, {"bob/question": "ba"}), seed=0)
    assert c["bob/question"] == "ba" and c["alice/question"] == t["alice/question"]

    def clash():
        yield from inner(LM, "a")
        yield from inner(LM, "b")

    with pytest.raises(ValueError, match="used twice"):
        run(clash, seed=0)


def test_bad_cascades_are_reported():
    def not_an_effect():
        yield 3

    with pytest.raises(TypeError, match="yield effects"):
        run(not_an_effect)

    def plain():
        return 1

    with pytest.raises(TypeError, match="generator"):
        run(plain)

    def random_names():
        import random

        yield sample(Constant(1), f"x{random.random()}")

    post = infer(random_names, "smc", 3)  # no observation: no resampling, no replay needed
    assert len(post) == 3

    calls = {"n": 0}

    def hidden_randomness():
        calls["n"] += 1
        x = yield sample(Categorical({0: 0.5, 1: 0.5}), f"x{calls['n']}")
        yield observe(Categorical({0: 0.9, 1: 0.1} if x == 0 else {0: 0.1, 1: 0.9}), 0, "y")
        yield sample(Constant(1), "z")

    with pytest.raises(RuntimeError, match="deterministic"):
        infer(hidden_randomness, "smc", 8, ess_threshold=1.0)
