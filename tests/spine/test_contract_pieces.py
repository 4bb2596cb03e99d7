"""The contract's randomness, saved models and shared parameter groups (issue 21)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import workbench
from workbench import runs
from workbench.core.context import RunContext, derive_seed
from workbench.core.engine import Control
from workbench.core.params import Config, ConfigError, LoopParams, OptimParams, Param
from workbench.lib.data import DATASETS, ImageDataParams

from . import toy  # noqa: F401  (registers "toy")

ROOT = Path(__file__).resolve().parents[2]


def _ctx(seed: int = 0) -> RunContext:
    cfg = toy.ToyConfig(seed=seed)
    return RunContext(cfg, device=torch.device("cpu"), store=None, run_id=None, writer=None, control=Control())


def test_rng_is_a_pure_function_of_seed_name_and_step_and_tracks_nothing():
    ctx = _ctx(3)
    before = torch.get_rng_state()
    a = torch.rand(5, generator=ctx.rng("eval", 10))
    assert torch.equal(a, torch.rand(5, generator=_ctx(3).rng("eval", 10)))       # another context, same draws
    assert not torch.equal(a, torch.rand(5, generator=ctx.rng("eval", 11)))       # another step
    assert not torch.equal(a, torch.rand(5, generator=ctx.rng("other", 10)))      # another name
    assert not torch.equal(a, torch.rand(5, generator=_ctx(4).rng("eval", 10)))   # another seed
    assert torch.equal(torch.get_rng_state(), before)                             # the global stream untouched
    assert ctx._tracked == {}                                                     # nothing to checkpoint
    assert len({derive_seed(0, "eval", s) for s in range(1000)}) == 1000


def test_seeded_initialises_alike_and_leaves_the_global_stream_as_it_was():
    ctx = _ctx(0)
    before = torch.get_rng_state()
    with ctx.seeded("init"):
        a = torch.nn.Linear(3, 2)
    with ctx.seeded("init"):
        b = torch.nn.Linear(3, 2)
    with ctx.seeded("other"):
        c = torch.nn.Linear(3, 2)
    assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, c.weight)
    assert torch.equal(torch.get_rng_state(), before)


def test_a_saved_model_reloads_with_its_weights_in_a_plain_process():
    res = workbench.run("toy", {"steps": 5}, progress=False)
    assert runs.models(res.run_id) == ["regressor"]
    model = runs.load_model(res.run_id, "regressor")
    assert torch.equal(model[1].weight, torch.as_tensor(runs.artifact(res.run_id, "weights")))
    assert not model.training
    code = ("import sys, torch; from workbench import runs\n"
            f"m = runs.load_model({res.run_id!r}, 'regressor')\n"
            "assert isinstance(m, torch.nn.Module)\n"
            "bad = [n for n in sys.modules if n.split('.')[0] in ('widgets', 'ipywidgets', 'panel', 'plotly')]\n"
            "assert not bad, bad\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])}  # the toy's own module
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    with pytest.raises(KeyError, match="saved no model 'nosuch'; it saved: regressor"):
        runs.load_model(res.run_id, "nosuch")


def test_save_model_refuses_what_another_process_could_not_rebuild():
    ctx = _ctx()
    model = toy.build_regressor()
    with pytest.raises(ValueError, match="module level"):
        ctx.save_model("m", model, {}, build=lambda: toy.build_regressor())
    with pytest.raises(TypeError, match="spec values must be"):
        ctx.save_model("m", model, {"inputs": torch.tensor(4)}, build=toy.build_regressor)
    with pytest.raises(TypeError, match="spec must be a dict"):
        ctx.save_model("m", model, [4], build=toy.build_regressor)


def test_a_saved_model_of_another_format_is_refused():
    from workbench.store.models import unpack

    with pytest.raises(ValueError, match="not a saved model of format"):
        unpack({"format": "workbench.model/0", "build": "x:y", "spec": {}, "state": {}})


def test_shared_groups_are_re_defaulted_per_method_within_their_bounds():
    class MyConfig(OptimParams.with_defaults(lr=3e-3, docs={"lr": "AdamW learning rate"}),
                   LoopParams.with_defaults(steps=50), Config):
        width: int = Param(8, bounds=(1, 64))

    cfg = MyConfig()
    assert (cfg.lr, cfg.weight_decay, cfg.steps, cfg.batch_size) == (3e-3, 0.0, 50, 64)
    params = MyConfig.params()
    assert params["lr"].doc == "AdamW learning rate" and params["lr"].bounds == OptimParams.lr.bounds
    assert params["lr"].group == "optimiser" and params["steps"].group == "loop"
    assert OptimParams.lr.default == 1e-3  # the shared group itself is unchanged
    with pytest.raises(ConfigError, match="parameter 'lr' = 100.0 is out of range"):
        OptimParams.with_defaults(lr=100.0)
    with pytest.raises(ConfigError, match="unknown parameter 'momentum'"):
        OptimParams.with_defaults(momentum=0.9)


def test_image_data_choices_come_from_the_catalog():
    images = tuple(name for name, spec in DATASETS.items() if len(spec.shape) == 3)
    assert ImageDataParams.dataset.choices == images and "two_moons" not in images and "digits" in images
