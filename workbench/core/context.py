"""The run context: everything a method sees of the engine, typed and complete.

``run(cfg, ctx)`` drives its own loop through the context::

    model, opt = ..., ...
    ctx.track(model=model, opt=opt)                 # checkpointed, restored on resume
    results = ctx.state("results", {"best": 0.0})   # a checkpointed dict of plain results
    batches = ctx.batches(len(data), 128)           # resumable index batches (sharded under torchrun)
    noise = ctx.generator("noise")                  # a named random stream, checkpointed
    g = ctx.rng("eval", step)                       # a stateless stream from (seed, name, step): nothing to save
    with ctx.seeded("init"): model = Net()          # initial weights from (seed, name), global RNG untouched
    for step in ctx.steps(cfg.steps):               # progress, stop/pause, checkpoints, resume
        ...
        ctx.log(step, **{"train/loss": loss})
    ctx.artifact("samples", array); ctx.claim("...", measured, holds)
    ctx.save_model("net", model, spec={"width": 64})  # workbench.runs.load_model(run_id, "net") rebuilds it

A method never prints, plots, writes files, reads environment variables or imports :mod:`workbench.runs`:
other runs of the same store come through :meth:`RunContext.read_run`, files through :meth:`cache_dir`.
"""
from __future__ import annotations

import contextlib
import copy
import math
import random
import threading
import time
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import torch

from workbench.core.batches import IndexBatches
from workbench.core.params import Config

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .claims import Claim

    from workbench.store.store import Store

#: Below this many parameters a CPU run uses one intra-op thread (``threads=0``): two threads of a tiny model
#: mostly wait at OpenMP barriers on a small shared machine (measured 20 vs 1.2 steps/s on a loaded 2-core box).
SMALL_MODEL = 2_000_000
SMOKE_CLAIM = "not evaluated (smoke run)"
#: The progress bar of ``ctx.steps`` is redrawn at most once per this many seconds (a redraw costs ~0.1 ms in a
#: terminal and more in a notebook; between redraws a step costs the loop one clock read).
PROGRESS_REFRESH_S = 0.5
_clock = time.perf_counter  # the bar's clock (tests replace it)


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


class RunState(dict):
    """A checkpointed dict of plain results (``ctx.state``): deep-copied into and out of checkpoints."""

    def state_dict(self) -> dict:
        return copy.deepcopy(dict(self))

    def load_state_dict(self, state: dict) -> None:
        """Restore in place, nested lists and dicts included, so references a method took before its phase
        resumed (``rows = results.setdefault("rows", [])``) still see the restored values."""
        _restore_into(self, copy.deepcopy(state))


def _restore_into(target: dict, source: dict) -> None:
    for key in [k for k in target if k not in source]:
        del target[key]
    for key, value in source.items():
        old = target.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            _restore_into(old, value)
        elif isinstance(old, list) and isinstance(value, list):
            old[:] = value
        else:
            target[key] = value


class _GeneratorState:
    """Checkpoint adapter of a ``torch.Generator`` (its RNG state is the state)."""

    def __init__(self, generator: torch.Generator):
        self.generator = generator

    def state_dict(self) -> dict:
        return {"state": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["state"])


