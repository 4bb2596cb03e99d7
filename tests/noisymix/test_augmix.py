"""AugMix ops against PIL's own implementations, and the AugMix mixture."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from workbench.methods.noisymix import ALL_OPS, OPS, apply_op, augmix, augmix_chains, augmix_mix, augmix_parts


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
    """Convex weights: every output pixel is within [min, max] of the image and its chains (the parts augmix
    mixes, drawn from the same generator state: what the previewer shows)."""
    x = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    out = augmix(x, generator=torch.Generator().manual_seed(3))
    chains, w, m = augmix_parts(x, generator=torch.Generator().manual_seed(3))
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


# -- the vectorised path (per-image parameters as tensor ops over the batch) against a per-image loop -----------

def _per_image(fn, x, level, sign):
    """The per-image path: the op on one image at a time with its own scalar level and sign."""
    return torch.cat([fn(x[i:i + 1], level[i:i + 1], sign[i:i + 1]) for i in range(len(x))])


@pytest.mark.parametrize("name", sorted(ALL_OPS))
@pytest.mark.parametrize("channels", [1, 3])
def test_each_op_vectorised_equals_per_image(name, channels):
    gen = torch.Generator().manual_seed(7)
    x = torch.rand(9, channels, 10, 12, generator=gen)
    x[0] = x[0] * 0.3 + 0.2  # a low-contrast image (autocontrast, equalize)
    level = torch.empty(9, dtype=torch.float64).uniform_(0.1, 10.0, generator=gen)
    sign = torch.where(torch.rand(9, generator=gen) < 0.5, -1.0, 1.0).double()
    batched = ALL_OPS[name](x, level, sign)
    assert batched.shape == x.shape
    # exact for every op but sharpness, whose batched convolution may sum in another order
    assert torch.allclose(batched, _per_image(ALL_OPS[name], x, level, sign), atol=1e-6, rtol=0), name


def _chains_per_image(x, severity, width, depth, all_ops, generator):
    """augmix_chains replayed image by image: the same draws (documented order), one op call per image."""
    from workbench.lib.robustness.augmix import _rng

    names = list(ALL_OPS if all_ops else OPS)
    rng = _rng(generator)
    b = x.shape[0]
    n = width * b
    xa = x.repeat(width, 1, 1, 1)
    d = rng.integers(1, 4, size=n) if depth <= 0 else np.full(n, depth)
    out = [xa[j:j + 1] for j in range(n)]
    for pos in range(int(d.max())):
        which = rng.integers(0, len(names), size=n)
        level = rng.uniform(0.1, severity, size=n)
        sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
        for j in range(n):
            if d[j] > pos:
                out[j] = apply_op(out[j], names[which[j]], float(level[j]), float(sign[j]))
    return list(torch.cat(out).split(b))


@pytest.mark.parametrize("all_ops, depth", [(False, -1), (True, 2)])
def test_chains_batched_equal_per_image(all_ops, depth):
    x = torch.rand(5, 3, 9, 9, generator=torch.Generator().manual_seed(1))
    batched = augmix_chains(x, severity=3, width=3, depth=depth, all_ops=all_ops,
                            generator=torch.Generator().manual_seed(4))
    looped = _chains_per_image(x, 3, 3, depth, all_ops, torch.Generator().manual_seed(4))
    for a, b in zip(batched, looped):
        assert torch.allclose(a, b, atol=1e-6)
