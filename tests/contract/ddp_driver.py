"""Run under ``torchrun`` once for the whole suite (``tests.ddp``), or plainly as one process.

``python ddp_driver.py OUT HOME SPEC``: SPEC is JSON ``{"runs": {label: {"experiment": name, **overrides}},
"stop_resume": {label: {"experiment": name, "stop_at": k, **overrides}}, "refuse": [names], "units": [check, ...],
"kill": {"experiment": name, "rank": r, "at": k, **overrides}}``, every key optional. Each labelled run is its
experiment's ``ddp_smoke`` setting plus the overrides, in smoke mode, stored under HOME; a ``stop_resume`` run is
asked to stop through the store once ``k`` steps are done (rank 0's writer sees the request, the engine passes it
on to rank 1), then resumed to its end from its checkpoint; each experiment in ``refuse`` must refuse a
multi-process launch before anything runs; each unit check (a name in :data:`UNITS`, or ``"module:function"`` of a
method's test package) compares, on every rank, the sharded computation of a global batch with the one-process
computation of the same batch. Rank 0 writes ``{"runs": {label: {run_id, status, error} | {refused: message}},
"stop_resume": {label: {run_id, stopped, resumed: {status, error, ranks: [status per rank]}, stopped_at: time,
checkpoint_step}}, "units": {check: [worst value over the ranks]}}`` to OUT. A ``kill`` run (a launch of its own)
kills rank ``r`` with SIGKILL once ``k`` steps are done, after writing the time to HOME/killed_at; the store keeps
how the run ended.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

import workbench
import workbench.store.store as store_module
from workbench.core.context import Control, Shard
from workbench.core.params import ConfigError
from workbench.store.store import Store


def _group() -> tuple[int, int]:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def _average(model: torch.nn.Module, world: int) -> None:
    for p in model.parameters():
        if p.grad is not None and world > 1:
            dist.all_reduce(p.grad)
            p.grad /= world


def _grads(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def _diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def unit_losses(rank: int, world: int) -> list[float]:
    """NFM (every mixing point, with noise) and NoisyMix on a sharded batch: the ranks' mean loss and averaged
    gradient equal the one-process loss and gradient of the global batch."""
    from workbench.lib.nn import build_model
    from workbench.lib.robustness.losses import nfm_loss, noisymix_loss

    out = []
    n = 8
    x = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(2))
    shard = Shard(n, rank, world)
    for seed in range(4):  # different seeds reach both mixing points (input and hidden)
        for kind in ("nfm", "noisymix"):
            torch.manual_seed(0)
            full, part = build_model("mlp", (1, 8, 8), 10, width=16), build_model("mlp", (1, 8, 8), 10, width=16)
            part.load_state_dict(full.state_dict())
            if kind == "nfm":
                ref, _ = nfm_loss(full, x, y, "nfm", 1.0, 0.4, 0.2, 0.5, torch.Generator().manual_seed(seed))
                mine, _ = nfm_loss(part, shard.take(x), shard.take(y), "nfm", 1.0, 0.4, 0.2, 0.5,
                                   torch.Generator().manual_seed(seed), shard=shard)
            else:
                a1, a2 = x.flip(-1), x.flip(-2)
                ref, _ = noisymix_loss(full, x, y, a1, a2, generator=torch.Generator().manual_seed(seed))
                mine, _ = noisymix_loss(part, shard.take(x), shard.take(y), shard.take(a1), shard.take(a2),
                                        generator=torch.Generator().manual_seed(seed), shard=shard)
            ref.backward()
            mine.backward()
            _average(part, world)
            mean = mine.detach().clone()
            if world > 1:
                dist.all_reduce(mean)
                mean /= world
            out += [_diff(mean, ref.detach()), _diff(_grads(part), _grads(full))]
    return out


def unit_inputs(rank: int, world: int) -> list[float]:
    """Crop/flip and AugMix views of a sharded batch are the rows of the one-process batch's."""
    from workbench.lib.robustness.augmix import augmix
    from workbench.lib.robustness.inputs import crop_flip

    n = 6
    x = torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    shard = Shard(n, rank, world)
    crop = crop_flip(x, torch.Generator().manual_seed(4))
    crop_mine = crop_flip(shard.take(x), torch.Generator().manual_seed(4), shard=shard)
    views = augmix(torch.cat([x, x]), generator=torch.Generator().manual_seed(5))
    views_mine = augmix(torch.cat([shard.take(x)] * 2), generator=torch.Generator().manual_seed(5),
                        shard=shard.repeat(2))
    return [_diff(crop_mine, shard.take(crop)), _diff(views_mine, shard.repeat(2).take(views))]


