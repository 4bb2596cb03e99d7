"""Common corruptions (Hendrycks & Dietterich, ICLR 2019) for images of any size ≥ 8×8.

``corrupt(images, name, severity, seed=None)`` takes images in [0, 1] shaped N×H×W or N×C×H×W (grayscale or
RGB; numpy or torch, float) and returns the same shape, type and dtype, clipped to [0, 1].

Constants are those of CIFAR-10-C (``make_cifar_c.py``). Spatial constants (blur radii and sigmas, shuffle
distances, zoom, motion length, snow flakes) are in pixels of a 32×32 image and are rescaled by s = H/32 for
H ≥ 32 and s = sqrt(H/32) below (8×8 → 0.5), so that blurs on tiny images stay visible. Deviations, each
documented at its function, all so that every corruption works on 8×8 images and its distortion (mean absolute
pixel change) grows strictly with severity, which the tests check on grey digits-like and colour images:

- procedural substitutes where the original needs files or ImageMagick: frost (random ice-needle texture over a
  plasma haze), motion blur and snow's motion blur (Gaussian-weighted one-sided line kernel at a random angle);
- defocus: an anti-aliased disk whose variance matches CIFAR-10-C's binary disk (a binary disk cannot shrink
  below one pixel);
- glass blur, frost, saturate, spatter, snow and elastic: constants adjusted where CIFAR-10-C's trade one
  effect against another (more blur / less shuffling, dimmer image / more frost, …) and the distortion would
  not grow; spatter's OpenCV edge shading is replaced by a blurred mask, and mud is laid over water;
- pixelate and JPEG below 16 px: target sizes 7, 5, 4, 3, 2 (8×8) and qualities 80, 55, 40, 25, 12, since
  CIFAR-10-C's collapse neighbouring severities on an 8×8 image;
- saturate is the identity on single-channel images (nothing to saturate).

Also NFM's test-time perturbations (Lim et al. 2022, §5): ``white_noise`` (additive Gaussian, per channel)
and ``salt_and_pepper`` (each channel element replaced independently), at the levels of
:data:`WHITE_NOISE_LEVELS` and :data:`SALT_PEPPER_LEVELS` (the NFM paper's levels are among them).

Every corruption draws its randomness from ``np.random.default_rng(seed)`` and is deterministic given the seed.
Severity 0 returns a copy (handy for sliders); severities 1–5 raise the distortion monotonically (tested).
"""
from __future__ import annotations

import io
import math
from typing import Any, Callable

import numpy as np
from PIL import Image

__all__ = [
    "CORRUPTIONS",
    "STANDARD",
    "EXTRA",
    "NOISE",
    "WHITE_NOISE_LEVELS",
    "SALT_PEPPER_LEVELS",
    "corrupt",
    "white_noise",
    "salt_and_pepper",
    "plasma_fractal",
]

Array = np.ndarray
Fn = Callable[[Array, int, np.random.Generator], Array]

WHITE_NOISE_LEVELS = (0.05, 0.1, 0.2, 0.3, 0.4)
SALT_PEPPER_LEVELS = (0.01, 0.02, 0.04, 0.06, 0.1)


# ---------------------------------------------------------------- helpers (x: float64 N×C×H×W in [0, 1])
def _scale(x: Array) -> float:
    """Spatial rescaling of CIFAR-10-C's pixel constants: H/32 from 32 px up, sqrt(H/32) below (8×8 → 0.5),
    so that blurs on tiny images stay visible instead of shrinking below a tenth of a pixel."""
    r = x.shape[2] / 32.0
    return r if r >= 1 else math.sqrt(r)


def _blur(x: Array, sigma: float) -> Array:
    from scipy import ndimage  # imported on use: about 0.15 s that registering the experiments need not pay
    if sigma <= 0:
        return x.copy()
    return ndimage.gaussian_filter(x, sigma=(0, 0, sigma, sigma), mode="nearest", truncate=4.0)


def _grey(x: Array) -> Array:
    if x.shape[1] == 3:
        return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
    return x.mean(1, keepdims=True)


def _conv_per_image(x: Array, kernels: list[Array]) -> Array:
    from scipy import ndimage
    out = np.empty_like(x)
    for i, k in enumerate(kernels):
        out[i] = ndimage.convolve(x[i], k[None], mode="nearest")
    return out


