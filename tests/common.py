"""Helpers shared by several test folders (import them: ``from tests.common import Staged, g``).

- ``_one_thread``: an autouse fixture; a folder's ``conftest.py`` (or a test module) imports it to run its tests
  on one torch thread: the test machine's cores are shared, and tiny models are slower with two threads fighting
  for them than with one.
- ``Staged``: a tiny staged classifier (stages + head), independent of ``workbench.lib.nn``, for exact checks of the
  mixing losses (NFM, NoisyMix).
- ``g(seed)``: a seeded CPU ``torch.Generator``.
- ``StopAfter(n)``: a run control that requests a stop once ``n`` steps (over all phases) are done.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from workbench.core.engine import Control


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Staged(nn.Module):
    """A tiny staged classifier (stages + head), independent of workbench.lib.nn, for exact checks."""

    def __init__(self, dims=(6, 5, 4), classes: int = 3, affine_only: bool = False, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        layers = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers.append(nn.Linear(a, b) if affine_only else nn.Sequential(nn.Linear(a, b), nn.Tanh()))
        self.stages = nn.ModuleList(layers)
        self.head = nn.Linear(dims[-1], classes)

    def forward(self, x):
        h = x
        for s in self.stages:
            h = s(h)
        return self.head(h)


def g(seed=0):
    return torch.Generator().manual_seed(seed)



class StopAfter(Control):
    """A run control (``workbench.run(..., control=StopAfter(n))``) that requests a stop once ``n`` steps, counted
    over all phases, are done."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    @property
    def stop_requested(self) -> bool:  # type: ignore[override]
        if self.steps_done >= self.n:
            self.reason = self.reason or f"test stop after {self.n} steps"
            return True
        return super().stop_requested
