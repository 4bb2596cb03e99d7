"""Command line: ``workbench run METHOD [--param value ...]``, ``workbench runs ...``, ``workbench claims``, and
the notebook layer's ``demo``, ``report`` and ``serve`` (found through the ``workbench.commands`` entry points, so the
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
    """One ``--name`` flag per declared parameter (values validated by the config, not by argparse); a boolean is
    ``--name`` / ``--no-name`` (``--name true|false`` is rewritten to them by :func:`bool_aliases`)."""
    for name, param in config.params().items():
        flag = f"--{name.replace('_', '-')}"
        if _is_bool(param):
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None,
                                help=_help(param))
        else:
            parser.add_argument(flag, dest=name, metavar=_metavar(param), default=None, help=_help(param))


def _is_bool(param: Param) -> bool:
    return param.kind is bool and not param.multiple


def bool_aliases(argv: Sequence[str], config: type[Config]) -> list[str]:
    """``argv`` with the value form of boolean flags (``--name true``, ``--name=off``) rewritten to ``--name`` /
    ``--no-name``; a value that is not a boolean raises the parameter's one-line :class:`ConfigError`."""
    flags = {f"--{n.replace('_', '-')}": p for n, p in config.params().items() if _is_bool(p)}
    out, i = [], 0
    while i < len(argv):
        word = argv[i]
        flag, eq, inline = word.partition("=")
        param = flags.get(flag)
        if param is not None and (eq or (i + 1 < len(argv) and not argv[i + 1].startswith("-"))):
            value = inline if eq else argv[i + 1]
            out.append(flag if param.coerce(value) else "--no-" + flag[2:])
            i += 1 if eq else 2
            continue
        out.append(word)
        i += 1
    return out


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

    if not argv or argv[0].startswith("-"):
        print(f"usage: workbench run METHOD [--param value ...]\nmethods: {', '.join(experiments())}", file=sys.stderr)
        return 2
    try:
        exp = get(argv[0])
    except ConfigError as err:
        print(f"workbench run: {err}", file=sys.stderr)
        return 2
    parser = _Parser(prog=f"workbench run {exp.name}", description=exp.title or exp.name)
    parser.add_argument("--smoke", action="store_true", help="apply the experiment's smoke settings (seconds)")
    parser.add_argument("--scale", default="default", metavar="{default,demo,paper}",
                        help="start from a preset: demo (minutes on a CPU) or paper (the paper's protocol, for a GPU)")
    parser.add_argument("--resume", metavar="RUN_ID", help="continue a stopped run from its last checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--store", metavar="URL", help=STORE_HELP)
    parser.add_argument("--mlflow", metavar="URI", help="mirror the run to this MLflow tracking URI as it goes")
    add_param_flags(parser, exp.config)
    try:
        args = vars(parser.parse_args(bool_aliases(argv[1:], exp.config)))
        if args["scale"] not in ("default", "demo", "paper"):
            raise _Usage(f"parameter 'scale' = {args['scale']!r} is not allowed; allowed: default, demo, paper "
                         "(--smoke for the smoke setting)")
    except (_Usage, ConfigError) as err:  # one line, like every other bad value
        print(f"workbench run: {err}", file=sys.stderr)
        return 2
    smoke, resume, quiet, scale = args.pop("smoke"), args.pop("resume"), args.pop("no_progress"), args.pop("scale")
    where, mlflow = args.pop("store"), args.pop("mlflow")
    values = {k: v for k, v in args.items() if v is not None}

    def opened() -> Any:  # after the config and its files are checked: a bad value creates nothing
        try:
            return open_store(where, mlflow)
        except Exception as err:  # a bad --store URL, a missing driver, a server that does not answer: one line
            if not (isinstance(err, (ValueError, ImportError)) or _external(err)):
                raise
            raise _Usage(one_line_error(err)) from err

    try:
        result = engine.run(exp, values, smoke=smoke, scale=scale, resume=resume, progress=not quiet,
                            store=opened if where or mlflow else None)
    except (ConfigError, SourceError, _Usage) as err:  # nothing ran: one line, no traceback
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

    common = _Parser(add_help=False)
    common.add_argument("--store", metavar="URL", default=argparse.SUPPRESS, help=STORE_HELP)
    parser = _Parser(prog="workbench runs", description="the run store", parents=[common])
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
                        "a folder of them), another store's directory or URL, or load a spill file (or a folder of "
                        "them) that a run wrote when its store was unreachable")
    im.add_argument("source")
    im.add_argument("--run", action="append", metavar="ID", help="only this run (repeatable; id prefixes work)")
    im.add_argument("--include-running", action="store_true", help="also runs still marked running")
    try:
        args, extra = parser.parse_known_args(argv)
        if args.action == "export" and args.path is None and len(extra) == 1 and not extra[0].startswith("-"):
            args.path = extra.pop()  # `export ID --to tensorboard DIR`: the directory after the options
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except _Usage as err:
        print(f"workbench runs: {err}", file=sys.stderr)
        return 2
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
        if not (isinstance(err, (KeyError, ValueError, ImportError, FileNotFoundError, ConnectionError))
                or _external(err)):
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