def _disk(radius: float, alias_blur: float) -> Array:
    """Anti-aliased disk (area coverage by 8×8 supersampling) blurred by ``alias_blur``; sums to 1."""
    from scipy import ndimage
    half = int(math.ceil(radius + 3 * alias_blur)) + 1
    if radius < 0.25:  # below a quarter pixel the disk is a single pixel
        k = np.zeros((2 * half + 1, 2 * half + 1))
        k[half, half] = 1.0
        if alias_blur > 0:
            k = ndimage.gaussian_filter(k, alias_blur, mode="constant")
        return k / k.sum()
    ss = 8
    t = (np.arange(-half * ss, (half + 1) * ss) + 0.5) / ss - 0.5
    xx, yy = np.meshgrid(t, t)
    inside = (xx**2 + yy**2 <= max(radius, 0.5 / ss) ** 2).astype(np.float64)
    n = 2 * half + 1
    k = inside.reshape(n, ss, n, ss).mean(axis=(1, 3))
    if alias_blur > 0:
        k = ndimage.gaussian_filter(k, alias_blur, mode="constant")
    return k / k.sum()


def _line_kernel(length: float, sigma: float, angle_deg: float) -> Array:
    """One-sided motion kernel: weights exp(−t²/2σ²) for t ∈ [0, length] along ``angle`` (bilinear splat)."""
    half = int(math.ceil(length)) + 1
    k = np.zeros((2 * half + 1, 2 * half + 1))
    ts = np.linspace(0, length, max(2, int(length * 8) + 1))
    w = np.exp(-(ts**2) / (2 * max(sigma, 1e-3) ** 2))
    a = math.radians(angle_deg)
    xs, ys = half + ts * math.cos(a), half - ts * math.sin(a)
    for xf, yf, wf in zip(xs, ys, w):
        x0, y0 = int(math.floor(xf)), int(math.floor(yf))
        dx, dy = xf - x0, yf - y0
        for ox, oy, ww in ((0, 0, (1 - dx) * (1 - dy)), (1, 0, dx * (1 - dy)), (0, 1, (1 - dx) * dy), (1, 1, dx * dy)):
            if 0 <= y0 + oy < k.shape[0] and 0 <= x0 + ox < k.shape[1]:
                k[y0 + oy, x0 + ox] += wf * ww
    return k / k.sum()


def plasma_fractal(n: int, size: int, wibbledecay: float, rng: np.random.Generator) -> Array:
    """Diamond-square plasma fractal, n maps of size×size (size a power of two) in [0, 1] (CIFAR-10-C fog)."""
    maps = np.zeros((n, size, size))
    step = size
    wibble = 100.0
    maps[:, 0, 0] = 0
    while step >= 2:
        half = step // 2
        wibble /= wibbledecay
        # squares: centre of each square = mean of its corners + noise
        corners = maps[:, 0:size:step, 0:size:step]
        total = corners + np.roll(corners, -1, 1) + np.roll(corners, -1, 2) + np.roll(np.roll(corners, -1, 1), -1, 2)
        maps[:, half:size:step, half:size:step] = total / 4 + wibble * rng.uniform(-1, 1, total.shape)
        # diamonds
        sq = maps[:, half:size:step, half:size:step]
        c = maps[:, 0:size:step, 0:size:step]
        ltsum = sq + np.roll(sq, 1, 1)
        maps[:, 0:size:step, half:size:step] = (c + np.roll(c, -1, 2) + ltsum) / 4 + wibble * rng.uniform(-1, 1, c.shape)
        ltsum = sq + np.roll(sq, 1, 2)
        maps[:, half:size:step, 0:size:step] = (c + np.roll(c, -1, 1) + ltsum) / 4 + wibble * rng.uniform(-1, 1, c.shape)
        step = half
    maps -= maps.min(axis=(1, 2), keepdims=True)
    return maps / np.maximum(maps.max(axis=(1, 2), keepdims=True), 1e-12)


def _crop_plasma(x: Array, wibbledecay: float, rng: np.random.Generator) -> Array:
    h, w = x.shape[2:]
    size = 2 ** int(math.ceil(math.log2(max(h, w, 2))))
    return plasma_fractal(x.shape[0], size, wibbledecay, rng)[:, None, :h, :w]


