"""The shape every shared classifier takes: ``forward(x) = head(stages[-1](… stages[0](x)))``."""
from __future__ import annotations

import torch
from torch import nn


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
