"""The irreducible-loss model: trained on a holdout split, its per-point losses precomputed once.

Section 3 of Mindermann et al. (2022): the irreducible loss L[y|x; D_ho] is approximated by a model trained
on a holdout set D_ho only (Eq. 3 approximation (ii)); it is computed once before training the target model and
looked up by each point's index (the paper's "irreducible loss model is not updated" default). The paper keeps
the checkpoint with the lowest loss on the *training* set D, which is what :class:`IrreducibleTrainer` does.
"""
from __future__ import annotations

import copy
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from workbench.lib.nn import inference_rows

from .scores import per_point_loss


class IndexedDataset(Dataset):
    """A tensor data set that yields ``(index, x, y)`` so per-point tables can be looked up by index."""

    def __init__(self, x: Tensor, y: Tensor) -> None:
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x has {x.shape[0]} rows but y has {y.shape[0]}")
        self.x, self.y = x, y

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __getitem__(self, index: int) -> tuple[int, Tensor, Tensor]:
        return index, self.x[index], self.y[index]

    def batch(self, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Vectorised ``__getitem__`` for a LongTensor of indices."""
        index = index.to(self.y.device)
        return index, self.x[index], self.y[index]


def split_holdout(n: int, holdout_fraction: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Deterministic split of ``range(n)`` into (training part, holdout part), both sorted.

    The holdout part has round(holdout_fraction·n) points; both parts are non-empty.
    """
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"parameter 'holdout_fraction' = {holdout_fraction!r} is out of range; allowed range (0, 1)")
    m = int(round(holdout_fraction * n))
    if not 0 < m < n:
        raise ValueError(f"parameter 'holdout_fraction' = {holdout_fraction} leaves an empty part of {n} points")
    perm = torch.randperm(n, generator=generator)
    return perm[m:].sort().values, perm[:m].sort().values


@torch.no_grad()
def per_point_losses(model: nn.Module, x: Tensor, y: Tensor, batch_size: int | None = None) -> Tensor:
    """Cross-entropy of every point under ``model`` in eval mode (float32, on CPU), in input order."""
    return predict_points(model, x, y, batch_size)[0]


