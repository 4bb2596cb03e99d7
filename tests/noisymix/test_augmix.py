"""AugMix ops against PIL's own implementations, and the AugMix mixture."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from workbench.noisymix import ALL_OPS, OPS, apply_op, augmix, augmix_chains, augmix_mix


def _imgs(mode: str, n=4, size=(10, 12), seed=0):
    rng = np.random.default_rng(seed)
    shape = (n, size[0], size[1], 3) if mode == "RGB" else (n, size[0], size[1])
    arr = rng.integers(0, 256, size=shape, dtype=np.uint8)
    arr[0] = arr[0] // 3 + 40  # a low-contrast image so autocontrast/equalize matter
    t = torch.from_numpy(arr).float() / 255.0
    t = t.permute(0, 3, 1, 2) if mode == "RGB" else t.unsqueeze(1)
    return arr, t


def _pil_batch(arr, mode, fn):
    out = [np.asarray(fn(Image.fromarray(a, mode))) for a in arr]
    t = torch.from_numpy(np.stack(out)).float() / 255.0
    return t.permute(0, 3, 1, 2) if mode == "RGB" else t.unsqueeze(1)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_point_ops_match_pil(mode):
    arr, t = _imgs(mode)
    cases = {
        "autocontrast": (5.0, ImageOps.autocontrast),
        "equalize": (5.0, ImageOps.equalize),
        "posterize": (3.0, lambda im: ImageOps.posterize(im, 4 - int(3.0 * 4 / 10))),
        "solarize": (3.0, lambda im: ImageOps.solarize(im, 256 - int(3.0 * 256 / 10))),
    }
    for name, (level, fn) in cases.items():
        ours = apply_op(t, name, level)
        ref = _pil_batch(arr, mode, fn)
        assert torch.allclose(ours, ref, atol=1.5 / 255), name


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_geometric_ops_match_pil(mode):
    arr, t = _imgs(mode, size=(12, 12))
    w = 12
    level, sign = 2.5, -1.0
    cases = {
        "rotate": lambda im: im.rotate(sign * int(level * 30 / 10), resample=Image.NEAREST),
        "shear_x": lambda im: im.transform((w, w), Image.AFFINE, (1, sign * level * 0.3 / 10, 0, 0, 1, 0), resample=Image.NEAREST),
        "shear_y": lambda im: im.transform((w, w), Image.AFFINE, (1, 0, 0, sign * level * 0.3 / 10, 1, 0), resample=Image.NEAREST),
        "translate_x": lambda im: im.transform((w, w), Image.AFFINE, (1, 0, sign * int(level * (w / 3) / 10), 0, 1, 0), resample=Image.NEAREST),
        "translate_y": lambda im: im.transform((w, w), Image.AFFINE, (1, 0, 0, 0, 1, sign * int(level * (w / 3) / 10)), resample=Image.NEAREST),
    }
    for name, fn in cases.items():
        ours = apply_op(t, name, level, sign)
        ref = _pil_batch(arr, mode, fn)
        agree = float((ours - ref).abs().lt(1e-6).float().mean())
        assert agree > 0.97, (name, agree)  # PIL rounds some boundary pixels differently


def test_enhance_ops_match_pil_colour_and_brightness():
    from PIL import ImageEnhance

    arr, t = _imgs("RGB")
    level = 4.0
    factor = level * 1.8 / 10 + 0.1
    for name, enh in [("color", ImageEnhance.Color), ("brightness", ImageEnhance.Brightness)]:
        ours = apply_op(t, name, level)
        ref = _pil_batch(arr, "RGB", lambda im: enh(im).enhance(factor))
        assert torch.allclose(ours, ref, atol=2.5 / 255), name


def test_default_ops_exclude_corruption_overlap():
    assert set(OPS) == {"autocontrast", "equalize", "posterize", "rotate", "solarize", "shear_x", "shear_y",
                        "translate_x", "translate_y"}
    assert {"color", "contrast", "brightness", "sharpness"} <= set(ALL_OPS)


@pytest.mark.parametrize("shape", [(5, 8, 8), (5, 1, 8, 8), (5, 3, 16, 16)])
def test_augmix_shape_range_determinism(shape):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    a = augmix(x, generator=torch.Generator().manual_seed(1))
    b = augmix(x, generator=torch.Generator().manual_seed(1))
    c = augmix(x, generator=torch.Generator().manual_seed(2))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_augmix_mix_formula_hand_computed():
    x = torch.full((2, 1, 2, 2), 0.2)
    chains = [torch.full((2, 1, 2, 2), 0.6), torch.full((2, 1, 2, 2), 1.0)]
    w = torch.tensor([[0.25, 0.75], [1.0, 0.0]])
    m = torch.tensor([0.5, 0.0])
    out = augmix_mix(x, chains, w, m)
    assert torch.allclose(out[0], torch.full((1, 2, 2), 0.5 * 0.2 + 0.5 * (0.25 * 0.6 + 0.75 * 1.0)))
    assert torch.allclose(out[1], x[1])  # m = 0 keeps the image


def test_augmix_lies_between_image_and_chains():
    """Convex weights: every output pixel is within [min, max] of the image and its chains (recomputed from
    the same seed sequence as augmix draws them)."""
    import numpy as np

    x = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    out = augmix(x, generator=torch.Generator().manual_seed(3))
    rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=torch.Generator().manual_seed(3)).item()))
    w = torch.from_numpy(rng.dirichlet([1.0] * 3, size=6)).float()
    m = torch.from_numpy(rng.beta(1.0, 1.0, size=6)).float()
    sub = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
    chains = augmix_chains(x, generator=sub)
    assert torch.allclose(out, augmix_mix(x, chains, w, m), atol=1e-6)  # the same draws, recomputed
    assert torch.allclose(w.sum(1), torch.ones(6), atol=1e-6)
    stack = torch.stack([x] + chains)
    assert bool((out >= stack.amin(0) - 1e-6).all()) and bool((out <= stack.amax(0) + 1e-6).all())
    assert not torch.equal(out, x)


def test_bad_severity_named():
    with pytest.raises(ValueError, match="severity"):
        augmix_chains(torch.rand(2, 8, 8), severity=0)
    with pytest.raises(ValueError, match="op"):
        apply_op(torch.rand(2, 8, 8), "blur", 1.0)
