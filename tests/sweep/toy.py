"""A toy experiment for sweep tests: a noisy loss that falls towards ``offset`` (so a bad ``offset`` is a bad
trial from its first evaluation), a claim whose effect varies by seed, and a switch that kills its own process."""
import os
import signal
import time

import torch

from workbench.core.claims import Effect, exceeds
from workbench.core.params import Config, Param
from workbench.core.registry import Experiment, register


class SweepToyConfig(Config):
    steps: int = Param(20, bounds=(1, 10_000), doc="steps")
    lr: float = Param(0.1, bounds=(1e-4, 1.0), log=True, soft=(1e-3, 0.5), doc="how fast the loss falls")
    offset: float = Param(0.0, bounds=(0.0, 100.0), doc="where the loss settles (a bad trial: large)")
    width: int = Param(8, bounds=(1, 64), doc="unused; an integer to search")
    arch: str = Param("a", choices=("a", "b", "c"), doc="unused; a choice to search")
    sleep: float = Param(0.0, bounds=(0.0, 5.0), doc="seconds per step")
    die_at: int = Param(-1, bounds=(-1, 10_000), doc="SIGKILL this process at this step (-1: never)")


def run(cfg: SweepToyConfig, ctx) -> dict:
    noise = ctx.generator("noise")
    loss = 1.0
    for step in ctx.steps(cfg.steps):
        if step == cfg.die_at:
            os.kill(os.getpid(), signal.SIGKILL)
        loss = cfg.offset + (1.0 - cfg.lr) ** (step + 1) + 0.01 * float(torch.rand((), generator=noise))
        ctx.log(step, **{"val/loss": loss})
        if cfg.sleep:
            time.sleep(cfg.sleep)
    value = 0.5 + 0.1 * float(torch.rand((), generator=ctx.generator("claim")))
    ctx.claim(exceeds("the toy's score exceeds 0.4", Effect.normal(value, 0.0, kind="value"), 0.4, method="toy"))
    return {"val/loss": loss}


EXPERIMENT = register(Experiment(name="sweeptoy", title="Sweep toy", config=SweepToyConfig, run=run,
                                 key_metrics=("val/loss",), smoke={"steps": 4}))
