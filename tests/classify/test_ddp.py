"""torchrun with 2 CPU processes (gloo) trains the same curve as 1 process; only rank 0 writes the store."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench import runs

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["run", "classify", "--steps", "20", "--arch", "mlp", "--width", "64", "--batch-size", "64",
        "--lr", "0.3", "--eval-every", "10", "--augment", "true", "--seed", "7", "--no-progress"]


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "WORKBENCH_HOME": str(home), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("RANK", None), env.pop("WORLD_SIZE", None), env.pop("LOCAL_RANK", None)
    return env


def test_two_process_run_matches_one_process(tmp_path):
    pytest.importorskip("torch.distributed")
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch built without the gloo backend")
    home = tmp_path / "home"
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "workbench", *ARGS],
        cwd=ROOT, env=_env(home), capture_output=True, text=True, timeout=240,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run([sys.executable, "-m", "workbench", *ARGS], cwd=ROOT, env=_env(home),
                         capture_output=True, text=True, timeout=240)
    assert one.returncode == 0, one.stderr[-3000:]

    store = runs.store(home)
    listed = runs.list(store=store)
    assert len(listed) == 2  # rank 1 wrote no run of its own
    by_world = {int(runs.get(i, store=store).get("world_size", 1) or 1): i for i in listed["id"]}
    assert set(by_world) == {1, 2}

    def table(run_id: str):
        df = runs.metrics(run_id, store=store)
        return {(r.name, int(r.step)): r.value for r in df.itertuples()}

    m1, m2 = table(by_world[1]), table(by_world[2])
    assert set(m1) == set(m2)
    assert len([k for k in m1 if k[0] == "train/loss"]) == 20
    for key, value in m1.items():
        assert m2[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
    # the curve moved: the comparison is not between two constants
    assert m1[("train/loss", 19)] < m1[("train/loss", 0)]
