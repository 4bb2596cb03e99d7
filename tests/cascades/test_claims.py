"""The cascades claims' decisions on constructed per-problem results: a better method holds, a worse one never
holds, a straddling interval is inconclusive, and a failed precondition (both arms at zero, an arm that already
solves everything, STaR without a rationale) is inconclusive with its reason."""
import pytest
import torch

from workbench.methods.cascades import claims as C


def g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def hits(n_right: int, n: int = 128) -> list[float]:
    return [1.0] * n_right + [0.0] * (n - n_right)


def test_self_consistency_holds_when_the_majority_is_clearly_better():
    claim = C.self_consistency(hits(100), hits(40), k=8, generator=g())
    assert claim.outcome == "holds" and claim.holds is True
    assert claim.effect.value == pytest.approx(60 / 128) and claim.effect.low > 0
    assert claim.method == "self-consistency@8" and "one sample" in claim.arm


def test_a_worse_method_never_holds():
    for make in (lambda m, a: C.self_consistency(m, a, k=4, generator=g()),
                 lambda m, a: C.verifier(m, a, k=4, generator=g()),
                 lambda m, a: C.star(m, a, rationales=10, generator=g()),
                 lambda m, a: C.tool_use(m, {"direct": a, "scratchpad": hits(0)}, digits=6, trained_digits=5,
                                         generator=g())):
        worse = make(hits(30), hits(90))
        assert worse.outcome == "fails" and worse.holds is False and worse.effect.high <= 0
        slightly = make(hits(60), hits(62))  # worse by two problems: never "holds", whatever the interval
        assert slightly.outcome in ("inconclusive", "fails") and slightly.holds is not True


def test_a_small_difference_straddles_and_is_inconclusive():
    method = hits(66)                              # right on problems 0..65
    arm = [0.0] * 4 + [1.0] * 64 + [0.0] * 60        # right on problems 4..67: 4 wins, 2 losses
    claim = C.verifier(method, arm, k=8, generator=g())
    assert claim.outcome == "inconclusive" and claim.effect.low < 0 < claim.effect.high
    assert "straddles" in claim.reason


def test_paired_differences_give_a_narrower_interval_than_their_accuracies_suggest():
    """Self-consistency per problem (0/1) against one sample's per-problem accuracy (a fraction): the bootstrap
    resamples problems, so both arms move together."""
    single = [0.75] * 64 + [0.25] * 64  # each problem: the fraction of its samples that are right
    sc = [1.0] * 64 + [0.0] * 64       # the majority follows the better-than-half problems
    claim = C.self_consistency(sc, single, k=4, generator=g(1))
    assert claim.effect.value == pytest.approx(0.0) and claim.outcome == "inconclusive"
    sc_better = [1.0] * 80 + [0.0] * 48
    single_better = [0.75] * 80 + [0.25] * 48
    assert C.self_consistency(sc_better, single_better, k=4, generator=g(1)).outcome == "holds"


def test_both_arms_at_zero_is_inconclusive_with_its_reason():
    claim = C.tool_use(hits(0), {"direct": hits(0), "scratchpad": hits(0)}, digits=6, trained_digits=5,
                       generator=g())
    assert claim.outcome == "inconclusive" and claim.holds is None
    assert "precondition not met" in claim.reason and "floor" in claim.reason


def test_an_arm_that_solves_everything_is_inconclusive():
    claim = C.verifier(hits(128), hits(128), k=4, generator=g())
    assert claim.outcome == "inconclusive" and "no room to improve" in claim.reason


def test_star_without_a_rationale_is_inconclusive_whatever_the_effect():
    claim = C.star(hits(100), hits(40), rationales=0, generator=g())
    assert claim.effect.low > 0  # a large measured effect ...
    assert claim.outcome == "inconclusive" and "no rationale" in claim.reason  # ... that cannot be STaR's
    assert "control" in claim.arm
    assert C.star(hits(100), hits(40), rationales=12, generator=g()).outcome == "holds"


def test_tool_use_is_compared_with_the_best_unaided_cascade():
    tool = hits(70)
    claim = C.tool_use(tool, {"direct": hits(10), "scratchpad": hits(80)}, digits=6, trained_digits=5,
                       generator=g())
    assert "here scratchpad" in claim.arm and claim.effect.value == pytest.approx(-10 / 128)
    assert claim.outcome != "holds"  # better than the direct answer, but not than the best unaided cascade
    better = C.tool_use(hits(120), {"direct": hits(10), "scratchpad": hits(80)}, digits=6, trained_digits=5,
                        generator=g())
    assert better.outcome == "holds" and "longer than any in training" in better.statement
    with pytest.raises(ValueError, match="unaided"):
        C.tool_use(tool, {}, digits=6, trained_digits=5, generator=g())


def test_the_interval_is_reproducible_from_the_generator():
    a = C.self_consistency(hits(70), hits(60), k=4, generator=g(5))
    b = C.self_consistency(hits(70), hits(60), k=4, generator=g(5))
    assert (a.effect.low, a.effect.high) == (b.effect.low, b.effect.high)
    record = a.to_record()
    assert {"effect", "uncertainty", "low", "high", "rule", "outcome", "arm"} <= set(record)
