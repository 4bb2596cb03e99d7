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


def test_conv_models_are_channels_last_and_the_projection_is_the_strided_one_by_one_convolution():
    from workbench.lib.nn.models import PreActBlock

    for arch in ("cnn", "resnet"):
        model = build_model(arch, (1, 28, 28), 10, width=8)
        convs = [p for p in model.parameters() if p.dim() == 4]
        assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    torch.manual_seed(0)
    block = PreActBlock(4, 8, stride=2).eval()
    x = torch.randn(3, 4, 7, 7)
    out = torch.relu(block.bn1(x))  # the block's own path, with the projection as a stride-2 convolution
    ref = block.conv2(torch.relu(block.bn2(block.conv1(out)))) + torch.nn.functional.conv2d(out, block.shortcut.weight, stride=2)
    assert block(x).shape == (3, 8, 4, 4)
    assert torch.allclose(block(x), ref, atol=1e-6)


def test_channels_last_training_at_every_batch_size():
    """torch 2.13's CPU backward of a strided 1×1 channels-last convolution corrupts memory at odd batch sizes (a
    crash, or a silent one): every shared conv model trains at odd and even batch sizes, in a process of its own so
    a crash fails this test instead of the worker."""
    import subprocess
    import sys

    code = (
        "import torch\nfrom workbench.lib.nn import build_model\n"
        "for arch in ('cnn', 'resnet'):\n"
        "    for shape in ((1, 8, 8), (1, 28, 28), (3, 32, 32)):\n"
        "        for bs in (1, 2, 3, 5, 7, 31, 127):\n"
        "            kw = {'blocks': (1, 1, 1)} if arch == 'resnet' else {}\n"
        "            m = build_model(arch, shape, 7, width=8, **kw)\n"
        "            for _ in range(2):\n"
        "                (m(torch.rand(bs, *shape)) ** 2).sum().backward()\n"
        "print('trained')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "trained" in done.stdout, done.stderr[-2000:]


@pytest.mark.parametrize("arch, in_shape", [("mlp", (1, 28, 28)), ("cnn", (1, 28, 28)), ("resnet", (3, 32, 32))])
def test_evaluation_in_small_batches_gives_the_same_outputs(arch, in_shape):
    """``inference_rows``: 128 rows per pass on a CPU (faster: activations stay in cache), 1024 on a GPU. A row's
    outputs in eval mode do not depend on the batch around it, so the evaluations' figures do not change."""
    from workbench.lib.metrics import predict
    from workbench.lib.nn import inference_rows

    assert inference_rows("cpu") == 128 and inference_rows(torch.device("cuda", 0)) == 1024
    torch.manual_seed(0)
    model = build_model(arch, in_shape, 10, width=8, **({"blocks": (1, 1)} if arch == "resnet" else {}))
    model.train()
    model(torch.randn(16, *in_shape))  # BatchNorm running statistics away from their initial values
    x = torch.randn(300, *in_shape)
    whole = predict(model, x, batch_size=300)
    assert model.training  # the mode is restored
    assert torch.equal(predict(model, x), whole)  # 128, 128, 44 rows
    assert torch.equal(predict(model, x, batch_size=7), whole)
