"""The suite's training step: a prefetched batch is the batch an inline step prepares; the schedules."""
from __future__ import annotations

import math
from types import SimpleNamespace

import torch

from tests.common import g
from workbench.core.batches import IndexBatches
from workbench.lib.nn import build_model
from workbench.lib.robustness.recipes import noisymix_recipe
from workbench.lib.robustness.suite import lr_factor
from workbench.lib.robustness.training import BatchMaker, RecipeTrainer, as_recipe

CFG = SimpleNamespace(add_noise=0.5, mult_noise=0.5, sparsity=0.65, jsd_weight=12.0, alpha=1.0, augmix_severity=3,
                      augmix_width=3, augmix_depth=-1, all_ops=False)


def rng(name: str, step: int) -> torch.Generator:
    """A stateless stream of (name, step), like ``ctx.rng``."""
    from workbench.core.context import derive_seed

    return g(derive_seed(7, name, step))


def _run(prefetch: bool, steps: int = 4) -> tuple[list[float], dict]:
    x = torch.rand(40, 1, 8, 8, generator=g(1))
    y = torch.randint(0, 3, (40,), generator=g(2))
    torch.manual_seed(0)
    model = build_model("cnn", (1, 8, 8), 3, width=4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    trainer = RecipeTrainer("noisymix", noisymix_recipe("noisymix", CFG, CFG), model, opt, x, y,
                            IndexBatches(40, 8, seed=3), g(5), rng=rng, total=steps, augment="crop_flip",
                            prefetch=prefetch)
    try:
        losses = [float(trainer.step(s)) for s in range(steps)]
    finally:
        trainer.close()
    return losses, model.state_dict()


def test_prefetched_steps_equal_inline_steps():
    """Views and crops come from per-step generators, so preparing step s + 1 in the worker thread changes
    nothing: the same losses and weights, bit for bit."""
    a_loss, a_state = _run(prefetch=True)
    b_loss, b_state = _run(prefetch=False)
    assert a_loss == b_loss
    assert all(torch.equal(a_state[k], b_state[k]) for k in a_state)


def test_batch_maker_views_and_crops_are_per_step_and_shared_crops():
    x = torch.rand(10, 1, 8, 8, generator=g(1))
    y = torch.arange(10)
    idx = torch.tensor([3, 1, 4])
    one = BatchMaker(x, y, noisymix_recipe("augmix_jsd", CFG, CFG), rng=rng, name="augmix_jsd", augment="crop_flip")
    other = BatchMaker(x, y, as_recipe(lambda *a: None), rng=rng, name="baseline", augment="crop_flip")
    p1, p2 = one(5, idx), one(5, idx)
    assert torch.equal(p1.x, p2.x) and all(torch.equal(a, b) for a, b in zip(p1.views, p2.views))
    assert len(p1.views) == 2 and not torch.equal(p1.views[0], p1.views[1])
    assert torch.equal(p1.x, other(5, idx).x)  # every recipe gets the same crop/flip at a step
    assert not torch.equal(p1.x, one(6, idx).x) and torch.equal(p1.y, y[idx])


def test_lr_schedules():
    cfg = SimpleNamespace(steps=200, schedule="step")
    got = [lr_factor(s, cfg) for s in (0, 99, 100, 149, 150, 180, 199)]  # NFM: ×0.1 at epochs 100, 150, 180 of 200
    assert all(math.isclose(a, b) for a, b in zip(got, [1.0, 1.0, 0.1, 0.1, 0.01, 0.001, 0.001]))
    cfg.schedule = "cosine"
    assert lr_factor(0, cfg) == 1.0 and math.isclose(lr_factor(100, cfg), 0.5) and lr_factor(200, cfg) < 1e-12
