"""Command line: ``workbench run METHOD [--param value ...]``, ``workbench runs ...``, and the notebook
layer's ``demo``, ``report`` and ``serve`` (found through the ``workbench.commands`` entry points, so the
core never imports the notebook layer). ``python -m workbench`` is the same command.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from importlib.metadata import entry_points
from typing import Any, Sequence

from workbench.core.errors import SourceError
from workbench.core.params import Config, ConfigError, Param


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
    from workbench.core import engine
    from workbench.core.registry import experiments, get

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
    parser.add_argument("--store", metavar="URL", help=STORE_HELP)
    parser.add_argument("--mlflow", metavar="URI", help="mirror the run to this MLflow tracking URI as it goes")
    add_param_flags(parser, exp.config)
    args = vars(parser.parse_args(argv[1:]))
    smoke, resume, quiet, scale = args.pop("smoke"), args.pop("resume"), args.pop("no_progress"), args.pop("scale")
    where, mlflow = args.pop("store"), args.pop("mlflow")
    values = {k: v for k, v in args.items() if v is not None}
    try:
        store = open_store(where, mlflow) if where or mlflow else None
    except Exception as err:  # a bad --store URL, a missing driver, a server that does not answer: one line
        if not (isinstance(err, (ValueError, ImportError)) or _external(err)):
            raise
        print(f"workbench run: {one_line_error(err)}", file=sys.stderr)
        return 2
    try:
        result = engine.run(exp, values, smoke=smoke, scale=scale, resume=resume, progress=not quiet, store=store)
    except (ConfigError, SourceError) as err:  # nothing ran: one line, no traceback
        print(f"workbench run: {err}", file=sys.stderr)
        return 2
    finally:
        engine.leave_process_group()
    if result.run_id is None:  # a non-zero rank under torchrun
        return 0 if result.status == "completed" else 1
    print(to_json({"run_id": result.run_id, "status": result.status, "summary": result.summary}))
    if result.error:
        more = f" (traceback: workbench runs show {result.run_id})" if result.traceback else ""
        print(f"run {result.run_id} {result.status}: {result.error}{more}", file=sys.stderr)
    return 0 if result.status in ("completed", "stopped") else 1


def to_json(value: Any, indent: int | None = None) -> str:
    """Strict JSON (NaN and inf become null: strict parsers reject them); other objects as strings."""
    from workbench.store.store import _jsonable

    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        v = _jsonable(v)
        return v if v is None or isinstance(v, (str, int, float, bool)) else str(v)

    return json.dumps(plain(value), indent=indent, allow_nan=False)


STORE_HELP = ("the run store: a directory, sqlite:///path/workbench.db or postgresql://user@host/db[?artifacts=DIR] "
              "(default: $WORKBENCH_STORE, else $WORKBENCH_HOME)")


def open_store(location: str | None = None, mlflow: str | None = None) -> Any:
    """The store named on the command line (``None``: the default one); ``mlflow`` mirrors its runs live."""
    from workbench.store import runs
    from workbench.store.store import Store

    if location is None and mlflow is None:
        return runs.store()
    st = Store(location)  # a fresh one: a sink added here stays out of the cached default store
    if mlflow is not None:
        from workbench.store.interop.to_mlflow import MlflowSink, client

        client(mlflow)  # mlflow missing: an ImportError that says what to install, before anything runs
        st.add_sink(MlflowSink.factory(mlflow))
    return st


def _cmd_runs(argv: Sequence[str]) -> int:
    from workbench.store import runs

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", metavar="URL", default=argparse.SUPPRESS, help=STORE_HELP)
    parser = argparse.ArgumentParser(prog="workbench runs", description="the run store", parents=[common])
    sub = parser.add_subparsers(dest="action", required=True)
    ls = sub.add_parser("list", help="list runs", parents=[common])
    ls.add_argument("--method")
    ls.add_argument("--status")
    for action, helptext in (("show", "a run's record, summary and claims"), ("delete", "delete a run"),
                             ("stop", "ask a running run to stop")):
        sub.add_parser(action, help=helptext, parents=[common]).add_argument("run_id")
    ex = sub.add_parser("export", parents=[common], help="metrics to .csv/.parquet, or the whole run to a directory, "
                        "MLflow or TensorBoard (--to)")
    ex.add_argument("run_id")
    ex.add_argument("path", nargs="?", help=".csv/.parquet file; the directory for --to dir and --to tensorboard")
    ex.add_argument("--to", choices=("file", "dir", "mlflow", "tensorboard"), default="file",
                    help="file: metrics table (default); dir: a directory `runs import` reads; mlflow: an MLflow run; "
                         "tensorboard: event files under PATH")
    ex.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking URI (a server, a database, or a path "
                    "for a local file store; default: $MLFLOW_TRACKING_URI, else ./mlruns)")
    ex.add_argument("--experiment", help="MLflow experiment name (default: the method's name)")
    ex.add_argument("--checkpoints", action="store_true", help="MLflow: include checkpoint artifacts")
    ex.add_argument("--no-images", action="store_true", help="TensorBoard: no view images even when a renderer "
                    "is installed (workbench.images entry point)")
    im = sub.add_parser("import", parents=[common], help="copy runs into the store from an exported directory (or "
                        "a folder of them), another store's directory or URL")
    im.add_argument("source")
    im.add_argument("--run", action="append", metavar="ID", help="only this run (repeatable; id prefixes work)")
    im.add_argument("--include-running", action="store_true", help="also runs still marked running")
    args, extra = parser.parse_known_args(argv)
    if args.action == "export" and args.path is None and len(extra) == 1 and not extra[0].startswith("-"):
        args.path = extra.pop()  # `export ID --to tensorboard DIR`: the directory after the options
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        st = open_store(getattr(args, "store", None))
        if args.action == "list":
            df = runs.list(method=args.method, status=args.status, store=st)
            print(df[["id", "method", "status", "created_at"]].to_string(index=False) if len(df) else "no runs")
        elif args.action == "show":
            rec = runs.get(args.run_id, store=st)
            rec["claims"] = runs.claims(rec["id"], store=st)
            print(to_json(rec, indent=2))
        elif args.action == "delete":
            runs.delete(args.run_id, store=st)
        elif args.action == "stop":
            runs.stop(args.run_id, store=st)
        elif args.action == "export":
            if args.to == "file":
                if args.path is None:
                    raise ValueError("give the .csv or .parquet path, or --to dir|mlflow|tensorboard")
                print(runs.export(args.run_id, args.path, store=st))
            elif args.to == "mlflow":
                uri = args.tracking_uri or args.path
                print(runs.export_run(args.run_id, "mlflow", store=st, tracking_uri=uri, experiment=args.experiment,
                                      checkpoints=args.checkpoints))
            else:
                if args.path is None:
                    raise ValueError(f"--to {args.to} needs the directory to write to")
                options = {"images": None if args.no_images else "auto"} if args.to == "tensorboard" else {}
                print(runs.export_run(args.run_id, args.to, args.path, store=st, **options))
        elif args.action == "import":
            done = runs.import_runs(args.source, store=st, run_ids=args.run, include_running=args.include_running)
            for rid, outcome in done:
                print(f"{rid} {outcome}")
            if not done:
                print("no runs to import")
    except Exception as err:
        if not (isinstance(err, (KeyError, ValueError, ImportError, FileNotFoundError)) or _external(err)):
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else one_line_error(err)  # no quotes
        print(f"workbench runs {args.action}: {message}", file=sys.stderr)
        return 2
    return 0


def _external(err: BaseException) -> bool:
    """An error of the database driver or of MLflow (a server that does not answer, a refused URI)."""
    return type(err).__module__.split(".")[0] in ("psycopg", "mlflow")


def one_line_error(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
    text = lines[0] if lines else type(err).__name__
    return text if not _external(err) else f"{type(err).__name__}: {text}"


def _cmd_experiments(argv: Sequence[str]) -> int:
    from workbench.core.registry import experiments

    for name, exp in experiments().items():
        print(f"{name:20s} {exp.title}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    builtin = {"run": _cmd_run, "runs": _cmd_runs, "experiments": _cmd_experiments}
    plugins = _commands()
    usage = ("usage: workbench {" + ",".join([*builtin, *sorted(plugins)]) + "} ...\n"
             "  run METHOD [--param value ...]   train one experiment and record it\n"
             "  runs list|show|export|import|delete|stop [--store URL]  the run store\n"
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


def entry() -> None:
    """The ``workbench`` command (and ``python -m workbench``): :func:`main`, then exit with its code.

    A torchrun worker other than rank 0 (which owns the store) has left the process group by then and has nothing
    left to write: it exits without running C++ static destructors, where gloo's threads occasionally abort the
    process at teardown ("terminate called without an active exception": SIGABRT after the Python code finished,
    which torchrun reports as a failed job)."""
    code = main()
    if int(os.environ.get("RANK", "0")) > 0:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
