"""Sweep machinery: per-trial overhead against the same configurations run one after another in one process, and
throughput with 1 and 2 Ray workers.

The configurations: ``classify`` in its smoke setting (or ``--steps``) at ``--trials`` learning rates, one thread
per trial. The sweep runs them as a grid (Optuna study in the store's SQLite file, trials on a local Ray cluster
started once before timing; its start-up is reported on its own).

    python benchmarks/sweep.py [--trials 8] [--steps 40]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("WORKBENCH_HOME", tempfile.mkdtemp(prefix="wb-bench-"))

import workbench  # noqa: E402,F401
from workbench.store.store import Store  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=8, help="configurations (default 8)")
    parser.add_argument("--steps", type=int, default=40, help="classify steps per trial (default 40)")
    args = parser.parse_args()
    from workbench.core.engine import run
    import optuna

    from workbench.core.sweep import execute, sweep

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    lrs = [round(0.01 * 1.5 ** i, 6) for i in range(args.trials)]
    fixed = {"steps": args.steps, "eval_every": args.steps, "threads": 1}
    root = tempfile.mkdtemp(prefix="wb-bench-sweep-")

    store = Store(os.path.join(root, "sequential"))
    run("classify", {**fixed, "lr": lrs[0]}, smoke=True, progress=False, store=store)  # warm: imports, data
    t0 = time.perf_counter()
    for lr in lrs:
        run("classify", {**fixed, "lr": lr}, smoke=True, progress=False, store=store)
    sequential = time.perf_counter() - t0

    t0 = time.perf_counter()
    execute.connect(num_cpus=2)
    startup = time.perf_counter() - t0
    space = ["lr=" + ",".join(map(str, lrs))]
    timings = {}
    for parallel in (1, 2):
        sweep("classify", space, parallel=parallel, store=Store(os.path.join(root, f"warm{parallel}")), smoke=True,
              fixed=fixed, trials=parallel, pruner="none")  # warm the workers
        t0 = time.perf_counter()
        res = sweep("classify", space, parallel=parallel, store=Store(os.path.join(root, f"p{parallel}")),
                    smoke=True, fixed=fixed, pruner="none")
        timings[parallel] = time.perf_counter() - t0
        assert res.counts == {"completed": args.trials}, res.counts
    execute.shutdown()

    n = args.trials
    print(f"{n} classify trials of {args.steps} steps, 1 thread each ({os.cpu_count()} CPUs)")
    print(f"one process, one after another: {sequential:7.1f} s  ({sequential / n:.2f} s/trial)")
    for parallel, seconds in timings.items():
        print(f"sweep, {parallel} worker{'s' if parallel > 1 else ' '}:            {seconds:7.1f} s  "
              f"({n / seconds * 60:.1f} trials/min)")
    print(f"overhead per trial (1 worker vs one process): {(timings[1] - sequential) / n:+.2f} s")
    print(f"throughput 2 workers / 1 worker: {timings[1] / timings[2]:.2f}x")
    print(f"Ray start-up (once per sweep command): {startup:.1f} s")


if __name__ == "__main__":
    main()
