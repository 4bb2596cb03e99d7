"""``workbench demo``: run every registered experiment's demo setting and write one offline HTML report
(one section per experiment: its key curves, one panel per metric with the methods overlaid, its key views
and the table of paper claims it checked; a smoke run is labelled as one).

The experiments run concurrently, each in its own spawned process writing the shared run store, as many at once
as the cores allow given each run's threads; the one expected to be quickest goes first (a finished section shows
within about a minute), then the longest first (the tail stays short). The report is rewritten as each experiment
starts and ends: a page that reloads itself while the demo runs, static and offline once it is over.
"""
from __future__ import annotations

import contextlib
import html
import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_any
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .labels import SMOKE, claims_html, outcome_counts, run_label, summary_html

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;color:#222}
h1{margin-bottom:0} .meta{color:#666} section{margin:2.5em 0;border-top:1px solid #ddd;padding-top:1em}
pre.error{background:#fdecea;padding:8px;white-space:pre-wrap} .smoke{color:#8a6d3b;font-weight:bold}
.live{background:#eef5fb;padding:6px 10px;border-radius:4px}
"""

#: Seconds between reloads of the page while the demo runs.
REFRESH_S = 10
#: The quickest experiment goes first when it is expected to take at most this long (a section within a minute).
QUICK_FIRST_S = 60.0
#: Seconds a running experiment gets to record itself as stopped after Ctrl-C before its process is terminated.
STOP_GRACE_S = 30.0
#: Wall seconds of each built-in experiment's demo setting, two at once on a 2-core machine (the fresh-clone
#: ``make demo`` of 2026-12-08, one thread each): the order's fallback and the queue's hint when the store holds
#: no earlier run of the same setting.
DEMO_SECONDS: dict[str, float] = {
    "goldilocks": 447, "cascades": 274, "nfm": 181, "nft": 146, "ls4": 111, "sdebnn": 107, "robustness_compare": 64,
    "noisymix": 58, "kto": 29, "classify": 8,
}


def _figure_html(fig: Any) -> str:
    """One figure without plotly.js (the page carries it once, in its head)."""
    if not hasattr(fig, "to_plotly_json") and hasattr(fig, "_repr_html_"):  # an HTML view (a table)
        return fig._repr_html_()
    import plotly.io as pio

    from .style import house

    return pio.to_html(house(fig), include_plotlyjs=False, full_html=False, include_mathjax=False,
                       default_width="100%", validate=False, config={"responsive": True})


def claims_table(claims: list[dict], smoke: bool = False) -> str:
    """Every claim in full: statement, method vs arm, effect ± uncertainty, rule and outcome with its reason
    (see :func:`widgets.labels.claims_html`)."""
    return claims_html(claims, smoke=smoke)


def section_figures(method: str, run_id: str) -> list[tuple[str, Any]]:
    """The key figures of one run: curves of its key metrics (one panel per metric, methods overlaid), then
    the method's key views."""
    from workbench.core.registry import get
    from workbench.store.follow import RunFollower

    from .curves import Series, static_figure
    from .views import render

    exp, update = get(method), RunFollower(run_id).poll()
    metrics = update.metrics
    series = Series()
    series.add_frame(run_label(update.record), metrics[metrics.name.map(exp.is_key_metric)])
    figs = [("training curves", static_figure(series, title="training curves", min_points=2))] if series.metrics else []
    return figs + render(method, run_id, key_only=True, claims=False)


def section_html(row: dict) -> tuple[str, bool, str]:
    """One experiment's section, whether it holds a plotly figure, and its claims' outcome counts. ``row``: method,
    title, status, and once it ended run_id, error, seconds; ``queued`` and ``running`` rows say so (with the
    expected duration)."""
    from workbench import runs
    from workbench.core.registry import get

    name = html.escape(row["method"])
    out = [f"<section id='{name}'><h2>{html.escape(row.get('title') or row['method'])} <small>({name})</small></h2>"]
    expected = row.get("expected")
    hint = f" (expected about {_duration(expected)})" if expected else ""
    if row["status"] == "queued":
        return "".join(out) + f"<p class='meta live'>status <b>queued</b>{hint}</p></section>", False, ""
    if row["status"] == "running":
        since = time.strftime("%H:%M:%S UTC", time.gmtime(row["started"]))
        return "".join(out) + (f"<p class='meta live'>status <b>running…</b> since {since}{hint}; this page "
                               "reloads itself until the demo ends</p></section>"), False, ""
    meta, figures, counts = f"status <b>{html.escape(row['status'])}</b>, {row.get('seconds') or 0:.1f} s", False, ""
    if row.get("run_id"):
        meta = f"run <code>{html.escape(row['run_id'])}</code>, " + meta
        rec = runs.get(row["run_id"])
        if rec.get("smoke"):
            meta += f" · <span class='smoke'>{SMOKE}</span> (claims not evaluated)"
        summary = rec.get("summary") or {}
        keys = [k for k in summary if get(row["method"]).is_key_metric(k)] or list(summary)
    out.append(f"<p class='meta'>{meta}</p>")
    if row.get("error"):
        out.append(f"<pre class='error'>{html.escape(str(row['error'])[-3000:])}</pre>")
    if row.get("run_id"):
        claims = runs.claims(row["run_id"])
        counts = outcome_counts(claims) if claims else ""
        out.append("<h3>Claims checked</h3>" + claims_table(claims, smoke=bool(rec.get("smoke"))))
        if summary_html(summary, keys):
            out.append(f"<h3>Summary</h3>{summary_html(summary, keys)}")
        for fig_title, fig in section_figures(row["method"], row["run_id"]):
            out.append(f"<h3>{html.escape(fig_title)}</h3>" + _figure_html(fig))
            figures = figures or hasattr(fig, "to_plotly_json")
    out.append("</section>")
    return "".join(out), figures, counts


def _section_or_error(row: dict) -> tuple[str, bool, str]:
    """:func:`section_html`, or the section saying why it could not be drawn (a failing view costs its section)."""
    try:
        return section_html(row)
    except Exception as err:  # noqa: BLE001
        from workbench.core.engine import one_line

        name = html.escape(row["method"])
        return (f"<section id='{name}'><h2>{name}</h2><p class='meta'>status <b>{html.escape(row['status'])}</b></p>"
                f"<pre class='error'>its section could not be drawn: {html.escape(one_line(err))}</pre></section>",
                False, "")


def build_report(results: list[dict], title: str = "Workbench demo", live: bool = False,
                 sections: dict[str, tuple[str, bool, str]] | None = None) -> str:
    """The whole page; ``results`` rows: method, title, status, and once ended run_id, error, seconds.

    ``live``: the demo still runs (the page reloads itself every :data:`REFRESH_S` seconds); ``sections``: a cache
    of the ended experiments' sections by method, filled as they are built (each is built once)."""
    sections = {} if sections is None else sections
    parts, toc = [], []
    for row in results:
        ended = row["status"] not in ("queued", "running")
        built = sections.get(row["method"]) if ended else None
        if built is None:
            built = _section_or_error(row)
            if ended:
                sections[row["method"]] = built
        parts.append(built[0])
        state = "running…" if row["status"] == "running" else row["status"]
        toc.append(f"<li><a href='#{html.escape(row['method'])}'>{html.escape(row.get('title') or row['method'])}</a> "
                   f"({html.escape(state)}" + (f"; claims: {html.escape(built[2])}" if built[2] else "") + ")</li>")
    plotly = any(sections.get(r["method"], ("", False, ""))[1] for r in results)
    script = ""
    if plotly:
        from plotly.offline import get_plotlyjs

        script = f"<script type='text/javascript'>{get_plotlyjs()}</script>"
    done = sum(r["status"] not in ("queued", "running") for r in results)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    state = (f"<p class='meta live'>{done} of {len(results)} experiments ended; updated {stamp}, reloads every "
             f"{REFRESH_S} s until the demo ends</p>") if live else f"<p class='meta'>{stamp}</p>"
    refresh = f"<meta http-equiv='refresh' content='{REFRESH_S}'>" if live else ""
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'>{refresh}<title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style>{script}</head><body><h1>{html.escape(title)}</h1>{state}"
            f"<ul>{''.join(toc)}</ul>{''.join(parts)}</body></html>")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _jsonable(config: dict) -> Any:
    return json.loads(json.dumps(config, default=str))


def expected_seconds(names: Iterable[str], smoke: bool = False) -> dict[str, float | None]:
    """Each experiment's expected wall seconds: its last completed run of the same setting in the store (the
    previous demo), else (demo setting) :data:`DEMO_SECONDS`, else ``None`` (unknown)."""
    from workbench import runs
    from workbench.core.registry import get

    store, out = runs.store(), {}
    for name in names:
        out[name] = None if smoke else DEMO_SECONDS.get(name)
        try:
            config = _jsonable(get(name).make_config(smoke=smoke, scale="demo").to_dict())
        except Exception:  # noqa: BLE001 - a bad setting fails in its own process; no estimate for it
            continue
        same = [r for r in store.runs(method=name, status="completed")
                if bool(r.get("smoke")) == smoke and r.get("ended_at") and _jsonable(r["config"]) == config]
        if same:
            last = same[-1]
            out[name] = last["ended_at"] - last["created_at"]
    return out


def plan(names: Iterable[str], expected: dict[str, float | None]) -> list[str]:
    """The order to start experiments in: the quickest first when it is expected within :data:`QUICK_FIRST_S`
    (a finished section early), then unknown durations (they may be long), then the longest first."""
    seconds = {n: expected.get(n) for n in names}
    known = sorted((n for n, s in seconds.items() if s is not None), key=lambda n: -float(seconds[n] or 0))
    unknown = [n for n, s in seconds.items() if s is None]
    quick = [known.pop()] if known and float(seconds[known[-1]] or 0) <= QUICK_FIRST_S else []
    return quick + unknown + known


def cores() -> int:
    """The CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


#: The child's command: SIGINT raises KeyboardInterrupt even where the demo's own process ignores it (a process
#: started with ``&`` by a non-interactive shell ignores SIGINT, and its children inherit that), so the demo's
#: Ctrl-C stops every child; a Ctrl-C while it imports ends it quietly (the demo reads no row: "stopped").
_CHILD = ("import signal, sys\nsignal.signal(signal.SIGINT, signal.default_int_handler)\ntry:\n"
          "    from widgets.demo import _child_main\n    _child_main()\nexcept KeyboardInterrupt:\n    sys.exit(130)\n")


def _child_main() -> None:
    """One experiment's process: read its job from stdin, run it without a progress bar, write its row (pickled)
    to the file descriptor the demo passed."""
    job = pickle.load(sys.stdin.buffer)
    sys.path[:] = job["path"] + [p for p in sys.path if p not in job["path"]]  # the demo's imports (test doubles)
    row: dict[str, Any] = {"run_id": None, "status": "failed", "error": None}
    try:
        import torch

        torch.set_num_threads(job["threads"])
        import workbench

        res = workbench.run(pickle.loads(job["experiment"]), smoke=job["smoke"], scale="demo", progress=False)
        row = {"run_id": res.run_id, "status": res.status, "error": res.error}
    except KeyboardInterrupt:
        row.update(status="stopped", error="interrupted before the run started")
    except Exception as err:  # noqa: BLE001 - a bad setting, a missing data set: the row says why
        from workbench.core.engine import one_line

        row["error"] = one_line(err)
    with os.fdopen(job["fd"], "wb") as fh:
        pickle.dump(row, fh)


@dataclass(eq=False)
class _Child:
    """A running experiment: its row, its process, the pipe its row comes back on, and (Linux) a descriptor that
    turns readable when the process ends (a process that dies leaves no row, and may leave the pipe open in a
    process it started)."""

    row: dict
    proc: subprocess.Popen
    fd: int
    pidfd: int | None = None
    signalled: bool = False
    started: float = field(default_factory=time.time)

    def result(self) -> dict | None:
        """Its row, read once it is sent (one pickle, no wait for EOF), or ``None`` when it died without one."""
        import select

        if self.proc.poll() is not None and not select.select([self.fd], [], [], 0)[0]:
            return None
        with os.fdopen(os.dup(self.fd), "rb") as fh:
            try:
                return pickle.load(fh)
            except (EOFError, pickle.UnpicklingError):
                return None

    def close(self) -> None:
        for fd in (self.fd, self.pidfd):
            if fd is not None:
                os.close(fd)


def _pidfd(pid: int) -> int | None:
    """A descriptor that turns readable when process ``pid`` ends (Linux 5.3+), else ``None``."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _exit_reason(code: int | None, signalled: bool) -> str:
    if signalled:
        return "interrupted (Ctrl-C) before it recorded its end"
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        return f"its process was killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
    return f"its process ended without a result (exit code {code}; its messages are above)"


class _Demo:
    """The scheduler: starts experiments in order, at most ``jobs`` at once, and keeps the page and terminal."""

    def __init__(self, rows: list[dict], path: Path, smoke: bool, jobs: int, threads: int,
                 on_write: Callable[[Path, list[dict]], None] | None, t0: float):
        self.rows, self.path, self.smoke, self.jobs, self.threads = rows, path, smoke, jobs, threads
        self.on_write, self.t0 = on_write, t0
        self.sections: dict[str, tuple[str, bool, str]] = {}
        self.running: dict[str, _Child] = {}
        self.exiting: list[subprocess.Popen] = []  # ended experiments whose processes are on their way out

    def say(self, state: str, what: str, text: str = "") -> None:
        """One line: minutes:seconds since the start, the state, the experiment (or what was written)."""
        m, s = divmod(int(time.time() - self.t0), 60)
        print(f"[{m:02d}:{s:02d}] {state:<9} {what}{text}", flush=True)

    def write(self, live: bool) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(build_report(self.rows, live=live, sections=self.sections), encoding="utf-8")
        os.replace(tmp, self.path)  # a reader sees the old page or the new one, never half of one
        if self.on_write is not None:
            self.on_write(self.path, [dict(r) for r in self.rows])

    def start(self, row: dict, exp: Any) -> None:
        """One process per experiment, in its own session: the terminal's Ctrl-C reaches the demo only, which
        forwards one SIGINT to each running experiment."""
        read, write = os.pipe()
        root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}
        job = {"experiment": pickle.dumps(exp), "smoke": self.smoke, "threads": self.threads, "fd": write,
               "path": list(sys.path)}
        try:
            proc = subprocess.Popen([sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, pass_fds=(write,),
                                    env=env, start_new_session=True)
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)
        row.update(status="running", started=time.time())
        self.running[row["method"]] = _Child(row, proc, read, _pidfd(proc.pid))
        try:
            with proc.stdin:  # type: ignore[union-attr]
                pickle.dump(job, proc.stdin)
        except BrokenPipeError:  # it died at once: collect() says how
            pass
        self.say("running", row["method"])

    def collect(self, timeout: float | None = None) -> list[dict]:
        """Wait for at least one running experiment to end (or ``timeout``); returns the rows that ended."""
        fds = {fd: c for c in self.running.values() for fd in (c.fd, c.pidfd) if fd is not None}
        ready = wait_any(list(fds), timeout)
        ended = []
        for child in dict.fromkeys(fds[fd] for fd in ready):
            seconds = time.time() - child.started
            result = child.result()
            child.close()
            if result is not None:  # its row is in: the next one need not wait for this process's way out
                self.exiting.append(child.proc)
            else:
                code = child.proc.wait()
                result = {"run_id": None, "status": "stopped" if child.signalled else "failed",
                          "error": _exit_reason(code, child.signalled)}
            child.row.update(result, seconds=seconds)
            del self.running[child.row["method"]]
            ended.append(child.row)
        return ended

    def fill(self, queue: list[str], known: dict[str, Any]) -> None:
        while queue and len(self.running) < self.jobs:
            name = queue.pop(0)
            self.start(self._row(name), known[name])

    def run(self, order: list[str], known: dict[str, Any]) -> bool:
        """Run everything; returns False when interrupted (Ctrl-C), after writing the report of what ended."""
        queue = list(order)
        try:
            self.fill(queue, known)
            self.write(live=bool(self.running))
            while self.running:
                for row in self.collect():
                    ok = row["status"] == "completed"
                    text = f" in {row['seconds']:.0f} s" if ok else f": {row.get('error') or ''}"
                    run = f" (run {row['run_id']})" if row.get("run_id") else ""
                    self.say(row["status"], row["method"], text + run)
                self.fill(queue, known)  # the next one starts before this one's section is drawn
                self.write(live=bool(self.running))
                done = sum(r["status"] not in ("queued", "running") for r in self.rows)
                self.say("report", f"{done}/{len(self.rows)} sections written")
            return True
        except KeyboardInterrupt:
            self.interrupt()
            return False
        finally:  # an error of the demo itself leaves no experiment running on its own
            for child in self.running.values():
                child.proc.kill()
            for proc in self.exiting:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:  # its row is in; one that hangs on its way out is ended
                    proc.kill()
                    proc.wait()

    def _row(self, name: str) -> dict:
        return next(r for r in self.rows if r["method"] == name)

    def interrupt(self) -> None:
        """Ctrl-C: one SIGINT to each running experiment (each records its run as stopped), the queue dropped, the
        stragglers terminated after :data:`STOP_GRACE_S`; then the report of what ended."""
        print("interrupted: stopping the running experiments (Ctrl-C again to terminate them now)", flush=True)
        for child in self.running.values():
            child.signalled = True
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGINT)
        deadline = time.time() + STOP_GRACE_S
        try:
            while self.running and time.time() < deadline:
                for row in self.collect(timeout=max(0.0, deadline - time.time())):
                    self.say(row["status"], row["method"], f": {row.get('error') or ''}")
        except KeyboardInterrupt:
            pass
        for child in list(self.running.values()):
            child.proc.kill()
            child.proc.wait()
            child.close()
            child.row.update(run_id=None, status="stopped", error="terminated after Ctrl-C",
                             seconds=time.time() - child.started)
            self.say("stopped", child.row["method"], ": terminated after Ctrl-C")
        self.running.clear()
        for row in self.rows:
            if row["status"] == "queued":
                row.update(status="not run", error="the demo was interrupted before it started", seconds=0.0)
        self.write(live=False)


