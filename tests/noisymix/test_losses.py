"""NoisyMix maths: Jensen–Shannon (AugMix Eq. 1) and the NoisyMix loss (×1/×2/×3 noise, sparsity)."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tests.common import Staged, g
from workbench.methods.noisymix import augmix_jsd_loss, jensen_shannon, noisymix_loss


def test_js_zero_for_identical():
    z = torch.randn(5, 7, generator=g(1))
    assert float(jensen_shannon(z, z, z)) < 1e-6


def test_js_symmetric():
    a, b, c = (torch.randn(4, 6, generator=g(i)) for i in range(3))
    ref = jensen_shannon(a, b, c)
    for perm in [(b, a, c), (c, b, a), (a, c, b), (b, c, a)]:
        assert torch.allclose(jensen_shannon(*perm), ref, atol=1e-6)


def test_js_bounded_by_log3_and_attains_it():
    for s in range(5):
        a, b, c = (10 * torch.randn(16, 5, generator=g(10 * s + i)) for i in range(3))
        assert float(jensen_shannon(a, b, c)) <= math.log(3) + 1e-6
    eye = 60.0 * torch.eye(3)
    one_hots = [eye[[i]] for i in range(3)]
    assert abs(float(jensen_shannon(*one_hots)) - math.log(3)) < 1e-4


def test_js_matches_direct_computation():
    a, b, c = (torch.randn(3, 4, generator=g(i + 20)) for i in range(3))
    ps = [np.exp(z.double().numpy()) / np.exp(z.double().numpy()).sum(1, keepdims=True) for z in (a, b, c)]
    m = (ps[0] + ps[1] + ps[2]) / 3
    direct = np.mean(sum((p * np.log(p / m)).sum(1) for p in ps) / 3)
    assert abs(float(jensen_shannon(a, b, c)) - direct) < 1e-5


def test_noisymix_without_mixing_and_noise_is_augmix_jsd():
    model = Staged()
    x, a1, a2 = (torch.randn(8, 6, generator=g(i)) for i in range(3))
    y = torch.randint(0, 3, (8,), generator=g(5))
    l1, c1 = noisymix_loss(model, x, y, a1, a2, alpha=0.0, add_noise_level=0.0, mult_noise_level=0.0, generator=g(0))
    l2, c2 = augmix_jsd_loss(model, x, y, a1, a2)
    assert torch.allclose(l1, l2, atol=1e-6) and torch.allclose(c1, c2, atol=1e-6)


def test_noisymix_zero_jsd_weight_is_mixup_ce_on_clean_third():
    model = Staged()
    x, a1, a2 = (torch.randn(8, 6, generator=g(i)) for i in range(3))
    y = torch.randint(0, 3, (8,), generator=g(5))
    loss, clean = noisymix_loss(model, x, y, a1, a2, alpha=0.0, add_noise_level=0.0, mult_noise_level=0.0, jsd_weight=0.0)
    assert torch.allclose(loss, F.cross_entropy(model(x), y), atol=1e-6)


class _Identity(nn.Module):
    def __init__(self):
        super().__init__()
        self.stages = nn.ModuleList([nn.Identity()])
        self.head = nn.Identity()

    def forward(self, x):
        return self.head(self.stages[0](x))


def _noise_of_thirds(add, mult, sparsity, x_val=0.0, n=4, d=6000):
    model = _Identity()
    seen = []
    model.head.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].detach().clone()))
    x = torch.full((n, d), x_val)
    y = torch.zeros(n, dtype=torch.long)
    noisymix_loss(model, x, y, x.clone(), x.clone(), alpha=0.0, add_noise_level=add, mult_noise_level=mult,
                  sparsity=sparsity, manifold=False, generator=g(3))
    return torch.split(seen[0], n)


def test_additive_noise_is_level_times_third_times_own_beta():
    """Third i (1, 2, 3) gets i·σ_add·b_i·N with its own b_i ~ Beta(2, 5) (the reference code perturbs each third
    in its own call): replayed from the same generator, draw by draw."""
    from workbench.lib.robustness.mixing import sample_beta

    n, d, level = 4, 50, 0.5
    thirds = _noise_of_thirds(level, 0.0, 0.0, n=n, d=d)
    gen = g(3)  # α = 0 and mixing at the input: no λ, π or k drawn; then b₁..b₃, then N
    b = [sample_beta(2.0, 5.0, gen) for _ in range(3)]
    noise = torch.randn(3 * n, d, generator=gen)
    for i, third in enumerate(thirds):
        assert torch.allclose(third, (i + 1) * level * b[i] * noise[i * n:(i + 1) * n], atol=1e-6)
    assert len(set(b)) == 3


def test_sparsity_drops_noise_elements():
    thirds = _noise_of_thirds(0.5, 0.0, 0.65)
    frac = float(torch.cat(thirds).eq(0).float().mean())
    assert abs(frac - 0.65) < 0.02
    thirds = _noise_of_thirds(0.0, 0.5, 0.65, x_val=1.0)
    frac = float(torch.cat(thirds).eq(1).float().mean())
    assert abs(frac - 0.65) < 0.02


def test_mixing_stays_within_each_third_with_shared_lambda():
    """π permutes inside each third: thirds filled with 0, 1, 2 stay 0, 1, 2; a shared λ mixes the clean third's
    rows exactly as it would alone."""
    model = _Identity()
    seen = []
    model.head.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].detach().clone()))
    n, d = 5, 3
    x = torch.arange(n * d, dtype=torch.float32).view(n, d)
    y = torch.zeros(n, dtype=torch.long)
    noisymix_loss(model, x, y, torch.ones(n, d), torch.full((n, d), 2.0), alpha=1.0, add_noise_level=0.0,
                  mult_noise_level=0.0, manifold=False, generator=g(4))
    clean, a1, a2 = torch.split(seen[0], n)
    assert torch.equal(a1, torch.ones(n, d)) and torch.equal(a2, torch.full((n, d), 2.0))
    from workbench.lib.robustness.mixing import sample_mixing

    lam, perm = sample_mixing(n, 1.0, g(4))
    assert torch.allclose(clean, lam * x + (1 - lam) * x[perm], atol=1e-5)


def test_augmix_without_jsd_is_cross_entropy_on_the_view():
    from workbench.methods.noisymix import augmix_loss

    model = Staged()
    view = torch.randn(8, 6, generator=g(1))
    y = torch.randint(0, 3, (8,), generator=g(2))
    loss, logits = augmix_loss(model, view, y)
    assert torch.allclose(loss, F.cross_entropy(model(view), y)) and torch.equal(logits, model(view))
