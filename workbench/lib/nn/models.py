"""Small classifiers shared by the methods: an MLP, a small CNN and a pre-activation ResNet."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .base import StagedClassifier


class MLP(StagedClassifier):
    """Flatten, then ``depth`` hidden stages Linear → ReLU (→ Dropout), then a Linear head."""

    def __init__(self, in_shape: Sequence[int], num_classes: int, width: int = 256, depth: int = 2, dropout: float = 0.0):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth = {depth} is out of range; allowed >= 1")
        d_in = math.prod(in_shape)
        stages: list[nn.Module] = []
        for i in range(depth):
            layers: list[nn.Module] = [nn.Flatten()] if i == 0 else []
            layers += [nn.Linear(d_in if i == 0 else width, width), nn.ReLU(inplace=False)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(width, num_classes)


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


def default_num_stages(in_shape: Sequence[int], max_stages: int) -> int:
    """Stages that halve the resolution while it stays ≥ 2 pixels: 8×8 → 2, 28×28 / 32×32 → 3 (capped)."""
    side = min(in_shape[-2:])
    return max(1, min(max_stages, int(math.log2(side)) - 1))


class SmallCNN(StagedClassifier):
    """Stages of two 3×3 conv-BN-ReLU layers then 2×2 max-pool, channels width·2^i; head: global average
    pool → Dropout → Linear."""

    def __init__(
        self, in_shape: Sequence[int], num_classes: int, width: int = 32, num_stages: int | None = None, dropout: float = 0.0
    ):
        super().__init__()
        if len(in_shape) != 3:
            raise ValueError(f"SmallCNN needs image inputs (C, H, W); got in_shape = {tuple(in_shape)}")
        n = num_stages or default_num_stages(in_shape, 3)
        if 2**n > min(in_shape[-2:]):
            raise ValueError(f"num_stages = {n} halves {tuple(in_shape[-2:])} below 1 pixel; allowed [1, {int(math.log2(min(in_shape[-2:])))}]")
        stages: list[nn.Module] = []
        c_in = in_shape[0]
        for i in range(n):
            c = width * 2**i
            stages.append(nn.Sequential(*_conv_bn_relu(c_in, c), *_conv_bn_relu(c, c), nn.MaxPool2d(2)))
            c_in = c
        self.stages = nn.ModuleList(stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, num_classes))


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al. 2016, "Identity Mappings in Deep Residual Networks", Eq. 1–2
    with f = identity): y = x' + W₂ σ(BN(W₁ σ(BN(x)))), where x' = x, or a 1×1 projection of σ(BN(x))
    when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        # the projection's stride is taken by slicing (every stride-th pixel, then a 1×1 convolution: the same
        # map): torch 2.13's CPU backward of a strided 1×1 channels-last convolution corrupts memory at odd batch
        # sizes (tests/nn/test_nn_models.py::test_channels_last_training_at_every_batch_size)
        self.stride = stride
        self.shortcut = nn.Conv2d(c_in, c_out, 1, bias=False) if stride != 1 or c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        s = self.stride
        skip = self.shortcut(out[..., ::s, ::s] if s > 1 else out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + skip


class PreActResNet(StagedClassifier):
    """Pre-activation ResNet: a 3×3 stem, then stages of :class:`PreActBlock` with channels width·2^i
    (stride 2 at the start of every stage but the first), head BN → ReLU → global pool → Dropout → Linear.

    ``blocks=(2, 2, 2, 2)`` with ``width=64`` is PreActResNet-18; the stem is part of stage 0.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        width: int = 64,
        blocks: Sequence[int] | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        if len(in_shape) != 3:
            raise ValueError(f"PreActResNet needs image inputs (C, H, W); got in_shape = {tuple(in_shape)}")
        blocks = tuple(blocks) if blocks is not None else (2, 2, 2, 2)
        if not blocks or any(b < 1 for b in blocks):
            raise ValueError(f"blocks = {blocks} must be a non-empty sequence of integers >= 1")
        side = min(in_shape[-2:])
        if 2 ** (len(blocks) - 1) > side:
            raise ValueError(f"{len(blocks)} stages downsample {side}px below 1 pixel; allowed at most {int(math.log2(side)) + 1}")
        stages: list[nn.Module] = []
        c_in = width
        for i, n_blocks in enumerate(blocks):
            c = width * 2**i
            layers: list[nn.Module] = [nn.Conv2d(in_shape[0], width, 3, padding=1, bias=False)] if i == 0 else []
            for j in range(n_blocks):
                layers.append(PreActBlock(c_in, c, stride=2 if (i > 0 and j == 0) else 1))
                c_in = c
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.head = nn.Sequential(
            nn.BatchNorm2d(c_in), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, num_classes)
        )


ARCHS = ("mlp", "cnn", "resnet")


def build_model(
    arch: str, in_shape: Sequence[int], num_classes: int, width: int | None = None, dropout: float = 0.0, **kwargs: object
) -> StagedClassifier:
    """Build ``mlp`` | ``cnn`` | ``resnet`` for inputs of ``in_shape`` ((C, H, W) or (D,)).

    ``width`` defaults to 256 (mlp), 32 (cnn), 64 (resnet); extra keyword arguments go to the class
    (``depth`` for mlp, ``num_stages`` for cnn, ``blocks`` for resnet).

    The convolutional models keep their weights channels-last (NHWC): the convolutions then run, and hand
    on, channels-last activations whatever the input's layout, 1.2-1.6x faster than NCHW on a CPU core at
    these widths (``python benchmarks/conv_layout.py``) and the layout tensor cores want on a GPU.
    """
    if arch not in ARCHS:
        raise ValueError(f"arch = {arch!r} is not allowed; allowed: {', '.join(ARCHS)}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout = {dropout!r} is out of range; allowed [0, 1)")
    if width is not None and width < 1:
        raise ValueError(f"width = {width!r} is out of range; allowed >= 1")
    if num_classes < 1:
        raise ValueError(f"num_classes = {num_classes!r} is out of range; allowed >= 1")
    in_shape = tuple(int(s) for s in in_shape)
    if arch == "mlp":
        return MLP(in_shape, num_classes, width=width or 256, dropout=dropout, **kwargs)  # type: ignore[arg-type]
    if arch == "cnn":
        model: StagedClassifier = SmallCNN(in_shape, num_classes, width=width or 32, dropout=dropout, **kwargs)  # type: ignore[arg-type]
    else:
        model = PreActResNet(in_shape, num_classes, width=width or 64, dropout=dropout, **kwargs)  # type: ignore[arg-type]
    return model.to(memory_format=torch.channels_last)
