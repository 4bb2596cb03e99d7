"""workbench.lib.metrics against hand-computed values."""
from __future__ import annotations

import math

import pytest
import torch

from workbench.lib import metrics


def test_accuracy_and_per_class():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 2.0], [5.0, 0.0, 0.0]])
    y = torch.tensor([0, 2, 2, 1])
    assert metrics.accuracy(logits, y) == pytest.approx(0.5)
    pc = metrics.per_class_accuracy(logits, y, num_classes=4)
    assert pc[:3].tolist() == [1.0, 0.0, 0.5] and math.isnan(pc[3].item())


def test_ece_hand_computed():
    # 5 bins of width 0.2. Confidences: 0.9, 0.9, 0.7, 0.3 (binary problem has max prob >= 0.5; use 3 classes)
    probs = torch.tensor([
        [0.9, 0.05, 0.05],  # conf 0.9, pred 0, label 0 -> correct   (bin (0.8, 1])
        [0.05, 0.9, 0.05],  # conf 0.9, pred 1, label 0 -> wrong     (bin (0.8, 1])
        [0.1, 0.7, 0.2],    # conf 0.7, pred 1, label 1 -> correct   (bin (0.6, 0.8])
        [0.3, 0.35, 0.35],  # conf 0.35, pred 1, label 2 -> wrong    (bin (0.2, 0.4])
    ])
    y = torch.tensor([0, 0, 1, 2])
    # bin (0.8,1]: n=2, acc 0.5, conf 0.9 -> 2/4 * 0.4 = 0.2
    # bin (0.6,0.8]: n=1, acc 1, conf 0.7 -> 1/4 * 0.3 = 0.075
    # bin (0.2,0.4]: n=1, acc 0, conf 0.35 -> 1/4 * 0.35 = 0.0875
    assert metrics.expected_calibration_error(probs, y, n_bins=5) == pytest.approx(0.3625)
    rows = metrics.reliability(probs, y, n_bins=5)
    assert [r["count"] for r in rows] == [0, 1, 0, 1, 2]
    assert rows[4]["accuracy"] == pytest.approx(0.5) and rows[4]["confidence"] == pytest.approx(0.9)
    assert rows[1]["gap"] == pytest.approx(-0.35) and math.isnan(rows[0]["accuracy"])
    # equals the definition written out with the table
    ece = sum(r["count"] / 4 * abs(r["gap"]) for r in rows if r["count"])
    assert ece == pytest.approx(0.3625)


def test_ece_of_perfectly_calibrated_and_of_overconfident():
    # one-hot correct predictions: conf 1, acc 1 -> ECE 0; one-hot wrong predictions -> ECE 1
    probs = torch.eye(4)
    assert metrics.expected_calibration_error(probs, torch.arange(4)) == pytest.approx(0.0)
    assert metrics.expected_calibration_error(probs, torch.tensor([1, 2, 3, 0])) == pytest.approx(1.0)


def test_ece_bad_bins():
    with pytest.raises(ValueError, match="n_bins = 0"):
        metrics.expected_calibration_error(torch.eye(2), torch.arange(2), n_bins=0)


def test_evaluate_restores_mode_and_batches_consistently():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 4))
    X, y = torch.randn(10, 3), torch.randint(0, 4, (10,))
    model.train()
    a = metrics.evaluate(model, X, y, batch_size=3)
    b = metrics.evaluate(model, X, y, batch_size=100)
    assert model.training
    assert torch.allclose(a.logits, b.logits, atol=1e-6)
    assert torch.allclose(a.probs.sum(1), torch.ones(10))
    assert a.accuracy == metrics.accuracy(a.logits, y)
    assert a.nll == pytest.approx(torch.nn.functional.cross_entropy(a.logits, y).item())
