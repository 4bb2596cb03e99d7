"""Distributions a cascade samples from and observes: ``Categorical``, ``Constant`` and ``String``.

Every distribution can ``sample(generator)`` and score ``log_prob(value)``. ``String`` is backed by a
language model (any :class:`~workbench.methods.cascades.backends.Backend`, or a ``workbench.lib.lm.CausalLM``,
which is wrapped in a :class:`~workbench.methods.cascades.backends.LocalBackend`): its value is the text the
model writes after ``prompt`` until end of text, a ``stop`` string or ``max_tokens`` tokens, and its
log-probability is that of the event "sampling gives exactly this text" (see
:meth:`LocalBackend.log_prob <workbench.methods.cascades.backends.LocalBackend.log_prob>`). Distributions
that share a backend and decoding settings are sampled and scored in batches by the inference
runtime (``batch_key``, ``sample_batch``, ``log_prob_batch``).
"""
from __future__ import annotations

import bisect
import itertools
import math
from typing import Any, Hashable, Iterable, Mapping, Sequence

import torch


class Distribution:
    """The interface: ``sample``, ``log_prob``; optionally ``support`` (enumerable) and batching."""

    def sample(self, generator: torch.Generator | None = None) -> Any:
        raise NotImplementedError

    def log_prob(self, value: Any) -> float:
        raise NotImplementedError

    def sample_with_log_prob(self, generator: torch.Generator | None = None) -> tuple[Any, float]:
        value = self.sample(generator)
        return value, self.log_prob(value)

    def support(self) -> list[Any] | None:
        """Every value with non-zero probability, when there are finitely many (``None`` otherwise)."""
        return None

    def batch_key(self) -> Hashable | None:
        """Distributions with the same non-``None`` key are sampled and scored together."""
        return None

    @classmethod
    def sample_batch(cls, dists: Sequence["Distribution"], generator: torch.Generator | None
                     ) -> list[tuple[Any, float]]:
        return [d.sample_with_log_prob(generator) for d in dists]

    @classmethod
    def log_prob_batch(cls, dists: Sequence["Distribution"], values: Sequence[Any]) -> list[float]:
        return [d.log_prob(v) for d, v in zip(dists, values, strict=True)]

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly description (stored in traces)."""
        return {"type": type(self).__name__}


class Categorical(Distribution):
    """A finite distribution: ``Categorical({"yes": 0.7, "no": 0.3})``.

    probs: value → probability (non-negative, finite; normalised by their sum, which must be > 0).
    """

    def __init__(self, probs: Mapping[Any, float]):
        if not (type(probs) is dict or isinstance(probs, Mapping)) or not probs:
            raise ValueError(f"Categorical: probs = {probs!r} must be a non-empty dict value → probability")
        total = 0.0
        for value, p in probs.items():
            p = float(p)
            if not math.isfinite(p) or p < 0:
                raise ValueError(f"Categorical: probability of {value!r} = {p} must be finite and >= 0")
            total += p
        if total <= 0:
            raise ValueError("Categorical: the probabilities sum to 0")
        self.probs: dict[Any, float] = {v: float(p) / total for v, p in probs.items()}
        self._values = [v for v, p in self.probs.items() if p > 0]
        self._cum = list(itertools.accumulate(self.probs[v] for v in self._values))

    def sample(self, generator: torch.Generator | None = None) -> Any:
        """Inverse-CDF sampling with one uniform draw from ``generator``."""
        u = float(torch.rand((), generator=generator, dtype=torch.float64)) * self._cum[-1]
        return self._values[min(bisect.bisect_right(self._cum, u), len(self._values) - 1)]

    def log_prob(self, value: Any) -> float:
        try:
            p = self.probs.get(value, 0.0)
        except TypeError:  # unhashable: not in the support
            return -math.inf
        return math.log(p) if p > 0 else -math.inf

    def support(self) -> list[Any]:
        return [v for v, p in self.probs.items() if p > 0]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Categorical) and other.probs == self.probs

    def __hash__(self) -> int:
        return hash(tuple(self.probs.items()))

    def __repr__(self) -> str:
        return f"Categorical({self.probs!r})"

    def describe(self) -> dict[str, Any]:
        return {"type": "Categorical", "probs": {repr(v): p for v, p in self.probs.items()}}


def Bernoulli(p: float) -> Categorical:  # noqa: N802 - a distribution constructor
    """``Categorical({True: p, False: 1 − p})``."""
    if not 0 <= p <= 1:
        raise ValueError(f"Bernoulli: p = {p} must be in [0, 1]")
    return Categorical({True: p, False: 1 - p})


class Constant(Distribution):
    """A point mass: ``sample`` returns ``value``; ``log_prob`` is 0 at ``value`` and −∞ elsewhere."""

    def __init__(self, value: Any):
        self.value = value

    def sample(self, generator: torch.Generator | None = None) -> Any:
        return self.value

    def log_prob(self, value: Any) -> float:
        try:
            return 0.0 if value == self.value else -math.inf
        except Exception:  # noqa: BLE001 - incomparable values differ
            return -math.inf

    def support(self) -> list[Any]:
        return [self.value]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Constant) and type(other.value) is type(self.value) and other.value == self.value

    def __hash__(self) -> int:
        try:
            return hash(("Constant", self.value))
        except TypeError:
            return hash(("Constant", repr(self.value)))

    def __repr__(self) -> str:
        return f"Constant({self.value!r})"

    def describe(self) -> dict[str, Any]:
        return {"type": "Constant", "value": repr(self.value)}


class String(Distribution):
    """The text a language model writes after ``prompt``.

    lm: a :class:`~workbench.methods.cascades.backends.Backend` or a ``workbench.lib.lm.CausalLM`` (the tiny
    transformer or a Hugging Face model); stop: strings that end the text (not included in the
    value); max_tokens: the longest text in tokens (capped by the model's context); temperature: the
    softmax temperature of sampling and scoring (> 0).
    """

    def __init__(self, lm: Any, prompt: str, stop: str | Iterable[str] = (), max_tokens: int = 32,
                 temperature: float = 1.0):
        from workbench.methods.cascades.backends import as_backend

        if not isinstance(prompt, str):
            raise TypeError(f"String: prompt must be a str, got {type(prompt).__name__}")
        stops = (stop,) if isinstance(stop, str) else tuple(stop)
        if any(not isinstance(s, str) or not s for s in stops):
            raise ValueError(f"String: stop = {stop!r} must be non-empty strings")
        if int(max_tokens) < 1:
            raise ValueError(f"String: max_tokens = {max_tokens} must be >= 1")
        if not float(temperature) > 0:
            raise ValueError(f"String: temperature = {temperature} must be > 0")
        self.backend = as_backend(lm)
        self.prompt = prompt
        self.stop = stops
        self.max_tokens = int(max_tokens)
        self.temperature = float(temperature)

    def sample(self, generator: torch.Generator | None = None) -> str:
        return self.sample_with_log_prob(generator)[0]

    def sample_with_log_prob(self, generator: torch.Generator | None = None) -> tuple[str, float]:
        return self.sample_batch([self], generator)[0]

    def log_prob(self, value: Any) -> float:
        return self.log_prob_batch([self], [value])[0]

    def batch_key(self) -> Hashable:
        return ("String", id(self.backend), self.stop, self.max_tokens, self.temperature)

    @classmethod
    def sample_batch(cls, dists: Sequence["String"], generator: torch.Generator | None) -> list[tuple[str, float]]:
        """Sample every ``dists[i]`` in one backend call (they share backend and settings)."""
        first = dists[0]
        done = first.backend.sample([d.prompt for d in dists], max_tokens=first.max_tokens,
                                    temperature=first.temperature, stop=first.stop, generator=generator)
        return [(c.text, c.log_prob if c.log_prob is not None else math.nan) for c in done]

    @classmethod
    def log_prob_batch(cls, dists: Sequence["String"], values: Sequence[Any]) -> list[float]:
        """log p(value_i | prompt_i) for every pair in one backend call; a non-string value has −∞."""
        first = dists[0]
        rows = [i for i, v in enumerate(values) if isinstance(v, str)]
        out = [-math.inf] * len(values)
        if rows:
            scores = first.backend.log_prob([dists[i].prompt for i in rows], [values[i] for i in rows],
                                            max_tokens=first.max_tokens, temperature=first.temperature,
                                            stop=first.stop)
            for i, s in zip(rows, scores):
                out[i] = float(s)
        return out

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, String) and other.backend is self.backend and other.prompt == self.prompt
                and other.stop == self.stop and other.max_tokens == self.max_tokens
                and other.temperature == self.temperature)

    def __hash__(self) -> int:
        return hash((id(self.backend), self.prompt, self.stop, self.max_tokens, self.temperature))

    def __repr__(self) -> str:
        return (f"String({self.backend.name}, prompt={self.prompt[-40:]!r}, stop={self.stop!r}, "
                f"max_tokens={self.max_tokens}, temperature={self.temperature})")

    def describe(self) -> dict[str, Any]:
        return {"type": "String", "lm": self.backend.name, "prompt": self.prompt, "stop": list(self.stop),
                "max_tokens": self.max_tokens, "temperature": self.temperature}
