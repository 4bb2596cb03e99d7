"""RHO-LOSS under torchrun selects from the GLOBAL candidate batch (Algorithm 1): with 2 gloo processes each rank
scores its rows, the scores are gathered and the top n_b chosen identically on every rank, so the selected
sequence of every method is the one-process run's on the same data and seed, and the metrics match.

The suite's one ``torchrun`` launch (``tests.ddp``, setting ``tests.ddp.OVERRIDES["goldilocks"]``: uniform,
rho_loss, boltzmann and bald, the irreducible-loss model updated data-parallel); the one-process run is made once.
"""
from __future__ import annotations

import numpy as np
import pytest

from tests.ddp import OVERRIDES, assert_same_metrics, metric_table


@pytest.fixture(scope="module")
def launched(ddp):
    one = ddp.one("goldilocks")
    assert one.status == "completed", one.error
    got = ddp.run("goldilocks")
    assert got["status"] == "completed", got["error"]
    return ddp.two["units"], one.run_id, got["run_id"], ddp.store


def test_selection_ranks_the_global_batch_with_ties(launched):
    # rho_loss, boltzmann, bald, uniform on a candidate batch with duplicated points (equal scores): the indices
    # chosen from the sharded batch differ from one process's in no position
    assert launched[0]["selection"] == [0.0, 0.0, 0.0, 0.0]


def test_selected_sequences_equal_one_process(launched):
    _, one, two, store = launched
    names = [a["name"] for a in store.artifacts(one) if a["name"].startswith("selected/")]
    assert {f"selected/{m}" for m in OVERRIDES["goldilocks"]["methods"] + ["replay"]} <= set(names)
    for name in names:
        a, b = np.asarray(store.load_artifact(one, name)), np.asarray(store.load_artifact(two, name))
        assert a.shape == b.shape and a.shape[0] == 3, name  # one row of n_b indices per step
        assert np.array_equal(a, b), name


def test_metrics_equal_one_process(launched):
    _, one, two, store = launched
    want, have = metric_table(one, store), metric_table(two, store)
    assert any(k[0].startswith("il_model/") for k in want)  # the irreducible-loss model trained data-parallel
    assert_same_metrics(have, want)
