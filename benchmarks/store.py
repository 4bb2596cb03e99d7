"""Run store throughput: metric rows per second and commit latency on SQLite and PostgreSQL with 1, 4 and 16
writer processes at once, and the engine's overhead ratio on each store.

Each writer process opens its own run and writes ``--metrics`` metrics per step for ``--seconds`` seconds, in two
kinds of rounds. Throughput: batches of ``--batch`` steps committed back to back (``Store.add_metrics``, what the
writer thread does), the database's capacity. Latency: a training loop at ``--rate`` steps per second logging
through the engine's ``RunWriter`` (a background thread commits every 0.25 s). Reported per backend and number of
writer processes (median over ``--repeats`` interleaved rounds): committed rows per second (all writers together),
the number of commits, commit latency (median and 95th percentile), and in the latency rounds the longest ``log``
call of a training loop (it only appends to a buffer: it never waits for a commit). A
temporary PostgreSQL server is started in a temporary directory (fsync on, as a real server; ``--fast-pg``
turns it off), or ``--pg URL`` uses yours. The engine overhead is ``benchmarks/engine_overhead.py``'s work
(an MLP step, the loss logged every step) through ``workbench.run`` against each store, divided by the bare loop.

    python benchmarks/store.py [--writers 1,4,16] [--seconds 2] [--rate 200] [--batch 250] [--repeats 3] [--pg URL]
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
from pathlib import Path

os.environ.setdefault("WORKBENCH_HOME", tempfile.mkdtemp(prefix="wb-bench-store-"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

WRITER = """
import json, sys, time
from workbench.store.store import Store
url, start, seconds, k, rate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
st = Store(url)
rid = st.create_run("bench", {})
names = [f"train/m{i}" for i in range(k)]
while time.time() < start:
    time.sleep(0.001)
step, worst, commits, t0 = 0, 0.0, [], time.perf_counter()
if rate:  # a training loop: the engine's writer, a step every 1/rate s
    w = st.writer(rid)
    while time.perf_counter() - t0 < seconds:
        a = time.perf_counter()
        w.log(step, dict.fromkeys(names, step * 0.5))
        worst = max(worst, time.perf_counter() - a)
        step += 1
        time.sleep(max(0.0, t0 + step / rate - time.perf_counter()))
    w.close()
    commits = w.commit_seconds
else:  # the database's capacity: batches of BATCH steps committed back to back
    batch = int(sys.argv[6])
    while time.perf_counter() - t0 < seconds:
        now = time.time()
        rows = [(s, n, s * 0.5, now) for s in range(step, step + batch) for n in names]
        a = time.perf_counter()
        st.add_metrics(rid, rows)
        commits.append(time.perf_counter() - a)
        step += batch
st.finish(rid, "completed")
print(json.dumps({"rows": step * k, "total_s": time.perf_counter() - t0, "commits": commits,
                  "worst_log_s": worst, "run_id": rid}))
