"""Data-parallel scaling on this machine: steps per second of every distributed experiment with 1 and 2 gloo
processes (CPU), and the share of the run's wall time spent in collectives.

    python benchmarks/ddp.py [--names nfm sdebnn ...] [--nproc 1 2] [--set NAME:key=value ...] [--device cuda]

Each experiment runs a small setting (:data:`SETTINGS`: its ``ddp_smoke`` overrides plus more steps and rare
evaluations) through the engine, once as a plain process and once per ``--nproc`` under ``torchrun --standalone``
(``OMP_NUM_THREADS=1`` per process). Steps/s counts every ``ctx.steps`` step of the run (all phases: e.g. the
irreducible-loss model and the target for goldilocks, every recipe for the robustness suite), divided by the run's
wall time inside ``workbench.run`` (evaluations included, process start-up and imports excluded). The communication
share is the time rank 0 spends inside ``torch.distributed`` collectives (all_reduce, all_gather, barrier,
broadcast: the workbench's gradient averaging, gathers and reductions) over that wall time; it includes waiting for
the slower rank. ``classify`` averages its gradients inside DistributedDataParallel's C++ reducer (overlapped with
the backward pass), which this count does not see: its share is reported as ``n/a``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: small settings (on top of each experiment's smoke preset and ddp_smoke overrides): enough steps that the
#: training loop, not the start-up, dominates; one evaluation at the end
SETTINGS: dict[str, dict] = {
    "classify": {"steps": 200, "batch_size": 128, "eval_every": 200, "width": 64},
    "nfm": {"steps": 100, "batch_size": 128, "eval_every": 100, "variants": ["nfm"], "width": 64},
    "noisymix": {"steps": 40, "batch_size": 128, "eval_every": 40, "variants": ["noisymix"], "width": 64,
                 "corruption_set": "noise"},
    "robustness_compare": {"steps": 40, "batch_size": 128, "eval_every": 40, "variants": ["nfm", "noisymix"],
                           "width": 64},
    "sdebnn": {"task": "classification", "baselines": ["none"], "steps": 40, "batch_size": 64, "eval_every": 40,
               "img_hidden": 8, "test_samples": 2},
    "goldilocks": {"selection": "rho_loss", "steps": 100, "il_steps": 100, "il_eval_every": 100,
                   "large_batch": 320, "percent_train": 0.1, "eval_every": 100, "width": 128},
    "ls4": {"steps": 60, "batch_size": 32, "eval_every": 60, "sample_every": 60, "methods": ["ls4", "latent_ode"],
            "n_series": 256, "length": 32, "hidden": 16, "state": 16, "n_eval": 32, "score_steps": 20,
            "timing_repeats": 0},
    "kto": {"method": "kto", "steps": 60, "batch_size": 32, "eval_every": 60, "pretrain_steps": 60, "eval_samples": 64},
    "nft": {"tasks": ["accuracy"], "models": ["nft", "np"], "zoo_size": 64, "zoo_steps": 20, "zoo_images": 500,
            "steps": 40, "batch_size": 16, "eval_every": 40, "d_model": 16, "heads": 2},
    "cascades": {"steps": 100, "batch_size": 32, "eval_every": 100, "test_problems": 32, "problem_block": 8,
                 "evaluations": "sampling,verifier", "star_rounds": 0},
}
COLLECTIVES = ("all_reduce", "all_gather", "barrier", "broadcast", "reduce_scatter", "all_gather_into_tensor")


def worker(name: str, overrides: dict, out: str) -> None:
    """One run (under torchrun or not): rank 0 writes steps, seconds and the seconds spent in collectives."""
    import torch.distributed as dist

    import workbench
    from workbench.core.engine import Control

    spent = [0.0]
    for fn_name in COLLECTIVES:  # time every collective the workbench calls through torch.distributed
        original = getattr(dist, fn_name, None)
        if original is None:
            continue

        def timed(*args, __f=original, **kwargs):
            start = time.perf_counter()
            try:
                return __f(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - start

        setattr(dist, fn_name, timed)
    exp = workbench.get(name)
    control = Control()
    start = time.perf_counter()
    res = workbench.run(name, {**exp.ddp_smoke, **overrides}, smoke=True, control=control, progress=False)
    seconds = time.perf_counter() - start
    rank = int(os.environ.get("RANK", "0"))
    if rank == 0:
        Path(out).write_text(json.dumps({"status": res.status, "error": res.error, "steps": control.steps_done,
                                         "seconds": seconds, "comm": spent[0]}))
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    if rank > 0:
        sys.stdout.flush()
        os._exit(0)


def measure(name: str, overrides: dict, nproc: int, home: str) -> dict:
    out = Path(tempfile.mkdtemp(prefix="wb-ddp-")) / "result.json"
    env = {**os.environ, "WORKBENCH_HOME": home, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(key, None)
    launch = [sys.executable] if nproc == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                  "--nproc-per-node", str(nproc)]
    proc = subprocess.run([*launch, __file__, "--worker", name, json.dumps(overrides), str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if proc.returncode or not out.exists():
        return {"status": "failed", "error": proc.stderr.strip().splitlines()[-1:] or ["?"]}
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", nargs="*", default=None, help="experiments (default: every distributed one)")
    parser.add_argument("--nproc", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME:KEY=VALUE", help="setting overrides")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="cpu: gloo; cuda: NCCL, one GPU per process (make gpu-check's multi-GPU section)")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], json.loads(args.worker[1]), args.worker[2])
        return
    import workbench

    names = args.names or [n for n, e in workbench.experiments().items() if e.distributed]
    settings = {n: {**SETTINGS.get(n, {}), "device": args.device} for n in names}
    for item in args.set:
        target, kv = item.split(":", 1)
        key, value = kv.split("=", 1)
        try:
            settings[target][key] = json.loads(value)
        except json.JSONDecodeError:
            settings[target][key] = value
    home = tempfile.mkdtemp(prefix="wb-bench-ddp-")
    print(f"{'experiment':20s} {'procs':>5s} {'steps':>6s} {'seconds':>8s} {'steps/s':>8s} {'speed-up':>8s} "
          f"{'comm share':>10s}")
    for name in names:
        base = None
        for nproc in args.nproc:
            r = measure(name, settings[name], nproc, home)
            if r.get("status") != "completed":
                print(f"{name:20s} {nproc:5d}  failed: {r.get('error')}")
                continue
            rate = r["steps"] / r["seconds"]
            base = rate if nproc == 1 else base
            speed = f"{rate / base:8.2f}" if base else f"{'':8s}"
            comm = "n/a" if nproc == 1 or name == "classify" else f"{r['comm'] / r['seconds']:.0%}"
            print(f"{name:20s} {nproc:5d} {r['steps']:6d} {r['seconds']:8.1f} {rate:8.2f} {speed} {comm:>10s}",
                  flush=True)


if __name__ == "__main__":
    main()
