"""One interface for causal language models: encode, score continuations, sample.

:class:`CausalLM` implements batching, scoring and sampling once, on top of four primitives that
each backend provides: ``encode_prompt``, ``encode``, ``decode`` and ``forward(input_ids, mask)``.
Backends: :class:`TinyLM` (the tiny transformer + word/char tokenizer, here) and
:class:`workbench.lib.lm.hf.HFLM` (any Hugging Face ``AutoModelForCausalLM``).

Conventions: a sequence is ``prompt ids + completion ids (+ eos)``; log πθ(y|x) is the sum over
completion tokens of log p(y_t | x, y_<t) (the chain rule); scoring pads on the right, sampling on
the left, and positions come from the attention mask so both give the same numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from workbench.lib.lm.model import ModelOutput, TinyGPT
from workbench.lib.lm.tokenizer import Tokenizer


@dataclass
class EncodedBatch:
    """Right-padded ``prompt + completion`` ids; ``completion_mask`` marks completion (and eos) tokens."""

    input_ids: Tensor
    attention_mask: Tensor
    completion_mask: Tensor

    def to(self, device: torch.device | str) -> "EncodedBatch":
        return EncodedBatch(self.input_ids.to(device), self.attention_mask.to(device), self.completion_mask.to(device))

    def select(self, index: Tensor | Sequence[int]) -> "EncodedBatch":
        index = torch.as_tensor(index, device=self.input_ids.device)
        return EncodedBatch(self.input_ids[index], self.attention_mask[index], self.completion_mask[index])

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    @property
    def num_tokens(self) -> int:
        return int(self.attention_mask.sum())


@dataclass
class LogProbs:
    """Log-probabilities of the completion tokens of a batch.

    logps: (B,) summed over completion tokens; token_logps: (B, T−1), zero outside completions,
    aligned with targets ``input_ids[:, 1:]``; mask: (B, T−1) bool; hidden: (B, T−1, d) states that
    predicted each target (for a value head), when asked for.
    """

    logps: Tensor
    token_logps: Tensor
    mask: Tensor
    hidden: Tensor | None = None

    @property
    def lengths(self) -> Tensor:
        return self.mask.sum(-1)


@dataclass
class Sample:
    """One sampled completion. ``logp`` is the model's log-probability (temperature 1, no truncation)
    of ``token_ids``, which include eos when ``finish_reason == "eos"``."""

    prompt: str
    text: str
    token_ids: list[int]
    logp: float
    finish_reason: str  # "eos" | "stop" | "length"

    @property
    def ended(self) -> bool:
        return self.finish_reason == "eos"


def filter_logits(logits: Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Temperature, then top-k, then nucleus (top-p, Holtzman et al. 2020) filtering; −inf outside."""
    if temperature <= 0:
        raise ValueError(f"temperature = {temperature} must be > 0 (use greedy=True for argmax decoding)")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p = {top_p} must be in (0, 1]")
    if top_k < 0:
        raise ValueError(f"top_k = {top_k} must be >= 0")
    logits = logits / temperature
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = sorted_logits.softmax(-1)
        # drop a token when the tokens before it already reach top_p (the first token is always kept)
        drop_sorted = probs.cumsum(-1) - probs >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


