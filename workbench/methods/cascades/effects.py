"""Effects: what a cascade yields, and name scopes for nested cascades.

A cascade is a generator function. It yields effects and receives their results (Dohan et al. 2022,
a probabilistic program over string-valued random variables)::

    def qa(lm, question):
        thought = yield sample(String(lm, f"Q: {question}\\nThought:", stop=["\\n"]), "thought")
        answer = yield sample(String(lm, f"Q: {question}\\nThought: {thought}\\nA:"), "answer")
        return answer

``sample(dist, name)`` draws a value (the handler stack and the inference method decide how),
``observe(dist, value, name)`` conditions on ``value`` (its log-probability enters the trace's
weight), ``factor(log_weight, name)`` adds a log-weight, ``reject(reason)`` sets the weight to −∞
and ``log(value, name)`` records a value without probability. Every effect is a :class:`Msg`: the
handlers and the runtime fill in ``value`` and ``log_prob`` in place, and the cascade receives
``msg.value``.

A cascade calls another with ``yield from``; ``yield from scope("agent", other(...))`` prefixes
every name the inner cascade uses (``agent/question``), so two calls of the same cascade keep their
names apart.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Iterable

KINDS = ("sample", "observe", "factor", "reject", "log")


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()  # a message whose value is not known yet (``None`` is a legitimate value)

Cascade = Generator["Msg", Any, Any]
Program = Callable[..., Cascade]


@dataclass(eq=False)
class Msg:
    """One effect on its way through the handlers to the runtime.

    kind: one of ``KINDS``; name: the (scoped) variable name; dist: the distribution of a sample or
    observe; value: the result (``UNSET`` until known); log_prob: log p(value) under ``dist`` (or the
    log-weight of a factor; −∞ for a reject); observed: whether ``log_prob`` enters the trace's weight
    (observations, conditioned samples, factors, rejects) rather than its prior; parents: names of the
    variables this one depends on (``None``: inferred by the runtime); generator: the random stream
    that draws this sample (set by the ``seed`` handler; ``None``: the runtime's).
    """

    kind: str
    name: str
    dist: Any = None
    value: Any = UNSET
    log_prob: float | None = None
    observed: bool = False
    parents: tuple[str, ...] | None = None
    reason: str = ""
    generator: Any = None
    info: dict = field(default_factory=dict)

    @property
    def has_value(self) -> bool:
        return self.value is not UNSET

    def renamed(self, name: str) -> "Msg":
        """The same message under another name (used by :func:`scope`); parents are scoped alike."""
        self.name = name
        return self


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what}: name = {name!r} must be a non-empty string")
    return name


def sample(dist: Any, name: str, parents: Iterable[str] | None = None) -> Msg:
    """Draw ``name`` from ``dist``: ``x = yield sample(Categorical({...}), "x")``."""
    return Msg("sample", _check_name(name, "sample"), dist=dist,
               parents=None if parents is None else tuple(parents))


def observe(dist: Any, value: Any, name: str, parents: Iterable[str] | None = None) -> Msg:
    """Condition on ``name = value`` with likelihood ``dist.log_prob(value)``; the cascade receives ``value``."""
    return Msg("observe", _check_name(name, "observe"), dist=dist, value=value, observed=True,
               parents=None if parents is None else tuple(parents))


def factor(log_weight: float, name: str) -> Msg:
    """Multiply the trace's weight by ``exp(log_weight)`` (a soft constraint or a reward)."""
    lw = float(log_weight)
    if math.isnan(lw):
        raise ValueError(f"factor {name!r}: log_weight is NaN")
    return Msg("factor", _check_name(name, "factor"), value=lw, log_prob=lw, observed=True)


def reject(reason: str = "", name: str = "reject") -> Msg:
    """Give the trace weight zero (log-weight −∞); under ``stop_on_reject`` the cascade stops here."""
    return Msg("reject", _check_name(name, "reject"), value=reason, log_prob=-math.inf, observed=True,
               reason=reason)


def log(value: Any, name: str) -> Msg:
    """Record ``value`` under ``name`` in the trace (no probability); the cascade receives ``value``."""
    return Msg("log", _check_name(name, "log"), value=value, log_prob=0.0)


def scope(prefix: str, cascade: Cascade) -> Cascade:
    """Run ``cascade`` with every effect name (and explicit parent) prefixed by ``prefix/``.

    ``answer = yield from scope("agent1", ask(lm, q))``: the inner cascade's ``question`` becomes
    ``agent1/question``; scopes nest (``game/agent1/question``). Exceptions thrown into the scope
    (by a handler) reach the inner cascade.
    """
    _check_name(prefix, "scope")
    try:
        msg = next(cascade)
    except StopIteration as stop:
        return stop.value
    while True:
        if not isinstance(msg, Msg):
            raise TypeError(f"a cascade yielded {msg!r}; yield effects (sample, observe, factor, reject, log)")
        msg.renamed(f"{prefix}/{msg.name}")
        if msg.parents is not None:
            msg.parents = tuple(f"{prefix}/{p}" for p in msg.parents)
        try:
            result = yield msg
        except GeneratorExit:
            cascade.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - forwarded to the inner cascade
            try:
                msg = cascade.throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        try:
            msg = cascade.send(result)
        except StopIteration as stop:
            return stop.value
