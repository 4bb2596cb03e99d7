"""Goldilocks / RHO-LOSS cost, speed and memory.

1. Step cost. Time per training step of every selection method against uniform sampling, in one process, the
   methods alternated within each round (interleaved rounds). A uniform step trains on n_b points: ~n_b forward +
   backward (≈ 3·n_b forward passes of FLOPs); a scoring method adds n_B forward passes without gradients, so the
   FLOP count predicts a ratio of (3·n_b + n_B) / (3·n_b) ≈ 4.3 at n_B = 320, n_b = 32. The overhead of a method is
   reported in units of one no-grad forward pass of n_B points *inside a step*: the reference step
   ``uniform+fwd`` (a uniform step that also runs that forward where a scoring method scores) minus a uniform step,
   measured in the same rounds. RHO-LOSS needs one such forward, so its floor is 1.0. (A forward timed alone, many
   in a row, is ~10% cheaper: its weights and input stay in the caches, while in a step the optimiser's update has
   just passed through them; that unit put a floor of ~1.1 under every scoring method, and is printed for reference.)
   Columns: the best of the rounds (the least disturbed on a shared machine) and the median over rounds of each
   round's own ratio, with its spread (min-max). A second table alternates the methods step by step (``--samples``
   of each) and takes the ratio from quantiles of the single-step times: q10 (the undisturbed steps, robust on a
   loaded machine) and q50. The candidate indices are drawn before the clock starts in both tables.
   Clock: on CPU the process CPU time (``--clock cpu``, the default there): a step preempted by another process is
   not charged for the wait, so the figures hold on a shared machine; on CUDA the wall clock after a synchronise.
   Threads: one torch thread by default, as the experiment runs a model of this size (``ctx.track``: one intra-op
   thread under 2M parameters); two threads of a tiny model mostly wait at OpenMP barriers, and on a loaded machine
   that wait, not the model, is what gets measured.
   The two tables measure the same cost with the same unit and agree within their noise. They disagreed before
   (1.26 step by step, 2.00 over rounds) because both timed the wall clock with torch's default threads: a round's
   mean over 30 steps takes in every preemption and OpenMP wait, and a ratio of two such differences swings widely,
   while the per-step quantiles drop the disturbed steps; and their unit was the forward alone (see above).
2. Wall-clock speedup to the target accuracy: the ``goldilocks`` experiment in compare mode (uniform vs RHO-LOSS
   by default) reports the steps and seconds each method needs to reach the uniform baseline's best accuracy.
3. Memory (``--memory``): peak resident memory (RSS) of a comparison run in a fresh process against the number of
   steps (at 1, 2, 4 and 8 × ``--memory-steps``) and against the number of seeds (1, 2, 3), with the growth per
   1000 steps and per extra seed. Memory should depend on the data and the models, not on the steps.

    python benchmarks/goldilocks.py [--dataset digits] [--arch mlp] [--repeats 5] [--steps 30] [--device cpu]
                                    [--step-methods all] [--samples 300] [--threads 1] [--clock cpu|wall]
                                    [--speedup-steps 300]
                                    [--seeds 1] [--skip-speedup]
                                    [--memory] [--memory-dataset fashion_mnist] [--memory-steps 200]

Run it with ``PYTHONPATH=<another checkout>`` to measure that checkout's code (the memory runs inherit it).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

os.environ.setdefault("WORKBENCH_HOME", tempfile.mkdtemp(prefix="wb-bench-"))

import workbench  # noqa: E402
from workbench.lib import data as wdata  # noqa: E402
from workbench.methods.goldilocks import Candidates, make_selector  # noqa: E402
from workbench.methods.goldilocks.selection import Selector  # noqa: E402
from workbench.methods.goldilocks.experiment import METHODS  # noqa: E402
from workbench.lib.nn import build_model  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


#: the clock of the step-cost tables (``--clock``): process CPU seconds on CPU, wall seconds on CUDA
clock = time.process_time


#: the reference step: a uniform step that also runs one no-grad forward of the n_B candidates where a scoring
#: method scores them; its extra time over a uniform step is the forward's cost *inside a step* (after an optimiser
#: step has passed through the caches), the unit of the overhead columns
REFERENCE = "uniform+fwd"


class _ForwardThenUniform(Selector):
    """The reference step's selection: one no-grad forward of the candidate batch, then the uniform choice."""

    name = REFERENCE
    draws = False

    def __init__(self) -> None:
        super().__init__()
        self.uniform = make_selector("uniform")

    def select(self, model, cand, k, *, step=0, generator=None):  # type: ignore[override]
        with torch.no_grad():
            model(cand.x)
        return self.uniform.select(model, cand, k)


