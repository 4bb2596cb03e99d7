"""The runtime: performs effects and runs many executions (particles) of a cascade in lockstep.

Each particle is one execution: a generator, its trace so far and (after resampling or forking) a
prefix of recorded sites to replay. :class:`Engine` drives every live particle until it needs a
language model; the pending samples and scores of all particles that share a backend and decoding
settings are then done in one batched call, and the particles continue. An inference method tells
the engine where to pause a particle (after an observation, for SMC; before a sample, for beam
search) and whether to accept an observation (rejection sampling).

Generators cannot be copied, so a copy of a paused particle re-runs the cascade from the start with
the recorded values (a replay: no language-model call), which requires the cascade to be a
deterministic function of its effects' results.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable

import torch

from .effects import Msg, Program
from .handlers import Rejected, make_site
from .traces import Site, Trace

CONTINUE, BLOCKED, PAUSED, DONE = "continue", "blocked", "paused", "done"


class Particle:
    """One execution of ``program``: its trace, its generator, a prefix to replay, a pending effect."""

    __slots__ = ("program", "trace", "gen", "prefix", "pos", "send", "started", "pending", "paused")

    def __init__(self, program: Program, prefix: list[Site] | None = None, trace: Trace | None = None):
        self.program = program
        self.trace = trace if trace is not None else Trace()
        self.gen: Any = None
        self.prefix = list(prefix or ())
        self.pos = 0
        self.send: Any = None
        self.started = False
        self.pending: tuple[Msg, str] | None = None
        self.paused: Msg | None = None

    @property
    def live(self) -> bool:
        return self.trace.status == "running"

    def clone(self) -> "Particle":
        """A copy that continues from the same point (a finished particle is copied as it is; a running
        one re-runs its recorded sites)."""
        if not self.live:
            return Particle(self.program, trace=self.trace.copy())
        return Particle(self.program, prefix=list(self.trace.sites.values()))

    def fork(self, site: Site) -> "Particle":
        """A copy of a particle paused before ``site.name`` that continues with ``site``'s value."""
        return Particle(self.program, prefix=list(self.trace.sites.values()) + [site])

    def close(self) -> None:
        if self.gen is not None:
            self.gen.close()
            self.gen = None


def _need(msg: Msg) -> str | None:
    """What the runtime must do for ``msg``: draw a value, score one, or nothing."""
    if msg.kind == "sample":
        if not msg.has_value:
            return "sample"
        return "score" if msg.log_prob is None else None
    if msg.kind == "observe":
        return "score" if msg.log_prob is None else None
    return None


def _check(msg: Any) -> Msg:
    if not isinstance(msg, Msg):
        raise TypeError(f"a cascade yielded {msg!r}; yield effects (sample, observe, factor, reject, log)")
    if msg.kind in ("sample", "observe") and not hasattr(msg.dist, "log_prob"):
        raise TypeError(f"{msg.kind} {msg.name!r}: {msg.dist!r} is not a distribution")
    return msg


