"""Standardisation inside the model, the crop/flip augmentation and per-step generators."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.common import Staged, g
from workbench.lib.robustness.inputs import Standardised, channel_stats, crop_flip, crop_padding
from workbench.lib.robustness.mixing import mix_features, staged_forward


def test_channel_stats_match_numpy():
    x = torch.rand(20, 3, 5, 6, generator=g(1)) * torch.tensor([1.0, 2.0, 0.5]).view(1, 3, 1, 1)
    mean, std = channel_stats(x)
    a = x.numpy().transpose(1, 0, 2, 3).reshape(3, -1)
    assert mean.shape == (1, 3, 1, 1) and std.shape == (1, 3, 1, 1)
    assert np.allclose(mean.flatten().numpy(), a.mean(1), atol=1e-6)
    assert np.allclose(std.flatten().numpy(), a.std(1), atol=1e-6)
    pts = torch.randn(50, 2, generator=g(2))
    m, s = channel_stats(pts)
    assert m.shape == (1, 2) and torch.allclose(s, pts.std(0, unbiased=False, keepdim=True), atol=1e-6)


def test_standardised_forward_and_input_mixing_point():
    inner = Staged(dims=(6, 5, 4))
    mean, std = torch.full((1, 6), 0.5), torch.full((1, 6), 2.0)
    model = Standardised(inner, mean, std)
    x = torch.randn(8, 6, generator=g(3))
    assert torch.allclose(model(x), inner((x - 0.5) / 2.0), atol=1e-6)
    assert model.stages is inner.stages and model.head is inner.head
    # mixing point 0 sees the standardised input (where the papers mix and add noise)
    seen = []
    perm = torch.randperm(8, generator=g(4))
    out = staged_forward(model, x, 0, lambda h: seen.append(h.clone()) or mix_features(h, perm, 0.3))
    z = (x - 0.5) / 2.0
    assert torch.allclose(seen[0], z, atol=1e-6)
    assert torch.allclose(out, inner(0.3 * z + 0.7 * z[perm]), atol=1e-5)
    assert torch.allclose(staged_forward(model, x), model(x), atol=1e-6)
    with pytest.raises(ValueError, match="std"):
        Standardised(inner, mean, torch.zeros(1, 6))


def _crop_flip_reference(x, dy, dx, mirror, pad):
    """Zero-pad, cut the H×W window at offset (pad + dy, pad + dx), then mirror: image by image."""
    n, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    out = []
    for i in range(n):
        img = padded[i] if not mirror[i] else padded[i].flip(-1)
        off_x = pad + int(dx[i]) if not mirror[i] else pad - int(dx[i])
        out.append(img[:, pad + int(dy[i]):pad + int(dy[i]) + h, off_x:off_x + w])
    return torch.stack(out)


def test_crop_flip_equals_pad_cut_mirror_per_image():
    x = torch.rand(12, 2, 7, 9, generator=g(5))
    pad = 2
    out = crop_flip(x, g(6), pad=pad)
    gen = g(6)  # the documented draws: dy, dx, then the flips
    dy = torch.randint(-pad, pad + 1, (12,), generator=gen)
    dx = torch.randint(-pad, pad + 1, (12,), generator=gen)
    mirror = torch.rand(12, generator=gen) < 0.5
    assert torch.equal(out, _crop_flip_reference(x, dy, dx, mirror, pad))
    assert mirror.any() and (~mirror).any() and (dy != 0).any()
    assert torch.equal(crop_flip(x, g(0), pad=0, flip=False), x)
    assert crop_padding(32) == 4 and crop_padding(28) == 4 and crop_padding(8) == 1
