"""Robustness metrics against hand-computed cases; the DATASET-C cache."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workbench.lib.robustness import corrupt, expected_calibration_error
from workbench.lib.robustness.dataset_c import build_c, c_root, load_c
from workbench.lib.robustness.metrics import (
    accuracy_table,
    corruption_errors,
    flip_probability,
    mce,
    mean_corruption_accuracy,
    noise_sequence,
    shift_sequence,
)


def _rows(errs: dict[str, list[float]]):
    return [{"corruption": c, "severity": s + 1, "accuracy": 1 - e, "error": e} for c, es in errs.items() for s, e in enumerate(es)]


def test_mce_hand_computed():
    model = _rows({"fog": [0.1, 0.2], "contrast": [0.3, 0.3]})
    base = _rows({"fog": [0.2, 0.4], "contrast": [0.2, 0.4]})
    m, per = mce(model, base)
    assert per["fog"] == pytest.approx(0.3 / 0.6)
    assert per["contrast"] == pytest.approx(0.6 / 0.6)
    assert m == pytest.approx(0.75)
    # relative: (Σ E − 2·E_clean) / (Σ E_base − 2·E_base_clean)
    m_rel, per_rel = mce(model, base, clean_error=0.05, baseline_clean_error=0.1)
    assert per_rel["fog"] == pytest.approx((0.3 - 0.1) / (0.6 - 0.2))
    assert mce(base, base)[0] == pytest.approx(1.0)


def test_mean_corruption_accuracy_and_errors():
    rows = _rows({"fog": [0.1, 0.3], "spatter": [0.5, 0.5]})
    assert mean_corruption_accuracy(rows) == pytest.approx(0.8)  # spatter is not a standard corruption
    assert mean_corruption_accuracy(rows, ["fog", "spatter"]) == pytest.approx(0.65)
    assert corruption_errors(rows)["fog"] == {1: 0.1, 2: 0.3}


def test_ece_hand_computed():
    probs = torch.tensor([[0.95, 0.05], [0.85, 0.15], [0.25, 0.75], [0.35, 0.65]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 1, 1])
    # 2 bins: all confidences in (0.5, 1]: acc 3/4, mean conf (0.95+0.85+0.75+0.65)/4 = 0.8 → ECE 0.05
    assert expected_calibration_error(probs, labels, n_bins=2) == pytest.approx(0.05)
    # 10 bins: one prediction per bin: |1−.95| + |0−.85| + |1−.75| + |1−.65| over 4
    assert expected_calibration_error(probs, labels, n_bins=10) == pytest.approx((0.05 + 0.85 + 0.25 + 0.35) / 4)


def test_flip_probability_hand_computed():
    preds = torch.tensor([[0, 1, 2], [0, 2, 2], [1, 2, 2]])  # 3 frames × 3 images
    # consecutive: frame1 vs 0: 1 flip; frame2 vs 1: 1 flip → 2 / 6
    assert flip_probability(preds, "previous") == pytest.approx(2 / 6)
    # vs first: frame1: 1, frame2: 2 → 3 / 6
    assert flip_probability(preds, "first") == pytest.approx(3 / 6)
    with pytest.raises(ValueError, match="reference"):
        flip_probability(preds, "last")


def test_sequences():
    x = torch.rand(3, 1, 8, 8)
    seq = noise_sequence(x, n_steps=5, max_sigma=0.2, generator=torch.Generator().manual_seed(0))
    assert len(seq) == 5 and torch.equal(seq[0], x)
    d = [float((s - x).abs().mean()) for s in seq]
    assert all(b > a for a, b in zip(d, d[1:]))
    sh = shift_sequence(x, max_shift=1)
    assert len(sh) == 6 and torch.equal(sh[1], x)  # shift 0 along x
    assert torch.equal(sh[2][..., :, 1:], x[..., :, :-1]) and bool((sh[2][..., :, 0] == 0).all())


def test_accuracy_table_perfect_classifier():
    x = torch.rand(6, 1, 8, 8)
    y = torch.arange(6) % 2
    oracle = lambda images: torch.nn.functional.one_hot(y, 2).float()  # noqa: E731
    rows = accuracy_table(oracle, x, y, ["fog", "contrast"], severities=(1, 3))
    assert len(rows) == 4 and all(r["accuracy"] == 1.0 for r in rows)


def test_dataset_c_cached_and_consistent(tmp_path):
    path = build_c("digits", corruptions=["contrast", "gaussian_noise"], limit=8, root=tmp_path)
    assert path == c_root("digits", limit=8, root=tmp_path)
    f = path / "contrast.npz"
    mtime = f.stat().st_mtime_ns
    build_c("digits", corruptions=["contrast"], limit=8, root=tmp_path)
    assert f.stat().st_mtime_ns == mtime  # reused, not rebuilt
    xc, yc = load_c("digits", "contrast", 3, limit=8, root=tmp_path)
    from workbench.lib import data

    x, y = data.tensors("digits", "test")
    ref = corrupt(x[:8], "contrast", 3)
    assert xc.shape == (8, 1, 8, 8) and torch.equal(yc, y[:8])
    assert float((xc - ref).abs().max()) <= 0.5 / 255 + 1e-6  # uint8 quantisation only
    with pytest.raises(ValueError, match="severity"):
        load_c("digits", "contrast", 6, limit=8, root=tmp_path)
    with pytest.raises(ValueError, match="root"):  # a toolkit never guesses the run store's cache
        build_c("digits", corruptions=["contrast"], limit=8)
