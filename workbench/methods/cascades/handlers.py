"""Effect handlers: wrap a cascade to change how its effects are interpreted; they compose.

A handler takes a program (a callable returning a cascade, e.g. a generator function or another
handler) and is itself such a program. Each effect passes through the handlers from the innermost
(closest to the cascade) outwards (``process``), is performed by the runtime, then passes back
inwards (``postprocess``). Handlers:

- :func:`trace`: record every site (value, log-prob, parents) of the last call in ``.trace``;
- :func:`seed`: draw this program's samples from its own seeded random stream;
- :func:`replay`: reuse the values (and, for the same distribution, the log-probs) of a recorded trace;
- :func:`condition`: fix the values of named samples; they become observations (their
  log-probabilities enter the weight), as conditioning does in a probabilistic program;
- :func:`stop_on_reject`: end the execution as soon as its weight is zero (a ``reject``, an
  impossible observation or a −∞ factor).

``trace(replay(cascade, t))`` re-runs ``cascade`` with the choices of ``t`` and records the result.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from .effects import Cascade, Msg, Program
from .traces import Site, Trace


class Rejected(Exception):
    """An execution was stopped because its weight became zero."""

    def __init__(self, name: str, reason: str = ""):
        super().__init__(f"{name}: {reason}" if reason else name)
        self.name, self.reason = name, reason or f"{name} has probability zero"


def infer_parents(msg: Msg, trace: Trace) -> tuple[str, ...]:
    """The parents of a site: the explicit ``parents=`` of the effect, else (for an LM-backed
    distribution) the earlier string variables (two characters or more) that occur in its prompt."""
    if msg.parents is not None:
        return tuple(p for p in msg.parents if p in trace.sites)
    prompt = getattr(msg.dist, "prompt", None)
    if not isinstance(prompt, str):
        return ()
    return tuple(s.name for s in trace.sites.values() if isinstance(s.value, str) and len(s.value) >= 2
                 and s.value in prompt)


def make_site(msg: Msg, trace: Trace) -> Site:
    """The trace record of a performed effect."""
    lp = msg.log_prob if msg.log_prob is not None else math.nan
    return Site(msg.name, msg.kind, msg.value, float(lp), msg.observed, infer_parents(msg, trace), msg.dist,
                msg.reason)


class Handler:
    """Base class: wraps ``program``; subclasses override ``start``, ``process``, ``postprocess``, ``finish``."""

    def __init__(self, program: Program):
        if not callable(program):
            raise TypeError(f"{type(self).__name__}: expected a cascade (a generator function), got {program!r}")
        self.program = program

    def __call__(self, *args: Any, **kwargs: Any) -> Cascade:
        return self._wrap(self.program(*args, **kwargs))

    def start(self) -> None:
        """Called when a new execution begins."""

    def process(self, msg: Msg) -> None:
        """Before the effect is performed (inner handlers first)."""

    def postprocess(self, msg: Msg) -> None:
        """After the effect is performed (outer handlers first)."""

    def finish(self, value: Any, status: str = "done", reason: str = "") -> None:
        """Called when the execution returns ``value`` (or is rejected)."""

    def _wrap(self, cascade: Cascade) -> Cascade:
        if not hasattr(cascade, "send"):
            raise TypeError(f"{self.program!r} did not return a generator; a cascade is a generator function "
                            "that yields effects")
        self.start()
        try:
            msg = next(cascade)
            while True:
                if not isinstance(msg, Msg):
                    raise TypeError(f"a cascade yielded {msg!r}; yield effects (sample, observe, factor, reject, log)")
                self.process(msg)
                yield msg  # the runtime fills the message in place
                self.postprocess(msg)
                msg = cascade.send(msg.value)
        except StopIteration as stop:
            self.finish(stop.value)
            return stop.value
        except Rejected as rej:
            self.finish(None, "rejected", rej.reason)
            raise

    def get_trace(self, *args: Any, generator: torch.Generator | None = None, **kwargs: Any) -> Trace:
        """Run this program once (``run``) and return the runtime's trace."""
        from .runtime import run

        return run(self, *args, generator=generator, **kwargs)


