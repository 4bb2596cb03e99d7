"""KTO's claims decided on constructed evaluations: a worse result never holds, a straddling interval is
inconclusive, disjoint KL ranges give a dominance (or a stated trade-off), a failed precondition says why."""
import itertools

import pytest
import torch

from workbench.methods.kto import claims as K


_SEEDS = itertools.count()


def evals(points, n=400, noise=0.0, seed=None):
    """Evaluations at (KL, rate): exactly round(rate·n) desirable samples, log-ratios of mean KL (± noise); each
    call draws its own samples (independent methods), unless given the same ``seed``."""
    g = torch.Generator().manual_seed(next(_SEEDS) if seed is None else seed)
    out = []
    for step, (kl, rate) in enumerate(points, 1):
        k = round(rate * n)
        d = torch.zeros(n, dtype=torch.bool)
        d[torch.randperm(n, generator=g)[:k]] = True
        lr = kl + noise * torch.randn(n, generator=g, dtype=torch.float64)
        lr = lr - lr.mean() + kl
        out.append({"step": 10 * step, "kl": kl, "rate": k / n, "desirable": d.tolist(), "log_ratio": lr.tolist()})
    return out


def frontier(m, a, **kw):
    return K.frontier_claim("m vs a", "kto", "dpo", m, a, generator=torch.Generator().manual_seed(1),
                            resamples=400, **kw)


KTO = [(1.0, 0.6), (3.0, 0.8), (5.0, 0.9)]
DPO = [(2.0, 0.3), (4.0, 0.5), (6.0, 0.6)]


def test_matched_gap_interpolates_each_method_between_its_own_points():
    m, a = evals(KTO), evals(DPO)
    cols = [K._stack(x, key) for x in (m, a) for key in ("desirable", "log_ratio")]
    # matched KL in [2, 5] at 2, 3, 4, 5: KTO 0.7, 0.8, 0.85, 0.9; DPO 0.3, 0.4, 0.5, 0.55
    assert K.matched_gap(*cols) == pytest.approx((0.4 + 0.4 + 0.35 + 0.35) / 4, abs=1e-6)
    far = evals([(1.0, 0.5)]), evals([(7.0, 0.9)])
    assert K.matched_gap(*[K._stack(x, key) for x in far for key in ("desirable", "log_ratio")]) != \
        K.matched_gap(*[K._stack(x, key) for x in far for key in ("desirable", "log_ratio")])  # NaN: no overlap


def test_overlapping_frontiers_better_holds_worse_fails():
    better = frontier(evals(KTO, noise=0.5), evals(DPO, noise=0.5))
    assert better.outcome == "holds" and better.effect.low > 0 and "matched KL" in better.detail
    worse = frontier(evals(DPO, noise=0.5), evals(KTO, noise=0.5))
    assert worse.outcome == "fails" and worse.effect.high < 0 and worse.holds is False


def test_a_slightly_worse_method_never_beats_but_may_be_non_inferior_by_a_named_margin():
    m = evals([(1.0, 0.78), (3.0, 0.88)], n=4000)
    a = evals([(1.0, 0.80), (3.0, 0.90)], n=4000)
    beat = frontier(m, a)
    assert beat.effect.value == pytest.approx(-0.02, abs=1e-3)
    assert beat.outcome != "holds"  # never a tolerance on a "beats" claim
    matches = frontier(m, a, rule="not_worse", margin=0.05)
    assert matches.outcome == "holds" and "non-inferiority" in matches.rule  # its own, separately named rule
    assert frontier(m, a, rule="not_worse", margin=0.005).outcome == "fails"


def test_a_straddling_interval_is_inconclusive():
    m = evals([(1.0, 0.55), (3.0, 0.65)], n=40)
    a = evals([(1.0, 0.50), (3.0, 0.65)], n=40)
    claim = frontier(m, a)
    assert claim.outcome == "inconclusive" and claim.effect.low < 0 < claim.effect.high
    assert "straddles" in claim.reason


