"""Command line: ``workbench run METHOD [--param value ...]``, ``workbench runs ...``, and the notebook
layer's ``demo``, ``report`` and ``serve`` (found through the ``workbench.commands`` entry points, so the
core never imports the notebook layer). ``python -m workbench`` is the same command.
"""
from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import entry_points
from typing import Any, Sequence

from .errors import SourceError
from .params import Config, ConfigError, Param


def add_param_flags(parser: argparse.ArgumentParser, config: type[Config]) -> None:
    """One ``--name`` flag per declared parameter (values validated by the config, not by argparse)."""
    for name, param in config.params().items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, metavar=_metavar(param), default=None,
                            help=_help(param))


def _metavar(param: Param) -> str:
    if param.choices is not None:
        return ("A,B,..." if param.multiple else "{" + ",".join(map(str, param.choices)) + "}")
    return param.kind.__name__.upper()


def _help(param: Param) -> str:
    """The ``--help`` line of one parameter: doc, default, allowed values (``Param.allowed``), unit.
    ``%`` is escaped: argparse formats help strings with ``%``."""
    default = ",".join(map(str, param.default)) if isinstance(param.default, tuple) else repr(param.default)
    parts = [param.doc or "", f"(default {default}"]
    allowed = param.allowed()
    if allowed and (param.bounds is not None or param.multiple):
        parts.append(f"; {'range ' if param.bounds is not None else ''}{allowed}")
    if param.unit:
        parts.append(f"; {param.unit}")
    return (" ".join(parts[:1]) + " " + "".join(parts[1:]) + ")").replace("%", "%%")


def _commands() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group="workbench.commands")}


def _cmd_run(argv: Sequence[str]) -> int:
    from . import engine
    from .registry import experiments, get

    names = list(experiments())
    if not argv or argv[0].startswith("-"):
        print(f"usage: workbench run METHOD [--param value ...]\nmethods: {', '.join(names)}", file=sys.stderr)
        return 2
    try:
        exp = get(argv[0])
    except ConfigError as err:
        print(f"workbench run: {err}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog=f"workbench run {exp.name}", description=exp.title or exp.name)
    parser.add_argument("--smoke", action="store_true", help="apply the experiment's smoke settings (seconds)")
    parser.add_argument("--scale", choices=("default", "demo", "paper"), default="default",
                        help="start from a preset: demo (minutes on a CPU) or paper (the paper's protocol, for a GPU)")
    parser.add_argument("--resume", metavar="RUN_ID", help="continue a stopped run from its last checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_param_flags(parser, exp.config)
    args = vars(parser.parse_args(argv[1:]))
    smoke, resume, quiet, scale = args.pop("smoke"), args.pop("resume"), args.pop("no_progress"), args.pop("scale")
    values = {k: v for k, v in args.items() if v is not None}
    try:
        result = engine.run(exp, values, smoke=smoke, scale=scale, resume=resume, progress=not quiet)
    except (ConfigError, SourceError) as err:  # nothing ran: one line, no traceback
        print(f"workbench run: {err}", file=sys.stderr)
        return 2
    if result.run_id is None:  # a non-zero rank under torchrun
        return 0 if result.status == "completed" else 1
    print(to_json({"run_id": result.run_id, "status": result.status, "summary": result.summary}))
    if result.error:
        more = f" (traceback: workbench runs show {result.run_id})" if result.traceback else ""
        print(f"run {result.run_id} {result.status}: {result.error}{more}", file=sys.stderr)
    return 0 if result.status in ("completed", "stopped") else 1


def to_json(value: Any, indent: int | None = None) -> str:
    """Strict JSON (NaN and inf become null: strict parsers reject them); other objects as strings."""
    from .store import _jsonable

    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        v = _jsonable(v)
        return v if v is None or isinstance(v, (str, int, float, bool)) else str(v)

    return json.dumps(plain(value), indent=indent, allow_nan=False)


def _cmd_runs(argv: Sequence[str]) -> int:
    from . import runs

    parser = argparse.ArgumentParser(prog="workbench runs", description="the run store")
    sub = parser.add_subparsers(dest="action", required=True)
    ls = sub.add_parser("list", help="list runs")
    ls.add_argument("--method")
    ls.add_argument("--status")
    for action, helptext in (("show", "a run's record, summary and claims"), ("delete", "delete a run"),
                             ("stop", "ask a running run to stop")):
        sub.add_parser(action, help=helptext).add_argument("run_id")
    ex = sub.add_parser("export", help="metrics to .csv or .parquet")
    ex.add_argument("run_id")
    ex.add_argument("path")
    args = parser.parse_args(argv)
    try:
        if args.action == "list":
            df = runs.list(method=args.method, status=args.status)
            print(df[["id", "method", "status", "created_at"]].to_string(index=False) if len(df) else "no runs")
        elif args.action == "show":
            rec = runs.get(args.run_id)
            rec["claims"] = runs.claims(rec["id"])
            print(to_json(rec, indent=2))
        elif args.action == "delete":
            runs.delete(args.run_id)
        elif args.action == "stop":
            runs.stop(args.run_id)
        elif args.action == "export":
            print(runs.export(args.run_id, args.path))
    except (KeyError, ValueError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err  # KeyError's str() adds quotes
        print(f"workbench runs {args.action}: {message}", file=sys.stderr)
        return 2
    return 0


def _cmd_experiments(argv: Sequence[str]) -> int:
    from .registry import experiments

    for name, exp in experiments().items():
        print(f"{name:20s} {exp.title}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    builtin = {"run": _cmd_run, "runs": _cmd_runs, "experiments": _cmd_experiments}
    plugins = _commands()
    usage = ("usage: workbench {" + ",".join([*builtin, *sorted(plugins)]) + "} ...\n"
             "  run METHOD [--param value ...]   train one experiment and record it\n"
             "  runs list|show|export|delete|stop the run store\n"
             "  experiments                      the registered experiments\n"
             "  demo                             quick default of every experiment -> reports/demo.html\n"
             "  report NOTEBOOK [-p NAME VALUE]  execute a notebook and export it\n"
             "  serve                            the Panel app on 127.0.0.1")
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command in builtin:
        return builtin[command](rest)
    if command in plugins:
        return int(plugins[command].load()(rest) or 0)
    print(f"workbench: unknown command {command!r}\n{usage}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
