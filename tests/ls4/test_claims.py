"""The LS4 claims' decisions on constructed inputs: a worse LS4 never holds, a straddling interval is
inconclusive, a failed precondition is inconclusive with its reason; the log-log slope and its interval."""
import math

import numpy as np
import pytest
import torch

from workbench.methods.ls4 import claims as C
from workbench.methods.ls4.data import square_wave


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def _series(n=64, L=24, shift=0.0, seed=0):
    return torch.randn(n, L, 1, generator=_g(seed)) + shift


def _arms(better: bool):
    """Measurements where LS4 is clearly better (or, swapped, clearly worse) on all three scores."""
    real = _series(seed=1)
    good = {"generated": _series(seed=2), "classification": 0.69 + 0.01 * torch.randn(40, generator=_g(3)),
            "prediction": 0.1 + 0.01 * torch.rand(64, generator=_g(4))}
    bad = {"generated": _series(shift=2.0, seed=5), "classification": 0.1 + 0.01 * torch.randn(40, generator=_g(6)),
           "prediction": 1.0 + 0.01 * torch.rand(64, generator=_g(7))}
    return real, ({"method": good, "arm": bad} if better else {"method": bad, "arm": good})


def test_a_better_ls4_holds_and_a_worse_one_fails_on_every_score():
    real, arms = _arms(better=True)
    claims = C.generation_claims("square", real, None, arms, _g(), real_series=False, resamples=200)
    assert [c.outcome for c in claims] == ["holds"] * 3
    assert [c.effect.value < 0 for c in claims] == [True, False, True]  # marginal, prediction lower; clf higher
    assert all(c.method == "LS4" and c.arm == "Latent ODE" and c.rule and c.effect.samples for c in claims)
    _, swapped = _arms(better=False)
    worse = C.generation_claims("co2", real, None, swapped, _g(), real_series=True, resamples=200)
    assert [c.outcome for c in worse] == ["fails"] * 3
    assert "real series" in worse[0].statement


def test_equal_arms_are_inconclusive_never_holds():
    real = _series(seed=1)
    a = {"generated": _series(seed=2), "classification": torch.rand(50, generator=_g(3)),
         "prediction": torch.rand(64, generator=_g(4))}
    perm = torch.randperm(50, generator=_g(5))
    b = {"generated": a["generated"].flip(0), "classification": a["classification"][perm],
         "prediction": a["prediction"].flip(0)}  # the same values, re-paired: mean difference exactly 0
    claims = C.generation_claims("square", real, None, {"method": a, "arm": b}, _g(), real_series=False,
                                 resamples=300)
    for c in claims:
        assert c.outcome == "inconclusive", (c.statement, c.effect)
        assert c.effect.low <= 0 <= c.effect.high and "straddles" in c.reason


@pytest.mark.parametrize("seed", range(6))
def test_a_worse_point_estimate_never_holds(seed):
    g = _g(seed)
    real = _series(seed=seed + 10)
    a = {"generated": _series(shift=0.3, seed=seed + 20), "classification": torch.rand(30, generator=g),
         "prediction": torch.rand(40, generator=g) + 0.05}
    b = {"generated": _series(shift=0.0, seed=seed + 30), "classification": torch.rand(30, generator=g) + 0.05,
         "prediction": torch.rand(40, generator=g)}  # LS4 ("a") worse in expectation on every score
    for c in C.generation_claims("square", real, None, {"method": a, "arm": b}, _g(seed), real_series=False,
                                 resamples=200):
        worse = c.effect.value > 0 if "lower" in c.statement else c.effect.value < 0
        if worse:
            assert c.outcome != "holds", c


def test_a_score_that_is_not_finite_is_inconclusive_with_the_reason():
    real, arms = _arms(better=True)
    arms["method"]["prediction"] = torch.full((64,), float("nan"))
    claims = C.generation_claims("co2", real, None, arms, _g(), real_series=True, resamples=100)
    pred = claims[2]
    assert pred.outcome == "inconclusive" and "precondition not met" in pred.reason
    assert "prediction score is not finite" in pred.reason


def test_a_classifier_that_separates_both_arms_makes_the_classification_claim_inconclusive():
    real, arms = _arms(better=True)
    arms["method"]["classification"] = 0.004 + 0.001 * torch.rand(40, generator=_g(8))
    arms["arm"]["classification"] = 0.0005 + 0.0001 * torch.rand(40, generator=_g(9))  # LS4 "higher", both ~0
    clf = C.generation_claims("square", real, None, arms, _g(), real_series=False, resamples=100)[1]
    assert clf.effect.low > 0  # the interval alone would say "holds"
    assert clf.outcome == "inconclusive" and "almost perfectly" in clf.reason


