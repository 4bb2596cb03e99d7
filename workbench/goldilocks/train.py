"""One training run of the target model with online batch selection (Algorithm 1 of Mindermann et al. 2022).

Each step: draw n_B candidates, look up (or compute) their irreducible losses, let the selector keep n_b of
them, take one AdamW step on those. Everything is reported through the engine's ``ctx`` under the prefix
``<label>/`` so several methods can share one run (a comparison).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.context import RunContext

from .irreducible import IrreducibleLossTable
from .scores import per_point_loss
from .selection import Candidates, Selection, Selector


@dataclass
class TrainingData:
    """The training part (on the training device), its noise record, the test split and the irreducible losses."""

    x: Tensor
    y: Tensor  # labels the learner sees (possibly corrupted)
    true_y: Tensor  # on CPU
    corrupted: Tensor  # bool, on CPU
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    il_table: IrreducibleLossTable
    il_model: nn.Module | None = None  # the trained irreducible-loss model (needed to keep updating it)

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class MethodRecord:
    """What one method did, kept in memory for the speedup table and tracked for resume.

    The selected indices live in one array grown by doubling, not in a tensor per step: thousands of small
    long-lived allocations interleaved with each evaluation's temporaries fragment the heap, and the process
    then grew by megabytes per evaluation (measured: flat with this layout).
    """

    num_classes: int
    steps: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    selected: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    n_steps: int = 0
    elapsed: float = 0.0
    n_selected: int = 0
    n_corrupted: int = 0
    class_counts: Tensor | None = None

    def add(self, index: Tensor, corrupted: Tensor, true_y: Tensor) -> None:
        index = index.cpu()
        row = index.numpy()
        if self.n_steps == len(self.selected):
            grown = np.zeros((max(64, 2 * len(self.selected)), len(row)), dtype=np.int64)
            if self.n_steps:
                grown[: self.n_steps] = self.selected[: self.n_steps]
            self.selected = grown
        self.selected[self.n_steps] = row
        self.n_steps += 1
        self.n_selected += index.numel()
        self.n_corrupted += int(corrupted[index].sum())
        counts = torch.bincount(true_y[index], minlength=self.num_classes)
        self.class_counts = counts if self.class_counts is None else self.class_counts + counts

    @property
    def corrupted_share(self) -> float:
        return self.n_corrupted / max(self.n_selected, 1)

    def sequence(self) -> np.ndarray:
        """The selected indices, one row per step."""
        return self.selected[: self.n_steps].copy()

    def state_dict(self) -> dict[str, Any]:
        return {**{k: (list(v) if isinstance(v, list) else v) for k, v in self.__dict__.items()},
                "selected": torch.from_numpy(self.sequence())}  # checkpoints load tensors, not numpy arrays

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, list(v) if isinstance(v, list) else v)
        self.selected = torch.as_tensor(self.selected).numpy().astype(np.int64).reshape(self.n_steps, -1)


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


def _histogram(all_scores: list[Tensor], sel_scores: list[Tensor], step: int, bins: int = 30) -> dict[str, Any]:
    a = torch.cat(all_scores).float().cpu()
    s = torch.cat(sel_scores).float().cpu()
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        hi = lo + 1e-6
    edges = torch.linspace(lo, hi, bins + 1)
    return {
        "step": step,
        "edges": edges.tolist(),
        "candidates": torch.histc(a, bins, lo, hi).tolist(),
        "selected": torch.histc(s, bins, lo, hi).tolist(),
    }


def train_method(
    ctx: RunContext,
    cfg: Any,
    label: str,
    selector: Selector,
    model: nn.Module,
    data: TrainingData,
    replicate: int = 0,
) -> MethodRecord:
    """Train ``model`` for ``cfg.steps`` selected batches; log ``<label>/...`` metrics and artifacts."""
    from workbench.metrics import evaluate

    dev = ctx.device
    n_b = cfg.small_batch
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rec = MethodRecord(data.num_classes)
    ctx.track(**{f"model_{label}": model, f"opt_{label}": opt, f"record_{label}": rec})
    il_model = il_opt = None
    if cfg.update_irreducible and data.il_model is not None:
        il_model = copy.deepcopy(data.il_model)
        il_opt = torch.optim.AdamW(il_model.parameters(), lr=cfg.il_lr, weight_decay=cfg.weight_decay)
        ctx.track(**{f"il_model_{label}": il_model, f"il_opt_{label}": il_opt})
    # the same candidate draws for every method of one replicate
    candidates = ctx.batches(len(data), cfg.large_batch, name="candidates" + ("" if replicate == 0 else f"@{replicate}"))
    gen = ctx.generator(f"select/{label}")  # checkpointed by the context
    cand_scores: list[Tensor] = []
    sel_scores: list[Tensor] = []
    for step in ctx.steps(cfg.steps, phase=f"train {label}"):
        done = step + 1
        is_eval = done % cfg.eval_every == 0 or done == cfg.steps
        idx = next(candidates).to(dev)
        t0 = time.perf_counter()
        il = None
        if selector.uses_irreducible:
            il = _live_losses(il_model, data.x[idx], data.y[idx]) if il_model is not None else data.il_table[idx].to(dev)
        cand = Candidates(idx, data.x[idx], data.y[idx], il)
        with ctx.autocast():
            sel = selector.select(model, cand, n_b, step=step, generator=gen)
        if is_eval and dev.type == "cuda":
            torch.cuda.synchronize()  # the view below is not timed: finish the selection's kernels first
        elapsed = time.perf_counter() - t0
        view = _view_before_update(model, cand, sel, data, il_model, ctx) if is_eval else None
        t0 = time.perf_counter()
        xb, yb = data.x[sel.index], data.y[sel.index]
        loss = _sgd_step(model, opt, xb, yb, ctx)
        if il_opt is not None:
            _sgd_step(il_model, il_opt, xb, yb, ctx)
        loss_value = float(loss.detach())  # synchronises CUDA before the clock stops
        rec.elapsed += elapsed + time.perf_counter() - t0
        rec.add(sel.index, data.corrupted, data.true_y)
        if sel.scores is not None:
            cand_scores.append(sel.scores.detach().cpu())
            sel_scores.append(sel.scores.detach().cpu()[sel.position.cpu()])
        ctx.log(done, **{f"{label}/train/loss": loss_value})
        if is_eval:
            acc = evaluate(model, data.x_test, data.y_test, batch_size=1024, device=dev).accuracy
            rec.steps.append(done)
            rec.seconds.append(rec.elapsed)
            rec.accuracy.append(acc)
            ctx.log(done, **{
                f"{label}/test/accuracy": acc,
                f"{label}/time_s": rec.elapsed,
                f"{label}/select/corrupted_share": rec.corrupted_share,
            })
            _report_view(ctx, cfg, label, done, view)
            if cand_scores:
                ctx.artifact(f"scores/{label}", _histogram(cand_scores, sel_scores, done), kind="json", step=done)
                cand_scores, sel_scores = [], []
    if not rec.n_steps:  # a phase finished before a resumed checkpoint: its artifacts are already stored
        return rec
    ctx.artifact(f"selected/{label}", rec.sequence(), kind="array")
    if rec.class_counts is not None:
        data_counts = torch.bincount(data.true_y.cpu(), minlength=data.num_classes).float()
        ctx.artifact(f"class_share/{label}", [
            {"class": c, "selected_share": float(rec.class_counts[c]) / max(rec.n_selected, 1),
             "data_share": float(data_counts[c] / data_counts.sum())}
            for c in range(data.num_classes)
        ], kind="table")
    return rec


def _sgd_step(model: nn.Module, opt: torch.optim.Optimizer, xb: Tensor, yb: Tensor, ctx: RunContext) -> Tensor:
    """One optimiser step of ``model`` on the batch's cross-entropy (under the run's autocast); returns the loss."""
    model.train()
    with ctx.autocast():
        loss = F.cross_entropy(model(xb).float(), yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
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


def _report_view(ctx: RunContext, cfg: Any, label: str, step: int, view: dict[str, Any] | None) -> None:
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
