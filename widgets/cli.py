"""The notebook layer's subcommands of ``workbench`` (entry-point group ``workbench.commands``):
``workbench demo``, ``workbench report NOTEBOOK``, ``workbench serve``. Each is ``main(argv) -> int``."""
from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import sys
import tempfile
import warnings
from typing import Iterator


class _OneLine(argparse.ArgumentParser):
    """A bad command line is one line (``workbench report: argument --to: invalid choice...``), exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: {message}", file=sys.stderr)
        raise SystemExit(2)


def demo(argv: list[str]) -> int:
    """``workbench demo [--only NAME ...] [--smoke] [--jobs N] [--out reports/demo.html]``."""

    def jobs(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed; allowed: an integer >= 1 (experiments at once)")
        return value

    parser = _OneLine(prog="workbench demo",
                      description="run every registered experiment's demo setting, several at once, and write one "
                                  "offline HTML report (figures + claims checked), updated as each one ends")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these experiments")
    parser.add_argument("--smoke", action="store_true", help="smoke settings (seconds; for tests)")
    parser.add_argument("--jobs", type=jobs, metavar="N",
                        help="experiments at once, each in its own process (default: the cores over one run's threads)")
    parser.add_argument("--out", default="reports/demo.html", help="report path (default reports/demo.html)")
    parser.add_argument("--no-progress", action="store_true",
                        help="accepted for old scripts: the demo prints one line per experiment, never progress bars")
    args = parser.parse_args(argv)
    from .demo import run_demo

    try:
        path, results = run_demo(args.only, smoke=args.smoke, out=args.out, jobs=args.jobs)
    except ValueError as err:
        print(f"workbench demo: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"workbench demo: interrupted; the report of what ended is in {args.out}", file=sys.stderr)
        return 130
    print(f"wrote {path} ({sum(r['status'] == 'completed' for r in results)}/{len(results)} experiments completed)")
    return 0 if all(r["status"] == "completed" for r in results) else 1


def report(argv: list[str]) -> int:
    """``workbench report NOTEBOOK [-p NAME VALUE ...] [--to html|pdf] [--no-input] [-o PATH]``."""
    parser = _OneLine(prog="workbench report",
                                     description="execute a notebook with parameters and export an offline report")
    parser.add_argument("notebook", help="the .ipynb to execute")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="set a parameter of the notebook's 'parameters' cell (repeatable)")
    parser.add_argument("--to", choices=("html", "pdf"), default="html", help="output format (default html)")
    parser.add_argument("--no-input", action="store_true", help="leave code cells out of the report")
    parser.add_argument("-o", "--output", help="output path (default reports/<notebook>.<html|pdf>)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell (default 900)")
    parser.add_argument("--verbose", action="store_true", help="show the kernel's and the libraries' own messages")
    args = parser.parse_args(argv)
    from .report import parse_value
    from .report import report as make_report

    params = {name: parse_value(value) for name, value in args.parameter}
    try:
        unknown_parameters(args.notebook, list(params))
    except (FileNotFoundError, ValueError) as err:
        print(f"workbench report: {err}", file=sys.stderr)
        return 2
    try:
        with _quiet(not args.verbose):
            path = make_report(args.notebook, params, out=args.output, to=args.to, no_input=args.no_input,
                               timeout=args.timeout)
    except FileNotFoundError as err:
        print(f"workbench report: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - a failing cell: one clear message, not a traceback
        name = type(err).__name__
        text = str(err).strip().splitlines()
        print(f"workbench report: {name}: {text[-1] if text else ''}", file=sys.stderr)
        if name == "CellExecutionError":
            print("\n".join(text[-30:]), file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


def notebook_parameters(notebook: str) -> list[str]:
    """The names assigned in the notebook's cell tagged ``parameters`` (in order)."""
    if not os.path.exists(notebook):
        raise FileNotFoundError(f"no notebook at {notebook}")
    try:  # the notebook's JSON as it is (nbformat takes seconds to import, for one cell)
        with open(notebook, encoding="utf-8") as fh:
            cells = json.load(fh).get("cells", [])
        cell = next((c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    except (ValueError, AttributeError):
        raise ValueError(f"{notebook} is not a readable notebook (.ipynb JSON)") from None
    if cell is None:
        raise ValueError(f"{notebook} has no cell tagged 'parameters': it takes no -p")
    source = cell.get("source", "")
    try:
        tree = ast.parse("".join(source) if isinstance(source, list) else source)
    except SyntaxError as err:
        raise ValueError(f"{notebook}: its parameters cell is not valid Python (line {err.lineno})") from None
    names: list[str] = []
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AnnAssign, ast.AugAssign)) else []
        for target in targets:
            for leaf in ast.walk(target):
                if isinstance(leaf, ast.Name) and leaf.id not in names:
                    names.append(leaf.id)
    return names


def unknown_parameters(notebook: str, given: list[str]) -> None:
    """Raise ``ValueError`` (one line) when ``given`` names a parameter the notebook's ``parameters`` cell lacks."""
    if not given:
        if not os.path.exists(notebook):
            raise FileNotFoundError(f"no notebook at {notebook}")
        return
    known = notebook_parameters(notebook)
    bad = [n for n in given if n not in known]
    if bad:
        listed = ", ".join(known) if known else "none"
        raise ValueError(f"-p {bad[0]}: {notebook} has no parameter {bad[0]!r}; its parameters cell sets: {listed}")


@contextlib.contextmanager
def _quiet(on: bool) -> Iterator[None]:
    """Keep library warnings (and the kernel's own stderr, e.g. its transport warning) out of the terminal."""
    if not on:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def serve(argv: list[str]) -> int:
    """``workbench serve [--port N] [--show]``: the Panel app on 127.0.0.1, one page per experiment."""
    parser = _OneLine(prog="workbench serve", description="the Panel app, one page per experiment")
    parser.add_argument("--port", type=int, default=5006, help="port on 127.0.0.1 (default 5006; 0 = any free)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these experiments")
    parser.add_argument("--show", action="store_true", help="open a browser")
    args = parser.parse_args(argv)
    from .app import serve as serve_app

    try:
        serve_app(port=args.port, only=args.only, show=args.show)
    except ValueError as err:
        print(f"workbench serve: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0
