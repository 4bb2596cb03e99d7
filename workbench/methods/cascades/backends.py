"""Language-model backends behind one interface: sample completions and score given completions.

- :class:`LocalBackend`: any ``workbench.lib.lm.CausalLM`` (the tiny transformer ``TinyLM``, or a
  Hugging Face model via ``HFLM``), batched; its scores are exact: log P(sampling gives this text).
- :class:`HFBackend`: a Hugging Face causal LM loaded offline from a local directory.
- :class:`OpenAIBackend`: an OpenAI-compatible ``/v1/completions`` endpoint (vLLM, llama.cpp's
  server, ...), over the standard library's ``urllib`` (no extra dependency): timeouts, retries with
  exponential backoff, and a clear error when the endpoint cannot be reached. It scores text only
  when the server returns log-probabilities (``echo`` + ``logprobs``); otherwise scoring raises
  :class:`ScoringUnavailable`, and the inference methods that need scores say so.

A ``String`` distribution takes a backend or a ``CausalLM`` (wrapped by :func:`as_backend`).
"""
from __future__ import annotations

import json
import math
import os
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Sequence

import torch


class BackendError(RuntimeError):
    """The backend answered, but not with something usable."""


class BackendUnavailable(BackendError):
    """The endpoint could not be reached (after the retries)."""


class ScoringUnavailable(BackendError):
    """The backend cannot score text (no log-probabilities)."""


@dataclass(frozen=True)
class Completion:
    """One sampled completion: its text (stop string excluded), log-probability (``None`` when the
    backend gives none) and why it ended: ``"eos"``, ``"stop"`` or ``"length"``."""

    text: str
    log_prob: float | None
    finish_reason: str


class Backend:
    """The interface every backend implements (``stats`` counts calls and rows for benchmarks)."""

    name: str = "backend"
    can_score: bool = True

    def __init__(self) -> None:
        self.stats = {"sample_calls": 0, "sampled": 0, "score_calls": 0, "scored": 0}

    def sample(self, prompts: Sequence[str], *, max_tokens: int = 32, temperature: float = 1.0,
               stop: Sequence[str] = (), generator: torch.Generator | None = None) -> list[Completion]:
        raise NotImplementedError

    def log_prob(self, prompts: Sequence[str], texts: Sequence[str], *, max_tokens: int = 32,
                 temperature: float = 1.0, stop: Sequence[str] = ()) -> list[float]:
        raise NotImplementedError


def as_backend(lm: Any) -> Backend:
    """``lm`` itself when it is a :class:`Backend`; a ``CausalLM`` wrapped in a :class:`LocalBackend`
    (one wrapper per model, so distributions over the same model batch together)."""
    if isinstance(lm, Backend):
        return lm
    from workbench.lib.lm import CausalLM

    if isinstance(lm, CausalLM):
        cached = getattr(lm, "_cascades_backend", None)
        if cached is None:
            cached = LocalBackend(lm)
            object.__setattr__(lm, "_cascades_backend", cached)
        return cached
    raise TypeError(f"expected a cascades Backend or a workbench.lib.lm.CausalLM, got {type(lm).__name__}")


def _first_stop(text: str, stop: Sequence[str]) -> int:
    """Index of the first occurrence of any stop string in ``text`` (−1 when none occurs)."""
    hits = [text.find(s) for s in stop if s in text]
    return min(hits) if hits else -1


def logsumexp(values: Sequence[float]) -> float:
    """log Σ exp(v), −∞ for an empty or all −∞ list."""
    finite = [v for v in values if v != -math.inf]
    if not finite:
        return -math.inf
    m = max(finite)
    return m + math.log(sum(math.exp(v - m) for v in finite))


