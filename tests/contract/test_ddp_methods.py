"""The robustness suite (nfm, noisymix, robustness_compare share it) and SDE-BNN under torchrun with 2 gloo processes
give what one process gives: the sharded random draws (crop/flip, AugMix, λ, π, mixing point, feature noise), the
cross-rank mixing partners and the averaged gradients equal the one-process computation of the global batch, and
whole smoke runs log the same metrics (within floating-point tolerance) and record their claims once.

One ``torchrun`` launch for the module (``ddp_methods_driver.py``); the one-process runs happen in this process.
"""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import workbench
from workbench import runs
from workbench.store.store import Store

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("ddp_methods_driver.py")
#: every recipe kind (plain, input/manifold mixing with noise, AugMix views, NoisyMix) with crop/flip and the
#: corruption benchmark (rank 0 builds the DATASET-C cache); SDE-BNN's data-parallel classification setting
RUNS = {
    "robustness_compare": {"variants": ["baseline", "nfm", "augmix", "noisymix"], "corruption_set": "standard"},
    "sdebnn": {"task": "classification"},
}
TIMING = re.compile(r"(second|time|wall|elapsed|per_s\b|/speed|throughput)")


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "WORKBENCH_HOME": str(home), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(key, None)
    return env


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch built without the gloo backend")
    home = tmp_path_factory.mktemp("ddp_methods")
    out = home / "two.json"
    spec = {"runs": RUNS, "units": ["losses", "inputs"]}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(DRIVER), str(out), str(home / "store"), json.dumps(spec)],
                          cwd=ROOT, env=_env(home / "store"), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads(out.read_text())
    store = Store(home / "store")
    one = {name: workbench.run(name, {**workbench.get(name).ddp_smoke, **cfg}, smoke=True, progress=False,
                               store=store) for name, cfg in RUNS.items()}
    return two, one, store


def _metrics(run_id: str, store: Store) -> dict[tuple[str, int], float | None]:
    df = runs.metrics(run_id, store=store)
    return {(r.name, int(r.step)): (None if math.isnan(r.value) else r.value) for r in df.itertuples()
            if not TIMING.search(r.name)}


def test_sharded_draws_and_gradients_equal_one_process(launched):
    units = launched[0]["units"]
    # NFM and NoisyMix: the ranks' mean loss and averaged gradient (a cross-rank partner's features train the rank
    # that owns it) against the one-process loss and gradient, 4 seeds each
    assert len(units["losses"]) == 16 and max(units["losses"]) < 1e-5, units["losses"]
    assert units["inputs"] == [0.0, 0.0]  # crop/flip and AugMix: the very rows one process draws


@pytest.mark.parametrize("name", list(RUNS))
def test_two_processes_match_one(launched, name):
    two, one, store = launched
    got = two["runs"][name]
    assert got["status"] == "completed", got["error"]
    assert one[name].status == "completed", one[name].error
    assert store.get(got["run_id"])["world_size"] == 2
    want, have = _metrics(one[name].run_id, store), _metrics(got["run_id"], store)
    assert set(have) == set(want) and len(want) > 20
    for key, value in want.items():
        assert have[key] == (value if value is None else pytest.approx(value, rel=1e-4, abs=1e-5)), key
    losses = sorted((k, v) for k, v in want.items() if k[0].endswith("/loss") and v is not None)
    assert len({v for _, v in losses}) > 1  # the runs trained: not a comparison of constants
    # the claims, computed alike on every rank, are recorded once (by rank 0)
    claims = lambda run_id: sorted((c["statement"], c["outcome"]) for c in store.claims(run_id))  # noqa: E731
    assert claims(got["run_id"]) == claims(one[name].run_id) and claims(got["run_id"])
