"""The engine: the loop around a method.

``run(experiment, config)`` validates the config (nothing runs on a bad value), seeds every RNG,
picks the device, sets up ``torchrun`` process groups, opens a run in the store and calls
``experiment.run(cfg, ctx)``. The method drives its own loop through :class:`RunContext`:
``ctx.steps`` gives progress, stop/pause, checkpoints and resume; ``ctx.log`` records metrics and
stops a run whose loss turns NaN/inf; ``ctx.artifact`` and ``ctx.claim`` record everything else.
"""
from __future__ import annotations

import contextlib
import math
import os
import random
import threading
import time
import traceback
import zlib
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch

from .batches import IndexBatches
from .params import Config, ConfigError
from .registry import Experiment, get
from .store import Store


#: Below this many parameters a CPU run uses one intra-op thread (``threads=0``): two threads of a tiny model
#: mostly wait at OpenMP barriers on a small shared machine (measured 20 vs 1.2 steps/s on a loaded 2-core box).
SMALL_MODEL = 2_000_000


class RunStopped(Exception):
    """Raised out of ``ctx.steps`` when a stop was requested; the run ends as ``stopped``."""


class NonFiniteLoss(Exception):
    """A logged loss turned NaN or inf; the run ends as ``failed`` with this reason."""


class Control:
    """Stop/pause requests from outside the training thread (a widget button, a signal handler).

    The engine fills in ``run_id``, ``phase``, ``step``, ``total`` and ``started_at`` as it goes, so a
    status line can show progress and speed.
    """

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self.run_id: str | None = None
        self.phase = ""
        self.step = 0
        self.total = 0
        self.steps_done = 0
        self.started_at: float | None = None
        self.reason: str | None = None
        self.started = threading.Event()

    def stop(self, reason: str = "stop requested") -> None:
        self.reason = self.reason or reason
        self._stop.set()
        self._running.set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def steps_per_second(self) -> float:
        if not self.started_at or not self.steps_done:
            return 0.0
        return self.steps_done / max(time.time() - self.started_at, 1e-9)


@dataclass
class RunResult:
    run_id: str | None
    status: str
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def metrics(self):
        from . import runs

        return runs.metrics(self.run_id)

    def raise_for_status(self) -> "RunResult":
        if self.status == "failed":
            raise RuntimeError(f"run {self.run_id} failed: {self.error}")
        return self


