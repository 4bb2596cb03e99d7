"""The nft claims' decisions on constructed inputs: a worse result never holds, a straddling interval is
inconclusive, arms at chance (or ranking no better than chance) make the comparison inconclusive."""
import numpy as np
import torch

from workbench.methods.nft.experiment import above_chance, inr_classification_claim, tau_claim


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def correct(n, k, seed):
    """``k`` correct answers out of ``n``, at random positions."""
    out = np.zeros(n, dtype=bool)
    out[np.random.default_rng(seed).choice(n, k, replace=False)] = True
    return out.tolist()


def test_above_chance_uses_the_wilson_interval():
    assert above_chance(correct(300, 150, 0), 10)[0]           # 0.50 ≫ 0.10
    assert not above_chance(correct(300, 33, 0), 10)[0]        # 0.11: interval reaches 0.10
    assert above_chance(correct(300, 57, 0), 10)[0]             # 0.19 is above 0.10 by its interval
    assert not above_chance(correct(20, 4, 0), 10)[0]          # 0.20 of 20: too few to tell


def test_inr_claim_holds_fails_and_is_inconclusive_on_constructed_accuracies():
    good, weak = correct(300, 210, 1), correct(300, 120, 2)
    c = inr_classification_claim("a beats b", "A", "B", good, weak, 10, gen(), "")
    assert c.outcome == "holds" and c.effect.low > 0
    c = inr_classification_claim("a beats b", "A", "B", weak, good, 10, gen(), "")
    assert c.outcome == "fails"  # worse never holds
    close = correct(300, 125, 3)
    c = inr_classification_claim("a beats b", "A", "B", close, weak, 10, gen(), "")
    assert c.outcome == "inconclusive" and "straddles" in c.reason


def test_inr_claim_with_an_arm_at_chance_is_inconclusive_whatever_the_difference():
    # the old demo: NFT 0.190 vs NP 0.107 on 10 classes "held"; NP is at chance, so the comparison says nothing
    nft, np_ = correct(300, 57, 4), correct(300, 32, 5)
    c = inr_classification_claim("NFT beats NP", "NFT", "NFN-NP", nft, np_, 10, gen(), "")
    assert c.outcome == "inconclusive" and c.reason.startswith("precondition not met") and "NFN-NP" in c.reason
    assert c.effect.value > 0  # the effect is still recorded


def test_inr_claim_with_an_empty_latent_is_inconclusive_with_its_reason():
    """Inr2Array's precondition: a latent whose reconstruction is no better than the mean image says nothing,
    even when both arms are above chance and the difference is clearly positive."""
    good, weak = correct(300, 210, 1), correct(300, 120, 2)
    c = inr_classification_claim("latent beats NFT", "Inr2Array", "NFT", good, weak, 10, gen(), "",
                                 precondition=(False, "reconstruction 11.7 dB against 11.3 dB"))
    assert c.outcome == "inconclusive" and "11.7 dB" in c.reason and c.effect.value > 0
    c = inr_classification_claim("latent beats NFT", "Inr2Array", "NFT", weak, good, 10, gen(), "",
                                 precondition=(True, "reconstruction 20 dB against 11.3 dB"))
    assert c.outcome == "fails"


def test_tau_claim_on_constructed_rankings():
    n = 48  # test networks: each claim is four bootstraps of 2000 τ's, so few enough to be quick
    rng = np.random.default_rng(0)
    true = rng.uniform(0.2, 0.9, n)
    good = (true + rng.normal(0, 0.03, n)).tolist()    # τ ≈ 0.8
    fair = (true + rng.normal(0, 0.25, n)).tolist()    # τ ≈ 0.4
    noise = rng.uniform(0, 1, n).tolist()              # τ ≈ 0
    true = true.tolist()
    assert tau_claim("a ranks better", "A", "B", true, good, fair, gen(), "").outcome == "holds"
    assert tau_claim("a ranks better", "A", "B", true, fair, good, gen(), "").outcome == "fails"
    c = tau_claim("a ranks better", "A", "B", true, fair, (np.asarray(fair) + rng.normal(0, 1e-3, n)).tolist(),
                  gen(), "")
    assert c.outcome == "inconclusive" and "straddles" in c.reason
    c = tau_claim("a ranks better", "A", "B", true, good, noise, gen(), "")
    assert c.outcome == "inconclusive" and c.reason.startswith("precondition not met")
