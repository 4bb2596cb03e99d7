"""Inference on a small discrete model that can be enumerated: importance, rejection and SMC marginals
agree with the exact posterior; beam search with a wide beam is exact; rejection keeps only traces
that satisfy every observation."""
import itertools
import math

import pytest

from workbench.methods.cascades import (RETURN, Categorical, Constant, effective_sample_size, factor, infer, infer_many,
                                observe, reject, sample)

PRIOR = {0: 0.5, 1: 0.3, 2: 0.2}
STAY = 0.7
EMIT = {0: {"lo": 0.8, "hi": 0.2}, 1: {"lo": 0.5, "hi": 0.5}, 2: {"lo": 0.1, "hi": 0.9}}
OBS = ("hi", "hi", "lo", "hi")


def transition(z):
    return {k: (STAY if k == z else (1 - STAY) / 2) for k in PRIOR}


def hmm(obs=OBS):
    """A three-state hidden Markov model with observations (SMC resamples between them) and a factor."""
    z = yield sample(Categorical(PRIOR), "z0")
    yield observe(Categorical(EMIT[z]), obs[0], "y0")
    for t in range(1, len(obs)):
        z = yield sample(Categorical(transition(z)), f"z{t}")
        yield observe(Categorical(EMIT[z]), obs[t], f"y{t}")
    yield factor(-0.5 * (z == 1), "penalty")
    return z


def exact_hmm(obs=OBS) -> tuple[dict[str, dict[int, float]], float]:
    """Marginals of every z_t and of the return value, and log Z, by enumerating every path."""
    joint = {}
    for path in itertools.product(PRIOR, repeat=len(obs)):
        p = PRIOR[path[0]] * EMIT[path[0]][obs[0]]
        for t in range(1, len(obs)):
            p *= transition(path[t - 1])[path[t]] * EMIT[path[t]][obs[t]]
        p *= math.exp(-0.5 * (path[-1] == 1))
        joint[path] = p
    z = sum(joint.values())
    marg = {f"z{t}": {k: 0.0 for k in PRIOR} for t in range(len(obs))}
    for path, p in joint.items():
        for t, k in enumerate(path):
            marg[f"z{t}"][k] += p / z
    marg[RETURN] = marg[f"z{len(obs) - 1}"]
    return marg, math.log(z)


def max_error(post, exact) -> float:
    worst = 0.0
    for name, probs in exact.items():
        got = post.marginal(name)
        worst = max(worst, max(abs(got.get(k, 0.0) - p) for k, p in probs.items()))
    return worst


@pytest.fixture(scope="module")
def exact():
    return exact_hmm()


@pytest.mark.parametrize("method,n,options,tol", [
    ("importance", 2000, {}, 0.05),
    ("smc", 2000, {"ess_threshold": 0.8}, 0.05),
    ("smc", 2000, {"ess_threshold": 0.8, "resampling": "multinomial"}, 0.05),
])
def test_marginals_match_enumeration(exact, method, n, options, tol):
    marg, log_z = exact
    post = infer(hmm, method, n, seed=1, **options)
    assert max_error(post, marg) < tol
    if method in ("importance", "smc"):
        assert post.log_evidence == pytest.approx(log_z, abs=0.05)
    if method == "smc":
        assert post.info["resamples"] >= 2  # the threshold was crossed between observations


def test_rejection_marginals_match_enumeration():
    """Rejection on the first two observations (acceptance ≈ Z ≈ 0.2)."""
    obs = OBS[:2]
    marg, log_z = exact_hmm(obs)
    post = infer(hmm, "rejection", 1500, seed=1, args=(obs,))
    assert max_error(post, marg) < 0.045
    assert post.info["acceptance_rate"] == pytest.approx(math.exp(log_z), abs=0.03)


def test_wide_beam_is_exact(exact):
    """With a beam as wide as the whole path space, beam search enumerates it: exact marginals."""
    marg, log_z = exact
    post = infer(hmm, "beam", 81, seed=0)
    assert len(post) == 81
    assert max_error(post, marg) < 1e-9
    assert math.log(sum(math.exp(s) for s in post.info["scores"])) == pytest.approx(log_z, abs=1e-9)


def test_narrow_beam_keeps_the_best_path(exact):
    best = infer(hmm, "beam", 81, seed=0).traces[0]
    narrow = infer(hmm, "beam", 3, seed=0)
    assert narrow.traces[0].log_joint <= best.log_joint + 1e-12
    scores = narrow.info["scores"]
    assert len(narrow) == 3 and scores == sorted(scores, reverse=True)
    assert len({tuple(t.values().items()) for t in narrow.traces}) == 3  # three distinct paths


