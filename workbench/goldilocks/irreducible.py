"""The irreducible-loss model: trained on a holdout split, its per-point losses precomputed once.

Section 3 of Mindermann et al. (2022): the irreducible loss L[y|x; D_ho] is approximated by a model trained
on a holdout set D_ho only (Eq. 3 approximation (ii)); it is computed once before training the target model and
looked up by each point's index (the paper's "irreducible loss model is not updated" default). The paper keeps
the checkpoint with the lowest loss on the *training* set D, which is what :class:`IrreducibleTrainer` does.
"""
from __future__ import annotations

import copy
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset


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
def per_point_losses(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 1024) -> Tensor:
    """Cross-entropy of every point under ``model`` in eval mode (float32, on CPU), in input order."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    try:
        for start in range(0, y.shape[0], batch_size):
            xb = x[start : start + batch_size].to(device)
            yb = y[start : start + batch_size].to(device)
            out.append(F.cross_entropy(model(xb).float(), yb, reduction="none").cpu())
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


class IrreducibleLossTable:
    """Precomputed irreducible losses of the training part, looked up by a point's index."""

    def __init__(self, losses: Tensor) -> None:
        if losses.dim() != 1:
            raise ValueError(f"irreducible losses must be 1-D (one per training point), got {tuple(losses.shape)}")
        self.losses = losses.float().cpu()

    @classmethod
    def compute(cls, model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 1024) -> "IrreducibleLossTable":
        return cls(per_point_losses(model, x, y, batch_size))

    def __len__(self) -> int:
        return int(self.losses.numel())

    def __getitem__(self, index: Tensor) -> Tensor:
        return self.losses[index.cpu()]

    def state_dict(self) -> dict:
        return {"losses": self.losses}

    def load_state_dict(self, state: dict) -> None:
        self.losses = state["losses"]


class IrreducibleTrainer:
    """Train the irreducible-loss model on the holdout set, keeping the checkpoint with the lowest mean loss
    on the training part. Resumable: ``state_dict`` holds the best loss and weights so far.

    Usage: ``for step in steps: trainer.step(xb, yb); if step % every == 0: trainer.evaluate()`` then
    ``trainer.restore_best()``.
    """

    def __init__(self, model: nn.Module, x_train: Tensor, y_train: Tensor, lr: float = 1e-3, weight_decay: float = 0.01) -> None:
        self.model = model
        self.x_train, self.y_train = x_train, y_train
        self.opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        self.best_loss = float("inf")
        self.best_state: dict | None = None
        self.history: list[float] = []

    def step(self, x: Tensor, y: Tensor) -> float:
        self.model.train()
        loss = F.cross_entropy(self.model(x).float(), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return float(loss.detach())

    def evaluate(self) -> float:
        """Mean loss on the training part; remember the weights when it is the best so far."""
        loss = float(per_point_losses(self.model, self.x_train, self.y_train).mean())
        self.history.append(loss)
        if loss < self.best_loss:
            self.best_loss = loss
            self.best_state = copy.deepcopy(self.model.state_dict())
        return loss

    def restore_best(self) -> nn.Module:
        """Load the best weights; the training part is not needed any more (its memory is released)."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        self.x_train = self.y_train = None
        return self.model

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "best_loss": self.best_loss,
            "best_state": self.best_state,
            "history": list(self.history),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.best_loss = state["best_loss"]
        self.best_state = state["best_state"]
        self.history = list(state["history"])


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