def run_demo(only: Iterable[str] | None = None, smoke: bool = False, out: str | Path = "reports/demo.html",
             jobs: int | None = None, expected: dict[str, float | None] | None = None,
             on_write: Callable[[Path, list[dict]], None] | None = None) -> tuple[Path, list[dict]]:
    """Run the demo setting of each experiment (or the smoke setting) concurrently and write the report as they end.

    ``jobs``: experiments at once (default: the cores over the threads one run uses, at least 1); ``expected``:
    seconds per experiment for the order (default :func:`expected_seconds`); ``on_write(path, rows)`` is called
    after each rewrite of the page. Ctrl-C stops the running experiments, writes the report of what ended and
    raises :class:`KeyboardInterrupt`. Returns the page's path and one row per experiment (method, title, status,
    run_id, error, seconds)."""
    t0 = time.time()
    from workbench.core.params import ConfigError
    from workbench.core.registry import experiments, get

    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs = {jobs} is not allowed; allowed: an integer >= 1")
    path = Path(out).resolve()
    print(f"workbench demo: the report is {path} (written now, rewritten as each experiment ends)", flush=True)
    names = list(dict.fromkeys(only or ()))
    try:  # --only: those methods alone are imported here
        known = {name: get(name) for name in names} if names else experiments()
    except ConfigError:
        unknown = [n for n in names if n not in experiments()]
        raise ValueError(f"unknown experiment(s) {', '.join(unknown)}; known: {', '.join(experiments())}") from None
    names = names or list(known)
    path.parent.mkdir(parents=True, exist_ok=True)
    expected = expected_seconds(names, smoke) if expected is None else expected
    rows, threads_per_run = [], 1
    for name in names:
        row = {"method": name, "title": known[name].title, "status": "queued", "run_id": None, "error": None,
               "seconds": 0.0, "expected": expected.get(name)}
        try:
            threads_per_run = max(threads_per_run, known[name].make_config(smoke=smoke, scale="demo").threads or 1)
        except ConfigError as err:  # nothing to run: it fails here, with its reason
            row.update(status="failed", error=f"ConfigError: {err}")
        rows.append(row)
    guess = {n: DEMO_SECONDS.get(n) if expected.get(n) is None else expected[n] for n in names}  # smoke: same order
    todo = [n for n in plan(names, guess) if next(r for r in rows if r["method"] == n)["status"] == "queued"]
    jobs = max(1, min(jobs or cores() // threads_per_run, len(todo) or 1))
    threads = max(1, cores() // jobs)
    print(f"workbench demo: {len(names)} experiment{'s' * (len(names) > 1)}, {jobs} at a time, one process each "
          f"(at most {threads} thread{'s' * (threads > 1)} each)", flush=True)
    demo = _Demo(rows, path, smoke, jobs, threads, on_write, t0)
    for name in todo:
        row = demo._row(name)
        demo.say("queued", row["method"], f" (expected about {_duration(row['expected'])})" if row["expected"] else "")
    for row in rows:
        if row["status"] == "failed":
            demo.say("failed", row["method"], f": {row['error']}")
    with _sigterm_as_ctrl_c():  # the children run in sessions of their own: a SIGTERM must reach them through us
        # (and SIGINT is handled here even where it was ignored, so no child starts with it ignored)
        finished = demo.run(todo, known)
    if not finished:
        raise KeyboardInterrupt
    return path, rows


@contextlib.contextmanager
def _sigterm_as_ctrl_c() -> Iterator[None]:
    """In the main thread, a SIGTERM is handled as Ctrl-C is (the running experiments stopped, the report written),
    and so is a SIGINT where this process was started ignoring it (``workbench demo &`` from a script): an ignored
    signal stays ignored across ``exec``, a handled one does not, so the children start with SIGINT's default."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
