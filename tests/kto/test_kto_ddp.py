"""KTO and the paired losses under torchrun with 2 gloo processes give what one process gives: z₀ is the global
batch's estimate (all-reduced, not a shard's), a sharded step's summed gradients, loss and metrics are the global
batch's, and whole smoke runs (every method with the cached reference; KTO with the live reference, whose
mismatched pairs cross ranks) log the same metrics within floating-point tolerance and record their claims once.

All from the suite's one ``torchrun`` launch (``tests.ddp``: unit checks ``tests.kto.ddp_units``, runs ``kto`` and
``kto/live``); the one-process runs are made once, here.
"""
from __future__ import annotations

import pytest

from tests.ddp import assert_same_metrics, metric_table

UNITS = "tests.kto.ddp_units:unit_"


def test_z0_is_the_global_batch_estimate(ddp):
    worst, negated_gap = ddp.two["units"][UNITS + "z0"]
    assert worst < 1e-6  # the ranks' all-reduced z₀ is the one-process z₀ of the global batch
    assert -negated_gap > 0.5  # while the mean of the shards' own clamped estimates is far from it


def test_sharded_step_equals_the_global_batch_step(ddp):
    kto_grad, kto_loss, kto_metrics, dpo_grad, dpo_loss, dpo_metrics = ddp.two["units"][UNITS + "step"]
    assert max(kto_grad, dpo_grad) < 1e-6
    assert max(kto_loss, dpo_loss) < 1e-6
    assert max(kto_metrics, dpo_metrics) < 1e-5


@pytest.mark.parametrize("label", ["kto", "kto/live"])
def test_two_processes_match_one(ddp, label):
    got, one, store = ddp.run(label), ddp.one(label), ddp.store
    assert got["status"] == "completed", got["error"]
    assert one.status == "completed", one.error
    assert store.get(got["run_id"])["world_size"] == 2
    want, have = metric_table(one.run_id, store), metric_table(got["run_id"], store)
    assert len(want) > 10
    assert_same_metrics(have, want)
    # the runs trained and evaluated: not a comparison of constants
    assert len({v for (name, _), v in want.items() if name.endswith("/loss")}) > 1
    assert any(name.endswith("/eval/kl") and step > 0 and v for (name, step), v in want.items())
    claims = lambda run_id: sorted((c["statement"], c["outcome"]) for c in store.claims(run_id))  # noqa: E731
    assert claims(got["run_id"]) == claims(one.run_id)  # computed alike on every rank, recorded once
    if label == "kto":  # every method, the cached reference
        assert claims(got["run_id"])
        a, b = (store.load_artifact(r, "samples/kto").to_dict("records") for r in (got["run_id"], one.run_id))
        assert len(a) == len(b) == 16  # the gathered evaluation's first rows, in prompt order
        assert [(r["prompt"], r["completion"], r["desirable"]) for r in a] == \
            [(r["prompt"], r["completion"], r["desirable"]) for r in b]
        assert [r["logp"] for r in a] == pytest.approx([r["logp"] for r in b], abs=2e-3)
