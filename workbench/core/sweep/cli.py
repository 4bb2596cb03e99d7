"""``workbench sweep METHOD --space ... [--objective M --direction max|min] [--trials N] [--parallel N] ...``.

``main(argv) -> int``: 0 when every trial ended (completed or pruned, or failed on its own), 2 for a bad argument
(one line, nothing started), 130 after Ctrl-C (the sweep is resumable: ``--resume SWEEP_ID``). When the sweep
ends, its report (figures and trials table, one offline page) goes to ``reports/sweep-SWEEP_ID.html``.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

from workbench.core.params import ConfigError

USAGE_EXAMPLES = """examples:
  workbench sweep classify --space lr=1e-3:1e-1:log --trials 12 --parallel 2
  workbench sweep classify --space lr=1e-4:1e-1:log --space width=8,16,32 --objective test/accuracy --direction max
  workbench sweep classify --space seed=0..4 --set steps=300      # each claim over five seeds
  workbench sweep --resume SWEEP_ID                                # continue an interrupted sweep
  workbench sweep classify --space lr --address HEAD_IP:6379 --store postgresql://me@db/wb   # on a Ray cluster
"""


#: the entry point group where the notebook layer registers its report writers (``sweep``: sweep_id, store, path)
REPORTS_GROUP = "workbench.reports"


class _Usage(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _Usage(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="workbench sweep", formatter_class=argparse.RawDescriptionHelpFormatter,
                description="Search an experiment's declared parameters with Optuna, trials run on Ray, every trial "
                            "a run in the store.", epilog=USAGE_EXAMPLES)
    p.add_argument("method", nargs="?", help="the experiment (workbench experiments lists them)")
    p.add_argument("--space", action="append", default=[], metavar="NAME[=RANGE]",
                   help="a searched parameter: NAME (its declared range), NAME=LOW:HIGH[:log], NAME=a,b,c, NAME=0..4")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a value fixed for every trial")
    p.add_argument("--objective", action="append", metavar="METRIC",
                   help="the metric to optimise (repeat for a Pareto front); default: the experiment's key test metric")
    p.add_argument("--direction", action="append", choices=("max", "min"), help="per objective (default from its name)")
    p.add_argument("--trials", type=int, help="trials in the sweep (default 10; a grid: its size)")
    p.add_argument("--parallel", type=int, default=1, help="trials at a time (default 1)")
    p.add_argument("--sampler", choices=("tpe", "random", "grid", "cmaes"),
                   help="default: grid when every searched parameter is a finite set, else tpe")
    p.add_argument("--pruner", choices=("median", "hyperband", "none"), help="default: median (one objective)")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="start no new trial after this long")
    p.add_argument("--address", metavar="HOST:PORT", help="join this Ray cluster (default: a local one on 127.0.0.1)")
    p.add_argument("--name", metavar="SWEEP_ID", help="the new sweep's id (default sweep-<time>-<hex>)")
    p.add_argument("--resume", metavar="SWEEP_ID", help="continue this sweep")
    p.add_argument("--store", metavar="URL", help="the run store (a directory, sqlite:///path.db or postgresql://...)")
    p.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPUs each trial reserves (default 0)")
    p.add_argument("--smoke", action="store_true", help="the experiment's smoke setting (seconds per trial)")
    p.add_argument("--scale", default="default", choices=("default", "demo", "paper"), help="start from a preset")
    p.add_argument("--seed", type=int, help="the sampler's seed")
    p.add_argument("--module", default="", help="import this module first (experiments registered outside workbench)")
    p.add_argument("--report", metavar="PATH", help="where the sweep's report goes (default reports/sweep-ID.html)")
    p.add_argument("--no-report", action="store_true", help="write no report")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if any(a in ("-h", "--help") for a in argv):
        parser.print_help()
        return 0
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # the driver prints each trial itself
    except ImportError:
        print("workbench sweep: sweeps need Optuna and Ray: pip install 'workbench[sweep]'", file=sys.stderr)
        return 2
    try:
        args = parser.parse_args(argv)
        if not args.method and not args.resume:
            raise _Usage("name the experiment to sweep, or --resume SWEEP_ID")
        from .driver import sweep
        from .space import parse_assignment

        fixed: dict[str, Any] = {}
        if args.set:
            from .driver import _experiment

            exp, _ = _experiment(args.method, args.module)
            fixed = dict(parse_assignment(s, exp) for s in args.set)
        result = sweep(args.method, args.space, objective=args.objective, direction=args.direction,
                       trials=args.trials, parallel=args.parallel, sampler=args.sampler, pruner=args.pruner,
                       timeout=args.timeout, address=args.address, resume=args.resume, store=args.store,
                       gpus_per_trial=args.gpus_per_trial, fixed=fixed, smoke=args.smoke, scale=args.scale,
                       seed=args.seed, module=args.module, sweep_id=args.name, on_trial=_print_trial)
    except (_Usage, ConfigError, ValueError) as err:
        print(f"workbench sweep: {err}", file=sys.stderr)
        return 2
    _print_result(result)
    if not args.no_report:
        print(write_report(result.sweep_id, result.store, args.report), flush=True)
    return 130 if result.interrupted else 0


def _report_writer() -> Any:
    """The sweep report writer registered under the ``workbench.reports`` entry point (the notebook layer's), or
    ``None`` where that layer is not installed."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=REPORTS_GROUP, name="sweep"):
        return ep.load()
    return None


def write_report(sweep_id: str, store: Any, path: str | None = None) -> str:
    """Write the sweep's report (its figures and trials table, offline) with the registered writer; one line
    saying where, or why none was written. A failing writer never fails the finished sweep."""
    writer = _report_writer()
    if writer is None:
        return (f"no report written: no writer registered under the {REPORTS_GROUP} entry point (the notebook "
                "layer's: pip install -e '.[notebook]')")
    try:
        return f"report: {writer(sweep_id, store, path)}"
    except Exception as err:  # noqa: BLE001 - the sweep is done and stored; say why its report is missing
        lines = str(err).strip().splitlines()
        return f"no report written: {type(err).__name__}{': ' + lines[-1] if lines else ''}"


def _print_trial(t: dict[str, Any]) -> None:
    params = " ".join(f"{k}={_fmt(v)}" for k, v in t["params"].items())
    values = " ".join(_fmt(v) for v in t["values"] or [])
    why = f" ({t['error']})" if t.get("error") else ""
    print(f"trial {t['trial']:3d} {t['status']:9s} {values:>10s}  {params}  run {t['run_id']}{why}", flush=True)


def _print_result(result: Any) -> None:
    from .claims import claims_text

    counts = ", ".join(f"{n} {k}" for k, n in sorted(result.counts.items()))
    print(f"sweep {result.sweep_id}: {counts} in {result.seconds:.0f} s")
    for b in result.best:
        params = " ".join(f"{k}={_fmt(v)}" for k, v in b["params"].items())
        print(f"best trial {b['trial']}: {' '.join(_fmt(v) for v in b['values'])}  {params}  run {b['run_id']}")
    if result.claims:
        print("claims over seeds:")
        print(claims_text(result.claims))
    if result.interrupted:
        print(f"interrupted: continue with  workbench sweep --resume {result.sweep_id}")


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
