"""The test suite's time as `make test` runs it (pytest-xdist on every core), with CPU seconds per test.

On a shared machine wall time says little; CPU seconds (the test process's own plus its reaped children's: notebook
kernels, torchrun ranks, subprocesses) do not depend on the load. Prints the wall time, the load average before and
after, the CPU seconds per worker and per test folder, and the tests that cost most. A quiet machine with W cores
takes about (CPU seconds) / W plus the tail of the last group.

    python benchmarks/test_suite.py [--workers auto] [--top 25] [pytest arguments, e.g. tests/kto]
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = os.environ.get("WB_SUITE_CPU_OUT")


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


# -- loaded into every pytest process with `-p test_suite` -------------------------------------------------------------
if OUT:
    import pytest

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item, nextitem):
        cpu, wall = _cpu(), time.time()
        yield
        with open(OUT, "a") as fh:
            fh.write(json.dumps({"id": item.nodeid, "cpu": _cpu() - cpu, "wall": time.time() - wall, "start": wall,
                                 "worker": os.environ.get("PYTEST_XDIST_WORKER", "main")}) + "\n")

    def pytest_unconfigure(config):
        with open(OUT, "a") as fh:
            fh.write(json.dumps({"id": None, "cpu": _cpu(), "worker": os.environ.get("PYTEST_XDIST_WORKER", "main")})
                     + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="auto", help="pytest-xdist workers (-n); 0: one process")
    parser.add_argument("--top", type=int, default=25, help="how many of the costliest tests to list")
    args, rest = parser.parse_known_args()
    out = Path(tempfile.mkdtemp(prefix="wb-suite-")) / "cpu.jsonl"
    env = {**os.environ, "WB_SUITE_CPU_OUT": str(out),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "pytest", "-p", "test_suite", "-n", args.workers, "--dist", "loadgroup", "-q",
           *rest]
    load0, start = os.getloadavg(), time.time()
    proc = subprocess.run(cmd, cwd=ROOT, env=env)
    wall, load1 = time.time() - start, os.getloadavg()
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    tests = [r for r in rows if r["id"]]
    totals = {r["worker"]: r["cpu"] for r in rows if not r["id"]}
    workers = {w: c for w, c in totals.items() if w != "main"}
    total = totals.get("main", 0.0)  # the controller's own plus its reaped workers'
    print(f"\n{' '.join(cmd[2:])}\nexit {proc.returncode}; wall {wall:.0f} s; CPU {total:.0f} s in all "
          f"(workers: {', '.join(f'{w} {c:.0f} s' for w, c in sorted(workers.items())) or 'none'}; "
          f"{sum(r['cpu'] for r in tests):.0f} s inside tests); load average {load0[0]:.1f} before, "
          f"{load1[0]:.1f} after, on {os.cpu_count()} cores")
    folders = collections.Counter()
    for r in tests:
        folders[r["id"].split("/")[1] if r["id"].count("/") > 1 else r["id"].split("::")[0]] += r["cpu"]
    print("CPU s per folder: " + ", ".join(f"{k} {v:.0f}" for k, v in folders.most_common()))
    print(f"the {args.top} costliest tests (CPU s, wall s, worker):")
    for r in sorted(tests, key=lambda r: -r["cpu"])[:args.top]:
        print(f"{r['cpu']:7.1f} {r['wall']:7.1f}  {r['worker']:4s} {r['id']}")
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