class CausalLM(nn.Module):
    """Backend-independent batching, scoring and sampling. Subclasses set ``pad_id``, ``eos_id``,
    ``context`` and implement ``encode_prompt``, ``encode``, ``decode`` and ``forward``."""

    pad_id: int
    eos_id: int
    context: int | None = None

    # --- primitives -------------------------------------------------------------------------
    def encode_prompt(self, prompt: str) -> list[int]:
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> str:
        raise NotImplementedError

    def forward(self, input_ids: Tensor, attention_mask: Tensor, return_hidden: bool = False) -> ModelOutput:
        raise NotImplementedError

    @property
    def banned_ids(self) -> list[int]:
        """Token ids never sampled (pad, bos and other specials that decoding would drop), eos excepted."""
        return sorted({self.pad_id, getattr(self, "bos_id", self.eos_id)} - {self.eos_id})

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # --- scoring -------------------------------------------------------------------------------
    def encode_batch(self, prompts: Sequence[str], completions: Sequence[str],
                     add_eos: bool | Sequence[bool] = True) -> EncodedBatch:
        """Tokenise ``prompt + completion (+ eos)`` pairs into one right-padded batch (on CPU)."""
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        if len(prompts) == 0:
            raise ValueError("empty batch")
        eos_flags = [add_eos] * len(prompts) if isinstance(add_eos, bool) else list(add_eos)
        return self.collate([self.encode_prompt(p) for p in prompts],
                            [self.encode(c) + ([self.eos_id] if e else []) for c, e in zip(completions, eos_flags)])

    def collate(self, prompt_ids: Sequence[Sequence[int]], completion_ids: Sequence[Sequence[int]]) -> EncodedBatch:
        """Right-pad already tokenised (prompt, completion) pairs into one batch."""
        rows = [(list(p), list(c)) for p, c in zip(prompt_ids, completion_ids, strict=True)]
        if not rows:
            raise ValueError("empty batch")
        width = max(len(p) + len(c) for p, c in rows)
        if self.context is not None and width > self.context:
            raise ValueError(f"a prompt + completion has {width} tokens, more than the model's "
                             f"context = {self.context}")
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        attn = torch.zeros(len(rows), width, dtype=torch.bool)
        comp = torch.zeros(len(rows), width, dtype=torch.bool)
        for i, (p, c) in enumerate(rows):
            ids[i, : len(p) + len(c)] = torch.tensor(p + c)
            attn[i, : len(p) + len(c)] = True
            comp[i, len(p): len(p) + len(c)] = True
        return EncodedBatch(ids, attn, comp)

    def batch_logps(self, batch: EncodedBatch, return_hidden: bool = False) -> LogProbs:
        """Differentiable completion log-probs of an encoded batch (moved to the model's device)."""
        batch = batch.to(self.device)
        out = self.forward(batch.input_ids, batch.attention_mask, return_hidden=return_hidden)
        logits = out.logits[:, :-1].float()
        targets = batch.input_ids[:, 1:]
        token = -F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
        mask = batch.completion_mask[:, 1:]
        token = token.view_as(targets) * mask
        hidden = out.hidden[:, :-1] if return_hidden and out.hidden is not None else None
        return LogProbs(token.sum(-1), token, mask, hidden)

    @torch.no_grad()
    def score(self, prompts: Sequence[str], completions: Sequence[str], add_eos: bool | Sequence[bool] = False,
              batch_size: int = 64) -> LogProbs:
        """log π(completion | prompt), summed and per token, for many pairs (no gradient).

        Returned tensors are on CPU; per-token rows are right-padded to the longest batch.
        """
        eos = [add_eos] * len(prompts) if isinstance(add_eos, bool) else list(add_eos)
        parts = []
        for s in range(0, len(prompts), batch_size):
            enc = self.encode_batch(prompts[s: s + batch_size], completions[s: s + batch_size], eos[s: s + batch_size])
            parts.append(self.batch_logps(enc))
        width = max(p.token_logps.shape[1] for p in parts)
        pad = lambda x: F.pad(x, (0, width - x.shape[1]))  # noqa: E731
        return LogProbs(
            torch.cat([p.logps for p in parts]).cpu(),
            torch.cat([pad(p.token_logps) for p in parts]).cpu(),
            torch.cat([pad(p.mask) for p in parts]).cpu(),
        )

    # --- sampling ------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, prompts: Sequence[str], max_new_tokens: int = 32, temperature: float = 1.0, top_k: int = 0,
               top_p: float = 1.0, stop: Sequence[str] = (), greedy: bool = False,
               generator: torch.Generator | None = None, batch_size: int = 256) -> list[Sample]:
        """Sample one completion per prompt (batched, left-padded).

        Decoding stops at eos, at the first ``stop`` string (which is cut off with the tokens that
        formed it), or after ``max_new_tokens`` (or the model's context). Each sample carries the
        model's summed log-probability of its returned tokens, so ``score(prompt, text,
        add_eos=sample.ended)`` gives the same number.
        """
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens = {max_new_tokens} must be >= 1")
        out: list[Sample] = []
        for s in range(0, len(prompts), batch_size):
            out.extend(self._sample_batch(list(prompts[s: s + batch_size]), max_new_tokens, temperature, top_k,
                                          top_p, tuple(stop), greedy, generator))
        return out

    def _sample_batch(self, prompts: list[str], max_new_tokens: int, temperature: float, top_k: int, top_p: float,
                      stop: tuple[str, ...], greedy: bool, generator: torch.Generator | None) -> list[Sample]:
        device = self.device
        encoded = [self.encode_prompt(p) for p in prompts]
        width = max(len(e) for e in encoded)
        if self.context is not None:
            if width >= self.context:
                raise ValueError(f"a prompt has {width} tokens; the model's context = {self.context} leaves no room")
            max_new_tokens = min(max_new_tokens, self.context - width)
        b = len(prompts)
        ids = torch.full((b, width), self.pad_id, dtype=torch.long)
        attn = torch.zeros(b, width, dtype=torch.bool)
        for i, e in enumerate(encoded):
            ids[i, width - len(e):] = torch.tensor(e)
            attn[i, width - len(e):] = True
        ids, attn = ids.to(device), attn.to(device)
        generated: list[list[int]] = [[] for _ in range(b)]
        token_logps: list[list[float]] = [[] for _ in range(b)]
        reason = ["length"] * b
        alive = torch.ones(b, dtype=torch.bool, device=device)
        banned = torch.tensor(self.banned_ids, dtype=torch.long, device=device)
        cache = None
        for _ in range(max_new_tokens):
            logits, cache = self.next_token_logits(ids, attn, cache)
            logits = logits.float()
            logp = logits.log_softmax(-1)
            logits[:, banned] = float("-inf")
            if greedy:
                nxt = logits.argmax(-1)
            else:
                probs = filter_logits(logits, temperature, top_k, top_p).softmax(-1)
                nxt = torch.multinomial(probs.cpu() if generator is not None else probs, 1, generator=generator)
                nxt = nxt.squeeze(-1).to(device)
            nxt = torch.where(alive, nxt, torch.full_like(nxt, self.pad_id))
            was_alive = alive.clone()
            chosen = logp.gather(-1, nxt[:, None]).squeeze(-1).tolist()
            for i in alive.nonzero().flatten().tolist():
                tok = int(nxt[i])
                generated[i].append(tok)
                token_logps[i].append(chosen[i])
                if tok == self.eos_id:
                    reason[i], alive[i] = "eos", False
                elif stop and self._cut_stop(generated[i], token_logps[i], stop):
                    reason[i], alive[i] = "stop", False
            ids = torch.cat([ids, nxt[:, None]], 1)
            attn = torch.cat([attn, was_alive[:, None]], 1)
            if not alive.any():
                break
        samples = []
        for i in range(b):
            toks = generated[i]
            text_ids = toks[:-1] if reason[i] == "eos" else toks
            samples.append(Sample(prompts[i], self.decode(text_ids), toks, float(sum(token_logps[i])), reason[i]))
        return samples

    def next_token_logits(self, input_ids: Tensor, attention_mask: Tensor, cache: Any = None) -> tuple[Tensor, Any]:
        """Logits of the next token after each row of ``input_ids`` (B, V), and a cache for the next call.

        The default recomputes the whole prefix (fine for short contexts); a backend with a key/value
        cache overrides it. Between calls exactly one column is appended to ``input_ids``.
        """
        return self.forward(input_ids, attention_mask).logits[:, -1], None

    def _cut_stop(self, toks: list[int], logps: list[float], stop: tuple[str, ...]) -> bool:
        """If the decoded tokens contain a stop string, drop the tokens from the one that started it."""
        text = self.decode(toks)
        hits = [text.find(s) for s in stop if s in text]
        if not hits:
            return False
        cut = min(hits)
        keep = len(toks)
        while keep > 0 and len(self.decode(toks[:keep]).rstrip()) > cut:
            keep -= 1
        del toks[keep:], logps[keep:]
        return True