# -- workbench claims ------------------------------------------------------------------------------------------
CLAIMS_START, CLAIMS_END = "<!-- claims:start -->", "<!-- claims:end -->"
#: config keys that do not change what a run computes (a run that differs only there is the same run)
_NOT_RESULTS = ("checkpoint_every",)


class _Usage(Exception):
    """A bad command line: one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _Usage(message)


def _cmd_claims(argv: Sequence[str]) -> int:
    """``workbench claims [NAME ...]``: run each experiment's claim setting (resuming where it stopped), then one
    table of every claim: effect ± uncertainty, seeds, rule, outcome, run id and wall time."""
    from workbench.core.registry import SCALES

    parser = _Parser(prog="workbench claims", description="Run every registered experiment's claim setting (or the "
                     "named ones) and print one table of their claims. A completed run of the same experiment with "
                     "the same config in the store is reused; a stopped one is resumed from its checkpoint.")
    parser.add_argument("names", nargs="*", metavar="NAME", help="experiments to run (default: every registered one)")
    parser.add_argument("--scale", default="demo", metavar="{" + ",".join(SCALES) + "}",
                        help="the preset each experiment runs at (default: demo, minutes on a CPU)")
    parser.add_argument("--seeds", metavar="N", help="N seeds: passed as the config's `seeds` where the experiment "
                        "declares one, else seeds 0..N-1 as separate runs, each listed")
    parser.add_argument("--markdown", metavar="PATH", help="write the table as markdown")
    parser.add_argument("--json", metavar="PATH", help="write the claims as a JSON list of objects")
    parser.add_argument("--readme", metavar="PATH", help=f"rewrite the block between {CLAIMS_START} and "
                        f"{CLAIMS_END} in this file with the markdown table")
    parser.add_argument("--checkpoint-every", metavar="N", help="checkpoint every N steps, so that a stopped run "
                        "resumes (default: the preset's)")
    parser.add_argument("--fresh", action="store_true", help="run again even where a matching run is stored")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--store", metavar="URL", help=STORE_HELP)
    try:
        args = parser.parse_args(argv)
        plan = _claims_plan(args)
        readme = _readme_text(args.readme) if args.readme else None
        store = open_store(args.store)
    except _Usage as err:
        print(f"workbench claims: {err}", file=sys.stderr)
        return 2
    except (ConfigError, SourceError) as err:
        print(f"workbench claims: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # a bad --store URL, a missing driver, a server that does not answer: one line
        if not (isinstance(err, (ValueError, ImportError, OSError)) or _external(err)):
            raise
        print(f"workbench claims: {one_line_error(err)}", file=sys.stderr)
        return 2
    rows, complete = [], True
    for job in plan:
        outcome = _claims_job(job, store, fresh=args.fresh, progress=not args.no_progress)
        rows.extend(outcome["rows"])
        if outcome["status"] != "completed":
            complete = False
        if outcome["status"] == "stopped":  # Ctrl-C or a stop request: the rest waits for the next call
            for rest in plan[plan.index(job) + 1:]:
                rows.append(_claim_row(rest, None, None, "not run", reason="not run: an earlier run was stopped"))
            break
    command = "workbench claims " + " ".join(_command_words(args))
    table = claims_table_text(rows)
    print(table)
    markdown = claims_markdown(rows, command)
    if args.markdown:
        _write(args.markdown, markdown + "\n")
    if args.json:
        _write(args.json, to_json(rows, indent=1) + "\n")
    if readme is not None:
        if complete:
            _write(args.readme, _replace_block(readme, markdown))
        else:
            print(f"workbench claims: {args.readme} left as it was (not every run completed; run the command again "
                  "to resume)", file=sys.stderr)
    return 0 if complete else 1


def _claims_plan(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The runs to make: (experiment, values, label) for each name and seed; every config validated first."""
    from workbench.core.registry import SCALES, experiments, get

    if args.scale not in SCALES:
        raise _Usage(f"parameter '--scale' = {args.scale!r} is not allowed; allowed: {', '.join(SCALES)}")
    seeds = _count("--seeds", args.seeds, 1) if args.seeds is not None else None
    every = _count("--checkpoint-every", args.checkpoint_every, 1) if args.checkpoint_every is not None else None
    names = list(dict.fromkeys(args.names)) or list(experiments())
    smoke = args.scale == "smoke"
    plan = []
    for name in names:
        exp = get(name)  # an unknown name: ConfigError listing the known ones
        base: dict[str, Any] = {} if every is None else {"checkpoint_every": every}
        if seeds is None:
            variants = [(base, "")]
        elif "seeds" in exp.config.params():
            variants = [({**base, "seeds": seeds}, "")]
        else:
            variants = [({**base, "seed": s}, f"seed {s}") for s in range(seeds)]
        for values, label in variants:
            cfg = exp.make_config(values, smoke=smoke, scale="default" if smoke else args.scale)
            plan.append({"exp": exp, "values": values, "label": label, "smoke": smoke, "scale": args.scale,
                         "config": _comparable(cfg.to_dict())})
    return plan


