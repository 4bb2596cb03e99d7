"""Model zoos: batched training equals one-by-one training; the Small CNN Zoo layout round-trips."""
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from workbench.lib.weightspace import (
    WeightSpace,
    Zoo,
    ZooArch,
    ZooHparams,
    ZooTrainer,
    corrupt_labels,
    export_small_cnn_zoo,
    init_weights,
    load_small_cnn_zoo,
    train_zoo,
)


def _hparams():
    return ZooHparams(lr=torch.tensor([1e-2, 3e-3, 2e-2], dtype=torch.float64),
                      weight_decay=torch.tensor([0.0, 1e-2, 0.3], dtype=torch.float64),
                      init_scale=torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64),
                      relu=torch.tensor([True, False, True]), steps=torch.tensor([6, 3, 5]),
                      label_noise=torch.zeros(3, dtype=torch.float64))


@pytest.mark.parametrize("arch", [ZooArch("mlp", (12, 7, 5, 4)), ZooArch("cnn", (2, 3, 4, 4))])
def test_batched_zoo_training_equals_networks_trained_one_by_one(arch):
    """Three networks with different lr, weight decay, init, activation and step budgets: one batched
    trainer (per-network AdamW written out) against torch.optim.AdamW on nn.Sequential copies."""
    hp, g = _hparams(), torch.Generator().manual_seed(0)
    init = init_weights(arch, hp.init_scale, g, dtype=torch.float64)
    trainer = ZooTrainer(arch, hp, init)
    shape = (12,) if arch.kind == "mlp" else (2, 6, 6)
    x = torch.randn(40, *shape, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (40,), generator=g)
    batches = [torch.randint(0, 40, (3, 8), generator=g) for _ in range(6)]
    for idx in batches:
        trainer.step(x[idx], y[idx])
    batched = trainer.weight_space()
    assert batched.max_abs_diff(init) > 1e-3
    for b in range(3):
        net = arch.module("relu" if hp.relu[b] else "tanh").double()
        net.load_state_dict(init.to_state_dict(net, b))
        opt = torch.optim.AdamW(net.parameters(), lr=float(hp.lr[b]), weight_decay=float(hp.weight_decay[b]))
        for idx in batches[: int(hp.steps[b])]:
            loss = F.cross_entropy(net(x[idx[b]]), y[idx[b]])
            opt.zero_grad()
            loss.backward()
            opt.step()
        one = WeightSpace.from_module(net)
        assert one.allclose(batched[b], atol=1e-10, rtol=1e-9), (b, one.max_abs_diff(batched[b]))
    # accuracies of the batch equal each module's
    acc = trainer.accuracy(x, y)
    net = arch.module("tanh").double()
    net.load_state_dict(batched.to_state_dict(net, 1))
    assert float(acc[1]) == pytest.approx(float((net(x).argmax(1) == y).double().mean()), abs=1e-6)


def test_train_zoo_on_digits_is_deterministic_and_spread_out():
    from workbench.lib import data

    x, y = data.tensors("digits", "train")
    xt, yt = data.tensors("digits", "test")
    arch = ZooArch("mlp", (64, 8, 10))
    a = train_zoo(arch, x, y, xt, yt, n=12, steps=60, batch_size=32, generator=torch.Generator().manual_seed(0))
    b = train_zoo(arch, x, y, xt, yt, n=12, steps=60, batch_size=32, generator=torch.Generator().manual_seed(0))
    assert a.weights.allclose(b.weights, atol=0, rtol=0) and torch.equal(a.test_accuracy, b.test_accuracy)
    assert len(a) == 12 and len(a.hparams) == 12 and {"lr", "activation", "label_noise"} <= set(a.hparams[0])
    assert 0.0 <= float(a.test_accuracy.min()) and float(a.test_accuracy.max()) > 0.6  # some networks learnt
    assert float(a.test_accuracy.std()) > 0.02  # varied hyperparameters give varied accuracies
    df = a.frame()
    assert list(df["network"]) == list(range(12)) and "test_accuracy" in df
    # the recorded module reproduces the recorded accuracy
    net = a.module(3)
    acc = float((net(xt.flatten(1)).argmax(1) == yt).float().mean())
    assert acc == pytest.approx(float(a.test_accuracy[3]), abs=1e-6)