def _clipped_zoom(x: Array, z: float) -> Array:
    """Zoom the centre by factor z ≥ 1 back to the same size (bilinear, border-clamped), all images at once."""
    import torch
    import torch.nn.functional as F

    n = x.shape[0]
    theta = torch.tensor([[1.0 / z, 0.0, 0.0], [0.0, 1.0 / z, 0.0]], dtype=torch.float64).expand(n, 2, 3)
    t = torch.from_numpy(np.ascontiguousarray(x))
    grid = F.affine_grid(theta, list(t.shape), align_corners=False)
    return F.grid_sample(t, grid, mode="bilinear", padding_mode="border", align_corners=False).numpy()


def _rgb_to_hsv(x: Array) -> tuple[Array, Array, Array]:
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    v = x.max(1)
    mn = x.min(1)
    d = v - mn
    s = np.where(v > 0, d / np.maximum(v, 1e-12), 0.0)
    dd = np.maximum(d, 1e-12)
    h = np.where(v == r, (g - b) / dd % 6, np.where(v == g, (b - r) / dd + 2, (r - g) / dd + 4)) / 6.0
    h = np.where(d > 0, h, 0.0)
    return h, s, v


def _hsv_to_rgb(h: Array, s: Array, v: Array) -> Array:
    i = np.floor(h * 6) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = np.zeros((h.shape[0], 3) + h.shape[1:])
    for k, (r, g, b) in enumerate(choices):
        m = i == k
        out[:, 0][m], out[:, 1][m], out[:, 2][m] = r[m], g[m], b[m]
    return out


def _to_pil(img: Array) -> Image.Image:
    arr = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
    return Image.fromarray(arr[0], "L") if arr.shape[0] == 1 else Image.fromarray(arr.transpose(1, 2, 0), "RGB")


def _from_pil(im: Image.Image, channels: int) -> Array:
    arr = np.asarray(im, dtype=np.float64) / 255.0
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


# ---------------------------------------------------------------- noise
def gaussian_noise(x: Array, severity: int, rng: np.random.Generator) -> Array:
    c = [0.04, 0.06, 0.08, 0.09, 0.10][severity - 1]
    return x + rng.normal(size=x.shape) * c


def shot_noise(x: Array, severity: int, rng: np.random.Generator) -> Array:
    c = [500, 250, 100, 75, 50][severity - 1]
    return rng.poisson(x * c) / c


def impulse_noise(x: Array, severity: int, rng: np.random.Generator) -> Array:
    c = [0.01, 0.02, 0.03, 0.05, 0.07][severity - 1]
    return _salt_pepper(x, c, rng)


def speckle_noise(x: Array, severity: int, rng: np.random.Generator) -> Array:
    c = [0.06, 0.1, 0.12, 0.16, 0.2][severity - 1]
    return x + x * rng.normal(size=x.shape) * c


def _salt_pepper(x: Array, amount: float, rng: np.random.Generator) -> Array:
    """Each element independently: with prob. amount/2 → 1 (salt), amount/2 → 0 (pepper) (skimage 's&p')."""
    u = rng.random(x.shape)
    out = x.copy()
    out[u < amount / 2] = 0.0
    out[(u >= amount / 2) & (u < amount)] = 1.0
    return out


def white_noise(images: Any, level: float, seed: int | None = None) -> Any:
    """NFM's test-time white noise: x + level·N(0, 1) on every channel element, clipped."""
    return _apply(images, lambda x, rng: x + level * rng.normal(size=x.shape), seed)


def salt_and_pepper(images: Any, level: float, seed: int | None = None) -> Any:
    """NFM's salt-and-pepper noise: a fraction ``level`` of channel elements set to 0 or 1 (half each)."""
    if not 0 <= level <= 1:
        raise ValueError(f"level must be in [0, 1], got {level}")
    return _apply(images, lambda x, rng: _salt_pepper(x, level, rng), seed)


def _white(x: Array, severity: int, rng: np.random.Generator) -> Array:
    return x + WHITE_NOISE_LEVELS[severity - 1] * rng.normal(size=x.shape)


def _sp(x: Array, severity: int, rng: np.random.Generator) -> Array:
    return _salt_pepper(x, SALT_PEPPER_LEVELS[severity - 1], rng)