class Shard:
    """This rank's rows of a global batch of ``total`` rows (``blocks`` consecutive copies of it, e.g. NoisyMix's
    clean and two AugMix thirds): rows ``rank, rank + world_size, ...`` of each block, the sharding of
    :class:`~workbench.core.batches.IndexBatches`. In a one-process run every method is the identity.

    A random draw that must be the same under any number of ranks is drawn for the *global* batch from the same
    stream on every rank and sliced with :meth:`take`; what a rank computed for its rows comes back in global order
    with :meth:`gather` (differentiable with ``grad=True``: the backward pass sums every rank's gradient of the
    gathered tensor and keeps this rank's rows).
    """

    def __init__(self, total: int, rank: int = 0, world_size: int = 1, blocks: int = 1):
        if total < 1 or blocks < 1 or not 0 <= rank < world_size:
            raise ValueError(f"Shard(total={total}, rank={rank}, world_size={world_size}, blocks={blocks}) is invalid")
        self.total, self.rank, self.world_size, self.blocks = total, rank, world_size, blocks

    @property
    def size(self) -> int:
        """Rows of the whole (blocked) global batch."""
        return self.total * self.blocks

    def rows(self, rank: int | None = None) -> torch.Tensor:
        """Positions of ``rank``'s rows (default: this rank's) in the global batch."""
        r = self.rank if rank is None else rank
        one = torch.arange(r, self.total, self.world_size)
        return torch.cat([one + b * self.total for b in range(self.blocks)]) if self.blocks > 1 else one

    def repeat(self, blocks: int) -> "Shard":
        """The shard of a batch made of ``blocks`` consecutive copies of this one's global batch."""
        return Shard(self.total, self.rank, self.world_size, self.blocks * blocks)

    def take(self, tensor: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a global tensor (the tensor itself in a one-process run)."""
        if self.world_size == 1:
            return tensor
        return tensor.index_select(0, self.rows().to(tensor.device))

    def gather(self, local: torch.Tensor, grad: bool = False) -> torch.Tensor:
        """The global tensor from every rank's rows (``local`` is this rank's), in global order."""
        if self.world_size == 1:
            return local
        if grad and local.requires_grad:
            return _GatherRows.apply(local, self)
        return _gather_rows(local.detach(), self)


def _gather_rows(local: torch.Tensor, shard: Shard) -> torch.Tensor:
    import torch.distributed as dist

    sizes = [len(shard.rows(r)) for r in range(shard.world_size)]
    if local.shape[0] != sizes[shard.rank]:
        raise ValueError(f"rank {shard.rank} holds {local.shape[0]} rows, its shard has {sizes[shard.rank]}")
    width = max(sizes)
    padded = local.new_zeros((width, *local.shape[1:]))
    padded[: local.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous())
    out = local.new_empty((shard.size, *local.shape[1:]))
    for r, part in enumerate(parts):
        out[shard.rows(r).to(out.device)] = part[: sizes[r]]
    return out


class _GatherRows(torch.autograd.Function):
    """:meth:`Shard.gather` with gradients: the backward sums the gathered tensor's gradient over the ranks (each
    rank's loss may use every rank's rows) and returns this rank's rows of it."""

    @staticmethod
    def forward(ctx: Any, local: torch.Tensor, shard: Shard) -> torch.Tensor:  # type: ignore[override]
        ctx.shard = shard
        return _gather_rows(local, shard)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        import torch.distributed as dist

        total = grad.contiguous().clone()
        dist.all_reduce(total)
        return ctx.shard.take(total), None


class RunView:
    """Read-only access to another run of the same store (``ctx.read_run(run_id)``)."""

    def __init__(self, store: "Store", run_id: str):
        self._store = store
        self.record: dict[str, Any] = store.get(run_id)
        self.id: str = self.record["id"]

    def metrics(self, names: list[str] | None = None) -> "pd.DataFrame":
        from workbench.store import runs

        return runs.metrics(self.id, names, store=self._store)

    def has_artifact(self, name: str) -> bool:
        return self._store.artifact_row(self.id, name) is not None

    def artifact(self, name: str, step: int | None = None) -> Any:
        """The latest artifact ``name`` (``KeyError`` naming the run when it has none)."""
        return self._store.load_artifact(self.id, name, step)

    def claims(self) -> list[dict[str, Any]]:
        return self._store.claims(self.id)


