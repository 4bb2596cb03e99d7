"""The prompt playground, headless: sample a completion from a trained model (``workbench.runs.load_model(run_id,
"lm")``) or score one, with each token's conditional log-probability under the ``String`` distribution::

    lm = runs.load_model(run_id, "lm")
    out = sample(lm, first_prompt(runs.get(run_id)["config"]), stop=("\\n",), max_tokens=12, seed=0)
    out.text, out.total, out.tokens        # the completion, log p(completion | prompt), [(token, log p), ...]
    score(lm, "Q:00012+00003\\n", "2+3+0=05").total

The notebook's playground widget (``widgets.views.cascades.playground``) is a form over these two functions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from . import arithmetic as A
from .distributions import String


@dataclass
class Scored:
    """A completion of ``prompt`` with its log-probability ``total`` = Σ_t log p_T(y_t | prompt, y_<t) (plus the
    way it ended, as ``String.log_prob`` counts it) and each token's conditional log-probability ``tokens``."""

    prompt: str
    text: str
    total: float
    tokens: list[tuple[str, float]] = field(default_factory=list)


def first_prompt(config: dict[str, Any], fmt: str = "scratchpad") -> str:
    """A held-out question written the way a run with ``config`` (a stored run's config dict) wrote them."""
    problem = A.held_out(1, int(config.get("test_digits", 5)), seed=-1, width=int(config.get("width", 0)))[0]
    return A.prompt(problem, fmt)


def _dist(lm: Any, prompt: str, stop: str | Sequence[str], max_tokens: int, temperature: float) -> String:
    return String(lm, prompt, stop=stop, max_tokens=max_tokens, temperature=temperature)


def score(lm: Any, prompt: str, completion: str, stop: str | Sequence[str] = (), max_tokens: int = 12,
          temperature: float = 1.0) -> Scored:
    """``completion`` scored under ``String(lm, prompt, stop, max_tokens, temperature)``: the total, and each
    token's log p_T(y_t | prompt, y_<t) (the chain rule's terms)."""
    dist = _dist(lm, prompt, stop, max_tokens, temperature)
    total = dist.log_prob(completion)
    backend, ids = dist.backend, lm.encode(completion)
    prefixes = [ids[: i + 1] for i in range(len(ids))]
    running, per = 0.0, []
    if prefixes:
        sums, _ = backend.token_log_probs([lm.encode_prompt(prompt)] * len(prefixes), prefixes, dist.temperature)
        for i, lp in enumerate(sums):
            per.append((lm.decode(ids[i: i + 1]), lp - running))
            running = lp
    return Scored(prompt, completion, float(total), per)


def sample(lm: Any, prompt: str, stop: str | Sequence[str] = (), max_tokens: int = 12, temperature: float = 1.0,
           seed: int | torch.Generator = 0) -> Scored:
    """One completion drawn from ``String(lm, prompt, stop, max_tokens, temperature)`` (``seed``: an integer or a
    generator), scored as :func:`score` does."""
    generator = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    text, _ = _dist(lm, prompt, stop, max_tokens, temperature).sample_with_log_prob(generator)
    return score(lm, prompt, text, stop, max_tokens, temperature)
