"""Robustness benchmarks: training-step cost of NFM / NoisyMix relative to the baseline, corruption throughput.

    .venv/bin/python benchmarks/robustness.py                   # digits, small CNN, CPU
    .venv/bin/python benchmarks/robustness.py --dataset cifar10 --arch resnet --device cuda

Step times are those of the suite's own training step (``workbench.lib.robustness.training.RecipeTrainer``: batch
gather, the recipe's AugMix views, forward, backward, optimiser step), measured in one process, recipes
interleaved round by round (so a shared or busy machine slows all of them alike), median over rounds; the
ratio column divides by the baseline's median. AugMix views are part of NoisyMix's cost: in the ``prefetched``
columns they are prepared for step s + 1 in the suite's worker thread while step s trains (as a run does;
each round starts without a prefetched batch, so one step in ``--steps`` still pays for its views inline), in
the ``inline`` columns inside the step. Corruption throughput is images per second at severity 3 on the test
images (first ``--images``), one call per corruption. ``--memory`` adds the peak RSS of each robustness
experiment against the number of steps (each run in a fresh process; it should not grow with steps).
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch


def _step_rng(name: str, step: int) -> torch.Generator:
    """A stateless generator per (name, step), like ``ctx.rng`` in a run (the benchmark has no run context)."""
    import zlib

    return torch.Generator().manual_seed(zlib.crc32(f"{name}/{step}".encode()))


def _time_steps(args: argparse.Namespace) -> list[tuple[str, float, float, float, float]]:
    from types import SimpleNamespace

    from workbench.lib import data
    from workbench.core.batches import IndexBatches
    from workbench.lib.nn import build_model
    from workbench.lib.robustness.recipes import nfm_recipe, noisymix_recipe
    from workbench.lib.robustness.inputs import Standardised, channel_stats
    from workbench.lib.robustness.training import RecipeTrainer

    dev = torch.device(args.device)
    x, y = data.tensors(args.dataset, "train")
    x, y = x[: args.batch_size * 4], y[: args.batch_size * 4]
    k = data.num_classes(args.dataset)
    stats = channel_stats(x)
    cfg = SimpleNamespace(add_noise=0.5, mult_noise=0.5, sparsity=0.65, jsd_weight=12.0, alpha=1.0,
                          augmix_severity=3, augmix_width=3, augmix_depth=-1, all_ops=False)
    recipes = {
        "baseline": nfm_recipe("baseline", 1.0, 0.4, 0.2, 0.0),
        "manifold_mixup": nfm_recipe("manifold_mixup", 1.0, 0.4, 0.2, 0.0),
        "nfm": nfm_recipe("nfm", 1.0, 0.4, 0.2, 0.0),
        "augmix": noisymix_recipe("augmix", cfg, cfg),
        "augmix_jsd": noisymix_recipe("augmix_jsd", cfg, cfg),
        "noisymix": noisymix_recipe("noisymix", cfg, cfg),
    }
    total = (args.rounds + 1) * args.steps
    trainers: dict[tuple[str, bool], RecipeTrainer] = {}
    for name, recipe in recipes.items():
        for prefetch in (True, False):
            torch.manual_seed(0)
            model = Standardised(build_model(args.arch, tuple(x.shape[1:]), k), *stats).to(dev)
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            trainers[name, prefetch] = RecipeTrainer(
                name, recipe, model, opt, x, y, IndexBatches(len(x), args.batch_size, seed=0),
                torch.Generator().manual_seed(0), rng=_step_rng, total=total, augment=args.augment, device=dev,
                prefetch=prefetch)
    times: dict[tuple[str, bool], list[float]] = {key: [] for key in trainers}
    step = 0
    try:
        for rnd in range(args.rounds + 1):
            for key, trainer in trainers.items():
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                for i in range(args.steps):
                    trainer.step(rnd * args.steps + i)
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                if rnd > 0:  # round 0 warms up
                    times[key].append((time.perf_counter() - t0) / args.steps)
                trainer.drop_prefetched()  # nothing runs in the background during another recipe's round
            step += args.steps
    finally:
        for trainer in trainers.values():
            trainer.close()
    med = {key: statistics.median(t) for key, t in times.items()}
    base_p, base_i = med["baseline", True], med["baseline", False]
    return [(n, med[n, True] * 1000, med[n, True] / base_p, med[n, False] * 1000, med[n, False] / base_i)
            for n in recipes]


def _views_ms(args: argparse.Namespace) -> float:
    """Milliseconds to prepare one batch's two AugMix views (what the worker thread hides)."""
    from types import SimpleNamespace

    from workbench.lib import data
    from workbench.lib.robustness.recipes import augmix_views

    x, _ = data.tensors(args.dataset, "train")
    xb = x[: args.batch_size]
    cfg = SimpleNamespace(augmix_severity=3, augmix_width=3, augmix_depth=-1, all_ops=False)
    gen = torch.Generator().manual_seed(0)
    augmix_views(xb, cfg, gen)
    t = []
    for _ in range(args.rounds * 2):
        t0 = time.perf_counter()
        augmix_views(xb, cfg, gen)
        t.append(time.perf_counter() - t0)
    return statistics.median(t) * 1000


