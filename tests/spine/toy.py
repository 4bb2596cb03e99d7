"""A tiny experiment for engine tests: linear regression by SGD with dropout noise (uses the global RNG)."""
import torch

from workbench.core.claims import Effect, exceeds
from workbench.core.params import Config, Param
from workbench.core.registry import Experiment, register


class ToyConfig(Config):
    steps: int = Param(30, bounds=(1, 10_000_000), doc="optimizer steps")
    lr: float = Param(0.02, bounds=(0.0, 100.0), doc="learning rate")
    batch_size: int = Param(8, bounds=(1, 64), doc="batch size")
    stop_at: int = Param(-1, bounds=(-1, None), doc="request a stop at this step (tests)")
    nan_at: int = Param(-1, bounds=(-1, None), doc="log a NaN loss at this step (tests)")
    sleep: float = Param(0.0, bounds=(0.0, 1.0), doc="seconds to sleep per step (tests)")
    pretrain: int = Param(0, bounds=(0, 1000), doc="steps of a first phase")


def build_regressor(inputs: int = 4, dropout: float = 0.1) -> torch.nn.Module:
    """The toy's model, rebuilt from its saved spec by ``runs.load_model``."""
    return torch.nn.Sequential(torch.nn.Dropout(dropout), torch.nn.Linear(inputs, 1))


def run(cfg: ToyConfig, ctx) -> dict:
    import time

    gen = ctx.generator("data")
    x = torch.randn(64, 4, generator=gen)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(64, generator=gen)
    with ctx.seeded("init"):
        model = build_regressor()
    model = ctx.distribute(model)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9)
    ctx.track(model=model, opt=opt)
    batches = ctx.batches(len(x), cfg.batch_size)
    for step in ctx.steps(cfg.pretrain, phase="pretrain"):
        idx = next(batches)
        loss = ((model(x[idx]).squeeze(-1) - y[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ctx.log(step, **{"pretrain/loss": loss.item()})
    for step in ctx.steps(cfg.steps):
        idx = next(batches)
        loss = ((model(x[idx]).squeeze(-1) - y[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        value = float("nan") if step == cfg.nan_at else loss.item()
        ctx.log(step, **{"train/loss": value})
        if step == cfg.stop_at:
            ctx.control.stop("test stop")
        if cfg.sleep:
            time.sleep(cfg.sleep)
    ctx.artifact("weights", model.state_dict()["1.weight"] if not hasattr(model, "module") else
                 model.module.state_dict()["1.weight"])
    ctx.save_model("regressor", model, {"inputs": 4, "dropout": 0.1}, build=build_regressor)
    ctx.claim(exceeds("the loss falls below 1", Effect.normal(loss.item(), 0.0, kind="value"), 1.0, better="lower",
                      method="toy"))
    return {"train/loss": loss.item()}


EXPERIMENT = register(Experiment(name="toy", title="Toy regression", config=ToyConfig, run=run,
                                 smoke={"steps": 5}))