class Engine:
    """Runs particles of one program in lockstep with batched language-model calls.

    generator: the random stream of samples without their own (``seed`` handler) and of acceptance
    tests; pause_before(msg): stop a particle before performing ``msg`` (beam); pause_after(site):
    stop it after recording ``site`` (SMC); accept(site) → bool: keep the execution after an observed
    site (rejection sampling); stop_at_zero: end an execution whose weight became zero; batched:
    group language-model work across particles (``False`` performs each effect on its own).
    """

    def __init__(self, generator: torch.Generator | None = None, *, pause_before: Callable[[Msg], bool] | None = None,
                 pause_after: Callable[[Site], bool] | None = None, accept: Callable[[Site], bool] | None = None,
                 stop_at_zero: bool = True, batched: bool = True):
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.pause_before, self.pause_after, self.accept = pause_before, pause_after, accept
        self.stop_at_zero, self.batched = stop_at_zero, batched
        self.stats = {"effects": 0, "lm_batches": 0, "lm_rows": 0, "replayed": 0}

    # --- one particle ----------------------------------------------------------------------------
    def _next(self, p: Particle) -> Msg | None:
        """The particle's next effect, or None when it finished or was rejected."""
        try:
            if not p.started:
                p.gen, p.started = p.program(), True
                if not hasattr(p.gen, "send"):
                    raise TypeError(f"{p.program!r} did not return a generator; a cascade is a generator function")
                msg = next(p.gen)
            else:
                msg = p.gen.send(p.send)
        except StopIteration as stop:
            p.trace.value, p.trace.status = stop.value, "done"
            p.gen = None
            return None
        except Rejected as rej:
            self._reject(p, rej.reason)
            return None
        return _check(msg)

    def _reject(self, p: Particle, reason: str) -> None:
        p.trace.status, p.trace.reason = "rejected", reason
        p.close()

    def _replay(self, p: Particle, msg: Msg) -> None:
        site = p.prefix[p.pos]
        if site.name != msg.name or site.kind != msg.kind:
            raise RuntimeError(f"on replay the cascade asked for {msg.kind} {msg.name!r} where its recorded trace "
                               f"has {site.kind} {site.name!r}: a cascade must be a deterministic function of its "
                               "effects' results (draw every random choice with sample)")
        msg.value, msg.log_prob, msg.observed = site.value, site.log_prob, site.observed
        p.pos += 1
        p.trace.add(site)
        p.send = site.value
        self.stats["replayed"] += 1

    def _complete(self, p: Particle, msg: Msg) -> str:
        """Record a performed effect; decide whether the particle continues, pauses or ends."""
        site = make_site(msg, p.trace)
        p.trace.add(site)
        p.send = msg.value
        self.stats["effects"] += 1
        if site.observed:
            if math.isnan(site.log_prob):
                raise ValueError(f"{site.kind} {site.name!r} has no log-probability (the backend gave none)")
            if self.stop_at_zero and site.log_prob == -math.inf:
                self._reject(p, site.reason or f"{site.name} = {site.value!r} has probability zero")
                return DONE
            if self.accept is not None and not self.accept(site):
                self._reject(p, f"{site.name} not accepted")
                return DONE
        if self.pause_after is not None and self.pause_after(site):
            return PAUSED
        return CONTINUE

    def _run(self, p: Particle) -> str:
        """Drive ``p`` until it finishes, pauses or waits for batched language-model work."""
        while True:
            msg = self._next(p)
            if msg is None:
                return DONE
            if p.pos < len(p.prefix):
                self._replay(p, msg)
                continue
            if self.pause_before is not None and self.pause_before(msg):
                p.paused = msg
                return PAUSED
            need = _need(msg)
            if need is not None:
                if self.batched and msg.dist.batch_key() is not None:
                    p.pending = (msg, need)
                    return BLOCKED
                self._perform_one(msg, need)
            status = self._complete(p, msg)
            if status != CONTINUE:
                return status

    def _perform_one(self, msg: Msg, need: str) -> None:
        if msg.dist.batch_key() is not None:
            self._perform([(msg, need)])
        elif need == "sample":
            value, lp = msg.dist.sample_with_log_prob(msg.generator or self.generator)
            msg.value, msg.log_prob = value, float(lp)
        else:
            msg.log_prob = float(msg.dist.log_prob(msg.value))

    # --- many particles --------------------------------------------------------------------------
    def _perform(self, work: list[tuple[Msg, str]]) -> None:
        """Sample or score every pending effect, one backend call per (distribution family, settings,
        generator) group."""
        groups: dict[Any, list[Msg]] = {}
        for msg, need in work:
            key = msg.dist.batch_key()
            key = (need, key if key is not None else id(msg), id(msg.generator))
            groups.setdefault(key, []).append(msg)
        for (need, _, _), msgs in groups.items():
            family = type(msgs[0].dist)
            if msgs[0].dist.batch_key() is not None:
                self.stats["lm_batches"] += 1
                self.stats["lm_rows"] += len(msgs)
            if need == "sample":
                drawn = family.sample_batch([m.dist for m in msgs], msgs[0].generator or self.generator)
                for m, (value, lp) in zip(msgs, drawn):
                    m.value, m.log_prob = value, float(lp)
            else:
                lps = family.log_prob_batch([m.dist for m in msgs], [m.value for m in msgs])
                for m, lp in zip(msgs, lps):
                    m.log_prob = float(lp)

    def advance(self, particles: list[Particle]) -> None:
        """Run every live, unpaused particle until it finishes, is rejected or pauses."""
        todo = [p for p in particles if p.live and p.paused is None]
        while todo:
            blocked = [p for p in todo if self._run(p) == BLOCKED]
            if not blocked:
                return
            self._perform([p.pending for p in blocked])
            todo = []
            for p in blocked:
                msg = p.pending[0]
                p.pending = None
                if self._complete(p, msg) == CONTINUE:
                    todo.append(p)

    def uniform(self) -> float:
        """One U(0, 1) draw from the engine's stream."""
        return float(torch.rand((), generator=self.generator, dtype=torch.float64))


def bind(program: Program, *args: Any, **kwargs: Any) -> Program:
    """``program`` with its arguments bound (a program the engine can call with none)."""
    return functools.partial(program, *args, **kwargs) if args or kwargs else program


def run(program: Program, *args: Any, generator: torch.Generator | None = None, seed: int | None = None,
        **kwargs: Any) -> Trace:
    """Execute ``program(*args, **kwargs)`` once and return its trace.

    Samples are drawn from ``generator`` (or a stream seeded with ``seed``; with neither, a seed drawn
    from torch's global generator). An execution whose weight becomes zero stops there (status
    ``rejected``).
    """
    if generator is None:
        if seed is None:
            seed = int(torch.randint(0, 2**62, ()))
        generator = torch.Generator().manual_seed(int(seed))
    engine = Engine(generator)
    particle = Particle(bind(program, *args, **kwargs))
    engine.advance([particle])
    return particle.trace
