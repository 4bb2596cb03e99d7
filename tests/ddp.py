"""One ``torchrun --nproc-per-node 2`` launch (gloo, CPU) for the whole suite: every distributed experiment's
``ddp_smoke`` setting (with the richer overrides below), every refusing experiment's refusal and the unit checks of
sharded computations, all in ``tests/contract/ddp_driver.py``. A launch costs about 10 CPU-seconds before it runs
anything (three processes importing torch), so the contract test and the methods' own distributed tests read this
one launch (the session fixture ``ddp`` in tests/conftest.py) and each compares with a one-process run made here,
once per experiment."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import workbench
from workbench import runs
from workbench.store.store import Store

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "tests" / "contract" / "ddp_driver.py"
#: overrides of ``ddp_smoke`` that reach more of each algorithm under two ranks than its plain smoke setting does
OVERRIDES: dict[str, dict[str, Any]] = {
    # every recipe kind (plain, input/manifold mixing with noise, AugMix views, NoisyMix) with crop/flip and the
    # corruption benchmark (rank 0 builds the DATASET-C cache)
    "robustness_compare": {"variants": ["baseline", "nfm", "augmix", "noisymix"], "corruption_set": "standard"},
    # deterministic top-k (rho_loss), Gumbel sampling (boltzmann), MC-dropout masks (bald), uniform and rho_loss's
    # replay; the irreducible-loss model trains data-parallel and keeps training on the selected points
    "goldilocks": {"methods": ["uniform", "rho_loss", "boltzmann", "bald"], "seeds": 1, "update_irreducible": True},
    # crop/flip augmentation drawn for the global batch, two evaluations
    "classify": {"steps": 20, "width": 64, "batch_size": 64, "lr": 0.3, "eval_every": 10, "augment": True,
                 "seed": 7},
}
#: runs beside each experiment's own (label → experiment, overrides of its ``ddp_smoke``)
EXTRA: dict[str, tuple[str, dict[str, Any]]] = {
    # KTO with the reference run every step: a row's mismatched completion (z₀'s pairs) may sit on the other rank
    "kto/live": ("kto", {"method": "kto", "reference_cache": False}),
}
#: runs stopped through the store at a step and resumed under the same launch (label of :func:`jobs` → the step
#: the stop is asked at, counted over the run's phases): every distributed experiment, checkpointed every 5 steps
STOP_RESUME: dict[str, int] = {"classify": 7, "nfm": 2, "noisymix": 2, "robustness_compare": 2, "goldilocks": 3,
                               "kto": 3, "sdebnn": 3, "ls4": 3, "cascades": 3, "nft": 3}
#: the driver's unit checks (tests/contract/ddp_driver.py UNITS, or "module:function" of a method's tests)
UNITS = ["losses", "inputs", "selection", "tests.kto.ddp_units:unit_z0", "tests.kto.ddp_units:unit_step"]
#: metrics that measure time, not the computation (they differ between any two runs)
TIMING = re.compile(r"(second|time|wall|elapsed|per_s\b|/speed|throughput)")


def _ours(exp: Any) -> bool:
    """A built-in or plugin experiment, not one a test module registers."""
    path = getattr(sys.modules.get(exp.run.__module__), "__file__", "") or ""
    return not Path(path).resolve().is_relative_to(ROOT / "tests")


def distributed() -> list[str]:
    return sorted(n for n, e in workbench.experiments().items() if _ours(e) and e.distributed)


def refusing() -> list[str]:
    return sorted(n for n, e in workbench.experiments().items() if _ours(e) and not e.distributed)


def jobs() -> dict[str, tuple[str, dict[str, Any]]]:
    """label → (experiment, overrides): every distributed experiment under its own name, then :data:`EXTRA`."""
    return {**{name: (name, OVERRIDES.get(name, {})) for name in distributed()}, **EXTRA}


def config(label: str) -> dict[str, Any]:
    """The setting both the two-rank and the one-process run of ``label`` use (smoke plus its overrides)."""
    name, overrides = jobs()[label]
    return {**workbench.get(name).ddp_smoke, **overrides}


def metric_table(run_id: str, store: Store | None = None) -> dict[tuple[str, int], float | None]:
    """(name, step) → value, timing metrics left out; NaN compared as a value (None)."""
    df = runs.metrics(run_id, store=store)
    return {(r.name, int(r.step)): (None if math.isnan(r.value) else r.value) for r in df.itertuples()
            if not TIMING.search(r.name)}


def assert_same_metrics(have: dict, want: dict, rel: float = 1e-4, abs_: float = 1e-5) -> None:
    """``have`` (a :func:`metric_table`) holds the metrics ``want`` holds, each within ``rel`` / ``abs_`` (a NaN
    only where ``want`` has one); the two-rank against one-process tolerance by default."""
    import pytest

    assert set(have) == set(want) and want, set(want) ^ set(have)
    for key, value in want.items():
        assert have[key] == (value if value is None else pytest.approx(value, rel=rel, abs=abs_)), key


@dataclass
class Launch:
    """What the one launch left: ``two`` (the driver's JSON), its ``store``; :meth:`one` makes the matching
    one-process run (once per experiment)."""
    two: dict[str, Any]
    store: Store
    _one: dict[str, Any] = field(default_factory=dict)

    def run(self, label: str) -> dict[str, Any]:
        return self.two["runs"][label]

    def pair(self, label: str) -> tuple[str, str]:
        """(one-process run id, two-rank run id) of ``label``, both completed."""
        got, one = self.run(label), self.one(label)
        assert got.get("status") == "completed", got.get("error") or got
        assert one.status == "completed", one.error
        return one.run_id, got["run_id"]

    def one(self, label: str) -> Any:
        if label not in self._one:
            self._one[label] = workbench.run(jobs()[label][0], config(label), smoke=True, progress=False,
                                             store=self.store)
        return self._one[label]


def torchrun(home: Path, spec: dict[str, Any], timeout: float = 900) -> subprocess.CompletedProcess:
    """Run the driver with ``spec`` under torchrun with 2 processes; the store lives in ``home/store``, the
    driver's JSON goes to ``home/two.json``."""
    env = {**os.environ, "WORKBENCH_HOME": str(home / "store"), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(key, None)
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(DRIVER), str(home / "two.json"), str(home / "store"), json.dumps(spec)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def launch(home: Path) -> Launch:
    """The suite's launch: every job, the stop/resume runs, the refusals and the unit checks."""
    spec = {"runs": {label: {"experiment": name, **overrides} for label, (name, overrides) in jobs().items()},
            "stop_resume": {label: {"experiment": jobs()[label][0], **jobs()[label][1], "checkpoint_every": 5,
                                    "stop_at": at} for label, at in STOP_RESUME.items()},
            "refuse": refusing(), "units": UNITS}
    proc = torchrun(home, spec)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Launch(json.loads((home / "two.json").read_text()), Store(home / "store"))
