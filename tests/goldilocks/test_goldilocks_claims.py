"""The goldilocks claims' decisions on constructed speedup-table rows: a slower method never holds, one seed or a
straddling interval is inconclusive, no label noise is a failed precondition."""
import math

import pytest

from workbench.methods.goldilocks.claims import corrupted_share_claims, speed_claim, speedup_effect


def rows(speeds, shares=None, target=0.9):
    shares = shares or [0.1] * len(speeds)
    return [{"seed": i, "speedup_steps": s, "speedup_wallclock": s, "target_accuracy": target,
             "steps_to_target": 100.0 if s else math.inf, "corrupted_share": c}
            for i, (s, c) in enumerate(zip(speeds, shares))]


def claim(speeds, noise_rate=0.2):
    return speed_claim("faster", "RHO-LOSS", "uniform", rows(speeds), rows([1.0] * len(speeds)), noise_rate=noise_rate)


def test_a_clear_speedup_over_three_seeds_holds():
    c = claim([2.0, 2.2, 2.1])
    assert c.outcome == "holds" and c.holds is True
    assert c.effect.seeds == 3 and c.effect.kind == "ratio" and c.effect.low > 1.0
    assert c.arm == "uniform" and "above 1" in c.rule and "seed 2: 2.10×" in c.detail


def test_a_slower_method_never_holds():
    assert claim([0.5, 0.6, 0.55]).outcome == "fails"
    assert claim([0.9, 0.95, 0.92]).outcome == "fails"  # slower by a little is still slower: no tolerance
    assert claim([1.0, 1.0, 1.0]).outcome == "fails"  # as fast is not faster


def test_any_speedup_above_one_is_not_enough_when_the_interval_straddles_one():
    c = claim([1.3, 0.9, 1.6])
    assert c.effect.value > 1.0 and c.outcome == "inconclusive" and "straddles 1" in c.reason


def test_one_seed_is_inconclusive_whatever_its_speedup():
    c = claim([3.0])
    assert c.outcome == "inconclusive" and "one seed" in c.reason and c.effect.seeds == 1


def test_a_seed_that_never_reaches_the_target_counts_as_zero():
    e = speedup_effect(rows([2.0, 0.0, float("nan")]))
    assert e.value == pytest.approx(2.0 / 3)
    assert claim([2.0, 2.0, 0.0]).outcome == "inconclusive"  # the failing seed widens the interval
    assert "never" in claim([2.0, 2.0, 0.0]).detail


def test_no_label_noise_is_a_failed_precondition():
    c = claim([2.0, 2.1, 2.2], noise_rate=0.0)
    assert c.outcome == "inconclusive" and c.reason.startswith("precondition not met: no label noise")


def test_corrupted_share_claims():
    by = {"uniform": rows([1.0] * 3, [0.20, 0.21, 0.19]), "rho_loss": rows([1.0] * 3, [0.05, 0.04, 0.06]),
          "train_loss": rows([1.0] * 3, [0.50, 0.55, 0.52])}
    rho, tl = corrupted_share_claims(by, 0.2)
    assert rho.outcome == "holds" and rho.effect.value == pytest.approx(-0.15) and "lies entirely below 0" in rho.rule
    assert tl.outcome == "holds" and tl.effect.value > 0
    # RHO-LOSS picking more corrupted points than uniform fails; equal shares never hold
    by["rho_loss"] = rows([1.0] * 3, [0.30, 0.31, 0.29])
    assert corrupted_share_claims(by, 0.2)[0].outcome == "fails"
    by["rho_loss"] = rows([1.0] * 3, [0.20, 0.21, 0.19])
    assert corrupted_share_claims(by, 0.2)[0].outcome == "fails"
    # straddling, one seed, no noise: inconclusive with the reason
    by["rho_loss"] = rows([1.0] * 3, [0.15, 0.25, 0.17])
    assert corrupted_share_claims(by, 0.2)[0].outcome == "inconclusive"
    one = {k: v[:1] for k, v in by.items()}
    assert all(c.outcome == "inconclusive" for c in corrupted_share_claims(one, 0.2))
    none = corrupted_share_claims(by, 0.0)
    assert all(c.outcome == "inconclusive" and "no label noise" in c.reason for c in none)
    assert len(corrupted_share_claims({k: by[k] for k in ("uniform", "rho_loss")}, 0.2)) == 1