class _NullWriter:
    def log(self, step: int, metrics: dict[str, float]) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class RunContext:
    """What a method sees of the engine (see the module docstring)."""

    def __init__(self, cfg: Config, *, device: torch.device, store: Store | None, run_id: str | None,
                 writer: Any, control: Control, rank: int = 0, world_size: int = 1, smoke: bool = False,
                 resume_state: dict[str, Any] | None = None, progress: bool = True):
        self.cfg, self.device, self.store, self.run_id = cfg, device, store, run_id
        self.control, self.rank, self.world_size, self.smoke = control, rank, world_size, smoke
        self._writer, self._progress = writer, progress
        self._tracked: dict[str, Any] = {}
        self._threads_before, self._big_model = torch.get_num_threads(), False
        self._phase_index = 0
        self._resume = resume_state
        self.summary: dict[str, Any] = {}
        self.last: dict[str, float] = {}

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- state -------------------------------------------------------------------------------
    def track(self, **objects: Any) -> None:
        """Objects with ``state_dict``/``load_state_dict`` to checkpoint and restore on resume."""
        for name, obj in objects.items():
            if not (hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict")):
                raise TypeError(f"ctx.track({name}=...): {type(obj).__name__} has no state_dict/load_state_dict")
            self._tracked[name] = obj
            if isinstance(obj, torch.nn.Module) and self.cfg.threads == 0 and self.device.type == "cpu":
                if sum(p.numel() for p in obj.parameters()) < SMALL_MODEL and not self._big_model:
                    torch.set_num_threads(1)
                else:
                    self._big_model = True
                    torch.set_num_threads(self._threads_before)

    def batches(self, n: int, batch_size: int, *, shuffle: bool = True, drop_last: bool = True,
                name: str | None = None) -> IndexBatches:
        """Deterministic, resumable index batches over ``range(n)`` (tracked); under torchrun each rank
        gets its shard of the same global batch."""
        key = name or f"batches{len([k for k in self._tracked if k.startswith('batches')])}"
        batches = IndexBatches(n, batch_size, seed=self.cfg.seed + zlib.crc32(key.encode()), shuffle=shuffle,
                               drop_last=drop_last, rank=self.rank, world_size=self.world_size)
        self.track(**{key: batches})
        return batches

    def generator(self, name: str = "default", device: torch.device | str = "cpu") -> torch.Generator:
        """A torch.Generator seeded from the run's seed and ``name`` (independent streams by name)."""
        gen = torch.Generator(device=device)
        gen.manual_seed((self.cfg.seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63))
        return gen

    def distribute(self, model: torch.nn.Module) -> torch.nn.Module:
        """Wrap in DistributedDataParallel when launched by torchrun; otherwise return ``model``."""
        if self.world_size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        if self.device.type == "cuda":  # batch statistics over the global batch (SyncBatchNorm is CUDA-only)
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=ids)

    def autocast(self) -> contextlib.AbstractContextManager:
        """bfloat16 autocast on CUDA when ``cfg.amp``; a no-op on CPU."""
        if self.device.type == "cuda" and self.cfg.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -- loop ---------------------------------------------------------------------------------
    def steps(self, total: int, phase: str = "train", start: int = 0) -> Iterator[int]:
        """Yield step numbers ``start..total-1``: progress bar, stop/pause, checkpoints, resume.

        On resume, phases finished before the checkpoint yield nothing and the checkpoint's phase
        continues at the step after the checkpoint, with every tracked object and RNG restored.
        """
        index = self._phase_index
        self._phase_index += 1
        if self._resume is not None:
            if index < self._resume["phase_index"]:
                return
            if index == self._resume["phase_index"]:
                start = self._restore(self._resume)
                self._resume = None
        ctl, every = self.control, self.cfg.checkpoint_every
        ctl.phase, ctl.total = phase, total
        bar = None
        if self._progress and self.is_main:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=start, desc=phase, leave=False, dynamic_ncols=True)
        try:
            for step in range(start, total):
                if ctl.stop_requested:
                    self._stopping(phase, step)
                while ctl.paused and not ctl.stop_requested:
                    ctl._running.wait(0.1)
                if ctl.stop_requested:
                    self._stopping(phase, step)
                ctl.step = step
                yield step
                ctl.steps_done += 1
                if bar is not None:
                    bar.update(1)
                if every and (step + 1) % every == 0 and step + 1 < total:
                    self.checkpoint(phase, step + 1)
        finally:
            if bar is not None:
                bar.close()

    def _stopping(self, phase: str, step: int) -> None:
        if self.cfg.checkpoint_every:
            self.checkpoint(phase, step)
        raise RunStopped(self.control.reason or "stop requested")

    def checkpoint(self, phase: str, next_step: int) -> None:
        """Save every tracked object and RNG state; ``resume`` continues at ``next_step`` of this phase."""
        if not self.is_main or self.store is None:
            return
        self._writer.flush()
        state = {
            "phase": phase, "phase_index": self._phase_index - 1, "next_step": next_step,
            "objects": {name: obj.state_dict() for name, obj in self._tracked.items()},
            "rng": {"torch": torch.get_rng_state(), "python": _python_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        }
        self.store.add_artifact(self.run_id, "checkpoint", state, kind="checkpoint",
                                meta={"phase": phase, "next_step": next_step})

    def _restore(self, state: dict[str, Any]) -> int:
        missing = set(state["objects"]) - set(self._tracked)
        if missing:
            raise RuntimeError(f"cannot resume: the checkpoint holds {sorted(missing)} but the method tracked "
                               f"only {sorted(self._tracked)} before phase {state['phase']!r}")
        for name, obj in self._tracked.items():
            if name in state["objects"]:
                obj.load_state_dict(state["objects"][name])
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(_python_rng_from(state["rng"]["python"]))
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        return int(state["next_step"])

    # -- records ------------------------------------------------------------------------------
    def log(self, step: int, **metrics: float) -> None:
        """Record scalar metrics at ``step``; a metric whose name contains ``loss`` must stay finite."""
        values = {}
        for name, value in metrics.items():
            value = float(value)
            if "loss" in name and not math.isfinite(value):
                raise NonFiniteLoss(f"{name} turned {value} at step {step}")
            values[name] = value
        self.last.update(values)
        if self.is_main:
            self._writer.log(step, values)

    def artifact(self, name: str, value: Any, kind: str | None = None, step: int | None = None,
                 meta: dict | None = None) -> None:
        """Store an array, table, dict, figure spec, text or bytes (``step=None`` replaces the last one)."""
        if self.is_main and self.store is not None:
            self.store.add_artifact(self.run_id, name, value, kind=kind, step=step, meta=meta)

    def claim(self, claim: str, measured: Any, holds: bool | None, detail: str = "") -> None:
        """Record a paper claim this run checked: what was measured and whether it holds."""
        if self.is_main and self.store is not None:
            self.store.add_claim(self.run_id, claim, measured, holds, detail)


# -- helpers --------------------------------------------------------------------------------------
def _python_rng_state() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _python_rng_from(state: list) -> tuple:
    return (state[0], tuple(state[1]), state[2])


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


def run(experiment: str | Experiment, config: dict[str, Any] | Config | None = None, *, smoke: bool = False,
        control: Control | None = None, resume: str | None = None, progress: bool = True,
        store: Store | None = None) -> RunResult:
    """Run one experiment to its end and record it; returns the run's id, status and summary.

    A bad config raises :class:`ConfigError` before anything runs. Every other way a run can end is
    recorded in the store and returned: ``completed``, ``stopped`` (Stop, Ctrl-C, external request),
    ``failed`` (an exception or a NaN/inf loss, with the reason).
    """
    from . import runs as runs_api

    exp = get(experiment) if isinstance(experiment, str) else experiment
    if store is None and (resume is not None or int(os.environ.get("RANK", "0")) == 0):
        store = runs_api.store()  # under torchrun only rank 0 writes; the others open it only to resume
    resume_state = None
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
    else:
        cfg = exp.make_config(config, smoke=smoke)
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
            run_id = store.create_run(exp.name, cfg.to_dict(), device=str(device), world_size=world)
        if os.environ.get("WORKBENCH_RUN_ID_FILE"):  # a launcher (e.g. `%%wb --nproc`) follows this run
            target = os.environ["WORKBENCH_RUN_ID_FILE"]
            with open(target + ".tmp", "w") as fh:
                fh.write(run_id)
            os.replace(target + ".tmp", target)
        writer = store.writer(run_id, on_stop_request=lambda: control.stop("stop requested from the run store"))
    else:
        run_id, writer = None, _NullWriter()
    control.run_id, control.started_at = run_id, time.time()
    control.started.set()
    ctx = RunContext(cfg, device=device, store=store if rank == 0 else None, run_id=run_id, writer=writer,
                     control=control, rank=rank, world_size=world, smoke=smoke, resume_state=resume_state,
                     progress=progress)
    status, error, summary = "completed", None, {}
    try:
        summary = dict(exp.run(cfg, ctx) or {})
    except RunStopped as stop:
        status, error = "stopped", str(stop)
    except KeyboardInterrupt:
        status, error = "stopped", "interrupted (KeyboardInterrupt)"
    except NonFiniteLoss as bad:
        status, error = "failed", f"non-finite loss: {bad}"
    except Exception:  # recorded, not lost: the traceback is the run's error
        status, error = "failed", traceback.format_exc(limit=20)
    finally:
        writer.close()
        torch.set_num_threads(threads_before)
    summary = summary or dict(ctx.last)
    if rank == 0:
        store.finish(run_id, status, error, summary)
    return RunResult(run_id, status, summary, error)
