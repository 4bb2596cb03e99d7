"""NFM maths: mix_features (Eq. 2), the mixed loss (Eq. 3) and the named special cases."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.common import Staged, g
from workbench.methods.nfm import VARIANTS, mix_features, mixup_cross_entropy, nfm_loss, sample_mixing, staged_forward
from workbench.lib.robustness.mixing import choose_mixing_point


def test_no_noise_is_exact_mixup():
    h = torch.randn(7, 3, 4, 4, generator=g(1))
    idx = torch.randperm(7, generator=g(2))
    out = mix_features(h, idx, 0.3)
    assert torch.equal(out, 0.3 * h + 0.7 * h[idx])


def test_lambda_one_identity_perm_returns_input():
    h = torch.randn(5, 9, generator=g(1))
    assert torch.equal(mix_features(h, torch.arange(5), 1.0), h)
    assert torch.equal(mix_features(h, torch.arange(5), 0.0), h)  # λ=0 with identity π is also h


def test_full_sparsity_drops_all_noise():
    h = torch.randn(6, 10, generator=g(1))
    idx = torch.randperm(6, generator=g(2))
    out = mix_features(h, idx, 0.4, add_noise_level=0.7, mult_noise_level=0.6, sparsity=1.0, generator=g(3))
    assert torch.allclose(out, 0.4 * h + 0.6 * h[idx], atol=0, rtol=0)


def test_additive_noise_is_linear_in_level_and_per_sample():
    h = torch.randn(6, 200, generator=g(1))
    idx = torch.arange(6)
    base = mix_features(h, idx, 1.0)
    n1 = mix_features(h, idx, 1.0, add_noise_level=0.1, generator=g(5)) - base
    n3 = mix_features(h, idx, 1.0, add_noise_level=0.3, generator=g(5)) - base
    assert torch.allclose(n3, 3 * n1, atol=1e-6)
    per = torch.tensor([0.1, 0.1, 0.2, 0.2, 0.3, 0.3])
    npers = mix_features(h, idx, 1.0, add_noise_level=per, generator=g(5)) - base
    assert torch.allclose(npers, n1 * (per / 0.1).view(-1, 1), atol=1e-6)
    # σ_add·b₂·N with b₂ ∈ (0, 1): the empirical std is below σ and non-zero
    assert 0 < float(n1.std()) < 0.1 * 1.2


def test_multiplicative_noise_bounded_by_level():
    h = torch.rand(4, 1000, generator=g(1)) + 0.5
    out = mix_features(h, torch.arange(4), 1.0, mult_noise_level=0.2, generator=g(2))
    ratio = out / h - 1.0
    assert float(ratio.abs().max()) <= 0.2 + 1e-6
    assert float(ratio.abs().max()) > 0
    assert abs(float(ratio.mean())) < 0.02


def test_sparsity_fraction():
    h = torch.zeros(10, 5000)
    out = mix_features(h, torch.arange(10), 1.0, add_noise_level=1.0, sparsity=0.65, generator=g(0))
    frac_zero = float((out == 0).float().mean())
    assert abs(frac_zero - 0.65) < 0.02
    h1 = torch.ones(10, 5000)
    out = mix_features(h1, torch.arange(10), 1.0, mult_noise_level=1.0, sparsity=0.65, generator=g(0))
    assert abs(float((out == 1).float().mean()) - 0.65) < 0.02


def test_deterministic_given_generator():
    h = torch.randn(8, 12)
    idx = torch.randperm(8, generator=g(2))
    a = mix_features(h, idx, 0.6, 0.4, 0.2, 0.3, generator=g(7))
    b = mix_features(h, idx, 0.6, 0.4, 0.2, 0.3, generator=g(7))
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    "kwargs, msg",
    [({"lam": 1.5}, "lam"), ({"sparsity": -0.1}, "sparsity"), ({"add_noise_level": -1.0}, "add_noise_level")],
)
def test_bad_input_names_parameter(kwargs, msg):
    h = torch.randn(3, 2)
    args = {"lam": 0.5, **kwargs}
    with pytest.raises(ValueError, match=msg):
        mix_features(h, torch.arange(3), **args)


def test_mixup_cross_entropy_equals_soft_target_ce():
    logits = torch.randn(6, 4, generator=g(1))
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    idx = torch.randperm(6, generator=g(2))
    lam = 0.35
    soft = lam * F.one_hot(y, 4).float() + (1 - lam) * F.one_hot(y[idx], 4).float()
    direct = -(soft * F.log_softmax(logits, -1)).sum(-1).mean()
    assert torch.allclose(mixup_cross_entropy(logits, y, idx, lam), direct, atol=1e-6)
    assert torch.allclose(mixup_cross_entropy(logits, y, idx, 1.0), F.cross_entropy(logits, y))


def test_sample_mixing_alpha_zero_is_identity():
    lam, perm = sample_mixing(5, 0.0)
    assert lam == 1.0 and torch.equal(perm, torch.arange(5))
    lam, perm = sample_mixing(5, 1.0, g(0))
    assert 0 <= lam <= 1 and sorted(perm.tolist()) == list(range(5))


def _data():
    x = torch.randn(8, 6, generator=g(11))
    y = torch.randint(0, 3, (8,), generator=g(12))
    return x, y


def test_baseline_variant_is_cross_entropy():
    model = Staged()
    x, y = _data()
    loss, _ = nfm_loss(model, x, y, "baseline")
    assert torch.allclose(loss, F.cross_entropy(model(x), y))


def test_input_mixup_variant_matches_manual_mixup():
    model = Staged()
    x, y = _data()
    loss, _ = nfm_loss(model, x, y, "input_mixup", alpha=1.0, add_noise_level=0.4, mult_noise_level=0.2, generator=g(3))
    lam, perm = sample_mixing(8, 1.0, g(3))
    manual = mixup_cross_entropy(model(lam * x + (1 - lam) * x[perm]), y, perm, lam)
    assert torch.allclose(loss, manual, atol=1e-6)


def test_nfm_with_zero_noise_equals_manifold_mixup():
    model = Staged()
    x, y = _data()
    a, _ = nfm_loss(model, x, y, "nfm", add_noise_level=0.0, mult_noise_level=0.0, generator=g(4))
    b, _ = nfm_loss(model, x, y, "manifold_mixup", add_noise_level=0.9, mult_noise_level=0.9, generator=g(4))
    assert torch.equal(a, b)


def test_manifold_mixup_on_affine_network_equals_input_mixup():
    """Affine stages commute with convex combinations, so every mixing point k gives input mixup's logits."""
    model = Staged(dims=(6, 5, 5, 4), affine_only=True)
    x, y = _data()
    lam, perm = 0.3, torch.randperm(8, generator=g(5))
    ref = model(lam * x + (1 - lam) * x[perm])
    for k in range(len(model.stages)):
        out = staged_forward(model, x, k, lambda h: mix_features(h, perm, lam))
        assert torch.allclose(out, ref, atol=1e-5)


