"""NFT under torchrun: the zoo is trained data-parallel over networks and equals the one-process zoo, the
predictors train data-parallel (global batch of networks sharded, gradients averaged, the heads' feature
standardisers on the global batch's statistics) and log what one process logs, and the claims are recorded once.

The two-rank run is the suite's one launch (``tests.ddp``, fixture ``ddp``); the sharding of the zoo and the
global standardiser are also checked in this process (no launch)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import workbench
from tests.ddp import config, assert_same_metrics, metric_table
from workbench.core.context import Shard, derive_seed
from workbench.lib import data
from workbench.lib.weightspace import ZooArch, train_zoo
from workbench.methods.nft.data import train_config_zoo
from workbench.methods.nft.experiment import NFTConfig
from workbench.methods.nft.layers import FeatureStandardizer


class _Rank:
    """Rank ``rank`` of two, in this process: its rows of the global batch; ``gather`` keeps its own rows."""

    def __init__(self, total: int, rank: int) -> None:
        self.shard = Shard(total, rank, 2)

    def rows(self) -> torch.Tensor:
        return self.shard.rows()

    def take(self, t: torch.Tensor) -> torch.Tensor:
        return self.shard.take(t)

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        return t


def test_each_rank_trains_its_networks_of_the_one_process_zoo():
    """Every draw is made for the whole zoo and sliced, and networks train independently: rank r's networks are
    rows r, r+2, … of the one-process zoo (weights and accuracies)."""
    x, y = data.tensors("digits", "train")
    xt, yt = data.tensors("digits", "test")
    arch, n = ZooArch("cnn", (1, 4, 4, 10)), 6
    args = (arch, x[:100], y[:100], xt[:50], yt[:50])
    full = train_zoo(*args, n=n, steps=4, batch_size=8, generator=torch.Generator().manual_seed(0))
    for rank in (0, 1):
        part = train_zoo(*args, n=n, steps=4, batch_size=8, generator=torch.Generator().manual_seed(0),
                         shard=_Rank(n, rank))
        rows = Shard(n, rank, 2).rows()
        assert part.weights.batch_size == 3 and part.weights.max_abs_diff(full.weights[rows]) < 1e-6
        assert torch.allclose(part.test_accuracy, full.test_accuracy[rows])
    assert full.weights.max_abs_diff(full.weights[torch.tensor([1, 0, 3, 2, 5, 4])]) > 1e-3  # networks differ


def test_global_standardizer_on_one_rank_is_batch_norm():
    """With the sum over ranks of one rank (the identity), the data-parallel path normalises, updates the
    running statistics and backpropagates as BatchNorm1d does."""
    x = torch.randn(6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 3 + 1
    w = torch.randn(6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    plain, synced = FeatureStandardizer(5).double(), FeatureStandardizer(5).double()
    synced.reduce = lambda t: t
    outs = []
    for norm in (plain, synced):
        xi = x.clone().requires_grad_(True)
        for _ in range(2):
            y = norm(xi)
        (g,) = torch.autograd.grad((y * w).sum(), xi)
        outs.append((y.detach(), g, norm.running_mean.clone(), norm.running_var.clone()))
    for a, b in zip(*outs):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
    assert float(outs[0][1].abs().max()) > 1e-3 and float((outs[0][2] - 0).abs().max()) > 1e-2


class _OneProcess:
    """What :func:`train_config_zoo` reads of a one-process run context."""

    world_size, rank, is_main = 1, 0, True

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def generator(self, name: str) -> torch.Generator:
        return torch.Generator().manual_seed(derive_seed(self.seed, name))


@pytest.fixture(scope="module")
def launched(ddp):
    got = ddp.run("nft")
    assert got["status"] == "completed", got["error"]
    one = ddp.one("nft")
    assert one.status == "completed", one.error
    return ddp.store, one.run_id, got["run_id"]


def test_two_ranks_train_the_one_process_zoo(launched):
    store, _, two = launched
    cfg = NFTConfig(**{**workbench.get("nft").smoke, **config("nft")})
    zoo = train_config_zoo(cfg, _OneProcess(cfg.seed))  # trained here, in one process, no cache
    weights = np.asarray(store.load_artifact(two, "zoo/weights"))
    assert weights.shape == (cfg.zoo_size, zoo.weights.flatten().shape[1])
    assert np.abs(weights - zoo.weights.flatten().numpy()).max() < 1e-6
    table = store.load_artifact(two, "zoo")
    assert np.allclose(table["test_accuracy"].to_numpy(), zoo.test_accuracy.numpy())


def test_two_ranks_log_the_one_process_metrics_and_claims_once(launched):
    store, one, two = launched
    assert store.get(two)["world_size"] == 2
    want, have = metric_table(one, store), metric_table(two, store)
    trained = {k[0].split("/train/")[0] for k in want if "/train/loss" in k[0]}
    assert trained >= {"acc/nft", "acc/np", "acc/hnp", "acc/stats", "acc/flat", "inr/nft", "inr/np",
                       "inr2array/recon", "inr2array/classifier"}
    assert_same_metrics(have, want)
    claims = lambda run_id: sorted((c["statement"], c["outcome"]) for c in store.claims(run_id))  # noqa: E731
    assert claims(two) == claims(one) and len(claims(two)) == 6
