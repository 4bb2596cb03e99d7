"""Cascades under torchrun: inference sharded by blocks of problems, training and STaR data-parallel, and the run is
one process's run.

In-process: a block's draws depend only on its index (not on the other blocks, nor on which rank runs it), for
forward sampling and SMC. The suite's one ``torchrun`` launch (``tests.ddp``) runs the ``ddp_smoke`` setting (a block
per problem, so both ranks share every unit's problems); its metrics, accuracy tables (with the language-model rows
used), stored traces, STaR table and claims are compared with a one-process run of the same setting.
"""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from tests.ddp import assert_same_metrics, metric_table
from workbench.core.context import RunContext
from workbench.core.params import ConfigError
from workbench.methods.cascades import experiment as E
from workbench.methods.cascades.distributions import Categorical
from workbench.methods.cascades.effects import observe, sample


class _Rank:
    """The part of a run context that :func:`sharded_inference` reads, for one rank of ``world_size``."""

    rng = RunContext.rng

    def __init__(self, rank: int, world_size: int):
        self.rank, self.world_size, self.cfg = rank, world_size, SimpleNamespace(seed=3)

    def gather_objects(self, obj):  # each rank alone: only its own blocks come back
        return [obj]


def _noisy_copy(p: int):
    """Observe a noisy copy of a uniform digit (SMC reweights and resamples), return the digit plus ``p``."""
    x = yield sample(Categorical({i: 1.0 for i in range(10)}), "x")
    yield observe(Categorical({x: 0.6, (x + 1) % 10: 0.4}), p % 10, "y")
    return x + p


@pytest.mark.parametrize("method", ["forward", "smc"])
def test_a_blocks_draws_do_not_depend_on_the_ranks(method, monkeypatch):
    problems = list(range(7))

    def values(ctx: _Rank, probs: list[int]) -> list:
        return E.sharded_inference(ctx, probs, _noisy_copy, method, 4, "unit", 5, 2,
                                   lambda i, p, post: [tr.value for tr in post.traces])

    one = values(_Rank(0, 1), problems)
    assert len(one) == 7 and len({tuple(v) for v in one}) > 3  # random draws, not constants
    assert values(_Rank(0, 1), problems[:4]) == one[:4]  # blocks 0 and 1 whatever follows them
    # two ranks: rank 0 runs blocks 0, 2 (problems 0, 1, 4, 5, ...), rank 1 blocks 1, 3: the same draws
    assert values(_Rank(0, 2), problems) == one[0:2] + one[4:6]
    assert values(_Rank(1, 2), problems) == one[2:4] + one[6:7]
    assert values(_Rank(0, 1), problems) != E.sharded_inference(  # a block's stream is its own
        _Rank(0, 1), problems, _noisy_copy, method, 4, "other unit", 5, 2, lambda i, p, post: [tr.value for tr in
                                                                                               post.traces])


def test_a_batch_too_small_to_share_is_refused_with_the_parameter():
    E.check_ranks(E.CascadesConfig(batch_size=4), 2)
    with pytest.raises(ConfigError, match="batch_size"):
        E.check_ranks(E.CascadesConfig(batch_size=3), 2)


def _same(a: Any, b: Any) -> bool:
    """Equal JSON-like values, floats within rounding of trained weights (NaN equal to NaN)."""
    if isinstance(a, float) or isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-4, abs=1e-5)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.fixture(scope="module")
def launched(ddp):
    """The two-rank run of the suite's launch and the matching one-process run (ids) in their store."""
    return (*ddp.pair("cascades"), ddp.store)


def test_two_processes_match_one(launched):
    one, two, store = launched
    assert store.get(two)["world_size"] == 2
    want, have = metric_table(one, store), metric_table(two, store)
    assert_same_metrics(have, want)
    assert {"train/loss", "eval/loss", "star/loss", "accuracy/verifier_smc", "long/tool"} <= {k[0] for k in want}
    assert len({v for k, v in want.items() if k[0] == "train/loss"}) > 1  # it trained
    # every unit's per-problem results gathered in problem order: the same accuracies and LM rows, traces, STaR
    for name in ("accuracy", "digits", "long", "star"):
        pd.testing.assert_frame_equal(store.load_artifact(two, name), store.load_artifact(one, name), obj=name)
    traces = store.load_artifact(one, "traces")["problems"]  # the same strings; log-probs of weights equal to rounding
    assert traces and _same(store.load_artifact(two, "traces")["problems"], traces)
    table = store.load_artifact(one, "accuracy")
    assert set(table["method"]) >= {"direct", "self_consistency", "verifier_smc", "verifier_rejection"}
    assert (table["lm_rows"] > 0).all()  # the ranks' language-model work, summed
    claims = lambda run_id: sorted((c["statement"], c["outcome"]) for c in store.claims(run_id))  # noqa: E731
    assert claims(two) == claims(one) and claims(two)