def _count(flag: str, text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise _Usage(f"parameter '{flag}' = {text!r} is not an integer; allowed: integers ≥ {low}") from None
    if value < low:
        raise _Usage(f"parameter '{flag}' = {value} is out of range; allowed: integers ≥ {low}")
    return value


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    """A config as stored (JSON), without the keys that do not change the results."""
    plain = json.loads(to_json(config))
    return {k: v for k, v in plain.items() if k not in _NOT_RESULTS}


def _claims_job(job: dict[str, Any], store: Any, fresh: bool, progress: bool) -> dict[str, Any]:
    """Reuse a completed matching run, resume a stopped one, or run it; returns its status and claim rows."""
    import time

    from workbench.core import engine

    exp, tag = job["exp"], job["exp"].name + (f" ({job['label']})" if job["label"] else "")
    found = [] if fresh else [r for r in store.runs(method=exp.name)
                              if bool(r.get("smoke")) == job["smoke"] and _comparable(r["config"]) == job["config"]]
    done = [r for r in found if r["status"] == "completed"]
    stopped = [r for r in found if r["status"] in ("stopped", "crashed")
               and store.artifact_row(r["id"], "checkpoint") is not None]
    try:
        if done:
            record = done[-1]
            print(f"== {tag}: reusing completed run {record['id']}", file=sys.stderr, flush=True)
            seconds = _run_seconds(record)
        else:
            previous = 0.0
            if stopped:
                record = stopped[-1]
                previous = _run_seconds(record) or 0.0
                print(f"== {tag}: resuming run {record['id']}", file=sys.stderr, flush=True)
                start = time.time()
                result = engine.run(exp, None, resume=record["id"], progress=progress, store=store)
            else:
                print(f"== {tag}: running ({job['scale']} scale)", file=sys.stderr, flush=True)
                start = time.time()
                result = engine.run(exp, dict(job["values"]), smoke=job["smoke"],
                                    scale="default" if job["smoke"] else job["scale"], progress=progress, store=store)
            seconds = previous + time.time() - start
            record = store.get(result.run_id)
            print(f"   {result.status} in {seconds:.1f} s" + (f": {result.error}" if result.error else ""),
                  file=sys.stderr, flush=True)
    except (ConfigError, SourceError) as err:  # nothing ran (missing data, a bad stored config): say why
        print(f"   not run: {err}", file=sys.stderr, flush=True)
        return {"status": "not run", "rows": [_claim_row(job, None, None, "not run", reason=f"not run: {err}")]}
    finally:
        engine.leave_process_group()
    status = record["status"]
    claims = store.claims(record["id"])
    if status != "completed":
        why = f"run {status}" + (f": {record['error']}" if record.get("error") else "")
        rows = [_claim_row(job, record, seconds, status, claim=c, reason=why) for c in claims] or [
            _claim_row(job, record, seconds, status, reason=why)]
    else:
        rows = [_claim_row(job, record, seconds, status, claim=c) for c in claims] or [
            _claim_row(job, record, seconds, status, reason="the run recorded no claim")]
    return {"status": status, "rows": rows}


def _run_seconds(record: dict[str, Any]) -> float | None:
    """Wall time of a stored run, from its creation to its end (a run resumed elsewhere: with the pause)."""
    if record.get("ended_at") and record.get("created_at"):
        return float(record["ended_at"]) - float(record["created_at"])
    return None


def _claim_row(job: dict[str, Any], record: dict[str, Any] | None, seconds: float | None, status: str,
               claim: dict[str, Any] | None = None, reason: str = "") -> dict[str, Any]:
    """One row of the table and of the JSON: the claim's fields, the experiment, the run and its wall time.

    Without a claim (a run that did not run, failed before its claims, or recorded none) the row says so, with
    the outcome "not evaluated" and ``reason``; a claim of a run that did not complete keeps its outcome and
    gets the run's status beside its reason."""
    from workbench.store.interop.claims import note

    c = claim or {}
    row = {
        "experiment": job["exp"].name, "label": job["label"],
        "claim": c.get("claim") or "(no claim checked)",
        "method": c.get("method", ""), "arm": c.get("arm", ""),
        "effect": c.get("effect"), "uncertainty": c.get("uncertainty"), "low": c.get("low"), "high": c.get("high"),
        "kind": c.get("kind"), "seeds": c.get("seeds"), "samples": c.get("samples"), "how": c.get("how", ""),
        "rule": c.get("rule", ""), "outcome": c.get("outcome") or "not evaluated",
        "reason": "; ".join(x for x in (c.get("reason", ""), reason) if x),
        "detail": note(c) if c else "", "paper": c.get("paper", ""), "measured": c.get("measured", ""),
        "holds": c.get("holds"),
        "run_id": record["id"] if record else None, "status": status,
        "seed": (record["config"] if record else {}).get("seed"), "scale": job["scale"],
        "seconds": None if seconds is None else round(seconds, 1),
    }
    return row


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


def _text_rows(rows: list[dict[str, Any]]) -> tuple[list[dict[str, str]], list[str]]:
    """The rows as text cells, and the rules they cite (numbered R1, R2, ... in order of first use)."""
    from workbench.store.interop.claims import effect_text, outcome_text, seeds_text

    rules: list[str] = []
    out = []
    for i, r in enumerate(rows, 1):
        rule = r.get("rule") or ""
        if rule and rule not in rules:
            rules.append(rule)
        method = r["experiment"] + (f" ({r['label']})" if r.get("label") else "")
        versus = f"{r['method']} vs {r['arm']}" if r.get("method") and r.get("arm") else r.get("method") or ""
        out.append({"n": str(i), "experiment": method, "claim": str(r["claim"]), "versus": versus,
                    "effect": effect_text(r) if r.get("run_id") else "–", "seeds": seeds_text(r),
                    "rule": f"R{rules.index(rule) + 1}" if rule else "", "outcome": outcome_text(r),
                    "run": r.get("run_id") or "–", "time": _duration(r.get("seconds"))})
    return out, rules


_TABLE_COLUMNS = (("experiment", "method"), ("claim", "claim"), ("versus", "vs"), ("effect", "effect ± uncertainty"),
                  ("seeds", "seeds"), ("rule", "rule"), ("outcome", "outcome"), ("run", "run id"), ("time", "time"))


def claims_table_text(rows: list[dict[str, Any]]) -> str:
    """The terminal table of ``workbench claims`` (claims cut at 70 characters; the rules listed below it)."""
    from workbench.store.interop.claims import plain_table

    if not rows:
        return "no claims"
    text, rules = _text_rows(rows)
    table = plain_table(text, (("n", "#"),) + _TABLE_COLUMNS, widths={"claim": 70, "outcome": 90})
    return table + "\n\nrules:\n" + "\n".join(f"  R{i}: {rule}" for i, rule in enumerate(rules, 1))


def claims_markdown(rows: list[dict[str, Any]], command: str = "workbench claims") -> str:
    """The markdown of ``workbench claims``: how it was made, the table, and the rules it cites."""
    import time

    from workbench.store.interop.claims import markdown_table

    text, rules = _text_rows(rows)
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    head = (f"Generated by `{command}` on {stamp}: effect ± the half-width of its 95% interval; time is the run's "
            "wall clock on the machine that ran it.")
    body = markdown_table(text, _TABLE_COLUMNS) if rows else "_no claims_"
    legend = "\n".join(f"- **R{i}**: {rule}" for i, rule in enumerate(rules, 1))
    return "\n\n".join(x for x in (head, body, legend) if x)


def _command_words(args: argparse.Namespace) -> list[str]:
    words = list(args.names)
    if args.scale != "demo":
        words += ["--scale", args.scale]
    if args.seeds is not None:
        words += ["--seeds", str(args.seeds)]
    return words


def _readme_text(path: str) -> str:
    from pathlib import Path

    text = Path(path).read_text(encoding="utf-8")  # a missing file: OSError, one line
    _replace_block(text, "")  # the markers are checked before anything runs
    return text


def _replace_block(text: str, block: str) -> str:
    """``text`` with everything between the claims markers replaced by ``block``."""
    start, end = text.find(CLAIMS_START), text.find(CLAIMS_END)
    if start < 0 or end < 0 or end < start or text.count(CLAIMS_START) != 1 or text.count(CLAIMS_END) != 1:
        raise _Usage(f"--readme: the file needs one {CLAIMS_START} line followed by one {CLAIMS_END} line")
    return text[: start + len(CLAIMS_START)] + "\n" + block + "\n" + text[end:]


def _write(path: str, text: str) -> None:
    from pathlib import Path

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)


