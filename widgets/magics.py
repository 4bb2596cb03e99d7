"""IPython magics: ``%wb``, ``%%wb``, ``%wb_runs``, ``%wb_compare``, ``%wb_export`` (``%load_ext widgets``).

``$var`` and ``{expr}`` in a magic line are expanded by IPython before the magic sees it, so papermill
parameters work: ``%wb classify --steps $steps``. Bad arguments raise ``UsageError``: IPython shows one
line, not a traceback.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from workbench.params import ConfigError, parse_assignments


def parse_param_flags(tokens: list[str], config_cls: type) -> dict[str, Any]:
    """``["--lr", "0.1", "--steps=5"]`` → ``{"lr": 0.1, "steps": 5}``, coerced by the declared params."""
    params = config_cls.params()
    out: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--") or tok == "--":
            raise UsageError(f"unexpected argument {tok!r}; parameters are given as --name value")
        key, eq, value = tok[2:].partition("=")  # --name value | --name=value
        key = key.replace("-", "_")
        if key not in params:
            raise UsageError(f"unknown parameter --{key}; known: {', '.join('--' + p for p in params)}")
        if not eq:
            if i + 1 >= len(tokens) or (tokens[i + 1].startswith("--") and params[key].kind is not bool):
                if params[key].kind is bool:
                    value = "true"
                else:
                    raise UsageError(f"--{key} needs a value")
            else:
                i += 1
                value = tokens[i]
        try:
            out[key] = params[key].validate(value)
        except ConfigError as err:
            raise UsageError(str(err)) from None
        i += 1
    return out


def params_help(exp: Any) -> str:
    """One line per declared parameter: flag, default, allowed values, doc."""
    lines = [f"%wb {exp.name} [--param value ...]   {exp.title}"]
    for name, p in exp.config.params().items():
        if p.choices is not None:
            allowed = "{" + ",".join(map(str, p.choices)) + "}"
        elif p.bounds is not None:
            lo, hi = p.bounds
            allowed = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
        else:
            allowed = p.kind.__name__
        unit = f" {p.unit}" if p.unit else ""
        lines.append(f"  --{name.replace('_', '-'):<20} {p.default!r:<12} {allowed + unit:<26} {p.doc}")
    return "\n".join(lines)


def _experiment(name: str) -> Any:
    from workbench.registry import get

    try:
        return get(name)
    except ConfigError as err:
        raise UsageError(str(err)) from None


def _split(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as err:
        raise UsageError(f"cannot parse the magic line: {err}") from None


@magics_class
class WorkbenchMagics(Magics):
    """The workbench's magics; ``%wb?`` shows the help."""

    @magic_arguments()
    @argument("method", nargs="?", help="registered experiment (classify, nfm, ...)")
    @argument("--smoke", nargs="?", metavar="BOOL",
              help="start from the experiment's smoke settings (seconds); --smoke $smoke takes true/false")
    @argument("--nproc", type=int, default=0,
              help="(cell form) run under torch.distributed.run with N processes and follow it through the store")
    @argument("params", nargs="*", help="--name value pairs: any declared parameter of the experiment")
    @line_cell_magic
    def wb(self, line: str, cell: str | None = None) -> Any:
        """Show an experiment's dashboard (line form) or run it to completion (cell form).

        ``%wb METHOD [--param value ...]`` shows METHOD's dashboard with those defaults.
        ``%%wb METHOD [--nproc N] [--param value ...]`` with a body of ``key = value`` lines (or YAML)
        runs that config to completion with live curves and leaves static figures in the output.
        """
        tokens = _split(line)
        smoke, nproc, rest = False, 0, []
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            if tok == "--smoke":  # a flag, or --smoke true/false ($smoke from a parameters cell)
                nxt = tokens[i + 1].lower() if i + 1 < len(tokens) else ""
                if nxt in ("true", "false", "1", "0", "yes", "no"):
                    smoke, i = nxt in ("true", "1", "yes"), i + 2
                else:
                    smoke, i = True, i + 1
                continue
            if tok == "--nproc" or tok.startswith("--nproc="):
                raw = tok.partition("=")[2] if "=" in tok else (tokens[i + 1] if i + 1 < len(tokens) else "")
                i += 1 if "=" in tok else 2
                try:
                    nproc = int(raw)
                except ValueError:
                    raise UsageError(f"--nproc needs a whole number of processes, got {raw!r}") from None
                if nproc < 1:
                    raise UsageError(f"--nproc must be >= 1, got {nproc}")
                continue
            rest.append(tok)
            i += 1
        if not rest or rest[0].startswith("-"):
            from workbench.registry import experiments

            raise UsageError(f"usage: %wb METHOD [--param value ...]; methods: {', '.join(experiments())}")
        exp = _experiment(rest[0])
        if "-h" in rest or "--help" in rest:
            print(params_help(exp))
            return None
        values = parse_param_flags(rest[1:], exp.config)
        if cell is not None and cell.strip():
            try:
                body = parse_assignments(cell)
            except Exception as err:  # noqa: BLE001 - a YAML error is a usage error
                raise UsageError(f"cell body: {err}") from None
            values.update(parse_param_flags([t for k, v in body.items() for t in (f"--{k}", str(v))], exp.config)
                          if body else {})
        if cell is None:
            if nproc:
                raise UsageError("--nproc runs a config: use the cell form %%wb METHOD --nproc N")
            from .dashboards import Dashboard

            try:
                return Dashboard(exp.name, values, smoke=smoke)
            except ConfigError as err:
                raise UsageError(str(err)) from None
        if nproc:
            return self._run_distributed(exp, values, nproc, smoke)
        return self._run_here(exp, values, smoke)

    def _run_here(self, exp: Any, values: dict[str, Any], smoke: bool) -> Any:
        from IPython.display import display

        from .dashboards import Dashboard

        try:
            dash = Dashboard(exp.name, values, smoke=smoke)
            dash.form.config()
        except ConfigError as err:
            raise UsageError(str(err)) from None
        display(dash)
        dash.start()
        _wait(dash)
        dash.show_static()
        return None

    def _run_distributed(self, exp: Any, values: dict[str, Any], nproc: int, smoke: bool) -> Any:
        """``python -m torch.distributed.run --nproc-per-node N -m workbench run METHOD ...``, followed."""
        from IPython.display import display

        from .dashboards import Dashboard

        cmd = distributed_command(exp.name, values, nproc, smoke)
        log_path = Path(os.environ.get("WORKBENCH_HOME", "runs")) / f"torchrun-{int(time.time())}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        id_file = log_path.with_suffix(".run-id")
        id_file.unlink(missing_ok=True)
        print("$ " + " ".join(shlex.quote(c) for c in cmd))
        with open(log_path, "wb") as log:  # rank 0 writes the id of the run it creates to id_file
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                    env={**os.environ, "WORKBENCH_RUN_ID_FILE": str(id_file)})

        def new_run() -> str | None:
            text = id_file.read_text().strip() if id_file.exists() else ""
            return text or None

        run_id = None
        while run_id is None and proc.poll() is None:
            run_id = new_run()
            time.sleep(0.1)
        run_id = run_id or new_run()
        if run_id is None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise UsageError(f"torchrun exited with code {proc.returncode} before the run started:\n{tail}")
        dash = Dashboard(exp.name)
        dash.follow(run_id)
        display(dash)
        _wait(dash)
        proc.wait()
        dash.show_static()
        if proc.returncode not in (0, None):
            print(f"torchrun exited with code {proc.returncode}; log: {log_path}", file=sys.stderr)
        return None

    @magic_arguments()
    @argument("--method", help="only this experiment's runs")
    @argument("--status", choices=("running", "completed", "stopped", "failed", "crashed"), help="only runs in this state")
    @line_magic
    def wb_runs(self, line: str) -> Any:
        """Show the runs table (tick runs, press Compare)."""
        args = parse_argstring(self.wb_runs, line)
        from .runlist import RunsTable

        return RunsTable(args.method, args.status)

    @magic_arguments()
    @argument("ids", nargs="+", help="run ids (prefixes work)")
    @argument("--metric", action="append", help="only these metric names (repeatable)")
    @line_magic
    def wb_compare(self, line: str) -> Any:
        """Overlay the curves of the given runs."""
        args = parse_argstring(self.wb_compare, line)
        from workbench import runs

        from .runlist import compare

        for rid in args.ids:
            try:
                runs.get(rid)
            except (KeyError, ValueError) as err:
                raise UsageError(f"unknown run {rid!r}: {err}") from None
        return compare(*args.ids, names=args.metric)

    @magic_arguments()
    @argument("path", nargs="?", help="output file (default reports/<notebook>.html or .pdf)")
    @argument("--notebook", help="the notebook to export (default: this notebook, when the kernel knows it)")
    @argument("--pdf", action="store_true", help="write a PDF (headless Chromium) instead of HTML")
    @argument("--no-input", action="store_true", help="leave code cells out")
    @line_magic
    def wb_export(self, line: str) -> Any:
        """Export the (saved) notebook with its outputs to a self-contained HTML or PDF report."""
        args = parse_argstring(self.wb_export, line)
        notebook = args.notebook or os.environ.get("JPY_SESSION_NAME") or self.shell.user_ns.get("__session__")
        if not args.notebook and _headless():
            print("headless run: this notebook's report is written by `workbench report` (nothing to export here)")
            return None
        path = Path(str(notebook)) if notebook else None
        if path is not None and not path.exists() and (Path.cwd() / path.name).exists():
            path = Path.cwd() / path.name
        if path is None or path.suffix != ".ipynb" or not path.exists():
            raise UsageError("%wb_export does not know this notebook's file: pass --notebook PATH.ipynb (save first)")
        notebook = path
        from .report import export_notebook

        out = export_notebook(Path(notebook), Path(args.path) if args.path else None,
                              to="pdf" if args.pdf else "html", no_input=args.no_input)
        print(f"wrote {out}")
        return None


def _wait(dash: Any) -> None:
    """Wait for the dashboard's run to end; a keyboard interrupt (the kernel's interrupt button) stops the run,
    then waits for it to stop."""
    try:
        dash.wait(show=False)
    except KeyboardInterrupt:
        dash.stop()
        dash.wait(show=False)


def _headless() -> bool:
    from .dashboards import headless

    return headless()


def distributed_command(method: str, values: dict[str, Any], nproc: int, smoke: bool = False) -> list[str]:
    """The torchrun command line running ``method`` with ``values`` on ``nproc`` local processes."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "workbench", "run", method, "--no-progress"]
    if smoke:
        cmd.append("--smoke")
    for key, value in values.items():
        cmd += [f"--{key.replace('_', '-')}", str(value).lower() if isinstance(value, bool) else str(value)]
    return cmd
