"""How a trained reference or policy is rebuilt from plain values (what ``ctx.save_model`` stores beside its weights).

``runs.load_model(run_id, "kto")`` calls :func:`build_tiny_lm` (the tiny transformer and its word tokenizer) or
:func:`build_hf_lm` (a Hugging Face causal LM from its directory or hub id) with the saved spec, then loads the
saved state dict; :func:`spec_of` gives that spec for a model the experiment trained.
"""
from __future__ import annotations

from typing import Any

from workbench.lib.lm.core import CausalLM, TinyLM
from workbench.lib.lm.tokenizer import Tokenizer


def build_tiny_lm(tokenizer: dict[str, Any], n_layer: int, d_model: int, n_head: int, context: int,
                  dropout: float = 0.0) -> TinyLM:
    """A :class:`TinyLM` from its tokenizer (``Tokenizer.to_dict()``) and architecture."""
    return TinyLM(Tokenizer.from_dict(tokenizer), n_layer, d_model, n_head, context=context, dropout=dropout)


def build_hf_lm(model: str) -> CausalLM:
    """A Hugging Face causal LM (float32, CPU) from a local directory or hub id; the saved weights replace its own."""
    import torch

    from workbench.lib.lm.hf import HFLM

    return HFLM.from_pretrained(model, device="cpu", dtype=torch.float32)


def spec_of(lm: CausalLM, model: str) -> tuple[dict[str, Any], Any]:
    """(spec, build) that rebuild ``lm``: ``model`` is the config's ``model`` ('tiny' or an HF directory / id)."""
    if isinstance(lm, TinyLM):
        return {"tokenizer": lm.tokenizer.to_dict(), **lm.arch}, build_tiny_lm
    return {"model": model}, build_hf_lm
