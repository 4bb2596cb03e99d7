"""classify's claim decided on constructed per-example results, and its trained model reloaded from the store."""
from __future__ import annotations

import pytest
import torch

import workbench
from tests.common import _one_thread  # noqa: F401  (autouse: these tests run on one torch thread)
from workbench import runs
from workbench.lib import data
from workbench.methods.classify.experiment import ClassifyConfig, accuracy_claim


def correct(right: int, n: int = 359) -> torch.Tensor:
    out = torch.zeros(n, dtype=torch.bool)
    out[:right] = True
    return out


def claim(right: int, n: int = 359, **cfg):
    return accuracy_claim(ClassifyConfig(**cfg), correct(right, n), torch.Generator().manual_seed(0))


def test_a_clear_pass_holds_and_a_worse_accuracy_never_holds():
    good = claim(355)  # 98.9%
    assert good.outcome == "holds" and good.effect.low > 0.95 and good.effect.samples == 359
    assert claim(320).outcome == "fails"  # 89%: the whole interval below 95%
    assert claim(340).holds is not True  # 94.7%: below the bar, whatever the interval says


def test_an_accuracy_near_the_bar_is_inconclusive():
    c = claim(345)  # 96.1% on 359 images: the interval straddles 95%
    assert c.effect.value > 0.95 and c.outcome == "inconclusive" and "straddles 0.95" in c.reason


def test_not_the_default_classifier_is_a_failed_precondition():
    c = claim(359, steps=4)
    assert c.outcome == "inconclusive" and c.reason.startswith("precondition not met: not the default classifier")
    assert "steps=4" in c.reason
    c = claim(359, arch="mlp")
    assert c.outcome == "inconclusive" and "arch='mlp'" in c.reason
    assert claim(359, steps=600, seed=3).outcome == "holds"  # more steps or another seed: still the default


def test_the_trained_classifier_reloads_from_the_store():
    res = workbench.run("classify", {"arch": "resnet", "depth": 1}, smoke=True, progress=False)
    assert res.status == "completed", res.error
    assert runs.models(res.run_id) == ["classifier"]
    model = runs.load_model(res.run_id, "classifier")
    x, y = data.tensors("digits", "test")
    with torch.no_grad():
        acc = float((model(x).argmax(1) == y).float().mean())
    assert acc == pytest.approx(res.summary["test/accuracy"])