def _selector(method: str) -> Selector:
    return _ForwardThenUniform() if method == REFERENCE else make_selector(method, temperature=1.0, mc_samples=10,
                                                                           dropout=0.5)


def _step(selector: Selector, model, opt, x, y, il, idx, n_small: int, gen) -> None:
    """One training step of a method: gather the candidates, select, one AdamW step on the selected."""
    cand = Candidates(idx, x[idx], y[idx], il[idx])
    sel = selector.select(model, cand, n_small, generator=gen)
    loss = F.cross_entropy(model(x[sel.index]), y[sel.index])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def time_steps(method: str, model, opt, x, y, il, n_big: int, n_small: int, steps: int, device, gen) -> float:
    """Seconds per step (select + one AdamW step on the selected) over ``steps`` steps in a row (the candidate
    indices drawn before the clock starts)."""
    selector = _selector(method)
    n = y.shape[0]
    draws = [torch.randperm(n, generator=gen)[:n_big].to(device) for _ in range(steps)]
    _sync(device)
    t0 = clock()
    for idx in draws:
        _step(selector, model, opt, x, y, il, idx, n_small, gen)
    _sync(device)
    return (clock() - t0) / steps


def time_interleaved(methods: list[str], model, opt, x, y, il, n_big: int, n_small: int, samples: int, device,
                     gen) -> dict[str, list[float]]:
    """Seconds of single steps, the methods alternated step by step: ``samples`` timings of each. On a shared
    machine most steps run undisturbed and the low quantiles of these timings are the machine's unloaded cost; a
    round-level mean mixes in every preemption."""
    selectors = {m: _selector(m) for m in methods}
    n = y.shape[0]
    out: dict[str, list[float]] = {m: [] for m in methods}
    for i in range(samples):
        order = methods[i % len(methods):] + methods[: i % len(methods)]  # rotate who goes first
        for m in order:
            idx = torch.randperm(n, generator=gen)[:n_big].to(device)
            _sync(device)
            t0 = clock()
            _step(selectors[m], model, opt, x, y, il, idx, n_small, gen)
            _sync(device)
            out[m].append(clock() - t0)
    return out


def _quantile(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(q * (len(v) - 1)))))]


@torch.no_grad()
def time_forward(model, x, n_big: int, reps: int, device) -> float:
    """Seconds of one no-grad forward of n_B points, ``reps`` in a row (weights and input stay in the caches)."""
    xb = x[:n_big]
    _sync(device)
    t0 = clock()
    for _ in range(reps):
        model(xb)
    _sync(device)
    return (clock() - t0) / reps


