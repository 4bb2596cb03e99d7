"""The shape every shared classifier takes: ``forward(x) = head(stages[-1](… stages[0](x)))``."""
from __future__ import annotations

import torch
from torch import nn


def inference_rows(device: torch.device | str) -> int:
    """Rows per forward pass where a model is only evaluated (accuracy, predictions, per-point losses).

    On a CPU a small batch keeps each layer's activations in cache and spares the allocator page faults: the shared
    CNNs and ResNets evaluate 1.7-1.9x faster at 128 rows than at 1,024 and up to 1.65x faster than at 512
    (``python benchmarks/conv_layout.py``); a row's outputs do not depend on the batch it is in (bit-identical,
    tested). A GPU wants large batches."""
    return 128 if torch.device(device).type == "cpu" else 1024


class StagedClassifier(nn.Module):
    """A classifier cut into ``stages`` (an ``nn.ModuleList``) and a ``head``.

    A method can intervene between stages (NFM mixes at the input, k = 0, or after stage k) with
    :meth:`features` and :meth:`classify_from`.
    """

    stages: nn.ModuleList
    head: nn.Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return self.head(x)

    def features(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """The hidden representation after the first ``k`` stages (k = 0: the input itself)."""
        self._check_k(k)
        for stage in self.stages[:k]:
            x = stage(x)
        return x

    def classify_from(self, h: torch.Tensor, k: int) -> torch.Tensor:
        """Logits from a representation taken after the first ``k`` stages."""
        self._check_k(k)
        for stage in self.stages[k:]:
            h = stage(h)
        return self.head(h)

    def _check_k(self, k: int) -> None:
        if not 0 <= k <= len(self.stages):
            raise ValueError(f"stage index k = {k} is out of range; allowed [0, {len(self.stages)}]")
