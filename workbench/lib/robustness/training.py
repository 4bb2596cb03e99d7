"""One training step of a robustness recipe, with its batch prepared one step ahead.

A :class:`Recipe` is a loss ``loss(model, x, y, generator, *views) -> (loss, logits)`` and, for the AugMix
recipes, ``views(x, generator) -> tuple of tensors`` (the augmented views of the batch, computed on the CPU).
:class:`RecipeTrainer` runs a recipe's steps: it gathers the batch, applies the standard augmentation
(random crop + flip, when asked), computes the views, and does all of that for step ``s + 1`` in a worker
thread while step ``s`` trains (the papers' code does it in ``DataLoader`` workers), so the AugMix chains cost
no wall time when a core is free. Every random draw of the preparation comes from a stateless generator
``rng(name, step)`` (``ctx.rng`` in a run: derived from the run's seed, the name and the step), so a prefetched batch
equals the one an unprefetched, stopped or resumed run prepares; the recipe's own draws (λ, π, k, noise) come from
its checkpointed generator (``ctx.generator``) in the main thread.

Under torchrun (a :class:`~workbench.core.context.Shard` of the global batch) each rank prepares and trains its rows
of the global batch: every draw (crop/flip, AugMix, λ, π, k, noise) is made for the global batch from the same
stream on every rank and sliced, mixing partners come from every rank, and ``sync`` (``ctx.average_gradients``)
averages the gradients after the backward pass, so the ranks together take the step one process takes.
"""
from __future__ import annotations

import contextlib
import copy
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Iterator, NamedTuple, Union

import torch
from torch import Tensor, nn

from workbench.core.context import Shard
from workbench.lib.robustness.inputs import crop_flip
from workbench.lib.robustness.params import AUGMENT

__all__ = ["Recipe", "as_recipe", "Prepared", "BatchMaker", "RecipeTrainer", "AUGMENT", "StepRng"]

#: ``rng(name, step)``: a fresh generator that depends only on the name and the step (``ctx.rng`` in a run)
StepRng = Callable[[str, int], torch.Generator]


@dataclass(frozen=True)
class Recipe:
    """How a recipe trains: ``loss(model, x, y, generator, *views)`` and the views it needs (None: none)."""

    loss: Callable[..., "tuple[Tensor, Tensor]"]
    views: Callable[[Tensor, torch.Generator], "tuple[Tensor, ...]"] | None = None

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator,
                 *views: Tensor, shard: Shard | None = None) -> "tuple[Tensor, Tensor]":
        if shard is None:
            return self.loss(model, x, y, generator, *views)
        return self.loss(model, x, y, generator, *views, shard=shard)


def as_recipe(recipe: Union[Recipe, Callable[..., Any]]) -> Recipe:
    """A :class:`Recipe`; a plain ``loss_fn(model, x, y, generator)`` becomes one without views."""
    return recipe if isinstance(recipe, Recipe) else Recipe(loss=recipe)


class Prepared(NamedTuple):
    """One step's CPU inputs: the (augmented) batch, its labels and the recipe's views."""

    x: Tensor
    y: Tensor
    views: tuple[Tensor, ...]


class BatchMaker:
    """``make(step, idx)``: gather ``x[idx]``, crop/flip it (``rng("robustness/augment", step)``: the same draws
    for every recipe at a step), then the recipe's views (``rng("robustness/<name>/views", step)``)."""

    def __init__(self, x: Tensor, y: Tensor, recipe: Recipe, *, rng: StepRng, name: str, augment: str = "none",
                 shard: Shard | None = None):
        if augment not in AUGMENT:
            raise ValueError(f"augment must be one of {', '.join(AUGMENT)}, got {augment!r}")
        if augment != "none" and x.dim() != 4:
            raise ValueError("augment needs images (N×C×H×W)")
        self.x, self.y, self.recipe, self.rng, self.name, self.augment = x, y, recipe, rng, name, augment
        self.shard = shard  # idx is this rank's rows of the global batch: draws for the global batch, sliced

    def __call__(self, step: int, idx: Tensor) -> Prepared:
        xb, yb = self.x[idx], self.y[idx]
        if self.augment != "none":
            xb = crop_flip(xb, self.rng("robustness/augment", step), flip=self.augment == "crop_flip",
                           shard=self.shard)
        views: tuple[Tensor, ...] = ()
        if self.recipe.views is not None:
            gen = self.rng(f"robustness/{self.name}/views", step)
            views = tuple(self.recipe.views(xb, gen) if self.shard is None else
                          self.recipe.views(xb, gen, shard=self.shard))
        return Prepared(xb, yb, views)