# ---------------------------------------------------------------- blur
def gaussian_blur(x: Array, severity: int, rng: np.random.Generator) -> Array:
    c = [0.4, 0.6, 0.7, 0.8, 1.0][severity - 1]
    return _blur(x, c * _scale(x))


def _binary_disk_variance(radius: float) -> float:
    """Per-axis variance of OpenCV's binary disk {X² + Y² ≤ r²} used by CIFAR-10-C (r < 1: a single pixel)."""
    t = np.arange(-8, 9)
    xx, yy = np.meshgrid(t, t)
    inside = xx**2 + yy**2 <= radius**2
    return float((xx[inside] ** 2).mean())


def defocus_blur(x: Array, severity: int, rng: np.random.Generator) -> Array:
    """Disk kernel blurred by a Gaussian (CIFAR-10-C's (radius, alias blur)). Because the binary disk cannot be
    rescaled below a pixel, we use an anti-aliased disk whose variance matches CIFAR-10-C's binary disk
    (radius 2·sqrt(var)), both scaled by the spatial factor."""
    from scipy import ndimage
    radius, alias = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)][severity - 1]
    s = _scale(x)
    k = _disk(2 * math.sqrt(_binary_disk_variance(radius)) * s, alias * s)
    return ndimage.convolve(x, k[None, None], mode="nearest")


def glass_blur(x: Array, severity: int, rng: np.random.Generator) -> Array:
    """Blur, locally shuffle pixels (swap with a random neighbour within ``max_delta``), blur again.

    CIFAR-10-C's (σ, δ, iterations) = (0.05,1,1), (0.25,1,1), (0.4,1,1), (0.25,1,2), (0.4,1,2) alternate between
    more blur and more shuffling, which smooths the shuffle away; ours raise both together so that the
    distortion grows: σ 0.3–0.5 (× spatial factor), δ = 1 pixel, 1 or 2 iterations, and each position takes part
    in a swap with probability p = 0.35, 0.6, 0.9, 0.8, 1."""
    sigma, delta, iterations, p = [(0.3, 1, 1, 0.35), (0.35, 1, 1, 0.6), (0.4, 1, 1, 0.9), (0.45, 1, 2, 0.8),
                                   (0.5, 1, 2, 1.0)][severity - 1]
    s = _scale(x)
    delta = max(1, int(round(delta * s)))
    out = _blur(x, sigma * s)
    n, _, h, w = out.shape
    rows = np.arange(n)
    for _ in range(iterations):
        for i in range(h - delta, delta - 1, -1):
            for j in range(w - delta, delta - 1, -1):
                dx, dy = rng.integers(-delta, delta + 1, size=(2, n))
                off = rng.random(n) >= p
                dx[off], dy[off] = 0, 0
                i2, j2 = np.clip(i + dy, 0, h - 1), np.clip(j + dx, 0, w - 1)
                a = out[rows, :, i, j].copy()
                out[rows, :, i, j] = out[rows, :, i2, j2]
                out[rows, :, i2, j2] = a
    return _blur(out, sigma * s)


def motion_blur(x: Array, severity: int, rng: np.random.Generator) -> Array:
    """Procedural substitute for ImageMagick's ``motion_blur(radius, sigma, angle)``: a one-sided Gaussian-weighted
    line kernel of length radius·H/32 at a random angle in [−45°, 45°] per image."""
    radius, sigma = [(10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3)][severity - 1]
    s = _scale(x)
    angles = rng.uniform(-45, 45, size=x.shape[0])
    return _conv_per_image(x, [_line_kernel(radius * s * 0.5, sigma * s, a) for a in angles])


def zoom_blur(x: Array, severity: int, rng: np.random.Generator) -> Array:
    top = [1.06, 1.11, 1.16, 1.21, 1.26][severity - 1]
    zooms = np.arange(1, top, 0.01)
    out = x.copy()
    for z in zooms:
        out += _clipped_zoom(x, float(z))
    return out / (len(zooms) + 1)


# ---------------------------------------------------------------- weather
def fog(x: Array, severity: int, rng: np.random.Generator) -> Array:
    c0, c1 = [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)][severity - 1]
    mx = x.max(axis=(1, 2, 3), keepdims=True)
    out = x + c0 * _crop_plasma(x, c1, rng)
    return out * mx / (mx + c0)


