"""GPU check: every registered experiment for a few steps on CUDA (``make gpu-check``).

Runs each experiment's smoke settings with ``device=cuda``, checks that the run completes with finite
losses, and prints a table of steps/s, seconds and peak GPU memory. Exit status 1 when any fails.
``--device cpu`` runs the same check on the CPU (what the test suite does); ``--scale paper`` runs each
experiment's paper preset instead (the paper's protocol: long).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time

os.environ.setdefault("WORKBENCH_HOME", tempfile.mkdtemp(prefix="wb-gpu-check-"))

import torch  # noqa: E402

import workbench  # noqa: E402
from workbench import runs  # noqa: E402
from workbench.core.engine import Control  # noqa: E402


def check(name: str, device: str, scale: str = "smoke") -> dict:
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    control = Control()
    start = time.perf_counter()
    res = workbench.run(name, {"device": device}, smoke=scale == "smoke", scale="default" if scale == "smoke" else scale,
                        control=control, progress=False)
    seconds = time.perf_counter() - start
    df = runs.metrics(res.run_id)
    losses = df[df.name.str.contains("loss")].value
    finite = bool(len(losses)) and all(math.isfinite(v) for v in losses)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else float("nan")
    ok = res.status == "completed" and finite
    return {"experiment": name, "status": res.status, "finite losses": finite, "steps": control.steps_done,
            "steps/s": control.steps_done / seconds, "seconds": seconds, "peak MiB": peak, "ok": ok,
            "error": (res.error or "").strip().splitlines()[-1:] }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--only", nargs="*", help="experiment names (default: all registered)")
    parser.add_argument("--scale", default="smoke", choices=("smoke", "demo", "paper"),
                        help="which preset each experiment runs (default smoke: a few steps)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu-check: no CUDA device visible (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    names = args.only or list(workbench.experiments())
    rows = [check(n, args.device, args.scale) for n in names]
    print(f"{'experiment':22s} {'status':10s} {'finite':7s} {'steps':>6s} {'steps/s':>9s} {'seconds':>8s} {'peak MiB':>9s}")
    for r in rows:
        print(f"{r['experiment']:22s} {r['status']:10s} {str(r['finite losses']):7s} {r['steps']:6d} "
              f"{r['steps/s']:9.2f} {r['seconds']:8.2f} {r['peak MiB']:9.1f}" + (f"  {r['error']}" if not r["ok"] else ""))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