def test_corrupt_labels_rates():
    y = torch.arange(1000) % 10
    out = corrupt_labels(y, torch.tensor([0.0, 1.0], dtype=torch.float64), 10, torch.Generator().manual_seed(0))
    assert torch.equal(out[0], y)
    assert 0.85 < float((out[1] != y).float().mean()) < 0.95  # random labels agree 1 time in 10


def test_small_cnn_zoo_layout_round_trip(tmp_path):
    arch = ZooArch("cnn", (1, 3, 4, 10))
    hp = _hparams()
    ws = init_weights(arch, hp.init_scale, torch.Generator().manual_seed(0))
    zoo = Zoo(ws, hp.rows(), torch.tensor([0.5, 0.6, 0.7]), None, arch)
    export_small_cnn_zoo(zoo, tmp_path, step=86)
    back = load_small_cnn_zoo(tmp_path)
    assert back.weights.allclose(ws, atol=0, rtol=0) and back.weights.filters == ((3, 3), (3, 3), ())
    assert torch.equal(back.test_accuracy, zoo.test_accuracy) and back.hparams[2]["lr"] == pytest.approx(2e-2)


def test_small_cnn_zoo_reads_tensorflow_kernels(tmp_path):
    """A hand-written file in the zoo's layout: TF kernels (kh, kw, in, out) and dense (in, out)."""
    rng = np.random.default_rng(0)
    k = rng.standard_normal((2, 3, 3, 1, 2)).astype(np.float32)  # two networks
    kb = rng.standard_normal((2, 2)).astype(np.float32)
    d = rng.standard_normal((2, 2, 10)).astype(np.float32)
    db = rng.standard_normal((2, 10)).astype(np.float32)
    flat = np.concatenate([k.reshape(2, -1), kb, d.reshape(2, -1), db], axis=1)
    flat = np.concatenate([flat, np.full((1, flat.shape[1]), np.nan, np.float32)])  # a diverged row: dropped
    np.save(tmp_path / "weights.npy", flat)
    pd.DataFrame([
        {"varname": "sequential/conv2d/kernel:0", "start_idx": 0, "end_idx": 18, "shape": "(3, 3, 1, 2)"},
        {"varname": "sequential/conv2d/bias:0", "start_idx": 18, "end_idx": 20, "shape": "(2,)"},
        {"varname": "sequential/dense/kernel:0", "start_idx": 20, "end_idx": 40, "shape": "(2, 10)"},
        {"varname": "sequential/dense/bias:0", "start_idx": 40, "end_idx": 50, "shape": "(10,)"},
    ]).to_csv(tmp_path / "layout.csv", index=False)
    pd.DataFrame({"step": [86, 86, 86], "test_accuracy": [0.3, 0.9, 0.1],
                  "config.l2reg": [0.1, 0.2, 0.3]}).to_csv(tmp_path / "metrics.csv", index=False)
    zoo = load_small_cnn_zoo(tmp_path)
    assert len(zoo) == 2 and zoo.weights.spec.dims == (1, 2, 10)
    conv = torch.from_numpy(k[1]).permute(3, 2, 0, 1)  # torch Conv2d weight (out, in, kh, kw)
    net = zoo.arch.module()
    sd = zoo.weights.to_state_dict(net, 1)
    assert torch.equal(sd["0.weight"], conv) and torch.equal(sd["4.weight"], torch.from_numpy(d[1]).T)
    assert zoo.hparams[1]["config.l2reg"] == 0.2 and float(zoo.test_accuracy[1]) == pytest.approx(0.9)