def _throughput(args: argparse.Namespace) -> list[tuple[str, float]]:
    from workbench.lib import data
    from workbench.lib.robustness import CORRUPTIONS, corrupt

    x, _ = data.tensors(args.dataset, "test")
    xn = x[: args.images].numpy()
    out = []
    for name in CORRUPTIONS:
        t0 = time.perf_counter()
        corrupt(xn, name, 3, seed=0)
        out.append((name, len(xn) / (time.perf_counter() - t0)))
    return out


def _peak_rss(experiment: str, steps: int, values: dict) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one run of ``experiment`` in a fresh process (its own temporary store)."""
    import json
    import subprocess
    import sys

    code = ("import json, resource, sys, torch, workbench; torch.set_num_threads(1); "
            "r = workbench.run(sys.argv[1], json.loads(sys.argv[2]), progress=False); "
            "assert r.status == 'completed', r.error; "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    env = {**os.environ, "WORKBENCH_HOME": tempfile.mkdtemp(prefix="wb-bench-memory-")}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, experiment, json.dumps({**values, "steps": steps})],
                         env=env, capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1]) / 1024, time.perf_counter() - t0


def _memory(args: argparse.Namespace) -> list[tuple[str, int, float, float]]:
    """Peak RSS of each robustness experiment at several step counts (it should not grow with steps)."""
    values = {"dataset": args.dataset, "width": 8, "batch_size": 32, "eval_limit": 64, "eval_every": 10,
              "corruption_set": "standard"}
    rows = []
    for name in ("nfm", "noisymix", "robustness_compare"):
        for steps in args.memory_steps:
            mb, secs = _peak_rss(name, steps, values)
            rows.append((name, steps, mb, secs))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--arch", default="cnn", choices=("mlp", "cnn", "resnet"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=5, help="steps per timed round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--augment", default="none", choices=("none", "crop", "crop_flip"),
                   help="the suite's standard augmentation (prepared with the views)")
    p.add_argument("--images", type=int, default=256, help="test images for the corruption throughput")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--skip-corruptions", action="store_true")
    p.add_argument("--skip-steps", action="store_true")
    p.add_argument("--memory", action="store_true",
                   help="also the peak RSS of nfm, noisymix and robustness_compare runs against --memory-steps")
    p.add_argument("--memory-steps", type=lambda s: [int(v) for v in s.split(",")], default=[20, 400],
                   help="step counts of the memory runs (comma-separated)")
    args = p.parse_args()
    os.environ["WORKBENCH_HOME"] = tempfile.mkdtemp(prefix="wb-bench-robustness-")
    torch.set_num_threads(args.threads)
    if not args.skip_steps:
        print(f"# training step, {args.dataset} / {args.arch} / batch {args.batch_size} / {args.device}"
              f" ({args.rounds} rounds × {args.steps} steps, median; views prefetched by the suite's worker thread,"
              f" or inline)")
        print(f"{'recipe':<16}{'ms/step':>10}{'× baseline':>12}{'inline ms':>12}{'× baseline':>12}")
        for name, ms, ratio, ms_i, ratio_i in _time_steps(args):
            print(f"{name:<16}{ms:>10.2f}{ratio:>12.2f}{ms_i:>12.2f}{ratio_i:>12.2f}")
        print(f"(two AugMix views of one batch: {_views_ms(args):.2f} ms)")
    if args.memory:
        print(f"\n# peak RSS against steps ({args.dataset}, width 8, batch 32, 15 corruptions on 64 images; fresh process each)")
        print(f"{'experiment':<20}{'steps':>8}{'peak MB':>10}{'wall s':>9}")
        for name, steps, mb, secs in _memory(args):
            print(f"{name:<20}{steps:>8}{mb:>10.0f}{secs:>9.1f}")
    if not args.skip_corruptions:
        print(f"\n# corruption throughput, {args.dataset} test images (first {args.images}), severity 3")
        print(f"{'corruption':<20}{'images/s':>12}")
        for name, ips in _throughput(args):
            print(f"{name:<20}{ips:>12.0f}")


if __name__ == "__main__":
    main()