def reduce_gradients(modules: Iterable[torch.nn.Module], world_size: int, average: bool = True) -> None:
    """Sum (``average=False``: each rank's loss is its share of the global batch's mean) or average the
    parameters' gradients over the ranks in one flat all-reduce; a no-op in a one-process run."""
    if world_size == 1:
        return
    import torch.distributed as dist

    params = [p for m in modules for p in m.parameters() if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    if average:
        flat /= world_size
    offset = 0
    for p in params:
        n = p.grad.numel()
        p.grad.copy_(flat[offset: offset + n].view_as(p.grad))
        offset += n


class RunContext:
    """What a method sees of the engine (see the module docstring).

    Attributes: ``cfg`` (the validated config), ``device``, ``run_id`` (``None`` on non-zero ranks),
    ``smoke`` (a smoke run: claims are recorded as not evaluated), ``rank``, ``world_size``, ``is_main``,
    ``last`` (the latest value of every logged metric).
    """

    def __init__(self, cfg: Config, *, device: torch.device, store: "Store | None", run_id: str | None,
                 writer: Any, control: Control, rank: int = 0, world_size: int = 1, smoke: bool = False,
                 resume_state: dict[str, Any] | None = None, progress: bool = True,
                 cache_root: Path | None = None):
        self.cfg, self.device, self.store, self.run_id = cfg, device, store, run_id
        self.control, self.rank, self.world_size, self.smoke = control, rank, world_size, smoke
        self._writer, self._progress = writer, progress
        self._tracked: dict[str, Any] = {}
        self._generators: dict[str, torch.Generator] = {}
        self._threads_before, self._big_model = torch.get_num_threads(), False
        self._phase_index = 0
        self._resume = resume_state
        self._pending: dict[str, Any] = {}  # checkpointed states of objects not tracked yet (restored on track)
        self._cache_root = cache_root
        self.last: dict[str, float] = {}

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- state -------------------------------------------------------------------------------
    def track(self, **objects: Any) -> None:
        """Objects with ``state_dict``/``load_state_dict`` to checkpoint and restore on resume.

        An object tracked after a resumed run has passed its checkpoint's phase start (a stream whose size is
        known late, a model built lazily) gets its checkpointed state the moment it is tracked.
        """
        for name, obj in objects.items():
            if not (hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict")):
                raise TypeError(f"ctx.track({name}=...): {type(obj).__name__} has no state_dict/load_state_dict")
            self._tracked[name] = obj
            if name in self._pending:
                obj.load_state_dict(self._pending.pop(name))
            if isinstance(obj, torch.nn.Module) and self.cfg.threads == 0 and self.device.type == "cpu":
                if sum(p.numel() for p in obj.parameters()) < SMALL_MODEL and not self._big_model:
                    torch.set_num_threads(1)
                else:
                    self._big_model = True
                    torch.set_num_threads(self._threads_before)

    def state(self, name: str, default: dict[str, Any] | None = None) -> RunState:
        """A checkpointed dict (results, data built once) called ``name``; the same name gives the same dict."""
        key = f"state/{name}"
        if key in self._tracked:
            return self._tracked[key]
        state = RunState(copy.deepcopy(default or {}))
        self.track(**{key: state})
        return state

    def batches(self, n: int, batch_size: int, *, shuffle: bool = True, drop_last: bool = True,
                name: str | None = None, order: str | None = None) -> IndexBatches:
        """Deterministic, resumable index batches over ``range(n)`` (tracked as ``name``); under torchrun each
        rank gets its shard of the same global batch. Create them whenever ``n`` is known. Streams with the
        same ``order`` (default: their name) draw the same sequence of batches (several models, same data)."""
        key = name or f"batches{len([k for k in self._tracked if k.startswith('batches')])}"
        seed_key = order or key
        batches = IndexBatches(n, batch_size, seed=self.cfg.seed + zlib.crc32(seed_key.encode()), shuffle=shuffle,
                               drop_last=drop_last, rank=self.rank, world_size=self.world_size)
        self.track(**{key: batches})
        return batches

    def generator(self, name: str = "default", device: torch.device | str = "cpu") -> torch.Generator:
        """The random stream ``name``: seeded from the run's seed and the name, checkpointed automatically
        (resume continues it exactly); the same name returns the same generator."""
        key = f"{name}@{torch.device(device)}"
        if key not in self._generators:
            gen = torch.Generator(device=device)
            gen.manual_seed(derive_seed(self.cfg.seed, name))
            self._generators[key] = gen
            self.track(**{f"rng/{key}": _GeneratorState(gen)})
        return self._generators[key]

    def rng(self, name: str, step: int | None = None, device: torch.device | str = "cpu") -> torch.Generator:
        """A fresh generator derived from the run's seed, ``name`` and ``step``: stateless, so nothing is
        checkpointed and a resumed run draws exactly what an uninterrupted one drew (``ctx.rng("eval", step)``
        gives every evaluation its own, reproducible stream)."""
        gen = torch.Generator(device=device)
        gen.manual_seed(derive_seed(self.cfg.seed, name, step))
        return gen

    @contextlib.contextmanager
    def seeded(self, name: str) -> Iterator[None]:
        """Run the block (a model's initialisation, a dropout pass) on torch's global generator seeded from the
        run's seed and ``name``; the global state outside the block is left as it was."""
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(derive_seed(self.cfg.seed, name))
            yield

    def save_model(self, name: str, model: torch.nn.Module, spec: dict[str, Any],
                   build: Callable[..., torch.nn.Module] | None = None) -> None:
        """Save a trained model under ``name`` in the one saved-model format (:mod:`workbench.store.models`):
        ``build(**spec)`` (default ``type(model)(**spec)``) rebuilds it; ``workbench.runs.load_model(run_id,
        name)`` gives it back in any Python process."""
        from workbench.store.models import PREFIX, pack

        payload = pack(model, spec, build)  # checked on every rank, so a bad spec fails where it was written
        if self.is_main and self.store is not None:
            self.store.add_artifact(self.run_id, PREFIX + name, payload, kind="checkpoint",
                                    meta={"model": name, "build": payload["build"]})

    def distribute(self, model: torch.nn.Module) -> torch.nn.Module:
        """Wrap in DistributedDataParallel when launched by torchrun; otherwise return ``model``."""
        if self.world_size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        if self.device.type == "cuda":  # batch statistics over the global batch (SyncBatchNorm is CUDA-only)
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=ids)

    def all_reduce_mean(self, value: torch.Tensor | float) -> torch.Tensor | float:
        """The mean of ``value`` over the ranks (itself in a one-process run); a float in, a float out."""
        if self.world_size == 1:
            return value.detach() if isinstance(value, torch.Tensor) else value
        import torch.distributed as dist

        tensor = value.detach().clone() if isinstance(value, torch.Tensor) else torch.tensor(float(value))
        tensor = tensor.to(self.device if self.device.type == "cuda" else "cpu", torch.float64)
        dist.all_reduce(tensor)
        tensor /= self.world_size
        return tensor if isinstance(value, torch.Tensor) else float(tensor)

    def all_reduce_sum(self, value: torch.Tensor) -> torch.Tensor:
        """The sum of ``value`` over the ranks, detached, in float64 (``value`` itself in a one-process run)."""
        tensor = value.detach().double()
        if self.world_size == 1:
            return tensor
        import torch.distributed as dist

        tensor = tensor.to(self.device if self.device.type == "cuda" else "cpu")  # a CPU tensor goes through CUDA
        dist.all_reduce(tensor)
        return tensor.to(value.device)

    def gather_objects(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order (``[obj]`` in a one-process run)."""
        if self.world_size == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def shard(self, total: int) -> Shard:
        """This rank's :class:`Shard` of a global batch of ``total`` rows (the rows ``ctx.batches`` gives it)."""
        return Shard(total, self.rank, self.world_size)

    def rows(self, total: int) -> Shard:
        """This rank's share of ``total`` rows to evaluate: its :meth:`shard`, or all of them (every rank computing
        the whole) in a one-process run or when there are fewer rows than ranks."""
        return self.shard(total) if 1 < self.world_size <= total else Shard(total)

    def average_gradients(self, *modules: torch.nn.Module) -> None:
        """Average the parameters' gradients over the ranks in one flat all-reduce (no-op in a one-process run):
        data parallelism for a loop whose forward DistributedDataParallel cannot see (a model called stage by
        stage, features shared across ranks). Call it between ``backward`` and the optimiser step; a parameter
        without a gradient on every rank stays without one."""
        reduce_gradients(modules, self.world_size, average=True)

    def average_buffers(self, module: torch.nn.Module) -> None:
        """Average the floating-point buffers (batch-norm running statistics) over the ranks, so every rank
        evaluates the same model when each normalised with its own shard's statistics (no-op in one process)."""
        if self.world_size == 1:
            return
        import torch.distributed as dist

        for buf in module.buffers():
            if buf.is_floating_point():
                dist.all_reduce(buf)
                buf /= self.world_size

    def barrier(self) -> None:
        """Wait for every rank (no-op in a one-process run)."""
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    def autocast(self) -> contextlib.AbstractContextManager:
        """bfloat16 autocast on CUDA when ``cfg.amp``; a no-op on CPU."""
        if self.device.type == "cuda" and self.cfg.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -- other runs and files -------------------------------------------------------------------
    def read_run(self, run_id: str) -> RunView:
        """Another run of this run's store (id prefixes work), read-only."""
        if self.store is None:
            from workbench.core.params import ConfigError

            raise ConfigError(f"run {run_id!r} cannot be read: this process has no run store", "run")
        return RunView(self.store, run_id)

    def cache_dir(self, name: str) -> Path:
        """A directory for files a method builds once and reuses (datasets, zoos), under the run store."""
        from workbench.store.store import default_home

        root = self._cache_root or (self.store.home if self.store is not None else default_home()) / "cache"
        path = Path(root) / name
        path.mkdir(parents=True, exist_ok=True)
        return path

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

            # redrawn only when the loop below updates it (mininterval 0), at most once per PROGRESS_REFRESH_S
            bar = tqdm(total=total, initial=start, desc=phase, leave=False, dynamic_ncols=True, mininterval=0,
                       miniters=1)
        clock = _clock
        draw_at = clock() + PROGRESS_REFRESH_S
        try:
            for step in range(start, total):
                if ctl.stop_requested or ctl.paused or self.world_size > 1:
                    self._halt(phase, step)
                ctl.step = step
                yield step
                ctl.steps_done += 1
                if bar is not None and clock() >= draw_at:
                    bar.update(step + 1 - bar.n)
                    draw_at = clock() + PROGRESS_REFRESH_S
                if every and (step + 1) % every == 0 and step + 1 < total:
                    self.checkpoint(phase, step + 1)
        finally:
            if bar is not None:
                bar.close()

    def _halt(self, phase: str, step: int) -> None:
        """Before ``step`` (every step under torchrun): wait while paused, stop (checkpointing first) if asked."""
        ctl = self.control
        while ctl.paused and not ctl.stop_requested:
            ctl._running.wait(0.1)
        if self._stop_agreed():
            self._stopping(phase, step)

    def _stop_agreed(self) -> bool:
        """Whether a stop was requested, on any rank. A request reaches one rank (the store's through rank 0's
        writer, a widget's, a signal's), but every rank must leave ``ctx.steps`` at the same step, or the others
        wait in their next collective for good: under torchrun the ranks agree on it with one all-reduce of a flag
        per step, and a rank told by another records why."""
        asked = self.control.stop_requested
        if self.world_size == 1:
            return asked
        import torch.distributed as dist

        flag = torch.tensor([float(asked)], device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item() and not asked:
            self.control.stop("stop requested on another rank")
        return bool(flag.item())

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
            "objects": {**self._pending, **{name: obj.state_dict() for name, obj in self._tracked.items()}},
            "rng": {"torch": torch.get_rng_state(), "python": _python_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        }
        self.store.add_artifact(self.run_id, "checkpoint", state, kind="checkpoint",
                                meta={"phase": phase, "next_step": next_step})

    def _restore(self, state: dict[str, Any]) -> int:
        self._pending = dict(state["objects"])
        for name, obj in self._tracked.items():
            if name in self._pending:
                obj.load_state_dict(self._pending.pop(name))
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(_python_rng_from(state["rng"]["python"]))
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        return int(state["next_step"])

    # -- records ------------------------------------------------------------------------------
    def log(self, step: int, **metrics: float) -> None:
        """Record scalar metrics at ``step``; a metric whose name contains ``loss`` must stay finite."""
        for name, value in metrics.items():  # ``metrics`` is this call's own dict: converted in place
            value = metrics[name] = float(value)
            if "loss" in name and not math.isfinite(value):
                raise NonFiniteLoss(f"{name} turned {value} at step {step}")
        self.last.update(metrics)
        if self.rank == 0:
            self._writer.log(step, metrics)

    def artifact(self, name: str, value: Any, kind: str | None = None, step: int | None = None,
                 meta: dict | None = None) -> None:
        """Store an array, table, dict, figure spec, text or bytes (``step=None`` replaces the last one)."""
        if self.is_main and self.store is not None:
            self.store.add_artifact(self.run_id, name, value, kind=kind, step=step, meta=meta)

    def claim(self, claim: "Claim | str", measured: Any = None, holds: bool | None = None, detail: str = "") -> None:
        """Record a paper claim this run checked: a :class:`~workbench.core.claims.Claim` (statement, arm, effect
        ± uncertainty, rule, outcome), made by the rules of :mod:`workbench.core.claims`.

        In a smoke run the numbers mean nothing: the outcome is stored as "not evaluated" (smoke run). The old
        form ``ctx.claim(text, measured, holds, detail)`` is still read, for methods not yet moved to the rules.
        """
        from .claims import Claim

        if not isinstance(claim, Claim):
            outcome = {True: "holds", False: "fails", None: "inconclusive"}[None if holds is None else bool(holds)]
            claim = Claim(claim, "", "", None, "legacy: measured value and verdict, no interval", outcome,
                          detail=f"measured {measured}" + (f"; {detail}" if detail else ""))
        if self.smoke:
            claim = claim.not_evaluated(SMOKE_CLAIM)
        if self.is_main and self.store is not None:
            self.store.add_claim(self.run_id, claim.to_record())

    def elapsed(self) -> float:
        """Seconds since the run started (wall clock)."""
        started = self.control.started_at
        return time.time() - started if started else 0.0


# -- helpers --------------------------------------------------------------------------------------
def derive_seed(seed: int, name: str, step: int | None = None) -> int:
    """A 63-bit seed from the run's seed, a stream's name and an optional step (distinct inputs, distinct seeds)."""
    key = name if step is None else f"{name}@{int(step)}"
    return (seed * 1_000_003 + zlib.crc32(key.encode())) % (2**63)


def _python_rng_state() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _python_rng_from(state: list) -> tuple:
    return (state[0], tuple(state[1]), state[2])
