"""Incremental decoding for the tiny transformer: a key/value cache.

``workbench.lib.lm.TinyLM`` recomputes the whole prefix for every sampled token (its ``next_token_logits``
has no cache); a cascade samples many short strings after long prompts, so that dominates its cost.
:class:`CachedTinyLM` is a ``TinyLM`` whose ``next_token_logits`` keeps each layer's keys and values:
the first call runs the prompt through the model, later calls only the newest token (Vaswani et al.
2017, Eq. 1: softmax(QKᵀ/√d)V restricted to the new query). Same weights, same numbers up to float
rounding; ``state_dict`` is a ``TinyLM``'s.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from workbench.lib.lm import TinyLM
from workbench.lib.lm.model import positions_from_mask


class CachedTinyLM(TinyLM):
    """A :class:`~workbench.lib.lm.TinyLM` that decodes with a key/value cache."""

    @classmethod
    def from_lm(cls, lm: TinyLM) -> "CachedTinyLM":
        """A copy of ``lm`` (same tokenizer, architecture and weights) that decodes with the cache."""
        new = cls(lm.tokenizer, **lm.arch).to(lm.device)
        new.load_state_dict(lm.state_dict())
        return new.train(lm.training)

    def _split(self, attn: Any, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, t, d = x.shape
        q, k, v = attn.qkv(x).view(b, t, 3, attn.n_head, d // attn.n_head).permute(2, 0, 3, 1, 4)
        return q, k, v

    @torch.no_grad()
    def next_token_logits(self, input_ids: Tensor, attention_mask: Tensor, cache: Any = None) -> tuple[Tensor, Any]:
        net = self.net
        keep = attention_mask.bool()
        if cache is None:  # the prompt: a full causal pass that records every layer's keys and values
            b, t = input_ids.shape
            pos = positions_from_mask(keep)
            causal = torch.ones(t, t, dtype=torch.bool, device=input_ids.device).tril()
            eye = torch.eye(t, dtype=torch.bool, device=input_ids.device)
            mask = (causal & keep[:, None, None, :]) | eye
            x = net.tok_emb(input_ids) + net.pos_emb(pos)
            layers = []
            for block in net.blocks:
                q, k, v = self._split(block.attn, block.ln1(x))
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
                x = x + block.attn.proj(y.transpose(1, 2).reshape(b, t, -1))
                x = x + block.mlp(block.ln2(x))
                layers.append((k, v))
            h = net.ln_f(x[:, -1:])
            return (h @ net.tok_emb.weight.T)[:, 0], layers
        # one new column: its token attends to every kept earlier token and to itself
        b, t = input_ids.shape
        if t > net.context:
            raise ValueError(f"sequence length {t} exceeds the model's context = {net.context}")
        pos = positions_from_mask(keep)[:, -1:]
        x = net.tok_emb(input_ids[:, -1:]) + net.pos_emb(pos)
        mask = keep.clone()
        mask[:, -1] = True
        mask = mask[:, None, None, :]
        new_layers = []
        for block, (k_old, v_old) in zip(net.blocks, cache):
            q, k, v = self._split(block.attn, block.ln1(x))
            k, v = torch.cat([k_old, k], 2), torch.cat([v_old, v], 2)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            x = x + block.attn.proj(y.transpose(1, 2).reshape(b, 1, -1))
            x = x + block.mlp(block.ln2(x))
            new_layers.append((k, v))
        h = net.ln_f(x)
        return (h @ net.tok_emb.weight.T)[:, 0], new_layers
