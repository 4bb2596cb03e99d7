"""A tiny GPT-style decoder-only transformer (pre-LayerNorm, learned positions, tied embeddings).

Radford et al. 2019 (GPT-2) in miniature: x = tok_emb + pos_emb; each block is
x ← x + Attn(LN(x)), x ← x + MLP(LN(x)) with causal self-attention; logits = LN(x) · Eᵀ.
Positions come from the attention mask (``cumsum(mask) − 1``), so left- and right-padded batches
give the same numbers for the real tokens.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


@dataclass
class ModelOutput:
    logits: Tensor
    hidden: Tensor | None = None


def positions_from_mask(attention_mask: Tensor) -> Tensor:
    """Position of each token among the real (unmasked) tokens of its row; pads get 0."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_head: int, dropout: float):
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_head, d // self.n_head).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, d_model: int, n_head: int, dropout: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_head, dropout)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x + self.drop(self.attn(self.ln1(x), mask))
        return x + self.drop(self.mlp(self.ln2(x)))


class TinyGPT(nn.Module):
    """Decoder-only transformer.

    vocab_size: number of tokens; n_layer, d_model, n_head: depth, width, heads (d_model % n_head == 0);
    context: the longest sequence (prompt + completion) the model accepts.
    """

    def __init__(self, vocab_size: int, n_layer: int = 2, d_model: int = 64, n_head: int = 4, context: int = 32,
                 dropout: float = 0.0):
        super().__init__()
        if d_model % n_head:
            raise ValueError(f"d_model = {d_model} must be divisible by n_head = {n_head}")
        for name, value in (("vocab_size", vocab_size), ("n_layer", n_layer), ("context", context)):
            if value < 1:
                raise ValueError(f"{name} = {value} must be >= 1")
        self.context = context
        self.d_model = d_model
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_head, dropout) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d_model)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                return_hidden: bool = False) -> ModelOutput:
        b, t = input_ids.shape
        if t > self.context:
            raise ValueError(f"sequence length {t} exceeds the model's context = {self.context}")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids, dtype=torch.bool)
        keep = attention_mask.bool()
        pos = positions_from_mask(keep)
        causal = torch.ones(t, t, dtype=torch.bool, device=input_ids.device).tril()
        eye = torch.eye(t, dtype=torch.bool, device=input_ids.device)
        # a pad query attends to itself only, so no row is fully masked (no NaN); real rows never see pads
        mask = (causal & keep[:, None, None, :]) | eye
        x = self.tok_emb(input_ids) + self.pos_emb(pos)
        for block in self.blocks:
            x = block(x, mask)
        h = self.ln_f(x)
        logits = h @ self.tok_emb.weight.T
        return ModelOutput(logits=logits, hidden=h if return_hidden else None)