def unit_selection(rank: int, world: int) -> list[float]:
    """RHO-LOSS, Boltzmann and BALD select from the global candidate batch: the same indices as one process,
    ties included (duplicated candidates have equal scores)."""
    from workbench.lib.nn import build_model
    from workbench.methods.goldilocks.selection import Candidates, make_selector

    n, k = 16, 4
    torch.manual_seed(0)
    model = build_model("mlp", (1, 8, 8), 10, width=16)
    x = torch.rand(n // 2, 1, 8, 8, generator=torch.Generator().manual_seed(6)).repeat(2, 1, 1, 1)  # ties
    y = torch.randint(0, 10, (n // 2,), generator=torch.Generator().manual_seed(7)).repeat(2)
    il = torch.rand(n // 2, generator=torch.Generator().manual_seed(8)).repeat(2)
    index = torch.arange(100, 100 + n)
    shard = Shard(n, rank, world)
    out = []
    for name in ("rho_loss", "boltzmann", "bald", "uniform"):
        sel = make_selector(name, mc_samples=3, dropout=0.5, temperature=0.5)
        ref = sel.select(model, Candidates(index, x, y, il), k, generator=torch.Generator().manual_seed(9))
        mine = sel.select(model, Candidates(shard.take(index), shard.take(x), shard.take(y), shard.take(il), shard),
                          k, generator=torch.Generator().manual_seed(9))
        out.append(float((ref.index != mine.index).sum()))
    return out


UNITS = {"losses": unit_losses, "inputs": unit_inputs, "selection": unit_selection}


def _unit(name: str):
    """A unit check by name: one of :data:`UNITS`, or ``"package.module:function"``."""
    if ":" not in name:
        return UNITS[name]
    import importlib

    module, function = name.split(":")
    return getattr(importlib.import_module(module), function)


class StopThroughStore(Control):
    """Rank 0's control of a ``stop_resume`` run: once ``at`` steps are done it asks the store to stop the run (what
    ``workbench runs stop`` does) and waits until the run's writer has passed the request on to it."""

    def __init__(self, at: int, store: Store) -> None:
        super().__init__()
        self.at, self.store, self.asked = at, store, False

    @property
    def stop_requested(self) -> bool:  # type: ignore[override]
        if self.steps_done >= self.at and not self.asked:
            self.asked = True
            self.store.request_stop(self.run_id)
            self._stop.wait(30)
        return super().stop_requested


class KillAt(Control):
    """The control of the rank a ``kill`` run kills: once ``at`` steps are done it writes the time to ``note``
    and kills its own process with SIGKILL (no cleanup, as a crash or the OOM killer)."""

    def __init__(self, at: int, note: Path) -> None:
        super().__init__()
        self.at, self.note = at, note

    @property
    def stop_requested(self) -> bool:  # type: ignore[override]
        if self.steps_done >= self.at:
            self.note.write_text(repr(time.time()))
            os.kill(os.getpid(), signal.SIGKILL)
        return super().stop_requested


def _everyone(value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order."""
    if not dist.is_initialized():
        return [value]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def stop_resume(job: dict[str, Any], store: Store | None, home: str) -> dict[str, Any]:
    """Run ``job`` until it is stopped through the store at step ``stop_at``, then resume it to its end."""
    job = dict(job)
    name, at = job.pop("experiment"), job.pop("stop_at")
    cfg = {**workbench.get(name).ddp_smoke, **job}
    control = StopThroughStore(at, store) if store is not None else None
    beat, store_module.HEARTBEAT_EVERY = store_module.HEARTBEAT_EVERY, 0.05  # the writer sees the request at once
    try:
        part = workbench.run(name, cfg, smoke=True, progress=False, store=store, control=control)
    finally:
        store_module.HEARTBEAT_EVERY = beat
    stopped_at = time.time()
    ranks = _everyone((part.run_id, part.status))
    run_id = ranks[0][0]
    ckpt = store.artifact_row(run_id, "checkpoint") if store is not None else None
    resumed = workbench.run(name, None, resume=run_id, progress=False, store=store or Store(home))
    return {"run_id": run_id, "stopped": {"status": part.status, "error": part.error, "ranks": [r[1] for r in ranks]},
            "resumed": {"status": resumed.status, "error": resumed.error, "ranks": _everyone(resumed.status)},
            "stopped_at": stopped_at, "checkpoint_step": ckpt and ckpt["meta"].get("next_step")}


def kill(job: dict[str, Any], store: Store | None, home: str) -> dict[str, Any]:
    """Run ``job`` and kill rank ``rank`` once ``at`` steps are done: how the run ended on a rank that lived
    (torchrun may end that rank too, once its run is recorded: the store tells how it ended)."""
    job = dict(job)
    name, victim, at = job.pop("experiment"), job.pop("rank"), job.pop("at")
    control = KillAt(at, Path(home) / "killed_at") if int(os.environ.get("RANK", "0")) == victim else None
    res = workbench.run(name, {**workbench.get(name).ddp_smoke, **job}, smoke=True, progress=False, store=store,
                        control=control)
    return {"run_id": res.run_id, "status": res.status, "error": res.error}


def main() -> None:
    out, home, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    rank = int(os.environ.get("RANK", "0"))
    store = Store(home) if rank == 0 else None
    results: dict = {"runs": {}, "units": {}}
    for name in spec.get("refuse", []):  # before any process group exists: a refusal must need none
        try:
            workbench.run(name, dict(workbench.get(name).ddp_smoke), smoke=True, progress=False, store=store)
            results["runs"][name] = {"error": "ran instead of refusing"}
        except ConfigError as err:
            results["runs"][name] = {"refused": str(err)}
    for label, job in spec.get("runs", {}).items():
        job = dict(job)
        name = job.pop("experiment")
        res = workbench.run(name, {**workbench.get(name).ddp_smoke, **job}, smoke=True, progress=False, store=store)
        results["runs"][label] = {"run_id": res.run_id, "status": res.status, "error": res.error}
    for label, job in spec.get("stop_resume", {}).items():
        results.setdefault("stop_resume", {})[label] = stop_resume(job, store, home)
    if spec.get("kill"):
        results["kill"] = kill(spec["kill"], store, home)
    if spec.get("units"):
        rank, world = _group()
        for unit in spec["units"]:
            values = torch.tensor(_unit(unit)(rank, world), dtype=torch.float64)
            if world > 1:  # the worst rank's differences
                dist.all_reduce(values, op=dist.ReduceOp.MAX)
            results["units"][unit] = values.tolist()
    if rank == 0:
        with open(out, "w") as fh:
            json.dump(results, fh)
    if dist.is_initialized() and not spec.get("kill"):  # leave together: a rank exiting while the other still
        dist.barrier()                                    # talks to it aborts (after a kill, no other is left)
        dist.destroy_process_group()
    # as `workbench run` does under torchrun: every run's writer has committed and closed, so each rank exits without
    # C++ static destructors, where gloo's threads occasionally abort a finished process (SIGABRT, "terminate called
    # without an active exception"; seen on rank 0 too, under load)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
