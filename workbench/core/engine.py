"""The engine: the loop around a method.

``run(experiment, config)`` validates the config (nothing runs on a bad value), seeds every RNG,
picks the device, sets up ``torchrun`` process groups (or refuses at once for an experiment not declared
``distributed``), opens a run in the store and calls ``experiment.run(cfg, ctx)``. The method drives its own
loop through :class:`~workbench.core.context.RunContext`: ``ctx.steps`` gives progress, stop/pause, checkpoints
and resume; ``ctx.log`` records metrics and stops a run whose loss turns NaN/inf; ``ctx.artifact`` and
``ctx.claim`` record everything else.
"""
from __future__ import annotations

import os
import random
import re
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from workbench.core.context import Control, NonFiniteLoss, RunContext, RunStopped
from workbench.core.params import Config, ConfigError
from workbench.core.registry import Experiment, get
from workbench.store.store import Store, StoreUnavailable

__all__ = ["run", "Control", "RunResult", "RunContext", "RunStopped", "NonFiniteLoss", "seed_everything",
           "resolve_device", "Terminated"]


@dataclass
class RunResult:
    """How a run ended: ``error`` is one line; ``traceback`` (failed runs) the whole story."""

    run_id: str | None
    status: str
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None

    def metrics(self):
        from workbench.store import runs

        return runs.metrics(self.run_id)

    def raise_for_status(self) -> "RunResult":
        if self.status == "failed":
            raise RuntimeError(f"run {self.run_id} failed: {self.error}")
        return self


class _NullWriter:
    def log(self, step: int, metrics: dict[str, float]) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class Terminated(BaseException):
    """SIGTERM reached a process of a torchrun launch while its method ran: the run ends ``failed``."""