"""


def writers_round(url: str, n: int, seconds: float, metrics: int, rate: float, batch: int) -> dict[str, float]:
    start = time.time() + 1.0 + 0.1 * n  # every process imported and connected before the clock starts
    argv = [url, str(start), str(seconds), str(metrics), str(rate), str(batch)]
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, *argv], stdout=subprocess.PIPE, text=True)
             for _ in range(n)]
    outs = [json.loads(p.communicate(timeout=600)[0]) for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError("a writer process failed")
    from workbench.store.store import Store

    st = Store(url)
    stored = sum(len(st.metrics(o["run_id"])) for o in outs)
    rows = sum(o["rows"] for o in outs)
    if stored != rows:
        raise RuntimeError(f"{rows - stored} rows lost")
    commits = sorted(c for o in outs for c in o["commits"])
    span = max(o["total_s"] for o in outs)  # until the last row of the last writer was committed
    return {"rows_per_s": rows / span, "commit_p50_ms": 1e3 * statistics.median(commits),
            "commit_p95_ms": 1e3 * commits[max(0, math.ceil(0.95 * len(commits)) - 1)],
            "worst_log_ms": 1e3 * max(o["worst_log_s"] for o in outs), "commits": len(commits)}


def engine_ratio(stores: dict[str, str], steps: int, repeats: int) -> dict[str, float]:
    import torch

    import workbench
    from engine_overhead import EXP, bare
    from workbench.store.store import Store

    torch.set_num_threads(1)
    opened = {name: Store(url) for name, url in stores.items()}

    def engined(st) -> float:
        return workbench.run(EXP, {"steps": steps}, progress=False, store=st).summary["seconds_per_step"]

    bare(100)
    for st in opened.values():
        engined(st)
    times: dict[str, list[float]] = {"bare": [], **{k: [] for k in opened}}
    for _ in range(repeats):  # interleaved: the machine's load drifts the same way for all
        times["bare"].append(bare(steps))
        for name, st in opened.items():
            times[name].append(engined(st))
    base = statistics.median(times["bare"])
    return {"bare_ms": base * 1e3, **{name: statistics.median(t) / base for name, t in times.items() if name != "bare"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writers", default="1,4,16", help="numbers of writer processes, comma-separated")
    parser.add_argument("--seconds", type=float, default=2.0, help="logging time of each writer per round")
    parser.add_argument("--metrics", type=int, default=8, help="metrics logged per step")
    parser.add_argument("--rate", type=float, default=200.0, help="steps per second per writer in the latency rounds")
    parser.add_argument("--batch", type=int, default=250, help="steps per commit in the throughput rounds")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (median reported)")
    parser.add_argument("--engine-steps", type=int, default=1000, help="steps of each engine-overhead run")
    parser.add_argument("--pg", metavar="URL", help="a PostgreSQL server to use instead of a temporary one")
    parser.add_argument("--fast-pg", action="store_true", help="temporary server with fsync and synchronous "
                        "commit off (not what a team's server does)")
    parser.add_argument("--no-engine", action="store_true", help="skip the engine overhead")
    args = parser.parse_args()
    counts = [int(x) for x in args.writers.split(",")]

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the throwaway server lives with the tests
    from tests.pgtemp import TempPostgres, unavailable

    server = None
    urls = {"sqlite": None, "postgresql": args.pg}
    if args.pg is None:
        reason = unavailable()
        if reason:
            print(f"PostgreSQL skipped: {reason}")
            urls.pop("postgresql")
        else:
            server = TempPostgres(durable=not args.fast_pg).start()
    tmp = Path(tempfile.mkdtemp(prefix="wb-bench-store-"))
    n_store = iter(range(10_000))

    def fresh(backend: str) -> str:
        i = next(n_store)
        if backend == "sqlite":
            return f"sqlite:///{tmp / f's{i}' / 'workbench.db'}"
        if server is not None:
            return server.url("bench", schema=f"s{i}", artifacts=str(tmp / f"a{i}"))
        return urls["postgresql"]

    try:
        where = "" if args.pg or server is None else f"; temporary PostgreSQL, fsync {'off' if args.fast_pg else 'on'}"
        print(f"{args.metrics} metrics per step, {args.seconds:g} s per writer process, median of {args.repeats} "
              f"interleaved rounds{where}")
        modes = {f"throughput: each writer commits batches of {args.batch * args.metrics:,} rows back to back": 0.0,
                 f"latency: each writer a training loop at {args.rate:g} steps/s ({args.rate * args.metrics:,.0f} "
                 "rows/s) through the engine's RunWriter (0.25 s commits)": args.rate}
        results: dict[tuple[str, str, int], list[dict[str, float]]] = {}
        for _ in range(args.repeats):
            for mode, rate in modes.items():
                for n in counts:
                    for backend in urls:
                        results.setdefault((mode, backend, n), []).append(
                            writers_round(fresh(backend), n, args.seconds, args.metrics, rate, args.batch))
        for mode in modes:
            print(f"\n{mode}")
            print(f"{'store':<11}{'writers':>8}{'rows/s':>12}{'commits':>9}{'commit p50':>12}{'commit p95':>12}"
                  f"{'worst log()':>13}")
            for (m, backend, n), rounds in results.items():
                if m != mode:
                    continue
                med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
                worst = f"{med['worst_log_ms']:>11.2f}ms" if modes[mode] else f"{'-':>13}"
                print(f"{backend:<11}{n:>8}{med['rows_per_s']:>12,.0f}{med['commits']:>9.0f}"
                      f"{med['commit_p50_ms']:>10.1f}ms{med['commit_p95_ms']:>10.1f}ms{worst}")
        if not args.no_engine:
            ratios = engine_ratio({b: fresh(b) for b in urls}, args.engine_steps, args.repeats)
            print(f"\nengine overhead (bare loop {ratios.pop('bare_ms'):.3f} ms/step; goal ≤ 1.05):")
            for backend, ratio in ratios.items():
                print(f"  {backend:<11} {ratio:.3f}")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
