"""RHO-LOSS under torchrun selects from the GLOBAL candidate batch (Algorithm 1): with 2 gloo processes each rank
scores its rows, the scores are gathered and the top n_b chosen identically on every rank, so the selected
sequence of every method is the one-process run's on the same data and seed, and the metrics match.

One ``torchrun`` launch for the module (``tests/contract/ddp_methods_driver.py``); the one-process run happens here.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import workbench
from workbench import runs
from workbench.store.store import Store

ROOT = Path(__file__).resolve().parents[2]
DRIVER = ROOT / "tests" / "contract" / "ddp_methods_driver.py"
#: deterministic top-k (rho_loss), Gumbel sampling (boltzmann), MC-dropout masks (bald), uniform, and rho_loss's
#: replay; the irreducible-loss model trains data-parallel and keeps training on the selected points
CONFIG = {"methods": ["uniform", "rho_loss", "boltzmann", "bald"], "seeds": 1, "update_irreducible": True}
TIMING = ("second", "time", "wall", "elapsed", "speed")


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch built without the gloo backend")
    home = tmp_path_factory.mktemp("goldilocks_ddp")
    env = {**os.environ, "WORKBENCH_HOME": str(home), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(key, None)
    spec = {"runs": {"goldilocks": CONFIG}, "units": ["selection"]}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(DRIVER), str(home / "two.json"), str(home), json.dumps(spec)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((home / "two.json").read_text())
    store = Store(home)
    one = workbench.run("goldilocks", {**workbench.get("goldilocks").ddp_smoke, **CONFIG}, smoke=True,
                        progress=False, store=store)
    assert one.status == "completed", one.error
    got = two["runs"]["goldilocks"]
    assert got["status"] == "completed", got["error"]
    return two["units"], one.run_id, got["run_id"], store


def test_selection_ranks_the_global_batch_with_ties(launched):
    # rho_loss, boltzmann, bald, uniform on a candidate batch with duplicated points (equal scores): the indices
    # chosen from the sharded batch differ from one process's in no position
    assert launched[0]["selection"] == [0.0, 0.0, 0.0, 0.0]


def test_selected_sequences_equal_one_process(launched):
    _, one, two, store = launched
    names = [a["name"] for a in store.artifacts(one) if a["name"].startswith("selected/")]
    assert {f"selected/{m}" for m in CONFIG["methods"] + ["replay"]} <= set(names)
    for name in names:
        a, b = np.asarray(store.load_artifact(one, name)), np.asarray(store.load_artifact(two, name))
        assert a.shape == b.shape and a.shape[0] == 3, name  # one row of n_b indices per step
        assert np.array_equal(a, b), name


def test_metrics_equal_one_process(launched):
    _, one, two, store = launched

    def table(run_id: str) -> dict:
        df = runs.metrics(run_id, store=store)
        return {(r.name, int(r.step)): (None if math.isnan(r.value) else r.value) for r in df.itertuples()
                if not any(t in r.name for t in TIMING)}

    want, have = table(one), table(two)
    assert set(have) == set(want)
    assert any(k[0].startswith("il_model/") for k in want)  # the irreducible-loss model trained data-parallel
    for key, value in want.items():
        assert have[key] == (value if value is None else pytest.approx(value, rel=1e-4, abs=1e-5)), key
