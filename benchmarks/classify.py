"""classify: wall time and test accuracy of the default on digits (the issue's bar: ≥ 95% in < 60 s on 2 cores).

    python benchmarks/classify.py [--threads 0 1 2] [--set arch=resnet steps=200 ...]

Runs the experiment through the engine (the same path as ``workbench run classify``) once per value of its
``threads`` parameter (0: the experiment's choice, one thread for small models on CPU) and prints seconds,
steps/s and the final test accuracy/ECE.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("WORKBENCH_HOME", tempfile.mkdtemp(prefix="wb-bench-classify-"))

import workbench  # noqa: E402
from workbench.core.engine import Control  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="*", default=[0])
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="config overrides")
    args = parser.parse_args()
    overrides = dict(kv.split("=", 1) for kv in args.set)
    print(f"{'threads':>7s} {'seconds':>8s} {'steps/s':>8s} {'accuracy':>9s} {'ECE':>7s}  config overrides: {overrides}")
    for threads in args.threads:
        control = Control()
        start = time.perf_counter()
        res = workbench.run("classify", {**overrides, "threads": threads}, control=control,
                            progress=False).raise_for_status()
        seconds = time.perf_counter() - start
        print(f"{threads:7d} {seconds:8.1f} {control.steps_done / seconds:8.1f} "
              f"{res.summary['test/accuracy']:9.4f} {res.summary['test/ece']:7.4f}")


if __name__ == "__main__":
    main()