def test_forward_samples_the_prior():
    post = infer(hmm, "forward", 3000, seed=2)
    assert post.ess == pytest.approx(3000)
    assert max(abs(post.marginal("z0")[k] - p) for k, p in PRIOR.items()) < 0.04


def hard_model():
    x = yield sample(Categorical({i: 1 for i in range(6)}), "x")
    y = yield sample(Categorical({i: 1 for i in range(6)}), "y")
    yield observe(Constant(x + y > 6), True, "sum_gt_6")
    yield observe(Categorical({True: float(x != y), False: float(x == y)}), True, "different")
    return x + y


def test_rejection_keeps_only_traces_that_satisfy_every_observation():
    post = infer(hard_model, "rejection", 300, seed=0)
    assert len(post) == 300 and post.rejected
    for t in post.traces:
        assert t["x"] + t["y"] > 6 and t["x"] != t["y"] and t.status == "done"
    for t in post.rejected:
        assert not (t["x"] + t["y"] > 6 and t["x"] != t["y"]) and t.status == "rejected"
    pairs = [(x, y) for x in range(6) for y in range(6) if x + y > 6 and x != y]
    assert post.info["acceptance_rate"] == pytest.approx(len(pairs) / 36, abs=0.05)  # 8/36
    exact = {s: sum(x + y == s for x, y in pairs) / len(pairs) for s in range(7, 12)}
    got = post.marginal()
    assert max(abs(got.get(s, 0) - p) for s, p in exact.items()) < 0.08


def test_rejection_runs_out_of_tries():
    def impossible():
        yield sample(Categorical({0: 1.0}), "x")
        yield reject("never")

    post = infer(impossible, "rejection", 5, max_tries=20)
    assert len(post) == 0 and len(post.rejected) == 20 and post.info["tries"] == 20
    assert all(t.reason == "never" for t in post.rejected)
    with pytest.raises(ValueError, match="no trace"):
        post.marginal()


def test_rejection_refuses_positive_factors():
    def bonus():
        yield factor(1.0, "bonus")

    with pytest.raises(ValueError, match="<= 1"):
        infer(bonus, "rejection", 2)


def test_self_consistency_is_the_majority_of_forward_answers():
    def noisy():
        thought = yield sample(Categorical({"a": 0.3, "b": 0.3, "c": 0.4}), "thought")
        answer = yield sample(Categorical({1: 0.6, 2: 0.4} if thought != "c" else {2: 0.5, 1: 0.5}), "answer")
        return answer

    post = infer(noisy, "self_consistency", 2000, seed=3, answer="answer")
    forward = infer(noisy, "forward", 2000, seed=3)
    assert post.info["answer"] == forward.map("answer") == 1
    assert sum(post.info["votes"].values()) == 2000
    # marginalising the thought: p(answer = 1) = 0.6·0.6 + 0.4·0.5 = 0.56
    assert post.marginal("answer")[1] == pytest.approx(0.56, abs=0.03)


def test_infer_many_gives_each_cascade_its_own_posterior(exact):
    marg, _ = exact

    def constant_model():
        z = yield sample(Categorical({7: 1.0}), "z")
        return z

    a, b = infer_many([hmm, constant_model], "smc", 1500, seed=4, ess_threshold=0.8)
    assert max_error(a, marg) < 0.06
    assert b.marginal() == {7: 1.0}


def test_effective_sample_size():
    assert effective_sample_size([0.0] * 10) == pytest.approx(10)
    assert effective_sample_size([0.0] + [-math.inf] * 9) == pytest.approx(1)
    w = [math.log(x) for x in (1, 2, 3)]
    assert effective_sample_size(w) == pytest.approx(36 / 14)


def test_infer_checks_its_arguments():
    with pytest.raises(ValueError, match="allowed: forward"):
        infer(hmm, "gibbs", 2)
    with pytest.raises(ValueError, match="n = 0"):
        infer(hmm, "forward", 0)
    with pytest.raises(TypeError, match="unknown option"):
        infer(hmm, "smc", 2, ess_treshold=0.5)
    with pytest.raises(ValueError, match="ess_threshold"):
        infer(hmm, "smc", 2, ess_threshold=2.0)


def test_same_seed_same_posterior():
    a = infer(hmm, "smc", 200, seed=7, ess_threshold=0.9)
    b = infer(hmm, "smc", 200, seed=7, ess_threshold=0.9)
    assert [t.values() for t in a.traces] == [t.values() for t in b.traces]
    assert a.log_weights == b.log_weights
