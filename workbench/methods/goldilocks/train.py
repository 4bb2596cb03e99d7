"""One training run of the target model with online batch selection (Algorithm 1 of Mindermann et al. 2022).

Each step: draw n_B candidates, look up (or compute) their irreducible losses, let the selector keep n_b of
them, take one AdamW step on those. Everything is reported through the engine's ``ctx`` under the prefix
``<label>/`` so several methods can share one run (a comparison).

The step stays on the training device: the candidate batch is gathered once from the device-resident training
part, the irreducible losses from a device copy of the table, the selected points from the candidate batch; the
selected indices, the corrupted counts and the training loss are brought to the host in blocks (at evaluations,
every ``LOG_EVERY`` steps), not once per step.

Under torchrun (:meth:`RunContext.shard`) every rank draws its rows of the global candidate batch, the selector ranks
the gathered global batch (identically on every rank, :mod:`.selection`), each rank trains on its share of the n_b
selected points with gradients averaged over the ranks, and the test accuracy is sharded and summed.

Metrics per method: ``test_subset/accuracy`` (a fixed subset of the test set, every ``eval_every`` steps: the
curve the speedups are measured on), ``test/accuracy`` (the whole test set, once, at the end), ``train/loss`` (mean
over the last ``LOG_EVERY`` steps), ``select/corrupted_share`` (cumulative) and ``select/corrupted_share_recent``
(points selected since the previous evaluation), ``diag/*`` (:mod:`.diagnostics`) and ``time_s``.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.core.context import RunContext
from workbench.lib.nn import build_model, inference_rows

from .diagnostics import ProbeSet, probe_metrics
from .irreducible import IrreducibleLossTable
from .scores import per_point_loss
from .selection import Candidates, Selection, Selector

if TYPE_CHECKING:  # pragma: no cover
    from .experiment import GoldilocksConfig

#: The training loss is logged as its mean over this many steps (one host transfer per block, not per step).
LOG_EVERY = 10
#: The score histogram of an evaluation covers at most this many of the steps before it (a fixed buffer).
HISTOGRAM_STEPS = 64


@dataclass
class TrainingData:
    """The training part (on the training device), its noise record, the test split and the irreducible losses.

    ``eval_index``: positions of the fixed test subset evaluated during training (``None``: the whole test set);
    ``probe``: the fixed subset of the training part the diagnostics are measured on (``None``: no diagnostics).
    """

    x: Tensor
    y: Tensor  # labels the learner sees (possibly corrupted)
    true_y: Tensor  # on CPU
    corrupted: Tensor  # bool, on CPU
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    il_table: IrreducibleLossTable
    il_model: nn.Module | None = None  # the trained irreducible-loss model (needed to keep updating it)
    eval_index: Tensor | None = None
    probe: ProbeSet | None = None
    il_trainer: Any = None  # the IrreducibleTrainer (its convergence record)

    def __len__(self) -> int:
        return int(self.y.shape[0])


class MethodRecord:
    """What one method did, kept in memory for the speedup table and tracked for resume.

    The selected indices live in one array grown by doubling, not in a tensor per step: thousands of small
    long-lived allocations interleaved with each evaluation's temporaries fragment the heap, and the process
    then grew by megabytes per evaluation (measured: flat with this layout). Indices selected on an accelerator
    wait in a fixed device buffer and come to the host in blocks. Corrupted and per-class counts are computed
    per block (:meth:`flush`) from the host arrays ``corrupted`` and ``true_y``.
    """

    DEVICE_ROWS = 256

    def __init__(self, num_classes: int, corrupted: np.ndarray | None = None, true_y: np.ndarray | None = None) -> None:
        self.num_classes = num_classes
        self._corrupted = corrupted
        self._true_y = true_y
        self.steps: list[int] = []
        self.seconds: list[float] = []
        self.accuracy: list[float] = []
        self.selected = np.zeros((0, 0), dtype=np.int64)
        self.n_steps = 0
        self.elapsed = 0.0
        self.n_selected = 0
        self.n_corrupted = 0
        self.recent_selected = 0
        self.recent_corrupted = 0
        self.class_counts = np.zeros(num_classes, dtype=np.int64)
        self.final_accuracy = float("nan")
        self.loss_sum: Tensor | float = 0.0
        self.loss_count = 0
        self._counted = 0  # rows of ``selected`` already in the counts
        self._device_rows: Tensor | None = None
        self._device_fill = 0

    # -- indices ----------------------------------------------------------------------------------------------
    def add(self, index: Tensor) -> None:
        """Record one step's selected indices (a CPU tensor goes straight into the array)."""
        if index.device.type == "cpu":
            self._put(index.numpy())
            return
        if self._device_rows is None or self._device_rows.shape[1] != index.numel():
            self._drain()
            self._device_rows = torch.empty((self.DEVICE_ROWS, index.numel()), dtype=torch.long, device=index.device)
        self._device_rows[self._device_fill] = index
        self._device_fill += 1
        if self._device_fill == self.DEVICE_ROWS:
            self._drain()

    def _put(self, rows: np.ndarray) -> None:
        rows = rows.reshape(-1, rows.shape[-1])
        need = self.n_steps + len(rows)
        if need > len(self.selected) or self.selected.shape[1] != rows.shape[1]:
            grown = np.zeros((max(64, 2 * len(self.selected), need), rows.shape[1]), dtype=np.int64)
            if self.n_steps:
                grown[: self.n_steps] = self.selected[: self.n_steps]
            self.selected = grown
        self.selected[self.n_steps : need] = rows
        self.n_steps = need

    def _drain(self) -> None:
        if self._device_fill:
            rows = self._device_rows[: self._device_fill].cpu().numpy()
            self._device_fill = 0
            self._put(rows)

    def flush(self) -> None:
        """Bring pending indices to the host and add the new rows to the corrupted and per-class counts."""
        self._drain()
        new = self.selected[self._counted : self.n_steps]
        if new.size and self._corrupted is not None:
            bad = int(self._corrupted[new].sum())
            self.n_selected += new.size
            self.n_corrupted += bad
            self.recent_selected += new.size
            self.recent_corrupted += bad
            if self._true_y is not None:
                self.class_counts += np.bincount(self._true_y[new].ravel(), minlength=self.num_classes)
        self._counted = self.n_steps

    @property
    def total_steps(self) -> int:
        """Steps recorded, including indices still waiting on the device."""
        return self.n_steps + self._device_fill

    @property
    def corrupted_share(self) -> float:
        return self.n_corrupted / max(self.n_selected, 1)

    def take_recent_share(self) -> float:
        """Corrupted share among the points selected since the previous call (then reset)."""
        share = self.recent_corrupted / self.recent_selected if self.recent_selected else float("nan")
        self.recent_selected = self.recent_corrupted = 0
        return share

    def sequence(self) -> np.ndarray:
        """The selected indices, one row per step."""
        self._drain()
        return self.selected[: self.n_steps].copy()

    # -- training loss ------------------------------------------------------------------------------------------
    def add_loss(self, loss: Tensor) -> None:
        """Add one step's loss to the block's sum on the loss's device (accumulated in place: no value to the host)."""
        if isinstance(self.loss_sum, Tensor):
            self.loss_sum.add_(loss.detach())
        else:  # the block's first step (or a sum restored from a checkpoint as a float): a tensor of its own
            self.loss_sum = loss.detach() + self.loss_sum
        self.loss_count += 1

    def take_loss(self) -> float | None:
        """Mean training loss since the previous call (one host transfer), or None when no step was added."""
        if not self.loss_count:
            return None
        mean = float(self.loss_sum) / self.loss_count
        self.loss_sum, self.loss_count = 0.0, 0
        return mean

    # -- checkpoint ---------------------------------------------------------------------------------------------
    _STATE = ("num_classes", "steps", "seconds", "accuracy", "n_steps", "elapsed", "n_selected", "n_corrupted",
              "recent_selected", "recent_corrupted", "final_accuracy", "loss_count")

    def state_dict(self) -> dict[str, Any]:
        self.flush()
        state = {k: (list(v) if isinstance(v, list) else v) for k, v in ((k, getattr(self, k)) for k in self._STATE)}
        state["loss_sum"] = float(self.loss_sum)
        state["selected"] = torch.from_numpy(self.sequence())  # checkpoints load tensors, not numpy arrays
        state["class_counts"] = torch.from_numpy(self.class_counts.copy())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k in self._STATE:
            if k in state:
                setattr(self, k, list(state[k]) if isinstance(state[k], list) else state[k])
        self.loss_sum = float(state.get("loss_sum", 0.0))
        selected = torch.as_tensor(state["selected"]).numpy().astype(np.int64)
        # a record checkpointed before its first step holds no rows (numpy cannot infer a width from nothing)
        self.selected = selected.reshape(self.n_steps, -1) if selected.size else np.zeros((0, 0), dtype=np.int64)
        self.class_counts = torch.as_tensor(state["class_counts"]).numpy().astype(np.int64)
        self._counted, self._device_fill = self.n_steps, 0


