"""Engine overhead: the same training work in a bare PyTorch loop and through ``workbench.run``.

Work per step (the classify default's shape): an MLP 64→256→256→10 on a batch of 128, SGD with
momentum, the loss logged every step. Four loops alternate in every round (their order rotates): the bare loop,
the engine with its progress bar, the engine without it, and the bare loop again (an A/A control: its ratio to the
first is the resolution of the measurement). Every loop steps the same model and data (created once). Reported
per loop: the median over rounds of the wall-clock time per step and of the process CPU time per step (every
thread: the store's writer thread included), and the ratios to the bare loop (goal ≤ 1.01 with the bar on). The
load average is printed beside the figures.

On a loaded machine a 1% difference drowns in the noise of the step itself, so the engine's own cost is also
measured alone: an empty step (the loss a constant) through the engine against a bare loop that appends it to a
list, in process CPU time (``--empty-steps``); that cost divided by the bare MLP step's CPU time is the overhead
the engine adds to it, whatever the step.

    python benchmarks/engine_overhead.py [--steps 1000] [--repeats 24] [--empty-steps 50000]
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


_WORK: list = []


def shared_work():
    """One model, optimizer and dataset for every loop of the benchmark: each loop steps the same tensors at the
    same addresses, so a round's time differs between loops by the loop's own cost, not by where a fresh model
    happened to be allocated (that alone moved a loop's time by up to ±10% between rounds)."""
    if not _WORK:
        _WORK.extend(make_work(0))
    return _WORK


def bare_times(steps: int) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) per step of the bare loop."""
    x, y, model, opt = shared_work()
    batches = IndexBatches(len(x), 128, seed=0)
    log = []
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(steps):
        loss = step(model, opt, x, y, next(batches))
        log.append((i, loss.item()))
    return (time.perf_counter() - start) / steps, (time.process_time() - cpu) / steps


def bare(steps: int) -> float:
    """Wall seconds per step of the bare loop."""
    return bare_times(steps)[0]


class BenchConfig(Config):
    steps: int = Param(2000, bounds=(1, None), doc="steps")


def engine_run(cfg: BenchConfig, ctx) -> dict:
    x, y, model, opt = shared_work()
    ctx.track(model=model, opt=opt)
    batches = ctx.batches(len(x), 128)
    start, cpu = time.perf_counter(), time.process_time()
    for i in ctx.steps(cfg.steps):
        loss = step(model, opt, x, y, next(batches))
        ctx.log(i, **{"train/loss": loss.item()})
    return {"seconds_per_step": (time.perf_counter() - start) / cfg.steps,
            "cpu_seconds_per_step": (time.process_time() - cpu) / cfg.steps}


EXP = Experiment("engine_overhead", BenchConfig, engine_run, title="engine overhead benchmark")


def empty_run(cfg: BenchConfig, ctx) -> dict:
    cpu = time.process_time()
    for i in ctx.steps(cfg.steps):
        ctx.log(i, **{"train/loss": 0.5})
    ctx._writer.flush()  # commit what the writer thread has not yet: every logged row's cost is counted
    return {"cpu_seconds_per_step": (time.process_time() - cpu) / cfg.steps}


EMPTY = Experiment("engine_overhead_empty", BenchConfig, empty_run, title="engine overhead, empty step")


def empty_costs(steps: int, repeats: int) -> tuple[float, float]:
    """Process CPU seconds per empty step: (engine with the bar, bare loop), medians over interleaved rounds. The
    engine's figure includes its store writer thread committing the logged rows."""
    engine, bare_cpu = [], []
    for _ in range(repeats):
        engine.append(workbench.run(EMPTY, {"steps": steps}, progress=True).summary["cpu_seconds_per_step"])
        log, cpu = [], time.process_time()
        for i in range(steps):
            log.append((i, 0.5))
        bare_cpu.append((time.process_time() - cpu) / steps)
    return statistics.median(engine), statistics.median(bare_cpu)


def engined_times(steps: int, progress: bool = True) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) per step through ``workbench.run``."""
    summary = workbench.run(EXP, {"steps": steps}, progress=progress).summary
    return summary["seconds_per_step"], summary["cpu_seconds_per_step"]


def engined(steps: int) -> float:
    return engined_times(steps)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=24)
    parser.add_argument("--empty-steps", type=int, default=50_000, help="steps of the empty-step rounds (0: skip)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    loops = {"bare PyTorch loop": bare_times, "engine, progress bar": lambda n: engined_times(n, True),
             "engine, no bar": lambda n: engined_times(n, False),
             "bare loop again": bare_times}  # the same loop twice: its ratio is the measurement's own noise
    for fn in loops.values():  # warm up
        fn(200)
    load0 = os.getloadavg()[0]
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in loops}
    names = list(loops)
    for r in range(args.repeats):  # rotate who goes first: drifting load hits every loop alike
        for name in names[r % len(names):] + names[: r % len(names)]:
            times[name].append(loops[name](args.steps))
    load1 = os.getloadavg()[0]
    print(f"\n{args.repeats} rounds × {args.steps} steps, one torch thread; load average (1 min) {load0:.2f} before, "
          f"{load1:.2f} after, on {os.cpu_count()} cores")
    print(f"{'loop':<22} {'wall ms/step':>12} {'CPU ms/step':>12} {'wall ratio':>11} {'CPU ratio':>10} "
          f"{'per-round CPU ratio (min-max)':>30}")
    base = times[names[0]]
    bw, bc = statistics.median(t[0] for t in base), statistics.median(t[1] for t in base)
    for name in names:
        w, c = statistics.median(t[0] for t in times[name]), statistics.median(t[1] for t in times[name])
        per = [t[1] / b[1] for t, b in zip(times[name], base)]
        spread = f"{statistics.median(per):.3f} ({min(per):.3f}-{max(per):.3f})"
        print(f"{name:<22} {w * 1e3:12.3f} {c * 1e3:12.3f} {w / bw:11.3f} {c / bc:10.3f} {spread:>30}")
    if args.empty_steps:
        engine, bare_cpu = empty_costs(args.empty_steps, args.repeats)
        extra = engine - bare_cpu
        print(f"empty step, process CPU: engine with the bar {engine * 1e6:.2f} µs, bare loop {bare_cpu * 1e6:.2f} µs: "
              f"the engine adds {extra * 1e6:.2f} µs per step = ×{(bc + extra) / bc:.4f} on the bare MLP step "
              f"({bc * 1e3:.3f} ms CPU); load average now {os.getloadavg()[0]:.2f}")
    print("goal: engine with the progress bar ≤ 1.01 × the bare loop")


if __name__ == "__main__":
    main()