@pytest.mark.parametrize("seed", range(6))
def test_worse_in_expectation_never_holds(seed):
    """Random frontiers where the method is below the arm everywhere: the 'beats' claim never holds."""
    g = torch.Generator().manual_seed(seed)
    kls = sorted(torch.rand(3, generator=g).mul(4).add(0.5).tolist())
    base = torch.rand(3, generator=g).mul(0.5).add(0.2).sort().values.tolist()
    gap = float(torch.rand(1, generator=g)) * 0.2
    claim = frontier(evals(list(zip(kls, [b - gap for b in base])), n=200, noise=1.0, seed=100 + seed),
                     evals(list(zip(kls, base)), n=200, noise=1.0, seed=200 + seed))
    assert claim.outcome in ("fails", "inconclusive")


def test_disjoint_ranges_state_a_dominance_of_the_lower_kl_method():
    m = evals([(0.5, 0.70), (1.0, 0.85)])  # KTO: higher rate at a fraction of DPO's KL
    a = evals([(4.0, 0.60), (6.0, 0.80)])
    claim = frontier(m, a)
    assert claim.outcome == "holds"
    assert "do not overlap" in claim.detail and "kto reaches dpo's lowest-KL desirable rate" in claim.detail
    assert "12% of its KL" in claim.detail  # 0.5 / 4.0 (the cheapest KTO point above 0.60)
    dominated = frontier(a, m)  # the same numbers with the roles swapped: DPO dominates → KTO's claim fails
    assert dominated.outcome == "fails"


def test_disjoint_ranges_without_dominance_are_an_inconclusive_trade_off():
    low = evals([(0.5, 0.40), (1.0, 0.45)])  # less KL and less reward: a trade-off
    high = evals([(4.0, 0.80), (6.0, 0.90)])
    for claim in (frontier(low, high), frontier(high, low)):
        assert claim.outcome == "inconclusive"
        assert "precondition not met" in claim.reason and "trade-off" in claim.reason
        assert "no dominance" in claim.detail


def test_missing_evaluations_are_inconclusive_with_a_reason():
    claim = frontier([], evals(DPO))
    assert claim.outcome == "inconclusive" and "no evaluation of kto" in claim.reason and claim.effect is None


def test_rate_gain_over_the_reference():
    ref = {"desirable": [True] * 40 + [False] * 160}  # 0.20
    good = {"desirable": [True] * 150 + [False] * 50}  # 0.75
    assert K.rate_gain_claim("gain", "kto", good, ref, margin=0.2).outcome == "holds"
    worse = {"desirable": [True] * 10 + [False] * 190}  # 0.05
    assert K.rate_gain_claim("gain", "kto", worse, ref, margin=0.0).outcome == "fails"
    small = {"desirable": [True] * 70 + [False] * 130}  # +0.15 against a 0.2 margin: never holds
    assert K.rate_gain_claim("gain", "kto", small, ref, margin=0.2).outcome in ("fails", "inconclusive")


def test_start_identity_is_exact_up_to_rounding():
    assert K.start_identity_claim({"kto": 0.0, "kto_z0": 0.0}, 1e-6).outcome == "holds"
    assert K.start_identity_claim({"kto": 0.0, "kto_z0": 0.3}, 1e-6).outcome == "fails"


def test_heldout_accuracy_against_chance():
    d = [True, False] * 30
    groups = [i // 2 for i in range(60)]
    perfect = [1.0 if x else -1.0 for x in d]
    gen = torch.Generator().manual_seed(0)
    assert K.heldout_accuracy_claim(perfect, d, groups, generator=gen, resamples=300).outcome == "holds"
    reversed_ = [-r for r in perfect]
    assert K.heldout_accuracy_claim(reversed_, d, groups, generator=gen, resamples=300).outcome == "fails"
    ties = [0.0] * 60  # every pair a tie: exactly chance, never above it
    assert K.heldout_accuracy_claim(ties, d, groups, generator=gen, resamples=300).outcome != "holds"
