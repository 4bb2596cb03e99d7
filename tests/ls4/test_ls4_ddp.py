"""LS4 under torchrun: with 2 gloo processes the run is one process's run (to float rounding).

The sharded draws (reparameterisation, sampling and forecasting noise drawn for the global batch and sliced) are
checked in-process against the unsharded computation; the suite's one ``torchrun`` launch (``tests.ddp``) runs LS4's
``ddp_smoke`` setting (missing values and the per-element objective: the loss denominators differ per rank; 7 rows
per batch and 7 scored samples: uneven shards), and its metrics, generated series, forecasts and claims are compared
with a one-process run of the same setting.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import workbench
from tests.ddp import assert_same_metrics, metric_table
from workbench.core.context import Shard
from workbench.core.params import ConfigError
from workbench.methods.ls4.baselines import GRUVAE, LatentODE
from workbench.methods.ls4.experiment import LS4Config, check_ranks
from workbench.methods.ls4.losses import training_loss
from workbench.methods.ls4.model import LS4


def _models() -> list[torch.nn.Module]:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return [LS4(x_dim=2, z_dim=3, hidden=4, state=2, layers=1), GRUVAE(x_dim=2, z_dim=3, hidden=4),
                LatentODE(x_dim=2, z_dim=3, hidden=4, rec_dim=4, ode_hidden=4)]


def _union(parts: list[torch.Tensor], shards: list[Shard], dim: int = 0) -> torch.Tensor:
    """The global tensor from each rank's rows along ``dim``."""
    out = torch.empty((shards[0].size,) + parts[0].movedim(dim, 0).shape[1:], dtype=parts[0].dtype)
    for part, shard in zip(parts, shards):
        out[shard.rows()] = part.movedim(dim, 0)
    return out.movedim(0, dim)


@pytest.mark.parametrize("model", _models(), ids=["ls4", "gru_vae", "latent_ode"])
def test_sharded_draws_are_the_rows_of_one_process(model):
    n, L = 5, 6
    x = torch.randn(n, L, 2, generator=torch.Generator().manual_seed(1))
    mask = torch.rand(n, L, 2, generator=torch.Generator().manual_seed(2)) > 0.3
    shards = [Shard(n, r, 2) for r in range(2)]
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    with torch.no_grad():
        full = model(x, mask, generator=g())
        parts = [model(s.take(x), s.take(mask), generator=g(), shard=s) for s in shards]
        for key in ("nll", "kl"):  # per-series terms: each rank's rows of the one-process values
            assert torch.allclose(_union([p[key] for p in parts], shards), full[key], atol=1e-5), key
        # the loss shares with the global batch's denominators sum to the one-process loss
        totals = {k: sum(p[k].sum() for p in parts) for k in ("steps", "observed")}
        for objective in ("elbo", "reweighted"):
            shares = sum(training_loss(p, objective, 3, totals=totals) for p in parts)
            assert shares == pytest.approx(float(training_loss(full, objective, 3)), rel=1e-5)
        sample = model.sample(n, L, g(), obs_noise=True)
        parts = [model.sample(n, L, g(), obs_noise=True, shard=s) for s in shards]
        assert torch.allclose(_union([p["x"] for p in parts], shards), sample["x"], atol=1e-5)
        ext = model.extrapolate(x[:, :3], mask[:, :3], 3, g(), n_samples=2, obs_noise=True)["x"]
        parts = [model.extrapolate(s.take(x)[:, :3], s.take(mask)[:, :3], 3, g(), n_samples=2, obs_noise=True,
                                   shard=s)["x"] for s in shards]
        assert torch.allclose(_union(parts, shards, dim=1), ext, atol=1e-5)


def test_what_cannot_be_sharded_is_refused_with_the_parameter():
    check_ranks(LS4Config(batch_size=2), 2)  # a row of every batch for every rank
    for values, param in (({"batch_size": 1}, "batch_size"), ({"ode_method": "dopri5"}, "ode_method")):
        with pytest.raises(ConfigError, match=param):
            check_ranks(LS4Config(**values), 2)
    check_ranks(LS4Config(ode_method="dopri5", batch_size=1), 1)  # one process: everything goes


@pytest.fixture(scope="module")
def launched(ddp):
    """The two-rank run of the suite's launch and the matching one-process run (ids) in their store."""
    return (*ddp.pair("ls4"), ddp.store)


def test_two_processes_match_one(launched):
    one, two, store = launched
    assert store.get(two)["world_size"] == 2
    want, have = metric_table(one, store), metric_table(two, store)
    # every model's training curve, held-out ELBO and scores (generation, classifier, forecaster, forecasts)
    for name in ("ls4", "latent_ode", "gru_vae"):
        assert {f"{name}/train/loss", f"{name}/test/nelbo", f"{name}/score/classification",
                f"{name}/score/prediction", f"{name}/test/crps"} <= {k[0] for k in want}
    assert_same_metrics(have, want)
    assert len({v for k, v in want.items() if k[0].endswith("/train/loss")}) > 3  # it trained: not constants
    # generated series and forecasts gathered from the ranks are one process's
    n_eval = workbench.get("ls4").ddp_smoke["n_eval"]
    for name in ("generated/ls4", "generated/latent_ode", "generated/gru_vae"):
        a, b = np.asarray(store.load_artifact(one, name)), np.asarray(store.load_artifact(two, name))
        assert a.shape == b.shape == (n_eval, 16, 1) and np.allclose(a, b, atol=1e-5), name
    a, b = store.load_artifact(one, "conditional/ls4"), store.load_artifact(two, "conditional/ls4")
    assert np.allclose(a["samples"], b["samples"], atol=1e-4)
    # the claims, computed alike on every rank, recorded once (rank 0), the timing ones included
    claims = lambda run_id: sorted((c["statement"], c["outcome"]) for c in store.claims(run_id))  # noqa: E731
    assert claims(two) == claims(one) and any("time per training step" in s for s, _ in claims(two))