def _image_rows(x: Tensor) -> list:
    """An image tensor C×H×W in [0, 1] as nested uint8 lists (H×W for grey, H×W×C for colour)."""
    img = (x.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    if img.dim() == 3:
        img = img[0] if img.shape[0] == 1 else img.permute(1, 2, 0)
    return img.tolist()


@torch.no_grad()
def _live_losses(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    was = model.training
    model.eval()
    try:
        return per_point_loss(model(x), y)
    finally:
        model.train(was)


@torch.no_grad()
def accuracy_on(model: nn.Module, x: Tensor, y: Tensor, batch_size: int | None = None) -> float:
    """Accuracy of ``model`` (eval mode, restored after) on (x, y), in batches (default
    :func:`~workbench.lib.nn.inference_rows`); the count stays on the device."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    batch_size = batch_size or inference_rows(dev)
    hits = torch.zeros((), dtype=torch.long, device=dev)
    try:
        for s in range(0, int(y.shape[0]), batch_size):
            hits += (model(x[s:s + batch_size].to(dev)).argmax(-1) == y[s:s + batch_size].to(dev)).sum()
    finally:
        model.train(was)
    return int(hits) / max(int(y.shape[0]), 1)


def _sharded_accuracy(ctx: RunContext, model: nn.Module, x: Tensor, y: Tensor) -> float:
    """:func:`accuracy_on` with each rank counting its rows (``ctx.shard``) and the counts summed; itself in one
    process."""
    if ctx.world_size == 1:
        return accuracy_on(model, x, y)
    rows = ctx.shard(int(y.shape[0])).rows().to(y.device)
    hits = accuracy_on(model, x[rows.to(x.device)], y[rows]) * len(rows)
    return round(float(ctx.all_reduce_mean(hits)) * ctx.world_size) / max(int(y.shape[0]), 1)


def check_world(ctx: RunContext, **sizes: tuple[str, int]) -> None:
    """Under torchrun each batch size (``parameter=(what, size)``) must split evenly across the ranks (a clear
    error naming the parameter otherwise)."""
    from workbench.core.params import ConfigError

    for name, (what, value) in sizes.items():
        if ctx.world_size > 1 and value % ctx.world_size:
            raise ConfigError(f"parameter {name!r}: {what} = {value} must divide evenly across {ctx.world_size} "
                              "processes (each rank scores and trains an equal share)", name)


class _ScoreBuffer:
    """The selection scores of the last ``HISTOGRAM_STEPS`` steps (candidates and selected), in fixed buffers."""

    def __init__(self) -> None:
        self.cand: Tensor | None = None
        self.sel: Tensor | None = None
        self.fill = 0

    def add(self, scores: Tensor, position: Tensor) -> None:
        if self.cand is None or self.cand.shape[1] != scores.numel() or self.sel.shape[1] != position.numel():
            self.cand = torch.empty((HISTOGRAM_STEPS, scores.numel()), device=scores.device)
            self.sel = torch.empty((HISTOGRAM_STEPS, position.numel()), device=scores.device)
            self.fill = 0
        row = self.fill % HISTOGRAM_STEPS
        self.cand[row] = scores
        if scores.dtype == self.sel.dtype:
            torch.index_select(scores, 0, position, out=self.sel[row])  # straight into the buffer's row
        else:
            self.sel[row] = scores[position]
        self.fill += 1

    def take(self, step: int, bins: int = 30) -> dict[str, Any] | None:
        if not self.fill:
            return None
        m = min(self.fill, HISTOGRAM_STEPS)
        a, s = self.cand[:m].flatten().float().cpu(), self.sel[:m].flatten().float().cpu()
        self.fill = 0
        lo, hi = float(a.min()), float(a.max())
        if hi <= lo:
            hi = lo + 1e-6
        return {"step": step, "steps": m, "edges": torch.linspace(lo, hi, bins + 1).tolist(),
                "candidates": torch.histc(a, bins, lo, hi).tolist(), "selected": torch.histc(s, bins, lo, hi).tolist()}


class _Clock:
    """Training time of one method without its evaluations and views (CUDA work finished before reading)."""

    def __init__(self, rec: MethodRecord, device: torch.device) -> None:
        self.rec, self.device = rec, device
        self.base: float | None = None
        self.t0 = 0.0

    def tick(self) -> None:
        """At the end of a step: the time so far into ``rec.elapsed``."""
        now = time.perf_counter()
        if self.base is None:  # first step of this call (after a resume, ``rec.elapsed`` is restored by now)
            self.base, self.t0 = self.rec.elapsed, now
        self.rec.elapsed = self.base + (now - self.t0)

    def start(self) -> None:
        if self.base is None:
            self.base, self.t0 = self.rec.elapsed, time.perf_counter()

    def pause(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.tick()

    def resume(self) -> None:
        self.base, self.t0 = self.rec.elapsed, time.perf_counter()


def train_method(
    ctx: RunContext,
    cfg: GoldilocksConfig,
    label: str,
    selector: Selector,
    model: nn.Module,
    data: TrainingData,
    replicate: int = 0,
    spec: dict[str, Any] | None = None,
) -> MethodRecord:
    """Train ``model`` for ``cfg.steps`` selected batches; log ``<label>/...`` metrics and artifacts; with ``spec``
    (``build_model``'s arguments) save the trained model as ``label`` (``runs.load_model(run_id, label)``).

    A selector's random draws (Boltzmann sampling, MC dropout) at step t come from ``ctx.rng("select/<label>", t)``."""
    dev = ctx.device
    n_b = cfg.small_batch
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rec = MethodRecord(data.num_classes, data.corrupted.cpu().numpy(), data.true_y.cpu().numpy())
    ctx.track(**{f"model_{label}": model, f"opt_{label}": opt, f"record_{label}": rec})
    il_model = il_opt = None
    if cfg.update_irreducible and data.il_model is not None:
        il_model = copy.deepcopy(data.il_model)
        il_opt = torch.optim.AdamW(il_model.parameters(), lr=cfg.il_lr, weight_decay=cfg.weight_decay)
        ctx.track(**{f"il_model_{label}": il_model, f"il_opt_{label}": il_opt})
    # the same candidate draws for every method of one replicate
    candidates = ctx.batches(len(data), cfg.large_batch, name="candidates" + ("" if replicate == 0 else f"@{replicate}"))
    n_big = min(cfg.large_batch, len(data))
    check_world(ctx, large_batch=("n_B", n_big), percent_train=("n_b", n_b))
    shard = ctx.shard(n_big) if ctx.world_size > 1 else None  # this rank's rows of the global candidate batch
    x, y = data.x, data.y
    if data.eval_index is not None:
        eval_index = data.eval_index.to(data.x_test.device)
        x_eval, y_eval = data.x_test[eval_index], data.y_test[eval_index]
    else:
        x_eval, y_eval = data.x_test, data.y_test
    x_eval, y_eval = x_eval.to(dev), y_eval.to(dev)
    scores = _ScoreBuffer()
    clock = _Clock(rec, dev)
    pinned = dev.type == "cuda"
    log_every = max(1, min(LOG_EVERY, cfg.eval_every))
    model.train()
    for step in ctx.steps(cfg.steps, phase=f"train {label}"):
        clock.start()
        done = step + 1
        is_eval = done % cfg.eval_every == 0 or done == cfg.steps
        idx = next(candidates)
        # on CUDA through pinned memory: a copy from pageable memory would wait for the stream (a sync per step)
        idx = idx.pin_memory().to(dev, non_blocking=True) if pinned else idx.to(dev)
        xb, yb = x[idx], y[idx]  # the candidate batch, gathered once
        il = None
        if selector.uses_irreducible:
            il = _live_losses(il_model, xb, yb) if il_model is not None else data.il_table.on(dev)[idx]
        cand = Candidates(idx, xb, yb, il, shard)
        gen = ctx.rng(f"select/{label}", step) if selector.draws else None  # a stream only for the sampling ones
        with ctx.autocast():
            sel = selector.select(model, cand, n_b, step=step, generator=gen)
        view = None
        if is_eval:  # the candidate batch as the model that selected it saw it (not timed)
            clock.pause()
            whole = cand if shard is None else Candidates(cand.gather(idx), xb, yb)  # the global candidate batch
            view = _view_before_update(model, whole, sel, data, il_model, ctx)
            clock.resume()
        if shard is not None:  # this rank's share of the n_b selected points (gradients averaged in _sgd_step)
            mine = ctx.shard(n_b).take(sel.index)
            xs, ys = x[mine], y[mine]
        elif sel.position is not None:
            xs, ys = xb[sel.position], yb[sel.position]
        else:  # replay: indices without positions in the candidate batch
            xs, ys = x[sel.index], y[sel.index]
        loss = _sgd_step(model, opt, xs, ys, ctx)
        if il_opt is not None:
            _sgd_step(il_model, il_opt, xs, ys, ctx)
        rec.add(sel.index)
        rec.add_loss(loss)
        if sel.scores is not None and sel.position is not None:
            scores.add(sel.scores, sel.position)
        if done % log_every == 0 or is_eval:
            ctx.log(done, **{f"{label}/train/loss": ctx.all_reduce_mean(rec.take_loss())})
        clock.tick()
        if not is_eval:
            continue
        clock.pause()
        rec.flush()
        acc = _sharded_accuracy(ctx, model, x_eval, y_eval)
        rec.steps.append(done)
        rec.seconds.append(rec.elapsed)
        rec.accuracy.append(acc)
        metrics = {
            f"{label}/test_subset/accuracy": acc,
            f"{label}/time_s": rec.elapsed,
            f"{label}/select/corrupted_share": rec.corrupted_share,
            f"{label}/select/corrupted_share_recent": rec.take_recent_share(),
        }
        if data.probe is not None and (data.il_model is not None or il_model is not None):
            diag, hist = probe_metrics(model, il_model or data.il_model, data.probe, n_b / cfg.large_batch,
                                       il_cache=il_model is None)
            metrics.update({f"{label}/diag/{k}": v for k, v in diag.items()})
            ctx.artifact(f"rl_hist/{label}", {"step": done, **hist}, kind="json", step=done)
        if done == cfg.steps:  # the whole test set, once
            rec.final_accuracy = acc if data.eval_index is None else _sharded_accuracy(ctx, model, data.x_test,
                                                                                        data.y_test)
            metrics[f"{label}/test/accuracy"] = rec.final_accuracy
        ctx.log(done, **{k: v for k, v in metrics.items() if math.isfinite(v)})
        _report_view(ctx, cfg, label, done, view)
        hist = scores.take(done)
        if hist is not None:
            ctx.artifact(f"scores/{label}", hist, kind="json", step=done)
        clock.resume()
    opt.state.clear()  # this model trains no more: its AdamW moments need not stay in memory
    if not rec.total_steps:  # a phase finished before a resumed checkpoint: its artifacts are already stored
        return rec
    rec.flush()
    ctx.artifact(f"selected/{label}", rec.sequence(), kind="array")
    if spec is not None:
        ctx.save_model(label, model, spec, build=build_model)
    if rec.n_selected:
        data_counts = torch.bincount(data.true_y.cpu(), minlength=data.num_classes).float()
        ctx.artifact(f"class_share/{label}", [
            {"class": c, "selected_share": float(rec.class_counts[c]) / max(rec.n_selected, 1),
             "data_share": float(data_counts[c] / data_counts.sum())}
            for c in range(data.num_classes)
        ], kind="table")
    return rec


def _sgd_step(model: nn.Module, opt: torch.optim.Optimizer, xb: Tensor, yb: Tensor, ctx: RunContext) -> Tensor:
    """One optimiser step of ``model`` on the batch's cross-entropy (under the run's autocast); returns the loss."""
    if not model.training:  # ``Module.train`` walks every submodule: only when the mode must change
        model.train()
    with ctx.autocast():
        loss = F.cross_entropy(model(xb).float(), yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    ctx.average_gradients(model)  # under torchrun: the gradient of the mean over every rank's share
    opt.step()
    return loss


@torch.no_grad()
def _view_before_update(model: nn.Module, cand: Candidates, sel: Selection, data: TrainingData, il_model: nn.Module | None,
                        ctx: RunContext) -> dict[str, Any]:
    """Losses of the candidate batch and of the selected points under the model that selected them."""
    index = cand.index if sel.position is not None else torch.cat([cand.index, sel.index])
    x, y = data.x[index], data.y[index]
    if sel.train_loss is not None and sel.position is not None:
        train_loss = sel.train_loss
    else:
        was = model.training
        with ctx.autocast():
            train_loss = per_point_loss(model(x), y)
        model.train(was)
    il = _live_losses(il_model, x, y) if il_model is not None else data.il_table[index].to(train_loss.device)
    n = cand.index.numel()
    selected = torch.zeros(index.numel(), dtype=torch.bool)
    if sel.position is not None:
        selected[sel.position.cpu()] = True
        order = sel.position.cpu()
    else:
        selected[n:] = True
        order = torch.arange(n, index.numel())
    score = sel.scores.cpu() if sel.scores is not None else None
    return {"index": index.cpu(), "train_loss": train_loss.float().cpu(), "il": il.float().cpu(),
            "selected": selected, "order": order, "score": score, "x": x, "y": y.cpu(),
            "true_y": data.true_y[index.cpu()], "corrupted": data.corrupted[index.cpu()]}


def _report_view(ctx: RunContext, cfg: GoldilocksConfig, label: str, step: int, view: dict[str, Any] | None) -> None:
    """The live gallery (most recently selected points) and the large-batch loss scatter."""
    if view is None:
        return
    index, tl, il, score = view["index"], view["train_loss"], view["il"], view["score"]
    items = []
    for pos in view["order"][: cfg.gallery_size].tolist():
        items.append({
            "index": int(index[pos]),
            "image": _image_rows(view["x"][pos]),
            "label": int(view["y"][pos]),
            "true_label": int(view["true_y"][pos]),
            "corrupted": bool(view["corrupted"][pos]),
            "train_loss": float(tl[pos]),
            "irreducible_loss": float(il[pos]),
            "score": None if score is None or pos >= score.numel() else float(score[pos]),
        })
    ctx.artifact("gallery", {"method": label, "step": step, "items": items}, kind="json")
    ctx.artifact("scatter", {
        "method": label, "step": step, "index": index.tolist(), "train_loss": tl.tolist(),
        "irreducible_loss": il.tolist(), "selected": view["selected"].tolist(),
        "corrupted": view["corrupted"].tolist(),
    }, kind="json")
