"""NFM's test-time noise protocol: white noise in the normalised space, salt and pepper at the image extremes."""
from __future__ import annotations

import pytest
import torch

from tests.common import g
from workbench.lib.robustness.noise import (TABLE_LEVELS, noise_curves, salt_and_pepper_extremes, table_accuracy,
                                        white_noise_normalised)


def test_white_noise_is_sigma_normal_in_the_normalised_space():
    x = torch.rand(40, 3, 6, 6, generator=g(1))
    mean, std = torch.tensor([0.2, 0.5, 0.4]).view(1, 3, 1, 1), torch.tensor([0.1, 0.3, 0.25]).view(1, 3, 1, 1)
    noisy = white_noise_normalised(x, 0.2, std, g(2))
    z_diff = (noisy - mean) / std - (x - mean) / std
    assert torch.allclose(z_diff, 0.2 * torch.randn(x.shape, generator=g(2)), atol=1e-5)
    assert float(noisy.max()) > 1 or float(noisy.min()) < 0  # not clipped (the reference does not clip)
    with pytest.raises(ValueError, match="sigma"):
        white_noise_normalised(x, -0.1, std, g(0))


def test_salt_and_pepper_sets_a_fraction_to_the_image_extremes():
    x = torch.rand(20, 1, 30, 30, generator=g(3)) * 0.6 + 0.2
    out = salt_and_pepper_extremes(x, 0.1, g(4))
    changed = out != x
    assert abs(float(changed.float().mean()) - 0.1) < 0.01
    lo, hi = x.amin((1, 2, 3), keepdim=True), x.amax((1, 2, 3), keepdim=True)
    hit_lo, hit_hi = (out == lo) & changed, (out == hi) & changed
    assert bool((hit_lo | hit_hi)[changed].all())
    assert abs(float(hit_lo.sum()) / float(changed.sum()) - 0.5) < 0.05
    assert torch.equal(salt_and_pepper_extremes(x, 0.0, g(4)), x)


def test_curves_cover_the_table_levels_and_the_mean_uses_only_them():
    x = torch.rand(30, 1, 5, 5, generator=g(5))
    y = torch.zeros(30, dtype=torch.long)

    def probs_for(images):  # predicts class 0 when the mean pixel is below 0.5: noise-dependent
        p0 = (images.mean((1, 2, 3)) < 0.5).float()
        return torch.stack([p0, 1 - p0], 1)

    rows = noise_curves(probs_for, x, y, 0.3, rng=lambda name: g(len(name)))
    for kind, levels in TABLE_LEVELS.items():
        assert set(levels) <= {r["level"] for r in rows if r["kind"] == kind}
    want = [r["accuracy"] for r in rows if r["level"] in TABLE_LEVELS[r["kind"]]]
    assert len(want) == 6 and table_accuracy(rows) == pytest.approx(sum(want) / 6)
    only_white = [r["accuracy"] for r in rows if r["kind"] == "white_noise" and r["level"] in TABLE_LEVELS["white_noise"]]
    assert table_accuracy(rows, ("white_noise",)) == pytest.approx(sum(only_white) / 3)
    assert rows == noise_curves(probs_for, x, y, 0.3, rng=lambda name: g(len(name)))  # the same noise for every model
