"""A small language-model toolkit: tiny transformer, tokenizers, scoring and sampling, HF backend.

``TinyLM`` and ``HFLM`` share one interface (:class:`CausalLM`): ``encode_batch``/``batch_logps``
for differentiable completion log-probs, ``score`` for batched (summed and per-token) log-probs,
``sample`` for temperature/top-k/top-p/stop-string decoding that returns text and log-prob.
``TinyLM.spec()`` is its plain-values spec: ``ctx.save_model(name, lm, lm.spec())`` saves a tiny transformer that
``workbench.runs.load_model`` rebuilds (``build_tiny_lm`` is the same build as a module-level function).
"""
from workbench.lib.lm.core import CausalLM, EncodedBatch, LogProbs, Sample, TinyLM, build_tiny_lm, filter_logits
from workbench.lib.lm.model import TinyGPT
from workbench.lib.lm.tokenizer import CharTokenizer, Tokenizer, WordTokenizer

__all__ = [
    "CausalLM",
    "CharTokenizer",
    "EncodedBatch",
    "LogProbs",
    "Sample",
    "TinyGPT",
    "TinyLM",
    "Tokenizer",
    "WordTokenizer",
    "build_tiny_lm",
    "filter_logits",
    "HFLM",
    "tiny_gpt2",
]


def __getattr__(name: str):  # the HF backend imports transformers lazily
    if name in ("HFLM", "tiny_gpt2"):
        from workbench.lib.lm import hf

        return getattr(hf, name)
    raise AttributeError(name)
