"""Scores and top-k rules against hand-computed cases and closed forms."""
import math

import pytest
import torch

from workbench.methods.goldilocks import (
    bald,
    entropy,
    grad_norm_bound,
    gumbel_top_k,
    predictive_entropy,
    reducible_loss,
    reducible_loss_select,
    top_k_positions,
)


def test_reducible_loss_select_hand_made_case_with_ties():
    train = torch.tensor([2.0, 1.0, 3.0, 0.5, 2.5])
    irreducible = torch.tensor([0.5, 0.5, 2.0, 0.0, 1.0])
    # scores: [1.5, 0.5, 1.0, 0.5, 1.5]; ties go to the earlier position
    assert torch.allclose(reducible_loss(train, irreducible), torch.tensor([1.5, 0.5, 1.0, 0.5, 1.5]))
    assert reducible_loss_select(train, irreducible, 3).tolist() == [0, 4, 2]
    assert reducible_loss_select(train, irreducible, 4).tolist() == [0, 4, 2, 1]
    assert reducible_loss_select(train, irreducible, 5).tolist() == [0, 4, 2, 1, 3]
    assert reducible_loss_select(train, irreducible, 0).tolist() == []


def test_ties_are_deterministic_on_all_equal_scores():
    scores = torch.zeros(50)
    assert top_k_positions(scores, 7).tolist() == list(range(7))


def test_select_refuses_bad_input():
    t = torch.ones(4)
    with pytest.raises(ValueError, match="'k'"):
        reducible_loss_select(t, t, 5)
    with pytest.raises(ValueError, match="'k'"):
        reducible_loss_select(t, t, -1)
    with pytest.raises(ValueError, match="shape"):
        reducible_loss_select(t, torch.ones(3), 1)
    with pytest.raises(ValueError, match="NaN"):
        top_k_positions(torch.tensor([1.0, float("nan")]), 1)


def test_grad_norm_bound_closed_form():
    logits = torch.zeros(2, 4)
    y = torch.tensor([0, 3])
    # softmax = 1/4 everywhere; ‖(−3/4, 1/4, 1/4, 1/4)‖ = sqrt(3/4)
    assert torch.allclose(grad_norm_bound(logits, y), torch.full((2,), math.sqrt(0.75)))
    # confident and right -> ~0; confident and wrong -> ~sqrt(2)
    big = torch.tensor([[50.0, 0.0, 0.0]])
    assert grad_norm_bound(big, torch.tensor([0])).item() < 1e-6
    assert abs(grad_norm_bound(big, torch.tensor([1])).item() - math.sqrt(2)) < 1e-6


def test_gradient_norm_bound_is_the_logit_gradient_norm():
    torch.manual_seed(0)
    logits = torch.randn(5, 3, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0, 1])
    torch.nn.functional.cross_entropy(logits, y, reduction="sum").backward()
    assert torch.allclose(logits.grad.norm(dim=-1), grad_norm_bound(logits.detach(), y), atol=1e-6)


def test_entropy_and_bald_closed_forms():
    assert torch.allclose(entropy(torch.full((3, 5), 0.2)), torch.full((3,), math.log(5)))
    assert entropy(torch.tensor([[1.0, 0.0]])).item() == 0.0
    # two MC samples that disagree completely: H[mean] = log 2, mean H = 0 -> BALD = log 2
    probs = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    assert torch.allclose(predictive_entropy(probs), torch.tensor([math.log(2)]))
    assert torch.allclose(bald(probs), torch.tensor([math.log(2)]))
    # samples that agree: BALD = 0
    same = torch.tensor([[0.3, 0.7]]).expand(4, 1, 2)
    assert torch.allclose(bald(same), torch.zeros(1), atol=1e-7)
    torch.manual_seed(1)
    random_probs = torch.rand(8, 20, 4).softmax(-1)
    assert (bald(random_probs) >= -1e-6).all()


def test_gumbel_top_k_limits_and_first_pick_distribution():
    scores = torch.tensor([0.0, 1.0, 2.0, 0.5])
    g = torch.Generator().manual_seed(0)
    picks = gumbel_top_k(scores, 4, 1.0, g)
    assert sorted(picks.tolist()) == [0, 1, 2, 3]
    # temperature -> 0: deterministic top-k
    assert gumbel_top_k(scores, 2, 1e-6, g).tolist() == [2, 1]
    # first pick ~ softmax(scores / T)
    n = 3000
    counts = torch.zeros(4)
    for _ in range(n):
        counts[gumbel_top_k(scores, 1, 2.0, g)[0]] += 1
    expected = (scores / 2.0).softmax(0)
    assert torch.allclose(counts / n, expected, atol=0.03)
    with pytest.raises(ValueError, match="temperature"):
        gumbel_top_k(scores, 1, 0.0, g)
