"""IPython magics: ``%wb``, ``%%wb``, ``%wb_runs``, ``%wb_compare``, ``%wb_export``, ``%wb_sweep``
(``%load_ext widgets``).

``$var`` and ``{expr}`` in a magic line are expanded by IPython before the magic sees it, so papermill
parameters work: ``%wb classify --steps $steps``. Bad arguments raise ``UsageError``: IPython shows one
line, not a traceback. Parameters are spelt as on the command line (``--checkpoint-every``; the Python name
``--checkpoint_every`` is accepted too).

Outside a notebook front end (terminal IPython) the magics print plain text: ``%wb_runs`` a table,
``%%wb`` the run id, its status, summary and claims.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from workbench.core.params import ConfigError, parse_assignments
from workbench.store.store import STATUSES

from .declared import flag, help_lines, ordered


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
        given, key = key, key.replace("-", "_")
        if key not in params:
            raise UsageError(f"unknown parameter --{flag(given)}; known: {', '.join('--' + flag(p) for p in ordered(params))}")
        if not eq:
            if i + 1 >= len(tokens) or (tokens[i + 1].startswith("--") and params[key].kind is not bool):
                if params[key].kind is bool:
                    value = "true"
                else:
                    raise UsageError(f"--{flag(key)} needs a value")
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
    """One line per declared parameter (flag, default, allowed values, doc), a heading per parameter group."""
    return "\n".join([f"%wb {exp.name} [--param value ...]   {exp.title}", *help_lines(exp.config)])


def front_end() -> bool:
    """True inside a kernel with a notebook front end (JupyterLab, Notebook, VS Code); False in terminal IPython."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _experiment(name: str) -> Any:
    from workbench.core.registry import get

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
        runs that config to completion in a dashboard (live curves, then static figures, views and claims).
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
            from workbench.core.registry import experiments

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
        if not front_end():
            return self._run_in_terminal(exp, values, smoke)
        return self._run_here(exp, values, smoke)

    def _run_in_terminal(self, exp: Any, values: dict[str, Any], smoke: bool) -> Any:
        """Terminal IPython: a progress bar, then the run id, status, summary and claims as plain text."""
        import workbench
        from workbench import runs

        from .labels import SMOKE, claims_text, summary_text

        try:
            cfg = exp.make_config(values, smoke=smoke)
        except ConfigError as err:
            raise UsageError(str(err)) from None
        result = workbench.run(exp, cfg, smoke=smoke, progress=True)
        print(f"run {result.run_id}: {result.status}" + (f" ({SMOKE})" if smoke else ""))
        if result.summary:
            print("summary: " + summary_text(result.summary, limit=None))
        if result.error:
            print(f"error: {result.error.strip().splitlines()[-1]}")
        claims = runs.claims(result.run_id) if result.run_id else []
        if claims:
            print("claims:\n" + claims_text(claims))
        return None

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
        dash.leave_static()  # the dashboard shows them; a report gets them too
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
        dash.leave_static()  # the dashboard shows them; a report gets them too
        if proc.returncode not in (0, None):
            print(f"torchrun exited with code {proc.returncode}; log: {log_path}", file=sys.stderr)
        return None

    @magic_arguments()
    @argument("--method", help="only this experiment's runs")
    @argument("--status", choices=STATUSES, help="only runs in this state")
    @line_magic
    def wb_runs(self, line: str) -> Any:
        """Show the runs table (tick runs, press Compare)."""
        args = parse_argstring(self.wb_runs, line)
        if not front_end():
            from .runlist import runs_text

            print(runs_text(args.method, args.status))
            return None
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
    @argument("method", help="registered experiment to sweep (classify, nfm, ...)")
    @argument("--space", nargs="+", action="extend", default=[], metavar="NAME[=RANGE]",
              help="searched parameters: lr, lr=1e-4:1e-1:log, width=8,16,32, seed=0..4 (several, or repeat)")
    @argument("--trials", type=int, help="how many trials (default: the grid, or the sweep's default)")
    @argument("--parallel", type=int, default=1, help="trials at a time (Ray)")
    @argument("--objective", action="append", help="metric to optimise (repeatable; default: the first key metric)")
    @argument("--direction", action="append", choices=("min", "max"), help="min or max, per objective")
    @argument("--sampler", help="tpe, random, grid or cmaes (default: grid for a finite space, else tpe)")
    @argument("--smoke", action="store_true", help="every trial from the experiment's smoke settings")
    @argument("--seed", type=int, help="the sampler's seed")
    @argument("--name", help="the sweep's id (default sweep-<time>-<hex>)")
    @line_magic
    def wb_sweep(self, line: str) -> Any:
        """Start a sweep of METHOD in the background and show its live view (figures, trials table, Stop).

        ``%wb_sweep METHOD --space lr=1e-3:1e-1:log width=8,16 --trials 12 --parallel 2`` runs
        ``workbench.sweep(...)`` in a background thread; the cell returns at once with the sweep's view, which
        refreshes while trials run (select a trial to open its run). A bad space is one line, before anything
        starts. Headless (``workbench report``) the sweep runs to its end in the cell, which keeps its figures
        and trials table as static outputs for the report.
        """
        args = parse_argstring(self.wb_sweep, line)
        kwargs = sweep_kwargs(args)
        from workbench.store import runs as runs_api

        store = runs_api.store()
        if _headless():  # `workbench report`: the sweep runs to its end here; its figures stay in the notebook
            import optuna

            from workbench.core.sweep import sweep

            from .sweep import show_sweep

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            try:
                result = sweep(**kwargs, store=store)
            except ConfigError as err:
                raise UsageError(str(err)) from None
            show_sweep(result.sweep_id, store)
            return None
        sweep_id = start_sweep(kwargs, store)
        if not front_end():
            print(f"sweep {sweep_id}: running in the background "
                  f"(workbench.core.sweep.trials({sweep_id!r}) lists its trials)")
            return None
        from IPython.display import display

        from .sweep import SweepDashboard

        dash = SweepDashboard(sweep_id, store, driver=BACKGROUND_SWEEPS.get(sweep_id))
        display(dash)
        dash.follow()
        return None

    @magic_arguments()
    @argument("path", nargs="?", help="output file (default reports/<notebook>.html or .pdf)")
    @argument("--notebook", help="the notebook to export (default: this notebook, when the kernel knows it)")
    @argument("--pdf", action="store_true", help="write a PDF (headless Chromium) instead of HTML")
    @argument("--no-input", action="store_true", help="leave code cells out")
    @line_magic
    def wb_export(self, line: str) -> Any:
        """Export this notebook with its outputs to a self-contained HTML or PDF report.

        The outputs are this kernel's live outputs (so it works in the middle of "Run All", before the notebook
        is saved) for every cell it has run; other cells keep the outputs of the saved file. When neither holds
        any output, nothing is written and the message says to save the notebook first.
        """
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
        import nbformat

        from .report import default_out, live_outputs, write_report

        from .render import for_export

        nb = nbformat.read(path, as_version=4)
        live = live_outputs(nb, self.shell)
        for_export(nb)  # live figures carry JSON only: their HTML and plotly.js (once) for the report
        if not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"):
            raise UsageError(f"{path.name} has no outputs to export: this kernel recorded none for its cells (run "
                             "them, or %load_ext widgets first) and the saved file holds none. Save the notebook "
                             "(Ctrl+S) after running it and call %wb_export again; nothing was written.")
        out = write_report(nb, default_out(path, Path(args.path) if args.path else None, "pdf" if args.pdf else "html"),
                           to="pdf" if args.pdf else "html", no_input=args.no_input)
        source = (f"this kernel's live outputs of {live} cell{'s' if live != 1 else ''}" if live
                  else "the outputs saved in the file")
        print(f"wrote {out} ({source})")
        return None