def _frost_texture(n: int, h: int, w: int, rng: np.random.Generator) -> Array:
    """Procedural frost: many short bright random strokes (ice needles) over a rough plasma haze, in [0, 1]."""
    from scipy import ndimage
    size = 2 ** int(math.ceil(math.log2(max(h, w, 2))))
    haze = plasma_fractal(n, size, 1.6, rng)[:, :h, :w]
    needles = np.zeros((n, h, w))
    count = max(4, (h * w) // 6)
    for _ in range(3):
        ys, xs = rng.integers(0, h, (n, count)), rng.integers(0, w, (n, count))
        for k in range(count):
            needles[np.arange(n), ys[:, k], xs[:, k]] += rng.uniform(0.5, 1.0, n)
    needles = ndimage.gaussian_filter(needles, (0, 0.6, 0.6))
    tex = 0.55 * haze + 0.9 * needles / np.maximum(needles.max(axis=(1, 2), keepdims=True), 1e-12)
    return np.clip(tex, 0, 1)[:, None]


def frost(x: Array, severity: int, rng: np.random.Generator) -> Array:
    """c0·x + c1·frost; the frost image is procedural (no photographs shipped). CIFAR-10-C's (c0, c1) =
    (1, .2), (1, .3), (.9, .4), (.85, .4), (.75, .45) dim the image as fast as they add frost, which cancels
    on mid-grey images; ours keep c0 ≥ 0.85 and raise c1 to 0.6 so that the distortion grows."""
    c0, c1 = [(1, 0.2), (1, 0.3), (0.95, 0.4), (0.9, 0.5), (0.85, 0.6)][severity - 1]
    return c0 * x + c1 * _frost_texture(x.shape[0], x.shape[2], x.shape[3], rng)


def snow(x: Array, severity: int, rng: np.random.Generator) -> Array:
    """CIFAR-10-C snow: thresholded zoomed noise layer, motion-blurred (procedural line kernel, angle
    U(−135°, −45°)), added twice (flipped) over a brightened image; the flake layer is scaled by 1, 1, 1.3,
    1.35, 1.4 (severities 2 and 3 tie on small images otherwise)."""
    c = [(0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
         (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)][severity - 1]
    n, ch, h, w = x.shape
    s = _scale(x)
    layer = rng.normal(loc=c[0], scale=c[1], size=(n, 1, h, w))
    layer = _clipped_zoom(layer, c[2])
    layer[layer < c[3]] = 0
    angles = rng.uniform(-135, -45, size=n)
    layer = np.clip(_conv_per_image(layer, [_line_kernel(c[4] * s * 0.5, c[5] * s, a) for a in angles]), 0, 1)
    bright = np.maximum(x, _grey(x) * 1.5 + 0.5)
    out = c[6] * x + (1 - c[6]) * bright
    gain = [1.0, 1.0, 1.3, 1.35, 1.4][severity - 1]  # sev. 2 and 3 tie on small images otherwise
    return out + gain * (layer + layer[:, :, ::-1, ::-1])


def spatter(x: Array, severity: int, rng: np.random.Generator) -> Array:
    """Simplified CIFAR-10-C spatter: a blurred, thresholded liquid layer blended in as water (c5 = 0, pale
    cyan) or mud (c5 = 1, brown); OpenCV's edge-based water shading is replaced by the blurred mask."""
    c = [(0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
         (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1)][severity - 1]
    n, ch, h, w = x.shape
    s = _scale(x)
    liquid = _blur(rng.normal(c[0], c[1], size=(n, 1, h, w)), c[2] * s)
    liquid[liquid < c[3]] = 0
    mask = np.clip(_blur(np.where(liquid > 0, 1.0, 0.0), c[4] * s), 0, 1)
    if c[5] == 0:
        colour = np.array([175 / 255, 238 / 255, 238 / 255])
    else:
        colour = np.array([63 / 255, 42 / 255, 20 / 255])
    strength = [0.3, 0.45, 0.6, 0.8, 1.0][severity - 1]
    if c[5] == 1:  # mud over a water layer of severity 3: more liquid, never less
        x = spatter(x, 3, rng)
        mask = mask * (0.6 if severity == 4 else 1.0)
    col = colour.reshape(1, 3, 1, 1) if ch == 3 else np.full((1, ch, 1, 1), colour.mean())
    m = np.clip(mask * strength, 0, 1)
    return x * (1 - m) + col * m


# ---------------------------------------------------------------- digital
def brightness(x: Array, severity: int, rng: np.random.Generator) -> Array:
    """HSV value + c; with H and S fixed this scales RGB by v'/v (black pixels become grey v')."""
    c = [0.05, 0.1, 0.15, 0.2, 0.3][severity - 1]
    if x.shape[1] != 3:
        return x + c
    v = x.max(1, keepdims=True)
    v2 = np.clip(v + c, 0, 1)
    return np.where(v > 0, x * v2 / np.maximum(v, 1e-12), v2)


def saturate(x: Array, severity: int, rng: np.random.Generator) -> Array:
    """HSV saturation·c0 + c1. Factors (0.6, 0.3, 1.7, 2.2, 3.0, + c1) instead of CIFAR-10-C's (0.3, 0.1, 1.5,
    2, 2.5) so that the distortion grows with severity. Identity on single-channel images."""
    c0, c1 = [(0.6, 0), (0.3, 0), (1.8, 0), (2.6, 0.1), (3.5, 0.2)][severity - 1]
    if x.shape[1] != 3:
        return x.copy()
    h, s, v = _rgb_to_hsv(np.clip(x, 0, 1))
    return _hsv_to_rgb(h, np.clip(s * c0 + c1 * (s > 0), 0, 1), v)


def contrast(x: Array, severity: int, rng: np.random.Generator) -> Array:
    c = [0.75, 0.5, 0.4, 0.3, 0.15][severity - 1]
    means = x.mean(axis=(1, 2, 3), keepdims=True)
    return (x - means) * c + means


def elastic_transform(x: Array, severity: int, rng: np.random.Generator) -> Array:
    """CIFAR-10-C elastic: random affine (corner points moved by ±c2) then a smoothed random displacement
    field (scale c0, smoothness c1); all constants are fractions of the image size as in the original. Because
    CIFAR-10-C's severities swap affine strength for elastic strength, both displacements are multiplied by
    0.6, 0.8, 1, 1.3, 2.2 so that the distortion grows with severity."""
    from scipy import ndimage
    c = [(0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)][severity - 1]
    n, ch, h, w = x.shape
    size = float(h)
    alpha, sigma, affine_alpha = c[0] * size, c[1] * size, c[2] * size
    # the CIFAR constants trade affine for elastic strength; keep total displacement growing with severity
    growth = [0.6, 0.8, 1.0, 1.3, 2.2][severity - 1]
    out = np.empty_like(x)
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    for i in range(n):
        src = np.array([[w / 2 - size / 4, h / 2 - size / 4], [w / 2 + size / 4, h / 2 - size / 4], [w / 2 - size / 4, h / 2 + size / 4]])
        dst = src + rng.uniform(-affine_alpha, affine_alpha, size=src.shape) * growth
        # affine A·dst + t = src (inverse map: output coordinate → input coordinate)
        m = np.linalg.solve(np.c_[dst, np.ones(3)], src)  # 3×2
        px = m[0, 0] * xx + m[1, 0] * yy + m[2, 0]
        py = m[0, 1] * xx + m[1, 1] * yy + m[2, 1]
        if alpha > 0:
            dx = ndimage.gaussian_filter(rng.uniform(-1, 1, (h, w)), sigma, mode="reflect") * alpha * growth
            dy = ndimage.gaussian_filter(rng.uniform(-1, 1, (h, w)), sigma, mode="reflect") * alpha * growth
            px, py = px + dx, py + dy
        for k in range(ch):
            out[i, k] = ndimage.map_coordinates(x[i, k], [py, px], order=1, mode="reflect")
    return out


def pixelate(x: Array, severity: int, rng: np.random.Generator) -> Array:
    """Box-downsample to c·size and back up (box), as CIFAR-10-C. Below 16 px the fractions become
    (0.9, 0.65, 0.5, 0.375, 0.25) (8×8: 7, 5, 4, 3, 2; CIFAR-10-C's would give 7, 7, 6, 6, 5, and 6 aliases
    badly); sizes are forced strictly decreasing."""
    n, ch, h, w = x.shape
    c = [0.95, 0.9, 0.85, 0.75, 0.65] if h >= 16 else [0.9, 0.65, 0.5, 0.375, 0.25]
    sizes = []
    for k in range(5):
        t = int(h * c[k])
        if sizes:
            t = min(t, sizes[-1] - 1)
        sizes.append(max(t, 1))
    t = sizes[severity - 1]
    tw = max(1, int(round(t * w / h)))
    out = np.empty_like(x)
    for i in range(n):
        im = _to_pil(x[i]).resize((tw, t), Image.BOX).resize((w, h), Image.BOX)
        out[i] = _from_pil(im, ch)
    return out


def jpeg_compression(x: Array, severity: int, rng: np.random.Generator) -> Array:
    """PIL JPEG at CIFAR-10-C's qualities (80, 65, 58, 50, 40); below 16 px, where one 8×8 block holds the whole
    image and neighbouring qualities tie, (80, 55, 40, 25, 12)."""
    c = ([80, 65, 58, 50, 40] if x.shape[2] >= 16 else [80, 55, 40, 25, 12])[severity - 1]
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        buf = io.BytesIO()
        _to_pil(x[i]).save(buf, "JPEG", quality=c)
        out[i] = _from_pil(Image.open(io.BytesIO(buf.getvalue())), x.shape[1])
    return out


STANDARD: dict[str, Fn] = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "defocus_blur": defocus_blur,
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
    "zoom_blur": zoom_blur,
    "snow": snow,
    "frost": frost,
    "fog": fog,
    "brightness": brightness,
    "contrast": contrast,
    "elastic_transform": elastic_transform,
    "pixelate": pixelate,
    "jpeg_compression": jpeg_compression,
}
EXTRA: dict[str, Fn] = {"speckle_noise": speckle_noise, "gaussian_blur": gaussian_blur, "spatter": spatter, "saturate": saturate}
NOISE: dict[str, Fn] = {"white_noise": _white, "salt_and_pepper": _sp}
_ALL: dict[str, Fn] = {**STANDARD, **EXTRA, **NOISE}
#: every corruption name, in benchmark order (15 standard, 4 extra, NFM's 2 noises)
CORRUPTIONS: tuple[str, ...] = tuple(_ALL)


# ---------------------------------------------------------------- entry point
def _apply(images: Any, fn: Callable[[Array, np.random.Generator], Array], seed: int | None) -> Any:
    is_torch = type(images).__module__.startswith("torch")
    arr = images.detach().cpu().numpy() if is_torch else np.asarray(images)
    if arr.ndim not in (3, 4):
        raise ValueError(f"images must be N×H×W or N×C×H×W, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"images must be floating point in [0, 1], got dtype {arr.dtype}")
    x = arr[:, None] if arr.ndim == 3 else arr
    if x.shape[2] < 8 or x.shape[3] < 8:
        raise ValueError(f"images must be at least 8×8, got {x.shape[2]}×{x.shape[3]}")
    out = np.clip(fn(x.astype(np.float64), np.random.default_rng(seed)), 0, 1)
    out = (out[:, 0] if arr.ndim == 3 else out).astype(arr.dtype)
    if is_torch:
        import torch

        return torch.from_numpy(np.ascontiguousarray(out)).to(images.device)
    return out


def corrupt(images: Any, name: str, severity: int, seed: int | None = None) -> Any:
    """Apply corruption ``name`` (one of :data:`CORRUPTIONS`) at ``severity`` 0–5 to images in [0, 1].

    Same shape, container (numpy/torch) and dtype out, values in [0, 1]. Deterministic given ``seed``.
    """
    if name not in _ALL:
        raise ValueError(f"corruption name must be one of {', '.join(CORRUPTIONS)}, got {name!r}")
    if not isinstance(severity, (int, np.integer)) or not 0 <= severity <= 5:
        raise ValueError(f"severity must be an integer in [0, 5], got {severity!r}")
    if severity == 0:
        return _apply(images, lambda x, rng: x.copy(), seed)
    return _apply(images, lambda x, rng: _ALL[name](x, int(severity), rng), seed)
