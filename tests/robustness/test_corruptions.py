"""Every corruption keeps shape, dtype and range, is deterministic given a seed and grows with severity."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from workbench.lib.robustness import CORRUPTIONS, corrupt, salt_and_pepper, white_noise
from workbench.lib.robustness.corruptions import EXTRA, NOISE, STANDARD, plasma_fractal


def _colour(n=12, size=16, seed=0):
    rng = np.random.default_rng(seed)
    x = ndimage.gaussian_filter(rng.random((n, 3, size, size)), (0, 0, 1.5, 1.5))
    return ((x - x.min()) / (x.max() - x.min())).astype(np.float32)


def _digits_like(n=12, seed=0):
    """Dark background with bright strokes, like sklearn digits (8×8, one channel)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 8, 8), np.float32)
    for i in range(n):
        r = rng.integers(1, 7)
        x[i, 1:7, r] = 1.0
        x[i, r, 1:7] = rng.uniform(0.4, 1.0)
    return x


def test_names():
    assert len(STANDARD) == 15 and len(EXTRA) == 4 and set(NOISE) == {"white_noise", "salt_and_pepper"}
    assert CORRUPTIONS[:15] == tuple(STANDARD)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_shape_dtype_range_determinism(name):
    for x in (_colour(4, 8), _digits_like(4), _colour(3, 12)[:, :1]):
        for sev in (1, 5):
            out = corrupt(x, name, sev, seed=3)
            assert out.shape == x.shape and out.dtype == x.dtype
            assert float(out.min()) >= 0 and float(out.max()) <= 1
            assert np.array_equal(out, corrupt(x, name, sev, seed=3))
    t = torch.from_numpy(_colour(2, 8)).double()
    out = corrupt(t, name, 2, seed=0)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64 and out.shape == t.shape


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_distortion_grows_with_severity(name):
    cases = [_colour(12, 16), _colour(12, 8)]
    if name != "saturate":  # saturate is the identity on one-channel images
        cases.append(_digits_like(16))
    for x in cases:
        d = [float(np.abs(corrupt(x, name, s, seed=0) - x).mean()) for s in range(0, 6)]
        assert d[0] == 0.0
        assert all(b > a for a, b in zip(d, d[1:])), (name, x.shape, np.round(d, 4))


def test_saturate_identity_on_grey():
    x = _digits_like(3)
    assert np.array_equal(corrupt(x, "saturate", 4), x)


def test_gaussian_noise_matches_definition():
    x = _colour(3, 8)
    out = corrupt(x, "gaussian_noise", 2, seed=5)
    ref = np.clip(x + np.random.default_rng(5).normal(size=(3, 3, 8, 8)) * 0.06, 0, 1).astype(np.float32)
    assert np.allclose(out, ref, atol=1e-6)


def test_contrast_closed_form():
    x = _colour(2, 8)
    out = corrupt(x, "contrast", 3)
    m = x.mean(axis=(1, 2, 3), keepdims=True)
    assert np.allclose(out, np.clip((x - m) * 0.4 + m, 0, 1), atol=1e-6)


def test_white_noise_and_salt_pepper_levels():
    x = np.full((4, 3, 16, 16), 0.5, np.float32)
    sp = salt_and_pepper(x, 0.1, seed=0)
    changed = float((sp != 0.5).mean())
    assert abs(changed - 0.1) < 0.02
    assert set(np.unique(sp)) <= {0.0, 0.5, 1.0}
    wn = white_noise(x, 0.1, seed=0)
    assert abs(float((wn - x).std()) - 0.1) < 0.01
    # every channel gets its own noise
    assert not np.allclose(wn[:, 0], wn[:, 1])


def test_plasma_range():
    p = plasma_fractal(2, 16, 2.0, np.random.default_rng(0))
    assert p.shape == (2, 16, 16) and p.min() == 0 and p.max() == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [({"name": "blur"}, "name"), ({"severity": 6}, "severity"), ({"severity": 1.5}, "severity")],
)
def test_bad_input(kwargs, match):
    args = {"images": _colour(1, 8), "name": "fog", "severity": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        corrupt(**args)
    with pytest.raises(ValueError, match="8×8"):
        corrupt(np.zeros((1, 4, 4), np.float32), "fog", 1)