class _Prefetcher:
    """Runs ``make(step, idx)`` for the next step in one worker thread; ``get`` returns the prefetched result
    when it was made for the same step and indices, and computes it now otherwise."""

    def __init__(self, make: Callable[[int, Tensor], Prepared], enabled: bool):
        self.make = make
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recipe-prefetch") if enabled else None
        self.pending: tuple[int, Tensor, Future] | None = None

    def get(self, step: int, idx: Tensor) -> Prepared:
        pending, self.pending = self.pending, None
        if pending is not None:
            p_step, p_idx, future = pending
            result = future.result()
            if p_step == step and torch.equal(p_idx, idx):
                return result
        return self.make(step, idx)

    def ahead(self, step: int, idx: Tensor) -> None:
        if self.pool is not None:
            self.pending = (step, idx, self.pool.submit(self.make, step, idx))

    def drop(self) -> None:
        """Wait for and forget the pending batch (so that nothing runs in the background afterwards)."""
        if self.pending is not None:
            self.pending[2].result()
            self.pending = None

    def close(self) -> None:
        self.pending = None
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


def _peek(batches: Iterator[Tensor]) -> Tensor:
    """The next batch of a resumable batch stream, without advancing it (a shallow copy draws it)."""
    return next(copy.copy(batches))


class RecipeTrainer:
    """The steps of one recipe: ``loss = trainer.step(step)`` does one optimiser step (batch from ``batches``,
    prepared ahead when ``prefetch``) and returns the detached loss; ``close()`` stops the worker."""

    def __init__(self, name: str, recipe: Union[Recipe, Callable[..., Any]], model: nn.Module,
                 optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor, batches: Iterator[Tensor],
                 generator: torch.Generator, *, rng: StepRng, total: int, augment: str = "none",
                 scheduler: Any = None, device: torch.device | str = "cpu",
                 autocast: Callable[[], ContextManager[Any]] = contextlib.nullcontext, prefetch: bool = True,
                 shard: Shard | None = None, sync: Callable[[nn.Module], None] | None = None):
        self.recipe = as_recipe(recipe)
        self.model, self.optimizer, self.scheduler, self.batches = model, optimizer, scheduler, batches
        self.generator, self.total, self.device, self.autocast = generator, total, torch.device(device), autocast
        self.shard, self.sync = shard, sync
        self.prefetcher = _Prefetcher(BatchMaker(x, y, self.recipe, rng=rng, name=name, augment=augment, shard=shard),
                                      prefetch)

    def step(self, step: int) -> Tensor:
        idx = next(self.batches)
        batch = self.prefetcher.get(step, idx)
        if step + 1 < self.total:
            self.prefetcher.ahead(step + 1, _peek(self.batches))
        dev, nb = self.device, self.device.type == "cuda"
        xb, yb = batch.x.to(dev, non_blocking=nb), batch.y.to(dev, non_blocking=nb)
        views = tuple(v.to(dev, non_blocking=nb) for v in batch.views)
        with self.autocast():
            loss, _ = self.recipe(self.model, xb, yb, self.generator, *views, shard=self.shard)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.sync is not None:
            self.sync(self.model)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return loss.detach()

    def drop_prefetched(self) -> None:
        self.prefetcher.drop()

    def close(self) -> None:
        self.prefetcher.close()
