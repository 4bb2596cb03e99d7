"""Diagnostics (IL report, reducible-loss histograms, probe metrics), the fused selection path and the paper's
noise model, against dense float64 definitions and hand-made cases."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workbench.methods.goldilocks import IrreducibleLossTable, IrreducibleTrainer, make_selector, per_point_loss
from workbench.methods.goldilocks.diagnostics import (
    ProbeSet,
    il_report,
    probe_metrics,
    reducible_histogram,
    top_share,
)
from workbench.methods.goldilocks.noise import apply_noise, uniform_label_noise
from workbench.methods.goldilocks.selection import Candidates


def test_per_point_loss_is_the_cross_entropy_in_float64():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 7, generator=g) * 4
    y = torch.randint(7, (50,), generator=g)
    dense = -(logits.double().log_softmax(-1)).gather(1, y[:, None]).squeeze(1)
    assert torch.allclose(per_point_loss(logits, y).double(), dense, atol=1e-5)
    assert torch.allclose(per_point_loss(logits, y), F.cross_entropy(logits, y, reduction="none"), atol=1e-5)


def test_il_report_by_hand():
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    given = torch.tensor([0, 1, 1, 1])  # point 1 and 3 corrupted (clean label 0)
    true = torch.tensor([0, 0, 1, 0])
    corrupted = given != true
    r = il_report(probs, given, true, corrupted)
    assert r["accuracy"] == pytest.approx(2 / 4) and r["accuracy_clean_labels"] == pytest.approx(1.0)
    assert r["loss_clean"] == pytest.approx(-(math.log(0.9) + math.log(0.7)) / 2, rel=1e-6)
    assert r["loss_corrupted"] == pytest.approx(-(math.log(0.2) + math.log(0.4)) / 2, rel=1e-6)
    assert r["confidence_corrupted"] == pytest.approx((0.8 + 0.6) / 2)
    # ECE with 15 bins, against the clean labels: every prediction right, |1 − conf| weighted equally
    assert r["ece_clean_labels"] == pytest.approx((0.1 + 0.2 + 0.3 + 0.4) / 4, abs=1e-6)


def test_reducible_histogram_counts_and_clamps():
    rl = torch.tensor([-100.0, -0.1, 0.0, 0.1, 0.3, 50.0])
    corrupted = torch.tensor([True, False, False, True, False, True])
    h = reducible_histogram(rl, corrupted, edges=(-1.0, 0.0, 0.2, 1.0))
    assert h["clean"] == [1, 1, 1]  # -0.1 | 0.0 | 0.3
    assert h["corrupted"] == [1, 1, 1]  # -100 clamps into the first bin, 50 into the last
    assert top_share(torch.tensor([3.0, 2.0, 1.0, 0.0]), torch.tensor([True, False, True, True]), 0.5) == 0.5


class _Fixed(nn.Module):
    """Returns given logits for the inputs' first feature as an index (a model we can compute by hand)."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.table = nn.Parameter(logits.clone(), requires_grad=False)

    def forward(self, x):
        return self.table[x[:, 0].long()]


def test_probe_metrics_match_a_dense_computation():
    g = torch.Generator().manual_seed(1)
    n, c = 40, 4
    x = torch.arange(n).float()[:, None]
    y = torch.randint(c, (n,), generator=g)
    corrupted = torch.zeros(n, dtype=torch.bool)
    corrupted[::5] = True
    target = _Fixed(torch.randn(n, c, generator=g) * 3)
    il = _Fixed(torch.randn(n, c, generator=g))
    probe = ProbeSet.draw(x, y, corrupted, size=0, generator=torch.Generator().manual_seed(0))
    metrics, hist = probe_metrics(target, il, probe, fraction=0.25)
    lt = -target.table.double().log_softmax(-1)[torch.arange(n), y]
    li = -il.table.double().log_softmax(-1)[torch.arange(n), y]
    rl = lt - li
    assert metrics["reducible_loss_corrupted"] == pytest.approx(float(rl[corrupted].mean()), abs=1e-5)
    assert metrics["reducible_loss_clean"] == pytest.approx(float(rl[~corrupted].mean()), abs=1e-5)
    conf_t = target.table.double().softmax(-1).max(-1).values[corrupted].mean()
    conf_i = il.table.double().softmax(-1).max(-1).values[corrupted].mean()
    assert metrics["confidence_gap_corrupted"] == pytest.approx(float(conf_t - conf_i), abs=1e-6)
    top = torch.argsort(rl, descending=True)[:10]
    assert metrics["rho_pick_corrupted_share"] == pytest.approx(float(corrupted[top].float().mean()))
    assert sum(hist["clean"]) == int((~corrupted).sum()) and sum(hist["corrupted"]) == int(corrupted.sum())


