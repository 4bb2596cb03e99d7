"""KTO and baseline losses against hand-computed values, closed forms and invariants."""
import math
import warnings

import pytest
import torch

from workbench.methods.kto import (
    BAD_TOKEN,
    GOOD_TOKEN,
    cdpo_loss,
    check_kto_weights,
    csft_prompt,
    dpo_loss,
    ipo_loss,
    kto_loss,
    kto_reference_point,
    kto_z0_loss,
    mismatched_indices,
    ppo_offline_loss,
    ratio_rule_desirable_weight,
    sft_loss,
    slic_loss,
)


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def t(*xs: float) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float64)


def test_kto_hand_computed():
    policy, ref = t(-1, -2, -3), t(-1.5, -1, -3)
    desirable = torch.tensor([True, False, True])
    kl_pol, kl_ref = t(-2, -1, -3), t(-1, -2, -3.5)  # diffs -1, 1, 0.5 -> mean 1/6
    losses, kl = kto_loss(policy, ref, desirable, kl_pol, kl_ref, beta=1.0, desirable_weight=2.0, undesirable_weight=3.0)
    z = 1 / 6
    expected = [2 * (1 - sig(0.5 - z)), 3 * (1 - sig(z - (-1))), 2 * (1 - sig(0 - z))]
    assert kl.item() == pytest.approx(z)
    assert losses.tolist() == pytest.approx(expected, rel=1e-12)


def test_kto_reference_point_clamped_at_zero():
    policy, ref = t(-1, -2), t(-1.2, -1.7)
    desirable = torch.tensor([True, False])
    losses, kl = kto_loss(policy, ref, desirable, t(-5, -5), t(-1, -1), beta=0.5)
    assert kl.item() == 0.0
    expected = [1 - sig(0.5 * 0.2), 1 - sig(0.5 * (0 - (-0.3)))]
    assert losses.tolist() == pytest.approx(expected, rel=1e-12)


def test_kto_no_gradient_through_kl_and_policy_gradient():
    policy = t(-1.0, -2.0).requires_grad_()
    kl_pol = t(-0.5, -0.7).requires_grad_()
    ref, kl_ref = t(-1.5, -1.5), t(-1.0, -1.0)
    losses, kl = kto_loss(policy, ref, torch.tensor([True, False]), kl_pol, kl_ref, beta=2.0)
    assert not kl.requires_grad
    g_pol, g_kl = torch.autograd.grad(losses.sum(), [policy, kl_pol], allow_unused=True)
    assert g_kl is None
    z = kl.item()
    s0 = sig(2.0 * (0.5 - z))
    s1 = sig(2.0 * (z - (-0.5)))
    # d/dr λ(1-σ(β(r-z))) = -λβσ(1-σ);  d/dr λ(1-σ(β(z-r))) = +λβσ(1-σ)
    assert g_pol.tolist() == pytest.approx([-2.0 * s0 * (1 - s0), 2.0 * s1 * (1 - s1)], rel=1e-12)


@pytest.mark.parametrize("lam_d,lam_u", [(1.0, 1.0), (2.5, 0.7), (10.0, 1.0)])
def test_kto_half_lambda_when_policy_equals_reference(lam_d, lam_u):
    g = torch.Generator().manual_seed(0)
    logps = -torch.rand(16, generator=g) * 20
    kl_logps = -torch.rand(16, generator=g) * 20
    desirable = torch.rand(16, generator=g) > 0.5
    losses, kl = kto_loss(logps, logps.clone(), desirable, kl_logps, kl_logps.clone(), 0.1, lam_d, lam_u)
    assert kl.item() == 0.0
    expected = torch.where(desirable, torch.tensor(0.5 * lam_d), torch.tensor(0.5 * lam_u))
    assert torch.equal(losses, expected)


