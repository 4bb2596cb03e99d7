"""Engine overhead: the same training work in a bare PyTorch loop and through ``workbench.run``.

Work per step (the classify default's shape): an MLP 64→256→256→10 on a batch of 128, SGD with
momentum, the loss logged every step. Prints the per-step times and their ratio (goal ≤ 1.05).
Both loops alternate over several repeats; the median of each is compared.

    python benchmarks/engine_overhead.py [--steps 2000] [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

os.environ.setdefault("WORKBENCH_HOME", tempfile.mkdtemp(prefix="wb-bench-"))

import workbench  # noqa: E402
from workbench.core.batches import IndexBatches  # noqa: E402
from workbench.core.params import Config, Param  # noqa: E402
from workbench.core.registry import Experiment  # noqa: E402


def make_work(seed: int):
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.randn(4096, 64, generator=gen), torch.randint(0, 10, (4096,), generator=gen)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                                torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return x, y, model, opt


def step(model, opt, x, y, idx) -> torch.Tensor:
    loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def bare(steps: int) -> float:
    x, y, model, opt = make_work(0)
    batches = IndexBatches(len(x), 128, seed=0)
    log = []
    start = time.perf_counter()
    for i in range(steps):
        loss = step(model, opt, x, y, next(batches))
        log.append((i, loss.item()))
    return (time.perf_counter() - start) / steps


class BenchConfig(Config):
    steps: int = Param(2000, bounds=(1, None), doc="steps")


def engine_run(cfg: BenchConfig, ctx) -> dict:
    x, y, model, opt = make_work(0)
    ctx.track(model=model, opt=opt)
    batches = ctx.batches(len(x), 128)
    start = time.perf_counter()
    for i in ctx.steps(cfg.steps):
        loss = step(model, opt, x, y, next(batches))
        ctx.log(i, **{"train/loss": loss.item()})
    return {"seconds_per_step": (time.perf_counter() - start) / cfg.steps}


EXP = Experiment("engine_overhead", BenchConfig, engine_run, title="engine overhead benchmark")


def engined(steps: int) -> float:
    return workbench.run(EXP, {"steps": steps}, progress=True).summary["seconds_per_step"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    bare(200), engined(200)  # warm up
    b, e = [], []
    for _ in range(args.repeats):
        b.append(bare(args.steps))
        e.append(engined(args.steps))
    tb, te = statistics.median(b), statistics.median(e)
    print(f"bare PyTorch loop : {tb * 1e3:.3f} ms/step (median of {args.repeats} × {args.steps} steps)")
    print(f"workbench engine  : {te * 1e3:.3f} ms/step (progress bar, store writer, checks on)")
    print(f"overhead ratio    : {te / tb:.3f}  (goal ≤ 1.05)")


if __name__ == "__main__":
    main()