def step_costs(args) -> None:
    device = torch.device(args.device)
    methods = list(METHODS) if args.step_methods == "all" else [m.strip() for m in args.step_methods.split(",")]
    if "uniform" not in methods:
        methods = ["uniform"] + methods
    methods = methods[:1] + [REFERENCE] + methods[1:]
    x, y = wdata.tensors(args.dataset, "train", holdout=0.5)
    x, y = x.to(device), y.to(device)
    il = torch.rand(y.shape[0], device=device)
    k = wdata.num_classes(args.dataset)
    n_small = math.ceil(args.percent_train * args.large_batch)
    torch.manual_seed(0)
    model = build_model(args.arch, tuple(x.shape[1:]), k, width=args.width).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    for method in methods:  # warm-up
        time_steps(method, model, opt, x, y, il, args.large_batch, n_small, 3, device, gen)
    load0 = os.getloadavg()[0]
    times: dict[str, list[float]] = {m: [] for m in methods}
    alone: list[float] = []
    for _ in range(args.repeats):  # one round: every method (the reference step among them), then forwards alone
        for method in methods:
            times[method].append(time_steps(method, model, opt, x, y, il, args.large_batch, n_small, args.steps, device, gen))
        alone.append(time_forward(model, x, args.large_batch, args.steps, device))
    # the minimum over rounds: the least disturbed measurement on a shared machine
    best = {m: min(v) for m, v in times.items()}
    base = best["uniform"]
    t_fwd = best[REFERENCE] - base
    flops_pred = (3 * n_small + args.large_batch) / (3 * n_small)
    print(f"\nPer-step time, {args.dataset}, {args.arch} (width {args.width}), n_B={args.large_batch}, n_b={n_small}, "
          f"device {device}, torch threads {torch.get_num_threads()}, {args.repeats} interleaved rounds × {args.steps} steps, "
          f"{'process CPU' if clock is time.process_time else 'wall-clock'} time, load average "
          f"{load0:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"one no-grad forward of n_B={args.large_batch} points inside a step ({REFERENCE} − uniform, the unit of the "
          f"overhead columns): {t_fwd * 1e3:.2f} ms (best rounds); alone, {args.steps} in a row: {min(alone) * 1e3:.2f} ms "
          f"(best round); FLOP-count prediction for one scoring pass: ×{flops_pred:.2f}; from the measured forward: "
          f"×{(base + t_fwd) / base:.2f}")
    print(f"{'method':<12} {'ms/step':>9} {'× uniform':>10} {'overhead ms':>12} {'overhead / n_B fwd':>19} "
          f"{'median (min-max) over rounds':>30}")
    for m in methods:
        over = best[m] - base
        per_round = [(t - u) / (f - u) for t, u, f in zip(times[m], times["uniform"], times[REFERENCE])]
        spread = f"{statistics.median(per_round):.2f} ({min(per_round):.2f}-{max(per_round):.2f})"
        print(f"{m:<12} {best[m] * 1e3:9.2f} {best[m] / base:10.2f} {over * 1e3:12.2f} {over / t_fwd:19.2f} {spread:>30}")
    if args.samples:
        steps = time_interleaved(methods, model, opt, x, y, il, args.large_batch, n_small, args.samples, device, gen)
        print(f"\nSingle steps alternated step by step ({args.samples} of each): overhead / n_B forward from the "
              f"quantiles of the step times (q10: the undisturbed steps on a loaded machine; q50: the median), the "
              f"forward's unit again {REFERENCE} − uniform; load average now {os.getloadavg()[0]:.2f}")
        print(f"{'method':<12} {'q10 ms':>8} {'q50 ms':>8} {'fwd q10':>8} {'overhead/fwd q10':>17} {'overhead/fwd q50':>17}")
        u10, u50 = _quantile(steps["uniform"], 0.1), _quantile(steps["uniform"], 0.5)
        f10, f50 = _quantile(steps[REFERENCE], 0.1) - u10, _quantile(steps[REFERENCE], 0.5) - u50
        for m in methods:
            t10, t50 = _quantile(steps[m], 0.1), _quantile(steps[m], 0.5)
            print(f"{m:<12} {t10 * 1e3:8.3f} {t50 * 1e3:8.3f} {f10 * 1e3:8.3f} {(t10 - u10) / f10:17.2f} "
                  f"{(t50 - u50) / f50:17.2f}")


def speedups(args) -> None:
    methods = args.methods
    cfg = {
        "selection": "compare", "methods": methods, "dataset": args.dataset, "arch": args.arch, "width": args.width,
        "steps": args.speedup_steps, "eval_every": max(1, args.speedup_steps // 30), "noise_rate": args.noise_rate,
        "device": args.device, "replay_arch": args.replay_arch, "seeds": args.seeds,
    }
    if args.il_steps:
        cfg["il_steps"] = args.il_steps
    res = workbench.run("goldilocks", cfg, progress=False)
    if res.status != "completed":
        raise SystemExit(f"speedup run {res.run_id} {res.status}: {res.error}")
    rows = workbench.runs.artifact(res.run_id, "speedup")
    rows = rows.to_dict("records") if hasattr(rows, "to_dict") else rows
    print(f"\nSpeedup to the uniform baseline's best test accuracy ({args.dataset}, uniform noise {args.noise_rate:.0%}, "
          f"{args.speedup_steps} steps, run {res.run_id}; replay rows are against uniform on {args.replay_arch})")
    print(f"{'method':<15} {'seed':>5} {'best acc':>9} {'target':>8} {'steps':>7} {'seconds':>8} {'× steps':>8} {'× wall':>8} "
          f"{'corrupted':>9} {'ms/step':>8}")

    def num(v: float, fmt: str) -> str:
        return "never" if v is None or not math.isfinite(float(v)) else format(float(v), fmt)

    for r in rows:
        print(f"{r['method']:<15} {int(r['seed']):5d} {r['best_accuracy']:9.3f} {r['target_accuracy']:8.3f} {num(r['steps_to_target'], '7.0f'):>7} "
              f"{num(r['seconds_to_target'], '8.2f'):>8} {r['speedup_steps']:8.2f} {r['speedup_wallclock']:8.2f} "
              f"{r['corrupted_share']:9.1%} {r['seconds_per_step'] * 1e3:8.2f}")


#: the child process of one memory measurement: run the experiment, print its peak RSS (KiB on Linux) as JSON
_CHILD = """
import json, os, resource, sys, tempfile
os.environ["WORKBENCH_HOME"] = tempfile.mkdtemp(prefix="wb-bench-mem-")
import torch
import workbench
cfg = json.loads(sys.argv[1])
torch.set_num_threads(1)
res = workbench.run("goldilocks", cfg, progress=False)
print(json.dumps({"status": res.status, "error": res.error,
                  "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def peak_rss(cfg: dict) -> float:
    """Peak resident memory (MB) of one run of the experiment in a fresh Python process."""
    import workbench as wb

    root = os.path.dirname(os.path.dirname(os.path.abspath(wb.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(cfg)], capture_output=True, text=True, env=env,
                         check=False, timeout=3600)
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    if out.returncode or not line.startswith("{"):
        raise SystemExit(f"memory run failed ({out.returncode}): {out.stderr[-2000:]}")
    got = json.loads(line)
    if got["status"] != "completed":
        raise SystemExit(f"memory run {got['status']}: {got['error']}")
    return got["peak_kib"] / 1024


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys against xs."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def memory(args) -> None:
    dataset = args.memory_dataset
    base = {"selection": "compare", "methods": ["uniform", "rho_loss"], "dataset": dataset,
            "eval_every": max(1, args.memory_steps // 10), "noise_rate": 0.2, "replay_arch": "mlp",
            "replay_width": 64, "il_steps": args.memory_il_steps}
    print(f"\nPeak RSS of a comparison (uniform, rho_loss and the replay pair) in a fresh process, {dataset}, "
          f"evaluation every {base['eval_every']} steps, one torch thread")
    steps = [args.memory_steps * f for f in (1, 2, 4, 8)]
    by_steps = []
    print(f"{'steps':>7} {'seeds':>5} {'peak RSS MB':>12}")
    for n in steps:
        mb = peak_rss({**base, "steps": n, "seeds": 1})
        by_steps.append(mb)
        print(f"{n:7d} {1:5d} {mb:12.1f}")
    by_seeds = [by_steps[0]]
    for s in (2, 3):
        mb = peak_rss({**base, "steps": steps[0], "seeds": s})
        by_seeds.append(mb)
        print(f"{steps[0]:7d} {s:5d} {mb:12.1f}")
    print(f"growth: {_slope(steps, by_steps) * 1000:.2f} MB per 1000 steps (least squares over {steps}); "
          f"{_slope([1, 2, 3], by_seeds):.1f} MB per extra seed")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="digits")
    p.add_argument("--arch", default="mlp")
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--large-batch", type=int, default=320)
    p.add_argument("--percent-train", type=float, default=0.1)
    p.add_argument("--repeats", type=int, default=5, help="interleaved rounds of the step-cost table")
    p.add_argument("--steps", type=int, default=30, help="steps per method and round")
    p.add_argument("--step-methods", default="all", help="methods of the step-cost table (comma-separated, or all)")
    p.add_argument("--samples", type=int, default=300,
                   help="single steps per method alternated step by step (the quantile table; 0: skip it)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1, as the experiment runs a model under 2M parameters; 0: torch's default)")
    p.add_argument("--clock", choices=("cpu", "wall"), default=None,
                   help="step-cost clock: process CPU time (default on CPU) or wall-clock (default on CUDA)")
    p.add_argument("--speedup-steps", type=int, default=300)
    p.add_argument("--il-steps", type=int, default=0, help="irreducible-model steps (0: the experiment's default)")
    p.add_argument("--seeds", type=int, default=1, help="replicates of the speedup comparison")
    p.add_argument("--noise-rate", type=float, default=0.1)
    p.add_argument("--methods", default="uniform,rho_loss")
    p.add_argument("--replay-arch", default="cnn")
    p.add_argument("--skip-speedup", action="store_true")
    p.add_argument("--skip-steps", action="store_true")
    p.add_argument("--memory", action="store_true", help="also measure peak RSS against steps and seeds")
    p.add_argument("--memory-dataset", default="fashion_mnist")
    p.add_argument("--memory-steps", type=int, default=200, help="the smallest step count of the memory figure")
    p.add_argument("--memory-il-steps", type=int, default=200, help="irreducible-model steps of the memory runs")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    global clock
    wall = args.clock == "wall" or (args.clock is None and torch.device(args.device).type == "cuda")
    clock = time.perf_counter if wall else time.process_time
    if not args.skip_steps:
        step_costs(args)
    if not args.skip_speedup:
        speedups(args)
    if args.memory:
        memory(args)


if __name__ == "__main__":
    main()
