"""A scripted deterministic language model for tests only: a fixed bigram table over a few characters.

p(next | previous token) = softmax(TABLE[previous]); no training, no randomness, so probabilities of
whole strings can be written down by hand.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from workbench.lib.lm import CausalLM, CharTokenizer
from workbench.lib.lm.model import ModelOutput

CHARS = "ab\n"


class ScriptedLM(CausalLM):
    """Bigram logits ``table[prev]`` over the vocabulary <pad> <bos> <eos> <unk> a b \\n."""

    def __init__(self, table: Tensor | None = None, context: int = 32):
        super().__init__()
        self.tokenizer = CharTokenizer(list(CHARS))
        v = self.tokenizer.vocab_size
        if table is None:
            g = torch.Generator().manual_seed(0)
            table = torch.randn(v, v, generator=g, dtype=torch.float64)
            table[:, [self_ids for self_ids in (0, 1, 3)]] = float("-inf")  # never <pad>, <bos>, <unk>
        self.table = nn.Parameter(table.to(torch.float64).clone(), requires_grad=False)
        self.pad_id, self.eos_id, self.bos_id = 0, 2, 1
        self.context = context

    def encode_prompt(self, prompt: str) -> list[int]:
        return [self.bos_id] + self.tokenizer.encode(prompt)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, return_hidden: bool = False) -> ModelOutput:
        return ModelOutput(self.table[input_ids].float())

    def next_prob(self, prev: str | None, temperature: float = 1.0) -> dict[str, float]:
        """p(next | prev) as a dict over 'a', 'b', '\\n', '<eos>' (never-sampled specials excluded)."""
        row = self.bos_id if prev is None else self.tokenizer.index[prev]
        logits = self.table[row].clone() / temperature
        logits[[self.pad_id, self.bos_id]] = float("-inf")
        p = logits.softmax(-1)
        out = {c: float(p[self.tokenizer.index[c]]) for c in CHARS}
        out["<eos>"] = float(p[self.eos_id])
        return out