def test_noise_only_has_no_mixing():
    model = Staged()
    x, y = _data()
    loss, _ = nfm_loss(model, x, y, "noise_only", add_noise_level=0.0, mult_noise_level=0.0, generator=g(6))
    assert torch.allclose(loss, F.cross_entropy(model(x), y), atol=1e-6)
    noisy, _ = nfm_loss(model, x, y, "noise_only", add_noise_level=0.5, mult_noise_level=0.5, generator=g(6))
    assert not torch.allclose(noisy, loss)


def test_noisy_input_mixup_mixes_at_input_only():
    model = Staged()
    x, y = _data()
    seen = []
    model.stages[0].register_forward_pre_hook(lambda m, inp: seen.append(inp[0].clone()))
    nfm_loss(model, x, y, "noisy_input_mixup", generator=g(8))
    assert not torch.allclose(seen[0], x)  # the input itself was mixed + noised


def test_mixing_point_uniform_over_stages():
    model = Staged(dims=(6, 5, 5, 4))
    gen = g(9)
    ks = [choose_mixing_point(model, "any", gen) for _ in range(600)]
    counts = [ks.count(k) for k in range(3)]
    assert all(150 < c < 250 for c in counts)
    assert choose_mixing_point(model, "input", gen) == 0


def test_variants_table():
    assert set(VARIANTS) == {"baseline", "input_mixup", "manifold_mixup", "noisy_input_mixup", "noise_only", "nfm"}
    with pytest.raises(ValueError, match="variant"):
        nfm_loss(Staged(), *_data(), variant="cutmix")


def test_groups_draw_their_own_noise_scale():
    """groups = 3: each third gets its own b₂ ~ Beta(2, 5) (NoisyMix's thirds); groups = 1 is NFM's single draw."""
    from workbench.lib.robustness.mixing import sample_beta

    h = torch.zeros(6, 40)
    out = mix_features(h, torch.arange(6), 1.0, add_noise_level=0.5, generator=g(2), groups=3)
    gen = g(2)
    b = [sample_beta(2.0, 5.0, gen) for _ in range(3)]
    noise = torch.randn(6, 40, generator=gen)
    want = 0.5 * torch.tensor(b).repeat_interleave(2).view(6, 1) * noise
    assert torch.allclose(out, want, atol=1e-6)
    single = mix_features(h, torch.arange(6), 1.0, add_noise_level=0.5, generator=g(2))
    gen = g(2)
    b1 = sample_beta(2.0, 5.0, gen)
    assert torch.allclose(single, 0.5 * b1 * torch.randn(6, 40, generator=gen), atol=1e-6)
    with pytest.raises(ValueError, match="groups"):
        mix_features(h, torch.arange(6), 1.0, add_noise_level=0.5, groups=4)


def test_multiplicative_then_additive_noise_in_one_call():
    """Eq. (2) with both noises and sparsity, replayed draw by draw: (1 + σ_m b₁ U·keep) ⊙ mix + σ_a b₂ N·keep."""
    from workbench.lib.robustness.mixing import sample_beta

    h = torch.randn(5, 30, generator=g(1))
    idx = torch.randperm(5, generator=g(2))
    out = mix_features(h, idx, 0.7, add_noise_level=0.4, mult_noise_level=0.2, sparsity=0.5, generator=g(3))
    gen = g(3)
    b1 = sample_beta(2.0, 5.0, gen)
    u = 2 * torch.rand(5, 30, generator=gen) - 1
    keep_m = torch.rand(5, 30, generator=gen) >= 0.5
    b2 = sample_beta(2.0, 5.0, gen)
    n = torch.randn(5, 30, generator=gen)
    keep_a = torch.rand(5, 30, generator=gen) >= 0.5
    mixed = 0.7 * h + 0.3 * h[idx]
    want = torch.where(keep_m, 1 + 0.2 * b1 * u, torch.ones_like(u)) * mixed + torch.where(keep_a, 0.4 * b2 * n, 0.0)
    assert torch.allclose(out, want, atol=1e-6)
