"""Memory of a long comparison stays flat in the number of steps, and replicates do not keep each other's data.

Peak RSS is measured in fresh processes (one at N steps, one at 8N, run side by side). With n_B = 128 a leak of
one candidate batch per step would add ~18 MB between them; the allowed growth (6 MB) is above the allocator's
noise between two such processes (~1 MB measured) and far below that.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import json, os, resource, sys, tempfile
os.environ["WORKBENCH_HOME"] = tempfile.mkdtemp(prefix="gl-mem-")
import torch
torch.set_num_threads(1)
import workbench
res = workbench.run("goldilocks", json.loads(sys.argv[1]), smoke=True, progress=False)
print(json.dumps({"status": res.status, "error": res.error,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _start(cfg: dict) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(cfg)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _peak(proc: subprocess.Popen) -> float:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    got = json.loads(out.strip().splitlines()[-1])
    assert got["status"] == "completed", got["error"]
    return got["peak_mb"]


def test_peak_memory_is_flat_in_steps():
    n = 20
    cfg = {"methods": "uniform,rho_loss", "large_batch": 128, "eval_every": 10}
    short, long = _start({**cfg, "steps": n}), _start({**cfg, "steps": 8 * n})
    a, b = _peak(short), _peak(long)
    assert b - a < 6.0, f"peak RSS grew from {a:.1f} MB at {n} steps to {b:.1f} MB at {8 * n} steps"


def test_method_record_keeps_one_array_and_counts_in_blocks():
    from workbench.methods.goldilocks.train import MethodRecord

    corrupted = np.array([False, True, False, True, False, False])
    true_y = np.array([0, 1, 2, 0, 1, 2])
    rec = MethodRecord(3, corrupted, true_y)
    rows = [[0, 1], [2, 3], [4, 5], [1, 3]]
    for r in rows[:3]:
        rec.add(torch.tensor(r))
    rec.flush()
    assert rec.n_selected == 6 and rec.n_corrupted == 2 and rec.take_recent_share() == 2 / 6
    rec.add(torch.tensor(rows[3]))
    state = rec.state_dict()  # flushes: the block counted once
    assert rec.n_corrupted == 4 and rec.corrupted_share == 4 / 8 and rec.take_recent_share() == 1.0
    assert rec.class_counts.tolist() == [3, 3, 2]
    again = MethodRecord(3, corrupted, true_y)
    again.load_state_dict(state)
    again.flush()  # nothing new: the restored counts stay
    assert np.array_equal(again.sequence(), np.array(rows)) and again.n_corrupted == 4
    assert isinstance(rec.selected, np.ndarray) and rec.selected.shape[1] == 2  # one growing array, not a list


def test_replicates_do_not_keep_each_others_data(monkeypatch):
    """Each replicate's training data is gone before the next replicate loads its own, and the seeds' splits do
    not stay in the process-wide tensor cache."""
    import gc
    import weakref

    import workbench
    from workbench.lib.data import core
    from workbench.methods.goldilocks import experiment

    refs: list = []
    alive: list[int] = []
    real = experiment.prepare

    def spy(cfg, ctx, replicate=0):
        gc.collect()
        alive.append(sum(1 for r in refs if r() is not None))
        data = real(cfg, ctx, replicate)
        refs.append(weakref.ref(data.x))
        return data

    monkeypatch.setattr(experiment, "prepare", spy)
    core.clear_cache()
    res = workbench.run("goldilocks", {"methods": "uniform,rho_loss", "seeds": 3}, smoke=True, progress=False)
    assert res.status == "completed", res.error
    assert alive == [0, 0, 0]  # no earlier replicate's training part alive when the next one is prepared
    cached = [key for key in core._tensor_cache if key[0] == "digits"]
    assert [key[1] for key in cached] == ["test"], cached  # the seeds' train/holdout splits are not kept
