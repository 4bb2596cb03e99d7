"""Sharded computations under torchrun with 2 gloo processes equal the one-process computation of the global batch:
NFM's and NoisyMix's losses and averaged gradients (cross-rank mixing partners included) and the crop/flip and
AugMix draws (the suite's one launch, ``tests.ddp``; whole runs are compared in test_contract.py)."""
from __future__ import annotations


def test_sharded_draws_and_gradients_equal_one_process(ddp):
    units = ddp.two["units"]
    # NFM and NoisyMix: the ranks' mean loss and averaged gradient (a cross-rank partner's features train the rank
    # that owns it) against the one-process loss and gradient, 4 seeds each
    assert len(units["losses"]) == 16 and max(units["losses"]) < 1e-5, units["losses"]
    assert units["inputs"] == [0.0, 0.0]  # crop/flip and AugMix: the very rows one process draws
