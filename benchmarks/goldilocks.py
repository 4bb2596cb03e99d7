"""Goldilocks / RHO-LOSS cost, speed and memory.

1. Step cost. Time per training step of every selection method against uniform sampling, in one process, the
   methods alternated within each round (interleaved rounds). A uniform step trains on n_b points: ~n_b forward +
   backward (≈ 3·n_b forward passes of FLOPs); a scoring method adds n_B forward passes without gradients, so the
   FLOP count predicts a ratio of (3·n_b + n_B) / (3·n_b) ≈ 4.3 at n_B = 320, n_b = 32. The overhead of a method is
   reported in units of one no-grad forward pass of n_B points (measured in the same rounds): RHO-LOSS needs one
   such forward, so its floor is 1.0. Columns: the best of the rounds (the least disturbed on a shared machine)
   and the median over rounds of each round's own ratio, with its spread (min-max). A second table alternates the
   methods and the forward pass step by step (``--samples`` of each) and takes the ratio from quantiles of the
   single-step times: q10 (the undisturbed steps, robust on a loaded machine) and q50.
2. Wall-clock speedup to the target accuracy: the ``goldilocks`` experiment in compare mode (uniform vs RHO-LOSS
   by default) reports the steps and seconds each method needs to reach the uniform baseline's best accuracy.
3. Memory (``--memory``): peak resident memory (RSS) of a comparison run in a fresh process against the number of
   steps (at 1, 2, 4 and 8 × ``--memory-steps``) and against the number of seeds (1, 2, 3), with the growth per
   1000 steps and per extra seed. Memory should depend on the data and the models, not on the steps.

    python benchmarks/goldilocks.py [--dataset digits] [--arch mlp] [--repeats 5] [--steps 30] [--device cpu]
                                    [--step-methods all] [--samples 300] [--threads 0] [--speedup-steps 300]
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
from workbench.methods.goldilocks.experiment import METHODS  # noqa: E402
from workbench.lib.nn import build_model  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(method: str, model, opt, x, y, il, n_big: int, n_small: int, steps: int, device, gen) -> float:
    """Seconds per step (select + one AdamW step on the selected) over ``steps`` steps."""
    selector = make_selector(method, temperature=1.0, mc_samples=10, dropout=0.5)
    n = y.shape[0]
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        idx = torch.randperm(n, generator=gen)[:n_big].to(device)
        cand = Candidates(idx, x[idx], y[idx], il[idx])
        sel = selector.select(model, cand, n_small, generator=gen)
        loss = F.cross_entropy(model(x[sel.index]), y[sel.index])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return (time.perf_counter() - t0) / steps


def time_interleaved(methods: list[str], model, opt, x, y, il, n_big: int, n_small: int, samples: int, device,
                     gen) -> tuple[dict[str, list[float]], list[float]]:
    """Seconds of single steps, the methods (and one no-grad forward of n_B points) alternated step by step:
    ``samples`` timings of each. On a shared machine most steps run undisturbed and the low quantiles of these
    timings are the machine's unloaded cost; a round-level mean mixes in every preemption."""
    selectors = {m: make_selector(m, temperature=1.0, mc_samples=10, dropout=0.5) for m in methods}
    n = y.shape[0]
    out: dict[str, list[float]] = {m: [] for m in methods}
    fwd: list[float] = []
    for i in range(samples):
        order = methods[i % len(methods):] + methods[: i % len(methods)]  # rotate who goes first
        for m in order:
            idx = torch.randperm(n, generator=gen)[:n_big].to(device)
            _sync(device)
            t0 = time.perf_counter()
            cand = Candidates(idx, x[idx], y[idx], il[idx])
            sel = selectors[m].select(model, cand, n_small, generator=gen)
            loss = F.cross_entropy(model(x[sel.index]), y[sel.index])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            _sync(device)
            out[m].append(time.perf_counter() - t0)
        xb = x[:n_big]
        _sync(device)
        t0 = time.perf_counter()
        with torch.no_grad():
            model(xb)
        _sync(device)
        fwd.append(time.perf_counter() - t0)
    return out, fwd


def _quantile(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(q * (len(v) - 1)))))]


@torch.no_grad()
def time_forward(model, x, n_big: int, reps: int, device) -> float:
    xb = x[:n_big]
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        model(xb)
    _sync(device)
    return (time.perf_counter() - t0) / reps


def step_costs(args) -> None:
    device = torch.device(args.device)
    methods = list(METHODS) if args.step_methods == "all" else [m.strip() for m in args.step_methods.split(",")]
    if "uniform" not in methods:
        methods = ["uniform"] + methods
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
    times: dict[str, list[float]] = {m: [] for m in methods}
    fwd: list[float] = []
    for _ in range(args.repeats):  # one round: every method, then the forward pass
        for method in methods:
            times[method].append(time_steps(method, model, opt, x, y, il, args.large_batch, n_small, args.steps, device, gen))
        fwd.append(time_forward(model, x, args.large_batch, args.steps, device))
    # the minimum over rounds: the least disturbed measurement on a shared machine
    best = {m: min(v) for m, v in times.items()}
    t_fwd = min(fwd)
    base = best["uniform"]
    flops_pred = (3 * n_small + args.large_batch) / (3 * n_small)
    print(f"\nPer-step time, {args.dataset}, {args.arch} (width {args.width}), n_B={args.large_batch}, n_b={n_small}, "
          f"device {device}, torch threads {torch.get_num_threads()}, {args.repeats} interleaved rounds × {args.steps} steps")
    print(f"one no-grad forward of n_B={args.large_batch} points: {t_fwd * 1e3:.2f} ms (best round), "
          f"{statistics.median(fwd) * 1e3:.2f} ms (median); FLOP-count prediction for one scoring pass: "
          f"×{flops_pred:.2f}; from the measured forward: ×{(base + t_fwd) / base:.2f}")
    print(f"{'method':<12} {'ms/step':>9} {'× uniform':>10} {'overhead ms':>12} {'overhead / n_B fwd':>19} "
          f"{'median (min-max) over rounds':>30}")
    for m in methods:
        over = best[m] - base
        per_round = [(t - u) / f for t, u, f in zip(times[m], times["uniform"], fwd)]
        spread = f"{statistics.median(per_round):.2f} ({min(per_round):.2f}-{max(per_round):.2f})"
        print(f"{m:<12} {best[m] * 1e3:9.2f} {best[m] / base:10.2f} {over * 1e3:12.2f} {over / t_fwd:19.2f} {spread:>30}")
    if args.samples:
        steps, fwd1 = time_interleaved(methods, model, opt, x, y, il, args.large_batch, n_small, args.samples, device, gen)
        print(f"\nSingle steps alternated step by step ({args.samples} of each): overhead / n_B forward from the "
              f"quantiles of the step times (q10: the undisturbed steps on a loaded machine; q50: the median)")
        print(f"{'method':<12} {'q10 ms':>8} {'q50 ms':>8} {'fwd q10':>8} {'overhead/fwd q10':>17} {'overhead/fwd q50':>17}")
        f10, f50 = _quantile(fwd1, 0.1), _quantile(fwd1, 0.5)
        u10, u50 = _quantile(steps["uniform"], 0.1), _quantile(steps["uniform"], 0.5)
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
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
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
    if not args.skip_steps:
        step_costs(args)
    if not args.skip_speedup:
        speedups(args)
    if args.memory:
        memory(args)


if __name__ == "__main__":
    main()