class LocalBackend(Backend):
    """A ``workbench.lib.lm.CausalLM`` in this process, batched (``batch_size`` rows per forward pass).

    Sampling uses the model's own decoder (temperature, stop strings, eos); each sample's log-prob is
    then computed exactly by :meth:`log_prob` in one batched pass.
    """

    def __init__(self, lm: Any, batch_size: int = 64, name: str | None = None):
        super().__init__()
        self.lm = lm
        self.batch_size = int(batch_size)
        self.name = name or type(lm).__name__

    # --- helpers -------------------------------------------------------------------------------
    def _cap(self, prompt_ids: Sequence[int], max_tokens: int) -> int:
        """The most tokens a completion of this prompt may have: ``max_tokens``, capped by the room left in
        the model's context (0 when the prompt fills it: the only completion is then "", with probability 1)."""
        context = getattr(self.lm, "context", None)
        return max_tokens if context is None else max(0, min(max_tokens, context - len(prompt_ids)))

    # --- sampling --------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, prompts: Sequence[str], *, max_tokens: int = 32, temperature: float = 1.0,
               stop: Sequence[str] = (), generator: torch.Generator | None = None) -> list[Completion]:
        """One completion per prompt. Prompts are grouped by their token budget (``max_tokens`` capped by
        the context), so each completion's length limit does not depend on the rest of the batch."""
        prompts = list(prompts)
        if not prompts:
            return []
        stop = tuple(dict.fromkeys(stop))
        caps = [self._cap(self.lm.encode_prompt(p), max_tokens) for p in prompts]
        texts: list[str] = [""] * len(prompts)
        reasons: list[str] = [""] * len(prompts)
        for i, cap in enumerate(caps):
            if cap == 0:
                reasons[i] = "length"
        for cap in sorted(set(caps) - {0}, reverse=True):
            rows = [i for i, c in enumerate(caps) if c == cap]
            out = self.lm.sample([prompts[i] for i in rows], max_new_tokens=cap, temperature=temperature,
                                 stop=stop, generator=generator, batch_size=self.batch_size)
            self.stats["sample_calls"] += 1
            for i, s in zip(rows, out):
                text, reason = s.text, s.finish_reason
                cut = _first_stop(text, stop)
                if cut >= 0:  # the decoder keeps a whitespace stop string; the value never contains one
                    text, reason = text[:cut], "stop"
                texts[i], reasons[i] = text, reason
        self.stats["sampled"] += len(prompts)
        scores = self.log_prob(prompts, texts, max_tokens=max_tokens, temperature=temperature, stop=stop)
        return [Completion(t, s, r) for t, s, r in zip(texts, scores, reasons)]

    # --- scoring ---------------------------------------------------------------------------------
    def _endings(self, text: str, cap: int, stop: Sequence[str]) -> tuple[list[int], list[int], list[list[int]], bool]:
        """How sampling can return exactly ``text``: the text's tokens ``ids``; the single tokens that may
        end it right after ``ids`` (eos; a one-token stop string); longer endings (token lists, ``ids``
        included) where a stop string takes several tokens; and whether the text may end by filling the
        budget ``cap``. A stop string counts only when it is the first one the decoder would see."""
        lm = self.lm
        ids = lm.encode(text)
        if _first_stop(text, stop) >= 0 or len(ids) > cap:
            return ids, [], [], False  # the decoder would have stopped earlier
        single, multi = [], []
        if len(ids) + 1 <= cap:
            single.append(lm.eos_id)
        for s in stop:
            full = lm.encode(text + s)
            if len(full) > cap or lm.decode(full) != text + s:
                continue
            # no stop string may complete before the last token, and the first hit must start at len(text)
            early = any(_first_stop(lm.decode(full[:k]), stop) >= 0 for k in range(len(ids), len(full)))
            if early or _first_stop(text + s, stop) != len(text):
                continue
            if len(full) == len(ids) + 1 and full[: len(ids)] == ids:
                single.append(full[-1])
            else:
                multi.append(full)
        return ids, list(dict.fromkeys(single)), [list(x) for x in dict.fromkeys(tuple(x) for x in multi)], \
            len(ids) == cap

    def _logits(self, batch: Any, temperature: float) -> torch.Tensor:
        """Log-softmax of the next-token logits at every position, at temperature T, with the never-sampled
        special tokens excluded (the decoder's own conventions)."""
        lm = self.lm
        logits = lm(batch.input_ids, batch.attention_mask).logits.float() / temperature
        banned = lm.banned_ids
        if banned:
            logits[..., torch.tensor(banned, device=logits.device)] = float("-inf")
        return logits.log_softmax(-1)

    @torch.no_grad()
    def token_log_probs(self, prompt_ids: Sequence[Sequence[int]], completion_ids: Sequence[Sequence[int]],
                        temperature: float = 1.0, next_tokens: Sequence[Sequence[int]] | None = None
                        ) -> tuple[list[float], list[list[float]]]:
        """Σ_t log p_T(y_t | x, y_<t) for each (prompt, completion) pair: the chain rule over the
        completion tokens; and, for each pair, log p_T(z | x, y) of each token z in ``next_tokens``
        (the tokens that may follow the completion). Batched ``batch_size`` rows at a time."""
        lm = self.lm
        sums: list[float] = []
        nexts: list[list[float]] = []
        for s in range(0, len(prompt_ids), self.batch_size):
            ps, cs = prompt_ids[s: s + self.batch_size], completion_ids[s: s + self.batch_size]
            batch = lm.collate(ps, cs).to(lm.device)
            logp = self._logits(batch, temperature)
            tok = logp[:, :-1].gather(-1, batch.input_ids[:, 1:, None]).squeeze(-1)
            mask = batch.completion_mask[:, 1:]
            sums.extend(torch.where(mask, tok, torch.zeros_like(tok)).sum(-1).double().tolist())
            if next_tokens is not None:
                last = torch.tensor([len(p) + len(c) - 1 for p, c in zip(ps, cs)], device=logp.device)
                rows = logp[torch.arange(len(ps), device=logp.device), last].double().cpu()
                nexts.extend([rows[j, list(z)].tolist() if z else [] for j, z in
                              enumerate(next_tokens[s: s + self.batch_size])])
        self.stats["score_calls"] += 1
        return sums, nexts

    def log_prob(self, prompts: Sequence[str], texts: Sequence[str], *, max_tokens: int = 32,
                 temperature: float = 1.0, stop: Sequence[str] = ()) -> list[float]:
        """log P(sampling after ``prompt`` returns exactly ``text``), for each pair (the likelihood of a string-valued
        random variable parameterised by an LM, as the paper defines cascades).

        The event is a union over how decoding ended: end of text after ``text``, a stop string after
        it (the first the decoder detects), or the token budget filled exactly; its probability is the
        sum of those paths' chain-rule probabilities at temperature T (log-sum-exp). One forward pass
        over ``prompt + text`` gives the text's log-prob and every one-token ending; a stop string of
        several tokens takes a row of its own. Exact for character tokenizers; for subword tokenizers
        it takes each string's canonical tokenization.
        """
        stop = tuple(dict.fromkeys(stop))
        out = [-math.inf] * len(prompts)
        base_p, base_c, base_next, base_owner, base_length = [], [], [], [], []
        multi_p, multi_c, multi_owner = [], [], []
        for i, (p, t) in enumerate(zip(prompts, texts, strict=True)):
            pid = self.lm.encode_prompt(p)
            cap = self._cap(pid, max_tokens)
            if cap == 0:  # no room: the empty completion is certain
                out[i] = 0.0 if t == "" else -math.inf
                continue
            ids, single, multi, by_length = self._endings(t, cap, stop)
            if single or by_length:
                base_p.append(pid)
                base_c.append(ids)
                base_next.append(single)
                base_owner.append(i)
                base_length.append(by_length)
            for full in multi:
                multi_p.append(pid)
                multi_c.append(full)
                multi_owner.append(i)
        per: list[list[float]] = [[] for _ in prompts]
        if base_p:
            sums, nexts = self.token_log_probs(base_p, base_c, temperature, base_next)
            for i, total, ends, by_length in zip(base_owner, sums, nexts, base_length):
                per[i] += [total + e for e in ends] + ([total] if by_length else [])
        if multi_p:
            sums, _ = self.token_log_probs(multi_p, multi_c, temperature)
            for i, total in zip(multi_owner, sums):
                per[i].append(total)
        self.stats["scored"] += len(prompts)
        return [logsumexp(v) if v else out[i] for i, v in enumerate(per)]


