"""workbench.lib.nn: output shapes on every dataset shape; forward equals head∘stages; clear errors."""
from __future__ import annotations

import pytest
import torch

from workbench.lib.nn import MLP, PreActResNet, SmallCNN, build_model

SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32)]


@pytest.mark.parametrize("in_shape", SHAPES)
@pytest.mark.parametrize("arch", ["mlp", "cnn", "resnet"])
def test_shapes_and_stage_composition(arch, in_shape):
    torch.manual_seed(0)
    kw = {"blocks": (1, 1, 1)} if arch == "resnet" else {}
    model = build_model(arch, in_shape, 7, width=8, **kw).eval()
    x = torch.rand(3, *in_shape)
    out = model(x)
    assert out.shape == (3, 7)
    h = x
    for stage in model.stages:
        h = stage(h)
    assert torch.allclose(model.head(h), out, atol=1e-6)
    for k in range(len(model.stages) + 1):
        assert torch.allclose(model.classify_from(model.features(x, k), k), out, atol=1e-6)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_mlp_on_points():
    model = build_model("mlp", (2,), 2, width=16)
    assert isinstance(model, MLP) and len(model.stages) == 2
    assert model(torch.randn(5, 2)).shape == (5, 2)


def test_resnet18_layout():
    model = PreActResNet((3, 32, 32), 10)  # defaults: width 64, blocks (2, 2, 2, 2)
    assert len(model.stages) == 4
    n_params = sum(p.numel() for p in model.parameters())
    assert 11.0e6 < n_params < 11.3e6  # PreActResNet-18 on CIFAR-10 has ~11.17M parameters
    # stage i halves the resolution (i > 0) and has width·2^i channels
    h = torch.rand(2, 3, 32, 32)
    sizes = []
    for stage in model.stages:
        h = stage(h)
        sizes.append(tuple(h.shape[1:]))
    assert sizes == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4)]


def test_cnn_stage_count_follows_resolution():
    assert len(SmallCNN((1, 8, 8), 10).stages) == 2
    assert len(SmallCNN((1, 28, 28), 10).stages) == 3


def test_dropout_only_in_train_mode():
    model = build_model("mlp", (1, 8, 8), 10, width=32, dropout=0.5)
    x = torch.rand(4, 1, 8, 8)
    model.eval()
    assert torch.equal(model(x), model(x))


def test_bad_arguments():
    with pytest.raises(ValueError, match="arch = 'vit'"):
        build_model("vit", (1, 8, 8), 10)
    with pytest.raises(ValueError, match="needs image inputs"):
        build_model("cnn", (2,), 2)
    with pytest.raises(ValueError, match="dropout = 1.5"):
        build_model("mlp", (2,), 2, dropout=1.5)
    with pytest.raises(ValueError, match="stage index k = 9"):
        build_model("mlp", (2,), 2).features(torch.zeros(1, 2), 9)
    with pytest.raises(ValueError, match="stages downsample"):
        build_model("resnet", (1, 8, 8), 10, blocks=(1, 1, 1, 1, 1, 1))
