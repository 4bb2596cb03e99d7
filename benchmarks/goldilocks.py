"""Goldilocks / RHO-LOSS cost and speed.

1. Time per training step of every selection method against uniform sampling, in one process, alternating the
   methods over repeats (best of the repeats: the least disturbed on a shared machine). A uniform step trains on
   n_b points: ~n_b forward + backward (≈ 3·n_b forward passes of FLOPs); a scoring method adds n_B forward passes
   without gradients, so the FLOP count predicts a ratio of (3·n_b + n_B) / (3·n_b) ≈ 4.3 at n_B = 320, n_b = 32.
   The table also gives the ratio predicted from the *measured* time of one n_B forward pass, and the measured one.
2. Wall-clock speedup to the target accuracy: the ``goldilocks`` experiment in compare mode (uniform vs RHO-LOSS
   by default) reports the steps and seconds each method needs to reach the uniform baseline's best accuracy.

    python benchmarks/goldilocks.py [--dataset digits] [--arch mlp] [--repeats 5] [--steps 30] [--device cpu]
                                    [--speedup-steps 300] [--seeds 1] [--skip-speedup]
"""
from __future__ import annotations

import argparse
import math
import os
import tempfile
import time

import torch
import torch.nn.functional as F

os.environ.setdefault("WORKBENCH_HOME", tempfile.mkdtemp(prefix="wb-bench-"))

import workbench  # noqa: E402
from workbench import data as wdata  # noqa: E402
from workbench.goldilocks import Candidates, make_selector  # noqa: E402
from workbench.goldilocks.experiment import METHODS  # noqa: E402
from workbench.nn import build_model  # noqa: E402


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
    x, y = wdata.tensors(args.dataset, "train", holdout=0.5)
    x, y = x.to(device), y.to(device)
    il = torch.rand(y.shape[0], device=device)
    k = wdata.num_classes(args.dataset)
    n_small = math.ceil(args.percent_train * args.large_batch)
    torch.manual_seed(0)
    model = build_model(args.arch, tuple(x.shape[1:]), k, width=args.width).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    for method in METHODS:  # warm-up
        time_steps(method, model, opt, x, y, il, args.large_batch, n_small, 3, device, gen)
    times: dict[str, list[float]] = {m: [] for m in METHODS}
    fwd: list[float] = []
    for _ in range(args.repeats):
        for method in METHODS:
            times[method].append(time_steps(method, model, opt, x, y, il, args.large_batch, n_small, args.steps, device, gen))
        fwd.append(time_forward(model, x, args.large_batch, args.steps, device))
    # the minimum over repeats: the least disturbed measurement on a shared machine
    med = {m: min(v) for m, v in times.items()}
    t_fwd = min(fwd)
    base = med["uniform"]
    flops_pred = (3 * n_small + args.large_batch) / (3 * n_small)
    print(f"\nPer-step time, {args.dataset}, {args.arch} (width {args.width}), n_B={args.large_batch}, n_b={n_small}, "
          f"device {device}, torch threads {torch.get_num_threads()}, best of {args.repeats}×{args.steps} steps")
    print(f"one no-grad forward of n_B={args.large_batch} points: {t_fwd * 1e3:.2f} ms; "
          f"FLOP-count prediction for one scoring pass: ×{flops_pred:.2f}; from the measured forward: "
          f"×{(base + t_fwd) / base:.2f}")
    print(f"{'method':<12} {'ms/step':>9} {'× uniform':>10} {'overhead ms':>12} {'overhead / n_B fwd':>19}")
    for m in METHODS:
        over = med[m] - base
        print(f"{m:<12} {med[m] * 1e3:9.2f} {med[m] / base:10.2f} {over * 1e3:12.2f} {over / t_fwd:19.2f}")


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="digits")
    p.add_argument("--arch", default="mlp")
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--large-batch", type=int, default=320)
    p.add_argument("--percent-train", type=float, default=0.1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=30)
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
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.skip_steps:
        step_costs(args)
    if not args.skip_speedup:
        speedups(args)


if __name__ == "__main__":
    main()