class HFBackend(LocalBackend):
    """A Hugging Face causal LM loaded offline from a local directory (``workbench.lib.lm.HFLM``)."""

    @classmethod
    def from_directory(cls, path: str, device: str | None = None, batch_size: int = 16, **kwargs: Any) -> "HFBackend":
        if not os.path.isdir(path):
            raise FileNotFoundError(f"HFBackend: {path!r} is not a directory; pass a local directory holding a "
                                    "saved model and tokenizer (config.json, weights, tokenizer files)")
        from workbench.lib.lm.hf import HFLM

        lm = HFLM.from_pretrained(path, device=device or "cpu", local_files_only=True, **kwargs).eval()
        return cls(lm, batch_size=batch_size, name=f"hf:{os.path.basename(os.path.normpath(path))}")


class OpenAIBackend(Backend):
    """An OpenAI-compatible completions endpoint.

    base_url: e.g. ``http://127.0.0.1:8000/v1``; model: the served model's name; timeout: seconds per
    request; retries: extra attempts after a connection error, a timeout, HTTP 408/409/429 or 5xx,
    waiting ``backoff · 2^k`` seconds before attempt k+1; logprobs: ask for token log-probs when
    sampling (their sum is the sample's log-prob); batch_prompts: send many prompts in one request
    (``prompt`` as a list) rather than one request each.

    Scoring (:meth:`log_prob`) sends ``prompt + text`` with ``echo`` and ``logprobs`` and sums the
    log-probs of the tokens from the text's first character on (the model's temperature-1 log-probs;
    the end of the text is not scored). A server that returns no log-probs raises
    :class:`ScoringUnavailable`.
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 30.0,
                 retries: int = 3, backoff: float = 0.5, logprobs: bool = True, batch_prompts: bool = True):
        super().__init__()
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"OpenAIBackend: base_url = {base_url!r} must start with http:// or https://")
        if timeout <= 0 or retries < 0 or backoff < 0:
            raise ValueError(f"OpenAIBackend: timeout = {timeout} must be > 0, retries = {retries} and "
                             f"backoff = {backoff} >= 0")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout, self.retries, self.backoff = float(timeout), int(retries), float(backoff)
        self.logprobs, self.batch_prompts = bool(logprobs), bool(batch_prompts)
        self.name = f"http:{model}"

    # --- transport -------------------------------------------------------------------------------
    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        url = self.base_url + path
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(payload).encode()
        last = ""
        for attempt in range(self.retries + 1):
            try:
                req = urllib.request.Request(url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    body = resp.read()
                try:
                    return json.loads(body)
                except ValueError as exc:
                    raise BackendError(f"{url} answered with something that is not JSON: {body[:200]!r}") from exc
            except urllib.error.HTTPError as exc:
                detail = exc.read()[:300].decode(errors="replace")
                if exc.code in (408, 409, 429) or exc.code >= 500:
                    last = f"HTTP {exc.code} {detail}".strip()
                else:
                    raise BackendError(f"{url} answered HTTP {exc.code}: {detail}") from exc
            except (urllib.error.URLError, TimeoutError, socket.timeout, ConnectionError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                last = f"{type(reason).__name__}: {reason}"
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt)
        raise BackendUnavailable(
            f"cannot reach {url} after {self.retries + 1} attempt(s) (timeout {self.timeout:g} s each; last "
            f"error: {last}). Is the server running, and does base_url end in /v1 (e.g. http://127.0.0.1:8000/v1)?")

    def _complete(self, prompts: list[str], **params: Any) -> list[dict[str, Any]]:
        """Choices of ``/completions`` for each prompt, in prompt order."""
        groups = [prompts] if self.batch_prompts else [[p] for p in prompts]
        out: list[dict[str, Any]] = []
        for group in groups:
            reply = self._post("/completions", {"model": self.model, "prompt": group if len(group) > 1 else group[0],
                                                **params})
            choices = reply.get("choices")
            if not isinstance(choices, list) or len(choices) != len(group):
                raise BackendError(f"{self.base_url}/completions returned {len(choices or [])} choices for "
                                   f"{len(group)} prompts: {str(reply)[:200]}")
            out.extend(sorted(choices, key=lambda c: c.get("index", 0)))
        return out

    # --- interface -------------------------------------------------------------------------------
    def sample(self, prompts: Sequence[str], *, max_tokens: int = 32, temperature: float = 1.0,
               stop: Sequence[str] = (), generator: torch.Generator | None = None) -> list[Completion]:
        prompts = list(prompts)
        if not prompts:
            return []
        seed = int(torch.randint(0, 2**31 - 1, (), generator=generator))
        params: dict[str, Any] = {"max_tokens": int(max_tokens), "temperature": float(temperature), "seed": seed}
        if stop:
            params["stop"] = list(stop)[:4]  # the OpenAI API takes at most 4
        if self.logprobs:
            params["logprobs"] = 1
        choices = self._complete(prompts, **params)
        self.stats["sample_calls"] += 1
        self.stats["sampled"] += len(prompts)
        out = []
        for c in choices:
            text = str(c.get("text", ""))
            cut = _first_stop(text, stop)
            text = text if cut < 0 else text[:cut]
            lp = None
            token_lps = (c.get("logprobs") or {}).get("token_logprobs") if isinstance(c.get("logprobs"), dict) else None
            if token_lps and all(isinstance(x, (int, float)) for x in token_lps):
                lp = float(sum(token_lps))
            reason = {"length": "length"}.get(str(c.get("finish_reason")), "stop")
            out.append(Completion(text, lp, reason))
        return out

    def log_prob(self, prompts: Sequence[str], texts: Sequence[str], *, max_tokens: int = 32,
                 temperature: float = 1.0, stop: Sequence[str] = ()) -> list[float]:
        prompts, texts = list(prompts), list(texts)
        if not prompts:
            return []
        choices = self._complete([p + t for p, t in zip(prompts, texts, strict=True)], max_tokens=1, echo=True,
                                 logprobs=1, temperature=1.0)
        self.stats["score_calls"] += 1
        self.stats["scored"] += len(prompts)
        out = []
        for p, t, c in zip(prompts, texts, choices):
            lp = c.get("logprobs")
            if not isinstance(lp, dict) or not lp.get("token_logprobs") or not lp.get("text_offset"):
                raise ScoringUnavailable(
                    f"{self.base_url} returned no log-probabilities, so it cannot score text (observe, "
                    "importance/SMC weights, beam scores). Use a server that returns them with echo=true and "
                    "logprobs (e.g. vLLM), or use forward sampling, rejection or self-consistency.")
            total = 0.0
            for off, tok_lp in zip(lp["text_offset"], lp["token_logprobs"]):
                if len(p) <= off < len(p) + len(t):
                    if tok_lp is None:
                        raise ScoringUnavailable(f"{self.base_url} returned no log-prob for a token of the text")
                    total += float(tok_lp)
            out.append(total)
        return out