def test_kto_z0_ignores_kl():
    policy, ref = t(-1, -2), t(-1.5, -1)
    d = torch.tensor([True, False])
    z0 = kto_z0_loss(policy, ref, d, beta=1.0)
    assert z0.tolist() == pytest.approx([1 - sig(0.5), 1 - sig(1.0)])
    with_kl, _ = kto_loss(policy, ref, d, t(0.0, 0.0), t(0.0, 0.0), beta=1.0)
    assert torch.allclose(z0, with_kl)


def test_kto_bad_input():
    with pytest.raises(ValueError, match="beta"):
        kto_loss(t(0), t(0), torch.tensor([True]), t(0), t(0), beta=0.0)
    with pytest.raises(ValueError, match="same shape"):
        kto_loss(t(0, 1), t(0), torch.tensor([True]), t(0), t(0))


@pytest.mark.parametrize("n", range(2, 12))
def test_mismatched_pairs_never_pair_own_completion(n):
    idx = mismatched_indices(n)
    assert sorted(idx.tolist()) == list(range(n))
    assert all(idx[i].item() != i for i in range(n))
    assert idx[0].item() == n - 1 and idx[1].item() == 0  # (x1, y_m), (x2, y1), ...


def test_mismatched_refuses_batch_of_one():
    with pytest.raises(ValueError, match="batch_size"):
        mismatched_indices(1)