@torch.no_grad()
def predict_points(model: nn.Module, x: Tensor, y: Tensor, batch_size: int | None = None) -> tuple[Tensor, Tensor]:
    """(cross-entropy of every point, softmax probabilities N×C) under ``model`` in eval mode, float32 on CPU,
    in batches of ``batch_size`` (default :func:`~workbench.lib.nn.inference_rows`; the model's mode is restored)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    batch_size = batch_size or inference_rows(device)
    losses, probs = [], []
    try:
        for start in range(0, y.shape[0], batch_size):
            xb = x[start : start + batch_size].to(device)
            yb = y[start : start + batch_size].to(device)
            logits = model(xb).float()
            losses.append(per_point_loss(logits, yb).cpu())
            probs.append(logits.softmax(-1).cpu())
    finally:
        model.train(was_training)
    if not losses:
        return torch.zeros(0), torch.zeros(0, 0)
    return torch.cat(losses), torch.cat(probs)


class IrreducibleLossTable:
    """Precomputed irreducible losses of the training part, looked up by a point's index.

    ``on(device)`` gives the table on the training device, copied once (and again only when the losses are
    replaced, e.g. restored from a checkpoint), so a step's lookup is one gather on the device.
    """

    def __init__(self, losses: Tensor) -> None:
        if losses.dim() != 1:
            raise ValueError(f"irreducible losses must be 1-D (one per training point), got {tuple(losses.shape)}")
        self.losses = losses

    @property
    def losses(self) -> Tensor:
        return self._losses

    @losses.setter
    def losses(self, value: Tensor) -> None:
        self._losses = value.float().cpu()
        self._on: Tensor | None = None

    @classmethod
    def compute(cls, model: nn.Module, x: Tensor, y: Tensor, batch_size: int | None = None) -> "IrreducibleLossTable":
        return cls(per_point_losses(model, x, y, batch_size))

    def __len__(self) -> int:
        return int(self._losses.numel())

    def __getitem__(self, index: Tensor) -> Tensor:
        return self._losses[index.cpu()]

    def on(self, device: torch.device | str) -> Tensor:
        """The whole table on ``device`` (cached)."""
        device = torch.device(device)
        if self._on is None or self._on.device != device:
            self._on = self._losses if device.type == "cpu" else self._losses.to(device)
        return self._on

    def state_dict(self) -> dict:
        return {"losses": self._losses}

    def load_state_dict(self, state: dict) -> None:
        self.losses = state["losses"]


class IrreducibleTrainer:
    """Train the irreducible-loss model on the holdout set, keeping the checkpoint with the lowest mean loss
    on the training part. Resumable: ``state_dict`` holds the best loss and weights so far.

    Usage: ``for step in steps: trainer.step(xb, yb); if step % every == 0: trainer.evaluate()`` then
    ``trainer.restore_best()``.
    """

    def __init__(self, model: nn.Module, x_train: Tensor, y_train: Tensor, lr: float = 1e-3, weight_decay: float = 0.01,
                 sync: Callable[[nn.Module], None] | None = None) -> None:
        self.model = model
        self.sync = sync  # under torchrun: average the gradients over the ranks (data-parallel holdout batches)
        self.x_train, self.y_train = x_train, y_train
        self.opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        self.best_loss = float("inf")
        self.best_state: dict | None = None
        self.history: list[float] = []
        self.best_at = 0  # 1-based number of the evaluation that gave the best loss (0: none yet)

    def step(self, x: Tensor, y: Tensor) -> float:
        self.model.train()
        loss = F.cross_entropy(self.model(x).float(), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.sync is not None:
            self.sync(self.model)
        self.opt.step()
        return float(loss.detach())

    def evaluate(self) -> float:
        """Mean loss on the training part; remember the weights when it is the best so far."""
        loss = float(per_point_losses(self.model, self.x_train, self.y_train).mean())
        self.history.append(loss)
        if loss < self.best_loss:
            self.best_loss = loss
            self.best_state = copy.deepcopy(self.model.state_dict())
            self.best_at = len(self.history)
        return loss

    @property
    def passed_best(self) -> bool:
        """Whether the loss on the training part rose after its best evaluation: the budget reached the early-
        stopping point (the paper trains the irreducible-loss model to convergence and keeps the best
        checkpoint). False while the last evaluation is still the best: more steps would lower it further."""
        return 0 < self.best_at < len(self.history)

    def restore_best(self) -> nn.Module:
        """Load the best weights and release what only training needed: the training part, the optimizer's
        moments and the copy of the best weights (the model now holds them)."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        self.release()
        return self.model

    def release(self) -> None:
        """Drop the references to the training part, the optimizer state and the best-weights copy."""
        self.x_train = self.y_train = None
        self.best_state = None
        self.opt.state.clear()

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "best_loss": self.best_loss,
            "best_state": self.best_state,
            "history": list(self.history),
            "best_at": self.best_at,
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.best_loss = state["best_loss"]
        self.best_state = state["best_state"]
        self.history = list(state["history"])
        self.best_at = int(state.get("best_at", 0))


def fit_irreducible(
    trainer: IrreducibleTrainer,
    x_holdout: Tensor,
    y_holdout: Tensor,
    steps: Iterable[int],
    batch_size: int,
    generator: torch.Generator,
    eval_every: int,
) -> nn.Module:
    """Plain loop over ``steps`` (a range or an engine step iterator): minibatch AdamW on the holdout set,
    evaluate on the training part every ``eval_every`` steps and at the end, restore the best checkpoint."""
    n = y_holdout.shape[0]
    device = next(trainer.model.parameters()).device
    last = None
    for step in steps:
        idx = torch.randint(n, (min(batch_size, n),), generator=generator)
        trainer.step(x_holdout[idx].to(device), y_holdout[idx].to(device))
        last = step
        if (step + 1) % eval_every == 0:
            trainer.evaluate()
    if last is not None and (last + 1) % eval_every != 0:
        trainer.evaluate()
    return trainer.restore_best()