class _SigtermGuard:
    """Under torchrun, a SIGTERM ends the run on the record first, then the process.

    torchrun's agent sends SIGTERM to every process of the launch as soon as one of them exits or fails (a rank
    killed mid-run), and SIGKILL 30 s later; by default the signal would end rank 0 before it records anything (the
    store later calls the run ``crashed``, its last metrics lost). While the method runs the guard raises
    :class:`Terminated` (one line: where the run was, and why torchrun ends it); once ``recording`` is set it only
    notes the signal. On leaving it puts the previous handler back and delivers a noted signal again, so the
    process still ends as torchrun asked, within its grace period. Inactive in a one-process run or off the main
    thread (only the main thread may set a handler).
    """

    def __init__(self, active: bool, control: Control):
        self.active = active and threading.current_thread() is threading.main_thread()
        self.control, self.received, self.recording = control, False, False
        self._previous: Any = signal.SIG_DFL

    def __enter__(self) -> "_SigtermGuard":
        if self.active:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        first, self.received = not self.received, True
        if first and not self.recording:
            ctl = self.control
            raise Terminated(f"terminated (SIGTERM) at {ctl.phase or 'setup'} step {ctl.step}: torchrun ends every "
                             "process of the launch once one of them exits or fails")

    def __exit__(self, *exc: Any) -> None:
        if self.active:
            signal.signal(signal.SIGTERM, self._previous if self._previous is not None else signal.SIG_DFL)
            if self.received:
                signal.raise_signal(signal.SIGTERM)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) from one integer."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` picks CUDA when available; asking for CUDA without it is a clear error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("parameter 'device' = 'cuda' but no CUDA device is available; allowed here: auto, cpu",
                              "device")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def _distributed(device_name: str) -> tuple[int, int, int]:
    """Initialise the process group when launched by torchrun; returns (rank, world_size, local_rank)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        use_cuda = device_name != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(local % torch.cuda.device_count())
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), local


def leave_process_group() -> None:
    """Under torchrun, leave together: wait for every rank, then close the process group. A rank that exits
    while another still writes the store or talks to it aborts the job ("terminate called ...")."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def run(experiment: str | Experiment, config: dict[str, Any] | Config | None = None, *, smoke: bool = False,
        scale: str = "default", control: Control | None = None, resume: str | None = None, progress: bool = True,
        store: Store | Callable[[], Store] | None = None) -> RunResult:
    """Run one experiment to its end and record it; returns the run's id, status and summary.

    ``scale`` starts from one of the experiment's presets (``demo``: minutes on a CPU; ``paper``: the paper's
    protocol, for a GPU) before ``config``; ``smoke=True`` is the seconds-long preset, and labels the run.
    ``store``: the run store, or a function that opens it (called after the config and its files are checked).

    A bad config raises :class:`ConfigError`, and a missing data set or model found by the experiment's
    ``preflight`` a :class:`~workbench.core.errors.SourceError`, before anything runs. Every other way a run can end
    is recorded in the store and returned: ``completed``, ``stopped`` (Stop, Ctrl-C, external request),
    ``failed`` (an exception or a NaN/inf loss: a one-line reason, and the traceback in the run's record).
    """
    from workbench.store import runs as runs_api

    exp = get(experiment) if isinstance(experiment, str) else experiment
    world_env = int(os.environ.get("WORLD_SIZE", "1"))
    if world_env > 1 and not exp.distributed:
        raise ConfigError(f"experiment {exp.name!r} does not support multi-process runs (torchrun with {world_env} "
                          f"processes): {exp.distributed_note or 'it is written for one process'}; run it without "
                          "torchrun", "nproc")
    resume_state = None
    if resume is None:  # a bad value or file stops here, before the store is even opened
        cfg = exp.make_config(config, smoke=smoke, scale=scale)
        if exp.preflight is not None:
            exp.preflight(cfg)
    if callable(store) and not isinstance(store, Store):  # opened only once the config and files are checked
        store = store()
    if store is None and (resume is not None or int(os.environ.get("RANK", "0")) == 0):
        store = runs_api.store()  # under torchrun only rank 0 writes; the others open it only to resume
    if resume is not None:
        record = store.get(resume)
        if record["method"] != exp.name:
            raise ConfigError(f"run {resume} is a {record['method']!r} run, not {exp.name!r}", "resume")
        resume = record["id"]
        cfg = exp.make_config({**record["config"], **(config or {})} if not isinstance(config, Config) else config)
        ckpt = store.artifact_row(resume, "checkpoint")
        if ckpt is None:
            raise ConfigError(f"run {resume} has no checkpoint to resume from (set checkpoint_every)", "resume")
        resume_state = store.load_artifact(resume, "checkpoint")
        smoke = bool(record.get("smoke"))
        if exp.preflight is not None:  # missing data or models: one clear line, and nothing is created
            exp.preflight(cfg)
    control = control or Control()
    rank, world, local = _distributed(cfg.device)
    device = resolve_device(cfg.device, local)
    seed_everything(cfg.seed)
    threads_before = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if rank == 0:
        if resume is not None:
            run_id = resume
            store.reopen(run_id)
            store.drop_metrics_after(run_id, ckpt["created_at"])
        else:
            run_id = store.create_run(exp.name, cfg.to_dict(), device=str(device), world_size=world, smoke=smoke)
        if os.environ.get("WORKBENCH_RUN_ID_FILE"):  # a launcher (e.g. `%%wb --nproc`) follows this run
            target = os.environ["WORKBENCH_RUN_ID_FILE"]
            with open(target + ".tmp", "w") as fh:
                fh.write(run_id)
            os.replace(target + ".tmp", target)
        writer = store.writer(run_id, on_stop_request=lambda: control.stop("stop requested from the run store"),
                              on_store_lost=lambda err: control.stop(str(err)))
    else:
        run_id, writer = None, _NullWriter()
    control.run_id, control.started_at = run_id, time.time()
    control.started.set()
    ctx = RunContext(cfg, device=device, store=store if rank == 0 else None, run_id=run_id, writer=writer,
                     control=control, rank=rank, world_size=world, smoke=smoke, resume_state=resume_state,
                     progress=progress, cache_root=(store.home if store is not None else runs_api.default_home())
                     / "cache")
    with _SigtermGuard(world > 1, control) as guard:  # a torchrun launch tearing down: recorded first
        status, error, trace, summary = "completed", None, None, {}
        lost: StoreUnavailable | None = None  # the store stayed unreachable past its retry_for
        try:
            try:
                summary = dict(exp.run(cfg, ctx) or {})
            finally:
                guard.recording = True  # from here a SIGTERM waits until the run's end is recorded
        except RunStopped as stop:
            status, error = "stopped", str(stop)
        except StoreUnavailable as err:  # a checkpoint, artifact or claim could not be written: stop, spill
            status, error, lost = "stopped", str(err), err
        except Terminated as term:
            status, error = "failed", str(term)
        except KeyboardInterrupt:
            status, error = "stopped", "interrupted (KeyboardInterrupt)"
        except NonFiniteLoss as bad:
            status, error = "failed", f"non-finite loss: {bad}"
        except Exception as err:  # recorded, not lost: one line to act on, the whole traceback in the record
            reason = (world > 1 and peer_lost(err, control)) or one_line(err)
            status, error, trace = "failed", reason, traceback.format_exc()
            if getattr(err, "details", ""):
                trace += "\n" + err.details
        finally:
            try:
                writer.close()
            except StoreUnavailable as err:
                lost = lost or err
            torch.set_num_threads(threads_before)
        summary = summary or dict(ctx.last)
        if rank == 0 and lost is None:  # the store answers (again): what it missed goes there, no spill
            try:
                store.recommit_kept(run_id)
                store.finish(run_id, status, error, summary, traceback=trace)
            except StoreUnavailable as err:
                lost = err
        if rank == 0 and lost is not None:
            status, error, trace = _spill(store, run_id, exp.name, cfg, device, world, smoke, status, error, summary,
                                          trace, writer, lost)
        return RunResult(run_id, status, summary, error, trace)