def _cmd_sweep(argv: Sequence[str]) -> int:
    from workbench.core.sweep.cli import main as sweep_main

    return sweep_main(argv)


def _cmd_experiments(argv: Sequence[str]) -> int:
    from workbench.core.registry import experiments

    for name, exp in experiments().items():
        print(f"{name:20s} {exp.title}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    builtin = {"run": _cmd_run, "runs": _cmd_runs, "claims": _cmd_claims, "sweep": _cmd_sweep,
               "experiments": _cmd_experiments}
    plugins = _commands()
    usage = ("usage: workbench {" + ",".join([*builtin, *sorted(plugins)]) + "} ...\n"
             "  run METHOD [--param value ...]   train one experiment and record it\n"
             "  runs list|show|export|import|delete|stop [--store URL]  the run store\n"
             "  claims [NAME ...] [--scale S] [--seeds N] [--markdown P] [--json P] [--readme P]\n"
             "                                   run the claim settings; one table of every claim\n"
             "  sweep METHOD --space NAME[=RANGE] [--trials N] [--parallel N] [--resume SWEEP_ID]\n"
             "                                   an Optuna search, trials run on Ray, each a run in the store\n"
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

    Under torchrun every rank has left the process group by then, and rank 0 (which owns the store) has committed
    and closed each run's writer: each exits without running C++ static destructors, where gloo's threads
    occasionally abort the process at teardown ("terminate called without an active exception": SIGABRT after the
    Python code finished, which torchrun reports as a failed job; seen on workers, and on rank 0 under load)."""
    code = main()
    if "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import logging

        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