#: sweeps started by ``%wb_sweep`` in this kernel: sweep id -> its background thread
BACKGROUND_SWEEPS: dict[str, threading.Thread] = {}


def sweep_kwargs(args: Any) -> dict[str, Any]:
    """``%wb_sweep``'s parsed arguments as ``workbench.sweep`` keywords, checked (experiment, space, counts) here,
    before anything starts: a bad one raises ``UsageError`` (one line)."""
    try:
        from workbench.core.sweep.space import parse_space
    except ImportError as err:  # pragma: no cover - the 'sweep' extra is missing
        raise UsageError(f"sweeps need the 'sweep' extra: {err}") from None
    exp = _experiment(args.method)
    for name in ("trials", "parallel"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name} must be >= 1, got {value}")
    try:
        parse_space(exp, args.space, smoke=args.smoke)
    except ConfigError as err:
        raise UsageError(str(err)) from None
    return {"method": exp.name, "space": list(args.space), "trials": args.trials, "parallel": args.parallel,
            "objective": args.objective, "direction": args.direction, "sampler": args.sampler,
            "smoke": args.smoke, "seed": args.seed, "sweep_id": args.name}


def start_sweep(kwargs: dict[str, Any], store: Any, sweep: Any = None, timeout: float = 120.0) -> str:
    """Run ``sweep(**kwargs, store=store, sweep_id=ID)`` (default ``workbench.sweep``) in a daemon thread, ``ID``
    being ``kwargs["sweep_id"]`` or a new one; return ``ID`` once its study is in ``store`` (the view reads it). An
    error before that is a ``UsageError`` (its last line)."""
    import optuna

    from workbench.core.sweep import study as studies

    if sweep is None:
        from workbench.core.sweep import sweep
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the view says what the study's log lines would
    kwargs = dict(kwargs)
    sweep_id = kwargs.pop("sweep_id", None) or studies.new_sweep_id()
    try:
        studies.check_new_id(store, sweep_id)
    except ConfigError as err:
        raise UsageError(str(err)) from None
    storage = studies.storage(store)  # one engine for the polling below
    failure: list[BaseException] = []
    started = threading.Event()

    def target() -> None:
        try:
            sweep(**kwargs, store=store, sweep_id=sweep_id)
        except BaseException as err:  # noqa: BLE001 - reported to the cell, or printed once the cell returned
            failure.append(err)
            if started.is_set():
                print(f"sweep {sweep_id} ended with an error: {err}", file=sys.stderr)

    thread = threading.Thread(target=target, name=f"wb-sweep-{sweep_id}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while True:
        if _has_study(storage, sweep_id):
            started.set()
            if failure:  # it failed between creating its study and this check: nothing else would say so
                raise UsageError(f"sweep {sweep_id} ended with an error: {_last_line(failure[0])}")
            BACKGROUND_SWEEPS[sweep_id] = thread
            return sweep_id
        if not thread.is_alive():
            text = _last_line(failure[0]) if failure else "it ended before starting"
            raise UsageError(f"the sweep did not start: {text}")
        if time.monotonic() > deadline:
            raise UsageError(f"the sweep did not start within {timeout:g} s")
        thread.join(0.1)


def _last_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[-1]


def _has_study(storage: Any, sweep_id: str) -> bool:
    try:
        storage.get_study_id_from_name(sweep_id)
    except KeyError:
        return False
    return True


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
        text = ",".join(map(str, value)) if isinstance(value, (tuple, list)) else (
            str(value).lower() if isinstance(value, bool) else str(value))
        cmd += [f"--{flag(key)}", text]
    return cmd