def _spill(store: Store, run_id: str, method: str, cfg: Config, device: torch.device, world: int, smoke: bool,
           status: str, error: str | None, summary: dict[str, Any], trace: str | None, writer: Any,
           lost: StoreUnavailable) -> tuple[str, str, str | None]:
    """The store stayed unreachable: the run ends ``stopped`` (``failed`` if it failed on its own) with the
    reason, and what it still holds (rows, checkpoint, artifacts, claims, final status) goes to a spill file that
    ``workbench runs import`` loads. Returns the status, one-line error and traceback it ended with."""
    from workbench.store.interop.spill import write_spill

    if status == "completed" and getattr(writer, "lost", None) is not None:
        status = "stopped"  # told to stop by the writer, but the method finished first: its rows are partial
    if status != "failed":
        error = error if status == "stopped" and error else str(lost)
    record = {"id": run_id, "method": method, "config": cfg.to_dict(), "seed": cfg.to_dict().get("seed"),
              "device": str(device), "world_size": world, "smoke": smoke, "status": status, "error": error,
              "summary": summary, "traceback": trace, "ended_at": time.time()}
    path = write_spill(store, record, writer.held())
    return status, f"{error}; its unsaved rows are in {path} (load them: workbench runs import {path})", trace


#: what a collective (gloo, NCCL) raises when another process of the launch went away
_PEER_GONE = re.compile(r"connection (closed|reset) by peer|remote worker crash|broken pipe", re.IGNORECASE)


def peer_lost(err: BaseException, control: Control) -> str | None:
    """The one-line reason of a run that failed because another process of its torchrun launch exited or
    crashed (a collective's error says so, in a long line), else ``None``."""
    if not _PEER_GONE.search(str(err)):
        return None
    first = re.sub(r"^\[[^\]]*\]\s*", "", str(err).strip().splitlines()[0]).split(". ")[0]  # no "[file:line]"
    return (f"another process of the torchrun launch exited or crashed (at {control.phase or 'setup'} step "
            f"{control.step}): {first}")


def one_line(err: BaseException, limit: int = 400) -> str:
    """The reason a run failed, on one line: a :class:`~workbench.core.errors.SourceError`'s own message (it says what
    to do), otherwise ``Type: first line of the message``."""
    from workbench.core.errors import SourceError

    if isinstance(err, SourceError):
        text = str(err)
    else:
        lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
        text = f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
