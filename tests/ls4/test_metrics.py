"""Scores: the marginal score of real against itself is 0; CRPS and jump statistics against hand computations;
the classifier tells obviously different series apart and not identical ones."""
import math

import numpy as np
import torch

from workbench.methods.ls4 import metrics as M
from workbench.methods.ls4.data import square_wave


def test_marginal_score_is_zero_for_real_against_itself_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(50, 20, 2, generator=g)
    assert M.marginal_score(real, real) == 0.0
    assert M.marginal_score(real, real[torch.randperm(50, generator=g)]) == 0.0  # order does not matter
    near, far = M.marginal_score(real, real + 0.2), M.marginal_score(real, real + 2.0)
    assert 0 < near < far


def test_marginal_score_by_hand_and_with_a_mask():
    real = np.array([0.0, 0.0, 1.0, 1.0])[None, :, None]  # densities on 2 bins of width 0.5: 1, 1
    gen = np.array([0.0, 0.0, 0.0, 5.0])[None, :, None]  # 3 of 4 in bin 0 (density 1.5), one outside the range
    assert math.isclose(M.marginal_score(real, gen, bins=2), (abs(1 - 1.5) + abs(1 - 0.0)) / 2)
    mask = np.array([True, True, True, False])[None, :, None]  # the real values 0, 0, 1: densities 4/3, 2/3
    assert math.isclose(M.marginal_score(real, real[:, :3], bins=2, mask=mask), 0.0, abs_tol=1e-12)


def test_crps_by_hand():
    y = torch.tensor([1.0, -2.0])
    one = torch.tensor([[0.5, 0.0]])
    assert math.isclose(M.crps(one, y), (0.5 + 2.0) / 2)  # one sample: the absolute error
    two = torch.tensor([[0.0, -2.0], [2.0, -2.0]])  # E|X−y| = 1, ½E|X−X'| = ½·(0+2+2+0)/4 = ½ for entry 0
    assert math.isclose(M.crps(two, y), (1 - 0.5 + 0) / 2)
    assert M.crps(torch.stack([y, y, y]), y) == 0.0
    assert math.isclose(M.crps(two, y, mask=torch.tensor([True, False])), 0.5)
    mse = M.masked_mse(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0]), torch.tensor([False, True]))
    assert math.isclose(mse, 9)


def test_jump_statistics_of_a_square_wave():
    x = square_wave(1, 40, torch.Generator().manual_seed(1))[..., None]
    jumps = int((x[0, 1:] != x[0, :-1]).sum())
    stats = M.jump_stats(x, threshold=1.0)
    assert jumps > 0 and math.isclose(stats["sharp_rate"], jumps / 39)
    assert M.jump_distance(x, x) == 0.0 and M.jump_distance(x, torch.zeros_like(x)) > 0
    h = M.jump_histogram(x, np.linspace(0, 2.2, 12))
    assert math.isclose(sum(h), 1.0) and math.isclose(h[-1], jumps / 39)


def test_classification_and_prediction_scores():
    g = torch.Generator().manual_seed(2)
    wave = torch.sin(torch.linspace(0, 6, 16))[None, :, None].repeat(64, 1, 1)
    real = wave + 0.05 * torch.randn(64, 16, 1, generator=g)
    same = M.classification_score(real, real.clone(), g, steps=40)
    apart = M.classification_score(real, real + 3.0, g, steps=40)
    assert apart < 0.3 < same  # obvious fakes are caught; copies are not
    good = M.prediction_score(real, real, g, horizon=4, steps=60)
    bad = M.prediction_score(real, torch.zeros_like(real), g, horizon=4, steps=60)
    assert good < bad