def test_sharp_transitions_kept_against_smoothed_and_no_claim_on_smooth_data():
    real = square_wave(64, 40, _g(1))[..., None].float()
    kept = square_wave(64, 40, _g(2))[..., None].float()
    kernel = torch.ones(1, 1, 7) / 7
    smooth = torch.nn.functional.conv1d(kept.transpose(1, 2), kernel, padding=3).transpose(1, 2)
    ok = C.sharp_claim("square", real, kept, smooth, _g(), sharp_data=True, resamples=200)
    assert ok.outcome == "holds" and ok.effect.high < 0
    bad = C.sharp_claim("square", real, smooth, kept, _g(), sharp_data=True, resamples=200)
    assert bad.outcome == "fails"
    real_series = C.sharp_claim("co2", real, kept, smooth, _g(), sharp_data=False, resamples=50)
    assert real_series.outcome == "inconclusive" and "no sharp transitions" in real_series.reason


def test_w1_matches_scipy():
    from scipy.stats import wasserstein_distance

    rng = np.random.default_rng(0)
    a, b = rng.exponential(size=300), rng.exponential(1.5, size=170)
    assert math.isclose(C._w1_sorted(np.sort(a), b), wasserstein_distance(a, b), rel_tol=1e-10)


def test_loglog_slope_recovers_a_power_law_with_an_interval():
    L = [128, 256, 512, 1024, 2048]
    exact = C.loglog_slope(L, [3e-6 * x ** 1.5 for x in L])
    assert math.isclose(exact.value, 1.5, rel_tol=1e-9) and exact.high - exact.low < 1e-6
    rng = np.random.default_rng(0)
    xs = [x for x in L for _ in range(3)]
    noisy = C.loglog_slope(xs, [1e-5 * x * math.exp(0.05 * rng.standard_normal()) for x in xs])
    assert abs(noisy.value - 1.0) < 0.05 and 0 < noisy.high - noisy.low < 0.2
    assert math.isinf(C.loglog_slope([128, 256], [1.0, 2.0]).high)  # two points: no interval
    assert 1.1 < C.nlogn_slope([128, 512, 2048]) < 1.2  # 1 + about 1/ln L


def _timing(ls4, ode, lengths=(128, 512, 2048), rounds=3, noise=0.02, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for m, f in (("ls4", ls4), ("latent_ode", ode)):
        for L in lengths:
            rows.append({"method": m, "length": L,
                         "rounds": [f(L) * math.exp(noise * rng.standard_normal()) for _ in range(rounds)]})
    return rows


def test_timing_claims_hold_for_linear_ls4_and_a_slower_steeper_ode():
    slope, ratio, growth = C.timing_claims(_timing(lambda L: 1e-5 * L, lambda L: 1e-5 * L ** 1.6))
    assert slope.outcome == "holds" and abs(slope.effect.value - 1) < 0.05
    assert ratio.outcome == "holds" and ratio.effect.kind == "ratio"
    assert math.isclose(ratio.effect.value, 2048 ** 0.6, rel_tol=0.1) and "×100" in ratio.statement
    assert growth.outcome == "holds" and abs(growth.effect.value - 0.6) < 0.05


def test_timing_claims_fail_for_quadratic_ls4_and_a_faster_ode():
    slope, ratio, growth = C.timing_claims(_timing(lambda L: 1e-8 * L ** 2, lambda L: 1e-9 * L ** 2))
    assert slope.outcome == "fails"  # grows faster than L log L
    assert ratio.outcome == "fails" and ratio.effect.high < 1  # the ODE is faster
    assert growth.outcome != "holds"  # the same growth: the ratio does not rise


def test_timing_with_one_round_is_inconclusive():
    _, ratio, _ = C.timing_claims(_timing(lambda L: 1e-5 * L, lambda L: 1e-3 * L, rounds=1))
    assert ratio.outcome == "inconclusive" and "unbounded" in ratio.reason
    only_one_length = C.timing_claims(_timing(lambda L: 1e-5 * L, lambda L: 1e-3 * L, lengths=(512,)))
    assert only_one_length[0].outcome == "inconclusive" and "precondition" in only_one_length[0].reason
