"""One run controller under every front end: start a run in a thread, follow it through the store, say how it goes.

The notebook dashboard (a monitor thread of its own) and the Panel page (a periodic callback on the server's
loop) both hold a :class:`RunController` and only draw what it reports::

    runner = RunController("classify", store=None)
    runner.start(cfg)                     # the run trains in a background thread
    while (update := runner.poll()) is not None and not update.final:
        draw(update.metrics); status.value = runner.status_html(update.record)
    runner.result                         # RunResult, once done

Because it reads only the run store, the same controller follows a run it did not start (:meth:`follow`).
"""
from __future__ import annotations

import html
import threading
import time
from dataclasses import dataclass
from typing import Any

from workbench.core.params import Config

from .labels import SMOKE, clock


@dataclass
class Progress:
    """Where a run is: the step reached, of ``total``, speed, time since it started, phase, paused."""

    step: int
    total: int
    rate: float
    elapsed: float
    phase: str = ""
    paused: bool = False


@dataclass
class Update:
    """What :meth:`RunController.poll` read: the record, new metrics and artifacts, and whether it is the last."""

    record: dict[str, Any]
    metrics: Any
    artifacts: list
    status: str
    final: bool


class RunController:
    """Start (or follow) one run at a time of ``method`` and report what is new; no drawing here."""

    def __init__(self, method: str, *, smoke: bool = False, store: Any = None) -> None:
        self.method, self.smoke, self.store = method, smoke, store
        self.control: Any = None
        self.run_id: str | None = None
        self.result: Any = None
        self.error: str | None = None
        self.run_status: str | None = None
        self.record: dict[str, Any] | None = None
        self.external = False
        self._worker: threading.Thread | None = None
        self._follower: Any = None
        self._done = threading.Event()
        self._done.set()
        self._final_sent = False

    # -- state ----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run has ended and its last update was read; False on time-out."""
        return self._done.wait(timeout)

    def store_(self) -> Any:
        from workbench import runs

        return self.store or runs.store()

    # -- actions --------------------------------------------------------------------------------
    def start(self, cfg: Config) -> None:
        """Train ``cfg`` in a background thread (the caller's thread stays free for its UI)."""
        if self.running:
            raise RuntimeError(f"a run of {self.method} is still going; stop it first")
        from workbench.core.engine import Control

        self._reset(Control(), external=False)
        self._worker = threading.Thread(target=self._work, args=(cfg,), daemon=True, name=f"wb-{self.method}")
        self._worker.start()

    def follow(self, run_id: str) -> dict[str, Any]:
        """Follow a stored run this controller did not start (another process, an earlier run); its record."""
        if self.running:
            raise RuntimeError("this controller is busy with a run; stop it first")
        record = self.store_().get(run_id)
        self._reset(None, external=True)
        self.run_id, self.record, self.run_status = record["id"], record, record["status"]
        return record

    def stop(self, reason: str) -> None:
        """Ask the run to stop at its next step (it ends ``stopped``, metrics kept), in any process."""
        if self.control is not None:
            self.control.stop(reason)
        elif self.run_id is not None:
            self.store_().request_stop(self.run_id)

    def pause(self) -> None:
        if self.control is not None:
            self.control.pause()

    def resume(self) -> None:
        if self.control is not None:
            self.control.resume()

    # -- following ------------------------------------------------------------------------------
    def poll(self) -> Update | None:
        """What is new since the last call; ``None`` while the run has no id yet or after the final update.
        The update with ``final=True`` is the last: it holds whatever was committed after the run ended."""
        if self._final_sent:
            return None
        if self.run_id is None and self.control is not None:
            if not self.control.started.is_set():
                return None
            self.run_id = self.control.run_id
        if self.run_id is None:  # the run never started (a bad config, a failure before the store)
            if self.worker_done():
                self._end()
            return None
        if self._follower is None:
            from workbench.store.follow import RunFollower

            self._follower = RunFollower(self.run_id, store=self.store_())
        finished = self.worker_done() if not self.external else False
        update = self._follower.poll()
        final = finished or (self.external and update.finished)
        self.record, self.run_status = update.record, update.status
        if final:
            if self.result is not None:
                self.run_status = self.result.status
            self._end()
        return Update(update.record, update.metrics, list(update.artifacts), self.run_status or update.status, final)

    def watch(self, on_update: Any, interval: float = 0.25, max_failures: int = 40,
              on_error: Any = None) -> None:
        """Poll until the final update, calling ``on_update(update)`` for each (a monitor thread's body); a store
        that fails to answer is retried (``on_error(err)``) up to ``max_failures`` times in a row."""
        failures = 0
        try:
            while True:
                try:
                    update = self.poll()
                    failures = 0
                except Exception as err:  # noqa: BLE001 - e.g. a busy database: try again, don't lose the run
                    failures += 1
                    if failures >= max_failures or (self.worker_done() and not self.external):
                        raise
                    if on_error is not None:
                        on_error(err)
                    time.sleep(interval)
                    continue
                if update is not None:
                    on_update(update)
                if not self.running:
                    return
                time.sleep(interval)
        except Exception as err:  # noqa: BLE001 - reported through ``error``, never a traceback in a UI
            self.error = self.error or f"{type(err).__name__}: {err}"
            self._end()

    def worker_done(self) -> bool:
        return self._worker is not None and not self._worker.is_alive()

    # -- what to show ---------------------------------------------------------------------------
    def progress(self, steps_seen: int = 0) -> Progress:
        """Progress from the run's control (a run started here) or, for a followed run, from its record and
        the highest step seen (``steps_seen``)."""
        ctl = self.control
        if ctl is not None:
            step = ctl.step + (1 if ctl.steps_done else 0)
            elapsed = time.time() - ctl.started_at if ctl.started_at else 0.0
            return Progress(step, ctl.total, ctl.steps_per_second(), elapsed, ctl.phase, ctl.paused)
        record = self.record or {}
        started = record.get("created_at")
        elapsed = time.time() - started if started else 0.0
        total = int((record.get("config") or {}).get("steps", 0) or 0)
        return Progress(steps_seen, total, steps_seen / max(elapsed, 1e-9) if started else 0.0, elapsed)

    def status_html(self, record: dict[str, Any] | None = None, steps_seen: int = 0) -> str:
        """One status line: status, smoke label, run id, phase, step/total, speed, elapsed, paused."""
        record = record or self.record or {}
        p = self.progress(steps_seen)
        bits = [f"<b>{html.escape(str(self.run_status or record.get('status', '')))}</b>"]
        if record.get("smoke"):
            bits.append(f"<b class='wb-smoke' style='color:#8a6d3b'>{SMOKE}</b>")
        if record.get("id"):
            bits.append(f"run <code>{record['id']}</code>")
        if p.phase:
            bits.append(html.escape(p.phase))
        bits.append(f"step {p.step}/{p.total}" if p.total else f"step {p.step}")
        bits.append(f"{p.rate:.1f} step/s")
        bits.append(f"{clock(p.elapsed)} elapsed")
        if p.paused:
            bits.append("<b>paused</b>")
        return " · ".join(bits)

    def failure(self) -> str | None:
        """Why the run did not complete, in one line (an error before it started, or its failure), else None."""
        if self.error:
            return self.error
        if self.result is not None and self.result.status == "failed" and self.result.error:
            return self.result.error.strip().splitlines()[-1]
        if self.control is not None and self.control.reason and self.run_id is None:
            return self.control.reason
        return None

    # -- internals ------------------------------------------------------------------------------
    def _reset(self, control: Any, external: bool) -> None:
        self.control, self.external = control, external
        self.run_id, self.result, self.error, self.record = None, None, None, None
        self.run_status = "running"
        self._follower, self._final_sent = None, False
        self._worker = None
        self._done.clear()

    def _work(self, cfg: Config) -> None:
        import workbench

        try:
            self.result = workbench.run(self.method, cfg, smoke=self.smoke, control=self.control, progress=False,
                                        store=self.store)
            self.run_id = self.result.run_id
        except Exception as err:  # noqa: BLE001 - reported through ``error``, never a traceback
            self.error = f"{type(err).__name__}: {err}"
        finally:
            self.control.started.set()

    def _end(self) -> None:
        self._final_sent = True
        if self.result is not None:
            self.run_status = self.result.status
        self._done.set()