def test_noise_drawn_from_all_classes_may_keep_the_label():
    y = torch.arange(10_000) % 10
    noisy, corrupted = uniform_label_noise(y, 0.2, 10, torch.Generator().manual_seed(0), any_class=True)
    assert torch.equal(corrupted, noisy != y)
    changed = int(corrupted.sum())  # 2000 resampled, 1/10 of them keep the label in expectation
    assert 1700 < changed < 1900 and abs(changed - 1800) < 4 * math.sqrt(2000 * 0.1 * 0.9)
    data = apply_noise(torch.zeros(10_000, 1), y, 10, kind="uniform", rate=0.2, any_class=True,
                       generator=torch.Generator().manual_seed(0))
    assert torch.equal(data.corrupted, data.y != data.true_y) and 1700 < int(data.corrupted.sum()) < 1900


def test_noise_without_input_changes_does_not_copy_the_inputs():
    x, y = torch.rand(100, 3), torch.arange(100) % 4
    data = apply_noise(x, y, 4, kind="uniform", rate=0.3, generator=torch.Generator().manual_seed(0))
    assert data.x.data_ptr() == x.data_ptr()  # no copy of the images for label noise alone


def test_irreducible_table_on_device_is_cached_and_follows_a_restore():
    table = IrreducibleLossTable(torch.tensor([1.0, 2.0, 3.0]))
    first = table.on("cpu")
    assert table.on("cpu") is first and torch.equal(first[torch.tensor([2, 0])], torch.tensor([3.0, 1.0]))
    table.load_state_dict({"losses": torch.tensor([5.0, 6.0, 7.0])})
    assert torch.equal(table.on("cpu"), torch.tensor([5.0, 6.0, 7.0]))


def test_trainer_says_whether_it_passed_its_best_checkpoint_and_releases_training_state():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    x, y = torch.randn(20, 3), torch.randint(2, (20,))
    trainer = IrreducibleTrainer(model, x, y, lr=0.5)
    trainer.step(x, y)
    trainer.evaluate()
    assert not trainer.passed_best  # the last evaluation is the best so far
    trainer.history.append(trainer.best_loss + 1.0)  # a worse evaluation after the best
    assert trainer.passed_best
    trainer.restore_best()
    assert trainer.x_train is None and trainer.best_state is None and not trainer.opt.state


class _CountingModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.switches = 0

    def train(self, mode: bool = True):
        self.switches += 1
        return super().train(mode)

    def forward(self, x):
        return self.lin(x)


def test_train_mode_scoring_does_not_walk_the_model_and_ranks_like_the_rule():
    model = _CountingModel().train()
    before = model.switches
    x, y = torch.randn(16, 4), torch.randint(3, (16,))
    il = torch.rand(16)
    sel = make_selector("rho_loss").select(model, Candidates(torch.arange(16), x, y, il), 4)
    assert model.switches == before and model.training
    with torch.no_grad():
        scores = F.cross_entropy(model(x).double(), y, reduction="none") - il.double()
    assert sel.position.tolist() == torch.argsort(scores, descending=True)[:4].tolist()
    make_selector("rho_loss", eval_mode=True).select(model, Candidates(torch.arange(16), x, y, il), 4)
    assert model.training and model.switches == before + 2  # eval for scoring, then back
    assert np.isfinite(sel.scores.numpy()).all()
