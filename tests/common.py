"""Helpers shared by several test folders (import them: ``from tests.common import Staged, g``).

- ``_one_thread``: an autouse fixture; a folder's ``conftest.py`` (or a test module) imports it to run its tests
  on one torch thread: the test machine's cores are shared, and tiny models are slower with two threads fighting
  for them than with one.
- ``Staged``: a tiny staged classifier (stages + head), independent of ``workbench.lib.nn``, for exact checks of the
  mixing losses (NFM, NoisyMix).
- ``g(seed)``: a seeded CPU ``torch.Generator``.
- ``StopAfter(n)``: a run control that requests a stop once ``n`` steps (over all phases) are done.
- ``smoke_run(name)``: the test process's one uninterrupted smoke run of experiment ``name`` (default config, default
  store), shared by the contract and the method's own tests; ``smoke_group(name)`` marks the tests that use it and
  ``shared(group)`` a fixture that returns it, so that under pytest-xdist they all run on one worker and it is trained
  once (see ``pytest_collection_modifyitems`` in ``tests/conftest.py``).
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


class PauseAfter(Control):
    """Pauses itself once ``n`` steps are done (a live run, mid-way) and says so through ``reached``."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.reached = n, threading.Event()

    @property
    def paused(self) -> bool:
        if self.steps_done >= self.n and not self.reached.is_set():
            self._running.clear()
            self.reached.set()
        return super().paused


@dataclass
class SmokeRun:
    """A finished smoke run, the steps it took, and what each registered view returned (a figure, None, or the
    exception it raised) while the run was paused after its first step."""

    result: Any
    steps: int
    live: dict[str, object] = field(default_factory=dict)


_SMOKE_RUNS: dict[str, SmokeRun] = {}


def smoke_run(name: str) -> SmokeRun:
    """The one uninterrupted smoke run of experiment ``name`` in this test process (default config, default store),
    paused once after its first step so that every view is tried on the live run, then resumed to the end."""
    if name not in _SMOKE_RUNS:
        import workbench
        from widgets.views import views_for

        threads = torch.get_num_threads()
        ctl, live, out = PauseAfter(1), {}, {}
        worker = threading.Thread(target=lambda: out.setdefault(
            "res", workbench.run(name, smoke=True, progress=False, control=ctl)), daemon=True)
        worker.start()
        while not ctl.reached.wait(0.05) and worker.is_alive():
            pass
        if ctl.reached.is_set():
            for view in views_for(name):
                try:
                    live[view.title] = view(ctl.run_id)
                except Exception as err:  # noqa: BLE001 - recorded; the contract asserts there is none
                    live[view.title] = err
            ctl.resume()
        worker.join(600)
        torch.set_num_threads(threads)
        _SMOKE_RUNS[name] = SmokeRun(out["res"], ctl.steps_done, live)
    return _SMOKE_RUNS[name]


def smoke_group(name: str) -> pytest.MarkDecorator:
    """The xdist group of the tests that use ``smoke_run(name)``."""
    return pytest.mark.xdist_group(f"smoke-{name}")


def shared(group: str):
    """Decorates a fixture function (under ``@pytest.fixture``): the tests that use it join xdist group ``group``."""
    def mark(fn):
        fn.xdist_group = group
        return fn
    return mark


def smoke_notebook_problems(nb: Any) -> list[str]:
    """What is wrong with a notebook run in smoke mode (its outputs): errors, no injected ``smoke = True`` cell, a
    claim evaluated (a smoke run evaluates none), a table cut short by pandas' display limits. Shared by the
    headless run (tests/notebooks) and the run in JupyterLab (tests/browser/test_browser_notebooks.py)."""
    problems = [f"cell {i}: {o.get('ename')}: {o.get('evalue')}" for i, c in enumerate(nb.cells)
                for o in c.get("outputs", []) if o.get("output_type") == "error"]
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    if len(injected) != 1 or "smoke = True" not in injected[0].source:
        problems.append("no single injected `smoke = True` parameters cell")
    text = "".join(str(o.get("data", {}).get("text/html", "")) + str(o.get("text", ""))
                   for c in nb.cells for o in c.get("outputs", []))
    problems += [f"a smoke run shows an evaluated claim ({mark!r})" for mark in ("✔ holds", "✘ fails", "? inconclusive")
                 if mark in text]
    if "…" in text:
        problems.append("a table cut short by pandas' display limits (…)")
    return problems


def lab_runs_notebooks() -> bool:
    """True when tests/browser/test_browser_notebooks.py can run every notebook in JupyterLab (Chromium, Playwright
    and JupyterLab present): each notebook is then executed there, once, instead of headless as well."""
    import importlib.util
    import shutil

    chromium = Path(os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium"))
    return ((chromium.exists() or shutil.which("chromium") is not None)
            and all(importlib.util.find_spec(m) is not None for m in ("playwright", "jupyterlab")))
