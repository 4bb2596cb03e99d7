"""A tiny registered experiment for the notebook-layer tests: fast, deterministic, with a view."""
from __future__ import annotations

import math
import time

from workbench.core.params import Config, ConfigError, Param
from workbench.core.registry import Experiment, register


class TinyConfig(Config):
    steps: int = Param(20, bounds=(1, 100_000), unit="steps", doc="steps to take")
    lr: float = Param(0.1, bounds=(1e-4, 1.0), log=True, doc="decay rate of the fake loss")
    delay: float = Param(0.0, bounds=(0.0, 1.0), unit="s", doc="sleep per step (to test Stop mid-run)")
    shape: str = Param("exp", choices=("exp", "inv"), doc="curve shape")
    noisy: bool = Param(False, doc="unused flag (a checkbox)")
    scale: float = Param(1.0, bounds=(0.1, 2.0), step=0.1, doc="height of the loss curve (a linear slider)")
    decay: float = Param(5e-4, bounds=(0.0, 0.1), doc="unused; a small float a slider must show as 0.0005, not 0")

    def check(self) -> None:
        if self.shape == "inv" and self.lr > 0.5:
            raise ConfigError("shape 'inv' needs lr <= 0.5", "lr")


def run(cfg: TinyConfig, ctx) -> dict:
    loss = 1.0
    for step in ctx.steps(cfg.steps):
        loss = math.exp(-cfg.lr * (step + 1)) if cfg.shape == "exp" else 1.0 / (1 + cfg.lr * (step + 1))
        loss *= cfg.scale
        ctx.log(step, **{"train/loss": loss})
        if step % 5 == 4 or step == cfg.steps - 1:
            ctx.log(step, **{"test/accuracy": 1.0 - loss})
        if cfg.delay:
            time.sleep(cfg.delay)
    ctx.artifact("bars", {"a": 1.0 - loss, "b": loss})
    ctx.claim("loss decreases", measured=f"{loss:.3f}", holds=loss < 1.0, detail="tiny check")
    return {"train/loss": loss}


EXPERIMENT = register(Experiment(name="wbtiny", title="Tiny test experiment", config=TinyConfig, run=run,
                                 smoke={"steps": 5}, demo={"steps": 10}))


def _register_view() -> None:
    from widgets.views import view

    @view("wbtiny", "bars")
    def bars(run_id: str):
        import plotly.graph_objects as go

        from workbench import runs

        names = {a["name"] for a in runs.artifacts(run_id)}
        if "bars" not in names:
            return None
        data = runs.artifact(run_id, "bars")
        return go.Figure(go.Bar(x=list(data), y=list(data.values())), layout={"title": {"text": "bars"}})


_register_view()