class TraceHandler(Handler):
    """Records the sites of the latest execution in ``self.trace``."""

    def __init__(self, program: Program):
        super().__init__(program)
        self.trace = Trace()

    def start(self) -> None:
        self.trace = Trace()

    def postprocess(self, msg: Msg) -> None:
        self.trace.add(make_site(msg, self.trace))

    def finish(self, value: Any, status: str = "done", reason: str = "") -> None:
        self.trace.value, self.trace.status, self.trace.reason = value, status, reason


class SeedHandler(Handler):
    """Samples of this program are drawn from a ``torch.Generator`` seeded with ``seed`` at each call."""

    def __init__(self, program: Program, seed: int):
        super().__init__(program)
        self.seed = int(seed)
        self.generator = torch.Generator()

    def start(self) -> None:
        self.generator = torch.Generator().manual_seed(self.seed)

    def process(self, msg: Msg) -> None:
        if msg.kind == "sample" and msg.generator is None:
            msg.generator = self.generator


class ReplayHandler(Handler):
    """Samples named in ``trace`` take their recorded values; their recorded log-probs are kept when
    the distribution is the same (otherwise the runtime rescores the value). Observations with the
    same distribution and value keep their recorded log-probs too (no second LM call)."""

    def __init__(self, program: Program, trace: Trace):
        super().__init__(program)
        if not isinstance(trace, Trace):
            raise TypeError(f"replay: expected a Trace, got {type(trace).__name__}")
        self.replayed = trace

    def process(self, msg: Msg) -> None:
        site = self.replayed.sites.get(msg.name)
        if site is None or site.kind != msg.kind:
            return
        same = _same_dist(site.dist, msg.dist)
        if msg.kind == "sample":
            msg.value = site.value
            if same:
                msg.log_prob = site.log_prob
        elif msg.kind == "observe" and same and _equal(site.value, msg.value):
            msg.log_prob = site.log_prob


def _same_dist(a: Any, b: Any) -> bool:
    try:
        return a is b or bool(a == b)
    except Exception:  # noqa: BLE001
        return False


def _equal(a: Any, b: Any) -> bool:
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # noqa: BLE001
        return False


class ConditionHandler(Handler):
    """Samples named in ``data`` take the given value and become observations (Pyro's ``condition``)."""

    def __init__(self, program: Program, data: Mapping[str, Any]):
        super().__init__(program)
        self.data = dict(data)

    def process(self, msg: Msg) -> None:
        if msg.kind == "sample" and msg.name in self.data:
            msg.value = self.data[msg.name]
            msg.log_prob = None
            msg.observed = True


class StopOnRejectHandler(Handler):
    """Raises :class:`Rejected` (ending the execution) when an observed log-prob is −∞."""

    def postprocess(self, msg: Msg) -> None:
        if msg.observed and msg.log_prob == -math.inf:
            raise Rejected(msg.name, msg.reason or f"{msg.name} = {msg.value!r} has probability zero")


def trace(program: Program) -> TraceHandler:
    """Record every site of an execution: ``h = trace(cascade); run(h); h.trace``."""
    return TraceHandler(program)


def seed(program: Program, seed: int) -> SeedHandler:
    """Draw the samples of ``program`` from a stream seeded with ``seed`` (the same at every call)."""
    return SeedHandler(program, seed)


def replay(program: Program, trace: Trace) -> ReplayHandler:
    """Re-run ``program`` with the sample values of ``trace``."""
    return ReplayHandler(program, trace)


def condition(program: Program, data: Mapping[str, Any]) -> ConditionHandler:
    """Fix the samples named in ``data``; they are scored as observations."""
    return ConditionHandler(program, data)


def stop_on_reject(program: Program) -> StopOnRejectHandler:
    """Stop an execution as soon as its weight is zero."""
    return StopOnRejectHandler(program)
