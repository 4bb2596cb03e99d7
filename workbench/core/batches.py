"""Deterministic, resumable index batches (the engine's sampler)."""
from __future__ import annotations

import torch


class IndexBatches:
    """Endless batches of indices into ``range(n)``, reshuffled each epoch from ``seed + epoch``.

    The position is part of ``state_dict`` so a resumed run draws exactly the batches an
    uninterrupted one would. With ``world_size > 1`` every rank draws the same global batch and keeps
    its shard ``batch[rank::world_size]`` (DistributedDataParallel then averages the gradients).
    """

    def __init__(self, n: int, batch_size: int, *, seed: int = 0, shuffle: bool = True, drop_last: bool = True,
                 rank: int = 0, world_size: int = 1):
        if n < 1:
            raise ValueError(f"IndexBatches: n = {n} must be ≥ 1")
        if batch_size < 1:
            raise ValueError(f"IndexBatches: batch_size = {batch_size} must be ≥ 1")
        self.n, self.batch_size, self.seed, self.shuffle = n, min(batch_size, n), seed, shuffle
        self.drop_last, self.rank, self.world_size = drop_last, rank, world_size
        self.epoch, self.position = 0, 0
        self._order: torch.Tensor | None = None

    def _permutation(self) -> torch.Tensor:
        if self._order is None:
            if self.shuffle:
                gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
                self._order = torch.randperm(self.n, generator=gen)
            else:
                self._order = torch.arange(self.n)
        return self._order

    def __iter__(self) -> "IndexBatches":
        return self

    def __next__(self) -> torch.Tensor:
        order = self._permutation()
        end = self.position + self.batch_size
        if end > self.n and (self.drop_last or self.position >= self.n):
            self.epoch, self.position, self._order = self.epoch + 1, 0, None
            return next(self)
        batch = order[self.position:end]
        self.position = end
        return batch[self.rank::self.world_size] if self.world_size > 1 else batch

    @property
    def steps_per_epoch(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position, self._order = int(state["epoch"]), int(state["position"]), None