class TinyLM(CausalLM):
    """:class:`~workbench.lib.lm.model.TinyGPT` plus a word/char tokenizer; every prompt starts with ``<bos>``.

    ``tokenizer`` may be a :class:`Tokenizer` or its plain form (``Tokenizer.to_dict()``), so ``TinyLM(**lm.spec())``
    rebuilds the architecture from plain values: ``ctx.save_model("lm", lm, lm.spec())`` saves one that
    ``workbench.runs.load_model`` rebuilds (a subclass such as a cached decoder rebuilds as itself).
    """

    def __init__(self, tokenizer: Tokenizer | dict, n_layer: int = 2, d_model: int = 64, n_head: int = 4,
                 context: int = 32, dropout: float = 0.0):
        super().__init__()
        if isinstance(tokenizer, dict):
            tokenizer = Tokenizer.from_dict(tokenizer)
        self.tokenizer = tokenizer
        self.net = TinyGPT(tokenizer.vocab_size, n_layer, d_model, n_head, context, dropout)
        self.pad_id, self.eos_id, self.bos_id = tokenizer.pad_id, tokenizer.eos_id, tokenizer.bos_id
        self.context = context
        self.hidden_size = d_model
        self.arch = dict(n_layer=n_layer, d_model=d_model, n_head=n_head, context=context, dropout=dropout)

    def encode_prompt(self, prompt: str) -> list[int]:
        return [self.bos_id] + self.tokenizer.encode(prompt)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, return_hidden: bool = False) -> ModelOutput:
        return self.net(input_ids, attention_mask, return_hidden=return_hidden)

    def spec(self) -> dict[str, Any]:
        """The plain-values spec (tokenizer and architecture) that rebuilds this model: ``type(lm)(**lm.spec())``."""
        return {"tokenizer": self.tokenizer.to_dict(), **self.arch}

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build_tiny_lm(tokenizer: dict, n_layer: int = 2, d_model: int = 64, n_head: int = 4, context: int = 32,
                  dropout: float = 0.0) -> TinyLM:
    """A :class:`TinyLM` from its plain spec (:meth:`TinyLM.spec`): a module-level build for ``ctx.save_model``."""
    return TinyLM(tokenizer, n_layer, d_model, n_head, context, dropout)