def test_weight_rule_and_warning():
    assert ratio_rule_desirable_weight(10, 90) == pytest.approx(9.0)
    assert ratio_rule_desirable_weight(10, 90, undesirable_weight=2.0, target=4 / 3) == pytest.approx(24.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_kto_weights(12, 10) == pytest.approx(1.2)
        check_kto_weights(10, 10)
    with pytest.warns(UserWarning, match=r"\[1, 4/3\]"):
        assert check_kto_weights(10, 90) == pytest.approx(1 / 9)
    with pytest.warns(UserWarning):
        check_kto_weights(20, 10)


PAIR = dict(
    policy_chosen_logps=t(-1.0),
    policy_rejected_logps=t(-3.0),
    reference_chosen_logps=t(-2.0),
    reference_rejected_logps=t(-2.5),
)  # h = (-1 + 2) - (-3 + 2.5) = 1.5


def test_dpo_closed_form():
    assert dpo_loss(**PAIR, beta=0.1).item() == pytest.approx(-math.log(sig(0.15)))
    assert dpo_loss(**PAIR, beta=2.0).item() == pytest.approx(math.log1p(math.exp(-3.0)))


def test_dpo_at_reference_is_log2():
    x = t(-4.0, -7.0)
    assert dpo_loss(x, x, x, x).tolist() == pytest.approx([math.log(2)] * 2)


def test_cdpo_closed_form():
    eps = 0.2
    expected = -(1 - eps) * math.log(sig(0.15)) - eps * math.log(sig(-0.15))
    assert cdpo_loss(**PAIR, beta=0.1, label_smoothing=eps).item() == pytest.approx(expected)
    assert cdpo_loss(**PAIR, beta=0.1, label_smoothing=0.0).item() == pytest.approx(dpo_loss(**PAIR).item())
    with pytest.raises(ValueError, match="label_smoothing"):
        cdpo_loss(**PAIR, label_smoothing=0.5)


def test_ipo_closed_form():
    assert ipo_loss(**PAIR, beta=0.5).item() == pytest.approx((1.5 - 1.0) ** 2)
    assert ipo_loss(**PAIR, beta=0.1).item() == pytest.approx((1.5 - 5.0) ** 2)


def test_slic_closed_form():
    chosen, rejected = t(-2.0, -5.0), t(-1.0, -9.0)
    # hinge: max(0, 1 + 2 - 1) = 2 ; max(0, 1 + 5 - 9) = 0
    assert slic_loss(chosen, rejected, margin=1.0, nll_weight=0.1).tolist() == pytest.approx([2.2, 0.5])
    per_token = slic_loss(chosen, rejected, margin=1.0, nll_weight=0.1, chosen_lengths=t(4.0, 5.0))
    assert per_token.tolist() == pytest.approx([2.05, 0.1])


def test_sft_and_csft():
    assert sft_loss(t(-3.0, -6.0)).tolist() == [3.0, 6.0]
    assert sft_loss(t(-3.0, -6.0), lengths=t(3.0, 2.0)).tolist() == [1.0, 3.0]
    assert csft_prompt("<food>", True) == f"{GOOD_TOKEN} <food>"
    assert csft_prompt("<food>", False) == f"{BAD_TOKEN} <food>"


def test_ppo_offline_at_reference_closed_form():
    logps = torch.tensor([[-1.0, -2.0, -0.5], [-0.3, -0.4, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    values = torch.tensor([[0.2, -0.1, 0.4], [0.0, 0.5, 9.0]])
    rewards = torch.tensor([1.0, -1.0])
    loss = ppo_offline_loss(logps, logps, values, rewards, mask, clip=0.2, value_weight=0.5)
    # ratio = 1, G_t = R, A_t = R - V_t: per token -(R - V) + 0.25 (V - R)^2
    def row(r, vs):
        return sum(-(r - v) + 0.25 * (v - r) ** 2 for v in vs) / len(vs)
    assert loss.tolist() == pytest.approx([row(1.0, [0.2, -0.1, 0.4]), row(-1.0, [0.0, 0.5])])


def test_ppo_offline_clip_and_discount():
    pol = torch.tensor([[1.0, 0.0]])
    ref = torch.zeros(1, 2)
    values = torch.zeros(1, 2)
    mask = torch.ones(1, 2)
    loss = ppo_offline_loss(pol, ref, values, torch.tensor([1.0]), mask, clip=0.2, value_weight=0.0, gamma=0.5)
    # returns: [0.5, 1]; token 0 ratio e > 1.2 with A = 0.5 -> clipped: -1.2*0.5; token 1 ratio 1, A = 1 -> -1
    assert loss.item() == pytest.approx((-0.6 - 1.0) / 2)
    # negative advantage: min picks the unclipped (larger penalty) e * A
    loss = ppo_offline_loss(pol, ref, values, torch.tensor([-1.0]), mask, clip=0.2, value_weight=0.0, gamma=0.5)
    assert loss.item() == pytest.approx((math.e * 0.5 + 1.0) / 2)


def test_reference_point_over_shards_is_the_global_batch_estimate():
    """z₀ from a shard plus the other shard's (sum, count), as an all-reduce gives them, is the global batch's z₀:
    the mean of all mismatched pairs, clamped once, not a shard's own (clamped) estimate."""
    kl_ref = torch.full((4,), -3.0)
    for kl_pol, global_z0 in ((t(-1.0, -2.0, -9.0, -8.0), 0.0), (t(-1.0, -2.0, -3.5, -3.5), 0.5)):
        diff = (kl_pol - kl_ref).double()
        other = torch.stack([diff[2:].sum(), torch.tensor(2.0, dtype=torch.float64)])  # rows 2, 3 on the other rank
        z0 = kto_reference_point(kl_pol[:2], kl_ref[:2], lambda local: local + other)
        assert float(z0) == pytest.approx(global_z0)
        assert float(kto_reference_point(kl_pol, kl_ref)) == pytest.approx(global_z0)
        assert float(kto_reference_point(kl_pol[:2], kl_ref[:2])) == pytest.approx(1.5)  # the shard alone: wrong
    losses, kl = kto_loss(t(-1.0, -2.0), t(-1.0, -2.0), torch.tensor([True, False]), None, None, beta=1.0,
                          reference_point=torch.tensor(0.5))
    assert float(kl) == 0.5 and losses.tolist() == pytest.approx([1 - sig(-0.5), 1 - sig(0.5)])
    with pytest.raises(ValueError, match="reference_point"):
        kto_loss(t(0.0), t(0.0), torch.tensor([True]), None, None)
