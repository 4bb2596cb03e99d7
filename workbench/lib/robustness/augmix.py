"""AugMix (Hendrycks et al., ICLR 2020), batched on tensors, as used by NoisyMix (and its comparison).

For each image: ``width`` chains, each of ``depth`` random ops (depth uniform in {1, 2, 3} when ``depth <= 0``);
chain weights w ~ Dirichlet(α, …, α), skip weight m ~ Beta(α, α); output (AugMix Algorithm 1)

    x_augmix = (1 − m)·x + m·Σᵢ wᵢ·chainᵢ(x).

Ops follow the AugMix reference list (autocontrast, equalize, posterize, rotate, solarize, shear x/y,
translate x/y) with PIL's integer/float level maps; colour/contrast/brightness/sharpness are off by default
because they overlap the test corruptions (``all_ops=True`` turns them on). Ops work on (B, C, H, W) float
tensors in [0, 1]; the uint8-based ones (equalize, posterize, solarize) quantise to 256 levels like PIL.
Geometric ops use PIL's conventions (pixel-centre affine maps, nearest neighbour, black fill).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from workbench.core.context import Shard

__all__ = ["OPS", "ALL_OPS", "augmix", "augmix_parts", "augmix_mix", "apply_op", "augmix_chains"]

OpFn = Callable[[Tensor, Tensor, Tensor], Tensor]  # (x (B,C,H,W), level (B,) in [0.1, severity], sign (B,) ±1)


def _int_parameter(level: Tensor, maxval: float) -> Tensor:
    """AugMix ``int_parameter``: floor(level·maxval/10)."""
    return torch.floor(level * maxval / 10.0)


def _float_parameter(level: Tensor, maxval: float) -> Tensor:
    return level * maxval / 10.0


def _quantise(x: Tensor) -> Tensor:
    return torch.round(x.clamp(0, 1) * 255.0).long()


def autocontrast(x: Tensor, level: Tensor, sign: Tensor) -> Tensor:
    """Per image and channel, stretch [min, max] to [0, 1] (PIL ImageOps.autocontrast, cutoff 0)."""
    lo = x.amin(dim=(2, 3), keepdim=True)
    hi = x.amax(dim=(2, 3), keepdim=True)
    span = hi - lo
    return torch.where(span > 0, (x - lo) / span.clamp_min(1e-12), x)


def equalize(x: Tensor, level: Tensor, sign: Tensor) -> Tensor:
    """PIL ImageOps.equalize per channel: lut[i] = (step//2 + Σ_{j<i} h[j]) // step, step = (n − h[last]) // 255."""
    b, c, hgt, wid = x.shape
    q = _quantise(x).reshape(b * c, hgt * wid)
    hist = torch.zeros(b * c, 256, dtype=torch.long, device=x.device).scatter_add_(1, q, torch.ones_like(q))
    levels = torch.arange(256, device=x.device)
    last = torch.where(hist > 0, levels, torch.full_like(levels, -1)).amax(dim=1)
    h_last = hist.gather(1, last.clamp_min(0).unsqueeze(1)).squeeze(1)
    step = (hgt * wid - h_last) // 255
    cum = hist.cumsum(1) - hist
    lut = ((step // 2).unsqueeze(1) + cum) // step.clamp_min(1).unsqueeze(1)
    lut = lut.clamp(0, 255)
    identity = (step == 0) | ((hist > 0).sum(1) <= 1)
    lut = torch.where(identity.unsqueeze(1), levels.expand_as(lut), lut)
    return (lut.gather(1, q).float() / 255.0).view(b, c, hgt, wid).to(x.dtype)


def posterize(x: Tensor, level: Tensor, sign: Tensor) -> Tensor:
    """Keep ``4 − int_parameter(level, 4)`` bits of each 8-bit value."""
    bits = (4 - _int_parameter(level, 4)).long().clamp(1, 8)
    shift = (8 - bits).view(-1, 1, 1, 1)
    q = _quantise(x)
    return ((q >> shift) << shift).to(x.dtype) / 255.0


def solarize(x: Tensor, level: Tensor, sign: Tensor) -> Tensor:
    """Invert every 8-bit value ≥ 256 − int_parameter(level, 256)."""
    thr = (256 - _int_parameter(level, 256)).long().view(-1, 1, 1, 1)
    q = _quantise(x)
    return torch.where(q >= thr, 255 - q, q).to(x.dtype) / 255.0


def affine(x: Tensor, coeffs: Tensor) -> Tensor:
    """PIL ``Image.transform(AFFINE, (a, b, c, d, e, f), NEAREST)``: the output pixel whose centre is (u, v)
    takes the input pixel containing (a·u + b·v + c, d·u + e·v + f); outside → 0. coeffs: (B, 6)."""
    b, ch, hgt, wid = x.shape
    v, u = torch.meshgrid(
        torch.arange(hgt, device=x.device, dtype=torch.float64) + 0.5,
        torch.arange(wid, device=x.device, dtype=torch.float64) + 0.5,
        indexing="ij",
    )
    co = coeffs.to(torch.float64).view(b, 6, 1, 1)
    xin = co[:, 0] * u + co[:, 1] * v + co[:, 2]
    yin = co[:, 3] * u + co[:, 4] * v + co[:, 5]
    xi = torch.floor(xin).long()
    yi = torch.floor(yin).long()
    valid = (xi >= 0) & (xi < wid) & (yi >= 0) & (yi < hgt)
    flat = (yi.clamp(0, hgt - 1) * wid + xi.clamp(0, wid - 1)).view(b, 1, hgt * wid).expand(b, ch, hgt * wid)
    out = x.reshape(b, ch, hgt * wid).gather(2, flat).view(b, ch, hgt, wid)
    return out * valid.unsqueeze(1).to(x.dtype)


def _rotation_coeffs(degrees: Tensor, hgt: int, wid: int) -> Tensor:
    """PIL Image.rotate about the centre (counter-clockwise for positive degrees)."""
    a = -degrees.to(torch.float64) * math.pi / 180.0
    cos, sin = torch.cos(a), torch.sin(a)
    cx, cy = wid / 2.0, hgt / 2.0
    c = cos * (-cx) + sin * (-cy) + cx
    f = -sin * (-cx) + cos * (-cy) + cy
    return torch.stack([cos, sin, c, -sin, cos, f], dim=1)


def _zeros_ones(level: Tensor) -> tuple[Tensor, Tensor]:
    return torch.zeros_like(level, dtype=torch.float64), torch.ones_like(level, dtype=torch.float64)


def _rotate_coeffs(level: Tensor, sign: Tensor, hgt: int, wid: int) -> Tensor:
    return _rotation_coeffs(_int_parameter(level, 30) * sign, hgt, wid)


def _shear_x_coeffs(level: Tensor, sign: Tensor, hgt: int, wid: int) -> Tensor:
    s = (_float_parameter(level, 0.3) * sign).to(torch.float64)
    z, o = _zeros_ones(level)
    return torch.stack([o, s, z, z, o, z], 1)


def _shear_y_coeffs(level: Tensor, sign: Tensor, hgt: int, wid: int) -> Tensor:
    s = (_float_parameter(level, 0.3) * sign).to(torch.float64)
    z, o = _zeros_ones(level)
    return torch.stack([o, z, z, s, o, z], 1)


def _translate_x_coeffs(level: Tensor, sign: Tensor, hgt: int, wid: int) -> Tensor:
    t = (_int_parameter(level, wid / 3) * sign).to(torch.float64)
    z, o = _zeros_ones(level)
    return torch.stack([o, z, t, z, o, z], 1)


def _translate_y_coeffs(level: Tensor, sign: Tensor, hgt: int, wid: int) -> Tensor:
    t = (_int_parameter(level, hgt / 3) * sign).to(torch.float64)
    z, o = _zeros_ones(level)
    return torch.stack([o, z, z, z, o, t], 1)


#: geometric ops as affine coefficient maps (so that one ``affine`` call serves all of them in a batch)
GEOMETRIC = {
    "rotate": _rotate_coeffs,
    "shear_x": _shear_x_coeffs,
    "shear_y": _shear_y_coeffs,
    "translate_x": _translate_x_coeffs,
    "translate_y": _translate_y_coeffs,
}


def rotate(x: Tensor, level: Tensor, sign: Tensor) -> Tensor:
    """PIL ``rotate(int_parameter(level, 30)·sign)`` about the centre, nearest, black fill."""
    return affine(x, _rotate_coeffs(level, sign, x.shape[2], x.shape[3]))


def shear_x(x: Tensor, level: Tensor, sign: Tensor) -> Tensor:
    """PIL affine (1, s, 0, 0, 1, 0), s = float_parameter(level, 0.3)·sign."""
    return affine(x, _shear_x_coeffs(level, sign, x.shape[2], x.shape[3]))


def shear_y(x: Tensor, level: Tensor, sign: Tensor) -> Tensor:
    return affine(x, _shear_y_coeffs(level, sign, x.shape[2], x.shape[3]))


def translate_x(x: Tensor, level: Tensor, sign: Tensor) -> Tensor:
    """PIL affine (1, 0, t, 0, 1, 0), t = int_parameter(level, W/3)·sign pixels."""
    return affine(x, _translate_x_coeffs(level, sign, x.shape[2], x.shape[3]))


def translate_y(x: Tensor, level: Tensor, sign: Tensor) -> Tensor:
    return affine(x, _translate_y_coeffs(level, sign, x.shape[2], x.shape[3]))


def _grey(x: Tensor) -> Tensor:
    if x.shape[1] == 3:
        w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * w).sum(1, keepdim=True).expand_as(x)
    return x


def _blend(degenerate: Tensor, x: Tensor, factor: Tensor) -> Tensor:
    """PIL ImageEnhance: degenerate + factor·(x − degenerate), clipped."""
    f = factor.to(x.dtype).view(-1, 1, 1, 1)
    return (degenerate + f * (x - degenerate)).clamp(0, 1)


def _enhance_factor(level: Tensor) -> Tensor:
    return _float_parameter(level, 1.8) + 0.1


def color(x: Tensor, level: Tensor, sign: Tensor) -> Tensor:
    return _blend(_grey(x), x, _enhance_factor(level))


def contrast(x: Tensor, level: Tensor, sign: Tensor) -> Tensor:
    mean = _grey(x).mean(dim=(1, 2, 3), keepdim=True).expand_as(x)
    return _blend(mean, x, _enhance_factor(level))


def brightness(x: Tensor, level: Tensor, sign: Tensor) -> Tensor:
    return _blend(torch.zeros_like(x), x, _enhance_factor(level))


def sharpness(x: Tensor, level: Tensor, sign: Tensor) -> Tensor:
    """PIL ImageEnhance.Sharpness: blend with the SMOOTH filter (centre 5, ring 1, /13), borders kept."""
    ch = x.shape[1]
    k = torch.ones(3, 3, dtype=x.dtype, device=x.device)
    k[1, 1] = 5.0
    k = (k / 13.0).expand(ch, 1, 3, 3)
    smooth = x.clone()
    smooth[:, :, 1:-1, 1:-1] = F.conv2d(x, k, groups=ch)
    return _blend(smooth, x, _enhance_factor(level))


OPS: dict[str, OpFn] = {
    "autocontrast": autocontrast,
    "equalize": equalize,
    "posterize": posterize,
    "rotate": rotate,
    "solarize": solarize,
    "shear_x": shear_x,
    "shear_y": shear_y,
    "translate_x": translate_x,
    "translate_y": translate_y,
}
ALL_OPS: dict[str, OpFn] = {**OPS, "color": color, "contrast": contrast, "brightness": brightness, "sharpness": sharpness}


def apply_op(x: Tensor, name: str, level: float | Tensor, sign: float | Tensor = 1.0) -> Tensor:
    """Apply one AugMix op by name to a batch, with a level in [0.1, 10] (AugMix ``sample_level`` range)."""
    if name not in ALL_OPS:
        raise ValueError(f"op must be one of {', '.join(ALL_OPS)}, got {name!r}")
    x4, squeeze = _as_batch(x)
    b = x4.shape[0]
    lv = torch.as_tensor(level, dtype=torch.float64).expand(b).clone()
    sg = torch.as_tensor(sign, dtype=torch.float64).expand(b).clone()
    out = ALL_OPS[name](x4, lv, sg)
    return out.squeeze(1) if squeeze else out


def _as_batch(x: Tensor) -> tuple[Tensor, bool]:
    if x.dim() == 3:
        return x.unsqueeze(1), True
    if x.dim() != 4:
        raise ValueError(f"images must be N×H×W or N×C×H×W, got shape {tuple(x.shape)}")
    return x, False


def _rng(generator: torch.Generator | None) -> np.random.Generator:
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    return np.random.default_rng(seed)


def augmix_chains(
    x: Tensor,
    severity: int = 3,
    width: int = 3,
    depth: int = -1,
    all_ops: bool = False,
    generator: torch.Generator | None = None,
    shard: Shard | None = None,
) -> list[Tensor]:
    """The ``width`` augmentation chains of AugMix, each (B, C, H, W), before mixing (for the previewer).

    ``shard``: ``x`` is this rank's rows of a global batch; every draw is made for the global batch and the
    rank's entries kept (each op acts on one image at a time), so the ranks together draw what one process draws."""
    x4, squeeze = _as_batch(x)
    _check(severity, width, depth)
    rng = _rng(generator)
    names = list(ALL_OPS if all_ops else OPS)
    b = x4.shape[0]
    hgt, wid = x4.shape[2], x4.shape[3]
    # all chains of all images form one batch of width·b images (chain-major)
    xa = x4.repeat(width, 1, 1, 1)
    bg = b if shard is None else shard.size
    n = width * bg
    d = rng.integers(1, 4, size=n) if depth <= 0 else np.full(n, depth)
    keep = None if shard is None else (np.arange(width)[:, None] * bg + shard.rows().numpy()[None, :]).ravel()
    rounds = int(d.max())
    if keep is not None:
        d = d[keep]
    geo = [i for i, nm in enumerate(names) if nm in GEOMETRIC]
    for pos in range(rounds):
        which = rng.integers(0, len(names), size=n)
        level = torch.from_numpy(rng.uniform(0.1, severity, size=n))
        sign = torch.from_numpy(np.where(rng.random(n) < 0.5, -1.0, 1.0))
        if keep is not None:
            which, level, sign = which[keep], level[torch.from_numpy(keep)], sign[torch.from_numpy(keep)]
        active = d > pos
        geo_sel = active & np.isin(which, geo)
        if geo_sel.any():
            idx = torch.from_numpy(np.flatnonzero(geo_sel))
            coeffs = torch.empty(len(idx), 6, dtype=torch.float64)
            for o in geo:
                m = torch.from_numpy(which[geo_sel] == o)
                if bool(m.any()):
                    coeffs[m] = GEOMETRIC[names[o]](level[idx][m], sign[idx][m], hgt, wid)
            xa[idx] = affine(xa[idx], coeffs).to(xa.dtype)
        for o, nm in enumerate(names):
            if o in geo:
                continue
            sel = active & (which == o)
            if sel.any():
                idx = torch.from_numpy(np.flatnonzero(sel))
                xa[idx] = ALL_OPS[nm](xa[idx], level[idx], sign[idx]).to(xa.dtype)
    chains = list(xa.split(b))
    return [c.squeeze(1) for c in chains] if squeeze else chains


def _check(severity: int, width: int, depth: int) -> None:
    if not 1 <= severity <= 10:
        raise ValueError(f"severity must be in [1, 10], got {severity}")
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    if depth > 10:
        raise ValueError(f"depth must be <= 10 (<= 0: random in 1..3), got {depth}")


def augmix_parts(
    x: Tensor,
    severity: int = 3,
    width: int = 3,
    depth: int = -1,
    alpha: float = 1.0,
    all_ops: bool = False,
    generator: torch.Generator | None = None,
    shard: Shard | None = None,
) -> tuple[list[Tensor], Tensor, Tensor]:
    """What :func:`augmix` mixes, for a batch N×C×H×W: (the ``width`` chains, w (N, width) ~ Dirichlet(α·1),
    m (N,) ~ Beta(α, α)); ``augmix_mix(x, *augmix_parts(x, ..., generator))`` equals ``augmix(x, ..., generator)``
    drawn from the same generator state (the previewer shows the chains a mixture is made of). ``shard``: as in
    :func:`augmix_chains` (w and m drawn for the global batch, this rank's rows kept)."""
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    rng = _rng(generator)
    b = x.shape[0] if shard is None else shard.size
    w = torch.from_numpy(rng.dirichlet([alpha] * width, size=b)).to(x.dtype)
    m = torch.from_numpy(rng.beta(alpha, alpha, size=b)).to(x.dtype)
    if shard is not None:
        w, m = shard.take(w), shard.take(m)
    chains = augmix_chains(x, severity, width, depth, all_ops, generator, shard)  # its own draws, after w and m's seed
    return chains, w, m


def augmix(
    x: Tensor,
    severity: int = 3,
    width: int = 3,
    depth: int = -1,
    alpha: float = 1.0,
    all_ops: bool = False,
    generator: torch.Generator | None = None,
    shard: Shard | None = None,
) -> Tensor:
    """AugMix a batch of images in [0, 1] (N×H×W or N×C×H×W); returns the same shape and dtype.

    Per image: w ~ Dirichlet(α·1_width), m ~ Beta(α, α); output (1 − m)·x + m·Σ wᵢ·chainᵢ(x) (Algorithm 1).
    ``shard``: ``x`` is this rank's rows of a global batch (:func:`augmix_chains`).
    """
    x4, squeeze = _as_batch(x)
    chains, w, m = augmix_parts(x4, severity, width, depth, alpha, all_ops, generator, shard)
    out = augmix_mix(x4, chains, w, m)
    return out.squeeze(1) if squeeze else out


def augmix_mix(x: Tensor, chains: list[Tensor], weights: Tensor, m: Tensor) -> Tensor:
    """AugMix Algorithm 1, last line: (1 − m)·x + m·Σᵢ wᵢ·chainᵢ, per image (weights (B, width), m (B,))."""
    b = x.shape[0]
    if weights.shape != (b, len(chains)) or m.shape != (b,):
        raise ValueError(f"weights must be ({b}, {len(chains)}) and m ({b},); got {tuple(weights.shape)}, {tuple(m.shape)}")
    shape = (b,) + (1,) * (x.dim() - 1)
    mix = sum(weights[:, i].view(shape) * chains[i] for i in range(len(chains)))
    mm = m.view(shape).to(x.dtype)
    return ((1 - mm) * x + mm * mix).clamp(0, 1)
