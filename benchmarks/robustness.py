"""Robustness benchmarks: training-step cost of NFM / NoisyMix relative to the baseline, corruption throughput.

    .venv/bin/python benchmarks/robustness.py                   # digits, small CNN, CPU
    .venv/bin/python benchmarks/robustness.py --dataset cifar10 --arch resnet --device cuda

Step times are measured in one process, recipes interleaved round by round (so a shared or busy machine
slows all of them alike), median over rounds; the ratio column divides by the baseline's median. AugMix
views are produced inside the timed step (they are part of NoisyMix's cost). Corruption throughput is
images per second at severity 3 on the test images (first ``--images``), one call per corruption.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def _time_steps(args: argparse.Namespace) -> list[tuple[str, float, float]]:
    from types import SimpleNamespace

    from workbench import data
    from workbench.nfm.experiment import nfm_recipe
    from workbench.nn import build_model
    from workbench.noisymix.experiment import noisymix_recipe

    dev = torch.device(args.device)
    x, y = data.tensors(args.dataset, "train")
    x, y = x[: args.batch_size * 4], y[: args.batch_size * 4]
    k = data.num_classes(args.dataset)
    cfg = SimpleNamespace(add_noise=0.5, mult_noise=0.5, sparsity=0.65, jsd_weight=12.0, alpha=1.0,
                          augmix_severity=3, augmix_width=3, augmix_depth=-1, all_ops=False)
    recipes = {
        "baseline": nfm_recipe("baseline", 1.0, 0.4, 0.2, 0.0),
        "manifold_mixup": nfm_recipe("manifold_mixup", 1.0, 0.4, 0.2, 0.0),
        "nfm": nfm_recipe("nfm", 1.0, 0.4, 0.2, 0.0),
        "augmix_jsd": noisymix_recipe("augmix_jsd", cfg),
        "noisymix": noisymix_recipe("noisymix", cfg),
    }
    models, opts = {}, {}
    for name in recipes:
        torch.manual_seed(0)
        models[name] = build_model(args.arch, tuple(x.shape[1:]), k).to(dev)
        opts[name] = torch.optim.SGD(models[name].parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    times: dict[str, list[float]] = {n: [] for n in recipes}
    for rnd in range(args.rounds + 1):
        for name, fn in recipes.items():
            idx = torch.randint(0, len(x), (args.batch_size,), generator=gen)
            xb, yb = x[idx].to(dev), y[idx].to(dev)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                loss, _ = fn(models[name], xb, yb, gen)
                opts[name].zero_grad(set_to_none=True)
                loss.backward()
                opts[name].step()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            if rnd > 0:  # round 0 warms up
                times[name].append((time.perf_counter() - t0) / args.steps)
    base = statistics.median(times["baseline"])
    return [(n, statistics.median(t) * 1000, statistics.median(t) / base) for n, t in times.items()]


def _throughput(args: argparse.Namespace) -> list[tuple[str, float]]:
    from workbench import data
    from workbench.robustness import CORRUPTIONS, corrupt

    x, _ = data.tensors(args.dataset, "test")
    xn = x[: args.images].numpy()
    out = []
    for name in CORRUPTIONS:
        t0 = time.perf_counter()
        corrupt(xn, name, 3, seed=0)
        out.append((name, len(xn) / (time.perf_counter() - t0)))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--arch", default="cnn", choices=("mlp", "cnn", "resnet"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=5, help="steps per timed round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--images", type=int, default=256, help="test images for the corruption throughput")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--skip-corruptions", action="store_true")
    p.add_argument("--skip-steps", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if not args.skip_steps:
        print(f"# training step, {args.dataset} / {args.arch} / batch {args.batch_size} / {args.device}"
              f" ({args.rounds} rounds × {args.steps} steps, median)")
        print(f"{'recipe':<16}{'ms/step':>10}{'× baseline':>12}")
        for name, ms, ratio in _time_steps(args):
            print(f"{name:<16}{ms:>10.2f}{ratio:>12.2f}")
    if not args.skip_corruptions:
        print(f"\n# corruption throughput, {args.dataset} test images (first {args.images}), severity 3")
        print(f"{'corruption':<20}{'images/s':>12}")
        for name, ips in _throughput(args):
            print(f"{name:<20}{ips:>12.0f}")


if __name__ == "__main__":
    main()
