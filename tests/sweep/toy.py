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


def told_sweep(store):
    """A sweep of four trials told to Optuna by hand (no Ray): three completed, the last pruned, each with its run in
    ``store`` (a short curve, tagged with its sweep and trial, as a trial's run is). Returns ``(study, run_ids)``;
    shared by the view, app and browser tests."""
    from optuna.trial import TrialState

    from workbench.core.sweep import study as studies
    from workbench.core.sweep.space import parse_space

    sp = parse_space(EXPERIMENT, ["lr=0.01:0.5:log", "width=8,16"])
    study = studies.create(store, studies.SweepSpec("sweeptoy", sp.specs(), ["val/loss"], ["min"],
                                                    sampler="random", seed=0))
    run_ids = []
    for i in range(4):
        trial = study.ask(sp.distributions())
        run_id = store.create_run("sweeptoy", sp.config_values(trial.params))
        store.add_metrics(run_id, [(s, "val/loss", 1.0 / (1 + trial.params["lr"]) + 0.1 / (s + 1), 1.0 + s)
                                   for s in range(3 if i < 3 else 2)])
        store.add_artifact(run_id, "sweep", {"sweep": study.study_name, "trial": trial.number, "params": trial.params})
        store.finish(run_id, "completed" if i < 3 else "pruned")
        trial.set_user_attr("run_id", run_id)
        run_ids.append(run_id)
        if i < 3:
            study.tell(trial, 1.0 / (1 + trial.params["lr"]))
        else:
            study.tell(trial, state=TrialState.PRUNED)
    return study, run_ids
