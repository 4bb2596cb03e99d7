"""Inference behind one call: ``infer(cascade, method, n, seed=0, **options) -> Posterior``.

Methods (Dohan et al. 2022; a cascade's posterior is p(x | y) ∝ p(x) · Π_k p(y_k | x)):

- ``forward``: ancestral sampling, n executions, equal weights (the prior predictive);
- ``rejection``: executions that satisfy every observation: at each observation the execution
  survives with probability p(y_k | x) (≡ sampling the observed variable and keeping the execution
  when it equals the observation); at a factor, with probability exp(log_weight) ≤ 1;
- ``importance``: likelihood weighting, w = Π_k p(y_k | x) with the prior as proposal;
- ``smc``: sequential importance resampling: particles pause after each observation or factor;
  when the effective sample size (Σw)² / Σw² falls below ``ess_threshold · n``, they are resampled;
- ``beam``: beam search by score log p(x, y): at each sample every beam is expanded (every value of
  an enumerable distribution, ``expand`` sampled strings of a ``String``) and the ``n`` best kept;
- ``self_consistency``: K = n forward samples and a majority over their answers (Wang et al. 2022),
  i.e. the marginal of the answer with the thought summed out.

Options (all methods): ``args``/``kwargs`` for the cascade, ``batched`` (default True: language-model
work of all executions is batched). rejection: ``max_tries`` (default 100·n). smc: ``ess_threshold``
(default 0.5), ``resampling`` (``systematic`` or ``multinomial``). beam: ``expand`` (default 4).
self_consistency: ``answer`` (the variable voted on; default the return value).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Hashable

import torch

from .effects import Msg, Program
from .handlers import infer_parents
from .runtime import Engine, Particle, bind
from .traces import RETURN, Site, Trace

METHODS = ("forward", "rejection", "importance", "smc", "beam", "self_consistency")
_OPTIONS = {
    "forward": set(), "rejection": {"max_tries"}, "importance": set(),
    "smc": {"ess_threshold", "resampling"}, "beam": {"expand"}, "self_consistency": {"answer"},
}


def log_mean_exp(values: list[float]) -> float:
    finite = [v for v in values if v != -math.inf]
    if not finite:
        return -math.inf
    m = max(finite)
    return m + math.log(sum(math.exp(v - m) for v in finite) / len(values))


def normalise(log_weights: list[float]) -> list[float]:
    """exp(w_i) / Σ_j exp(w_j), stably; all-zero weights raise."""
    finite = [w for w in log_weights if w != -math.inf]
    if not finite:
        raise ValueError("every trace has weight zero (no execution satisfied the observations)")
    m = max(finite)
    e = [math.exp(w - m) if w != -math.inf else 0.0 for w in log_weights]
    total = math.fsum(e)
    return [x / total for x in e]


def effective_sample_size(log_weights: list[float]) -> float:
    """ESS = (Σ w)² / Σ w² = 1 / Σ ŵ² for normalised weights ŵ."""
    w = normalise(log_weights)
    return 1.0 / math.fsum(x * x for x in w)


def _key(value: Any) -> Hashable:
    try:
        hash(value)
        return value
    except TypeError:
        return repr(value)


@dataclass
class Posterior:
    """Weighted traces from an inference method.

    traces / log_weights: the weighted population; rejected: executions the method discarded (kept for
    the trace viewer); info: method statistics (acceptance rate, resampling steps, log evidence, ...).
    """

    traces: list[Trace]
    log_weights: list[float]
    method: str
    rejected: list[Trace] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.traces)

    @property
    def weights(self) -> list[float]:
        """Normalised weights of ``traces``."""
        if not self.traces:
            raise ValueError(f"{self.method}: the posterior holds no trace (none was accepted)")
        return normalise(self.log_weights)

    @property
    def ess(self) -> float:
        """Effective sample size of the weights (0 when there is no trace with positive weight)."""
        try:
            return effective_sample_size(self.log_weights) if self.traces else 0.0
        except ValueError:
            return 0.0

    def marginal(self, name: str = RETURN) -> dict[Any, float]:
        """p(name = v) for every value v seen, normalised over the traces that have ``name``
        (``RETURN``: the return value); most probable first."""
        weights = self.weights
        acc: dict[Hashable, float] = {}
        shown: dict[Hashable, Any] = {}
        for t, w in zip(self.traces, weights):
            if name in t and w > 0:
                v = t[name]
                k = _key(v)
                acc[k] = acc.get(k, 0.0) + w
                shown.setdefault(k, v)
        total = math.fsum(acc.values())
        if total <= 0:
            raise ValueError(f"no trace with positive weight has a variable named {name!r}")
        return {shown[k]: p / total for k, p in sorted(acc.items(), key=lambda kv: -kv[1])}

    def map(self, name: str = RETURN) -> Any:
        """The most probable value of ``name`` (ties: the first seen)."""
        return next(iter(self.marginal(name)))

    def values(self, name: str = RETURN) -> list[Any]:
        """The value of ``name`` in each trace that has it (unweighted)."""
        return [t[name] for t in self.traces if name in t]

    @property
    def log_evidence(self) -> float:
        """An estimate of log p(observations) (importance and SMC), else NaN."""
        return float(self.info.get("log_evidence", math.nan))

    def records(self, limit: int | None = None) -> list[dict[str, Any]]:
        """JSON-friendly traces with their normalised weight and whether the method kept them."""
        try:
            weights = self.weights
        except ValueError:
            weights = [0.0] * len(self.traces)
        rows = [{**t.to_dict(), "weight": w, "accepted": w > 0 and t.status == "done"}
                for t, w in zip(self.traces, weights)]
        rows += [{**t.to_dict(), "weight": 0.0, "accepted": False} for t in self.rejected]
        return rows[:limit] if limit is not None else rows


# --- methods (each runs one group of particles per program, all groups in one engine) ---------------
def _forward(programs: list[Program], n: int, engine: Engine) -> list[Posterior]:
    groups = [[Particle(prog) for _ in range(n)] for prog in programs]
    engine.advance([p for g in groups for p in g])
    out = []
    for g in groups:
        traces = [p.trace for p in g]
        out.append(Posterior(traces, [0.0] * n, "forward",
                             info={"rejected": sum(t.status == "rejected" for t in traces)}))
    return out


def _rejection(programs: list[Program], n: int, engine: Engine, max_tries: int | None) -> list[Posterior]:
    budget = 100 * n if max_tries is None else int(max_tries)
    if budget < 1:
        raise ValueError(f"rejection: max_tries = {max_tries} must be >= 1")

    def accept(site: Site) -> bool:
        if site.log_prob > 0:
            raise ValueError(f"rejection: {site.kind} {site.name!r} has log-weight {site.log_prob:.4g} > 0; "
                             "rejection sampling needs likelihoods <= 1 (use importance or smc)")
        return engine.uniform() < math.exp(site.log_prob)

    engine.accept = accept
    accepted: list[list[Trace]] = [[] for _ in programs]
    rejected: list[list[Trace]] = [[] for _ in programs]
    tries = [0] * len(programs)
    while True:
        batch: list[tuple[int, Particle]] = []
        for i, prog in enumerate(programs):
            want = min(budget - tries[i], n - len(accepted[i]))
            batch += [(i, Particle(prog)) for _ in range(max(0, want))]
            tries[i] += max(0, want)
        if not batch:
            break
        engine.advance([p for _, p in batch])
        for i, p in batch:
            (accepted[i] if p.trace.status == "done" else rejected[i]).append(p.trace)
    return [Posterior(acc[:n], [0.0] * len(acc[:n]), "rejection", rej,
                      {"tries": t, "acceptance_rate": len(acc[:n]) / max(1, t)})
            for acc, rej, t in zip(accepted, rejected, tries)]


def _importance(programs: list[Program], n: int, engine: Engine) -> list[Posterior]:
    groups = [[Particle(prog) for _ in range(n)] for prog in programs]
    engine.advance([p for g in groups for p in g])
    out = []
    for g in groups:
        traces = [p.trace for p in g]
        lw = [t.log_weight for t in traces]
        out.append(Posterior(traces, lw, "importance", info={"log_evidence": log_mean_exp(lw)}))
    return out


def _resample_indices(weights: list[float], n: int, scheme: str, engine: Engine) -> list[int]:
    """Ancestor indices: systematic (one uniform, n evenly spaced points) or multinomial."""
    cum, c = [], 0.0
    for w in weights:
        c += w
        cum.append(c)
    cum[-1] = 1.0
    if scheme == "systematic":
        u0 = engine.uniform() / n
        points = [u0 + i / n for i in range(n)]
    else:
        points = sorted(engine.uniform() for _ in range(n))
    out, j = [], 0
    for u in points:
        while cum[j] < u:
            j += 1
        out.append(j)
    return out


class _SMCGroup:
    """The particles of one program: weights relative to the last resampling, evidence, statistics."""

    def __init__(self, program: Program, n: int):
        self.particles = [Particle(program) for _ in range(n)]
        self.base = [0.0] * n  # each particle's path weight at the last resampling
        self.log_z, self.resamples, self.ess = 0.0, 0, []

    def log_w(self) -> list[float]:
        return [p.trace.log_weight - b for p, b in zip(self.particles, self.base)]

    def step(self, threshold: float, scheme: str, engine: Engine) -> None:
        """Resample when ESS < threshold · n (sequential importance resampling; Doucet et al. 2001)."""
        n = len(self.particles)
        log_w = self.log_w()
        if not any(p.live for p in self.particles) or all(w == -math.inf for w in log_w):
            return
        ess = effective_sample_size(log_w)
        self.ess.append(ess)
        if ess >= threshold * n:
            return
        self.log_z += log_mean_exp(log_w)
        ancestors = _resample_indices(normalise(log_w), n, scheme, engine)
        new, reused = [], set()
        for a in ancestors:
            parent = self.particles[a]
            if a not in reused and parent.live:  # the first copy keeps the live generator
                reused.add(a)
                new.append(parent)
            else:
                new.append(parent.clone())
        kept = set(ancestors)
        for i, p in enumerate(self.particles):
            if i not in kept:
                p.close()
        self.base = [self.particles[a].trace.log_weight for a in ancestors]  # clones have not replayed yet
        self.particles = new
        self.resamples += 1


def _smc(programs: list[Program], n: int, engine: Engine, ess_threshold: float, resampling: str) -> list[Posterior]:
    if not 0 <= ess_threshold <= 1:
        raise ValueError(f"smc: ess_threshold = {ess_threshold} must be in [0, 1] (a fraction of n)")
    if resampling not in ("systematic", "multinomial"):
        raise ValueError(f"smc: resampling = {resampling!r} must be 'systematic' or 'multinomial'")
    engine.pause_after = lambda site: site.observed
    groups = [_SMCGroup(prog, n) for prog in programs]
    while True:
        engine.advance([p for g in groups for p in g.particles])
        if not any(p.live for g in groups for p in g.particles):
            break
        for g in groups:
            g.step(ess_threshold, resampling, engine)
    out = []
    for g in groups:
        log_w = g.log_w()
        out.append(Posterior([p.trace for p in g.particles], log_w, "smc",
                             info={"log_evidence": g.log_z + log_mean_exp(log_w), "resamples": g.resamples,
                                   "ess": g.ess}))
    return out


def _beam(programs: list[Program], n: int, engine: Engine, expand: int) -> list[Posterior]:
    if expand < 1:
        raise ValueError(f"beam: expand = {expand} must be >= 1")
    engine.pause_before = lambda msg: msg.kind == "sample" and not msg.has_value
    beams = [[Particle(prog)] for prog in programs]
    dropped: list[list[Trace]] = [[] for _ in programs]
    engine.advance([b for g in beams for b in g])
    for gi, g in enumerate(beams):
        if g[0].trace.status == "rejected":
            beams[gi], dropped[gi] = [], [g[0].trace]
    steps = 0
    while any(b.live for g in beams for b in g):
        steps += 1
        children: list[list[Particle]] = [[] for _ in programs]
        strings: list[tuple[int, Particle, Msg]] = []
        for gi, g in enumerate(beams):
            for b in g:
                if not b.live:
                    continue
                msg = b.paused
                support = msg.dist.support()
                if support is not None:
                    children[gi] += [b.fork(_site(msg, b, v, msg.dist.log_prob(v))) for v in support]
                else:
                    strings += [(gi, b, msg)] * expand
        if strings:
            _expand_sampled(strings, engine, children)
        engine.advance([c for g in children for c in g])
        for gi, g in enumerate(beams):
            pool = [b for b in g if not b.live] + [c for c in children[gi] if c.trace.status != "rejected"]
            pool.sort(key=lambda p: -_score(p.trace))
            if pool:
                beams[gi] = pool[:n]
            else:  # every expansion has weight zero: the group ends with no trace
                beams[gi] = []
                dropped[gi] += [c.trace for c in children[gi]][:n]
    out = []
    for g, lost in zip(beams, dropped):
        traces = [b.trace for b in g]
        scores = [_score(t) for t in traces]
        out.append(Posterior(traces, scores, "beam", lost, info={"scores": scores, "steps": steps}))
    return out


def _score(trace: Trace) -> float:
    s = trace.log_joint
    if math.isnan(s):
        raise ValueError("beam needs the log-probability of every sampled value; the backend returned none "
                         "(use a backend that returns log-probs)")
    return s


def _site(msg: Msg, parent: Particle, value: Any, log_prob: float) -> Site:
    return Site(msg.name, "sample", value, float(log_prob), False, infer_parents(msg, parent.trace), msg.dist)


def _expand_sampled(strings: list[tuple[int, Particle, Msg]], engine: Engine, children: list[list[Particle]]) -> None:
    """Sample ``expand`` values for each paused beam (batched by distribution family and settings);
    distinct values become children."""
    groups: dict[Any, list[tuple[int, Particle, Msg]]] = {}
    for item in strings:
        key = item[2].dist.batch_key() if engine.batched else None
        groups.setdefault((key if key is not None else id(item), id(item[2].generator)), []).append(item)
    seen: dict[int, set] = {}
    for items in groups.values():
        first = items[0][2]
        drawn = type(first.dist).sample_batch([m.dist for _, _, m in items], first.generator or engine.generator)
        engine.stats["lm_batches"] += 1
        engine.stats["lm_rows"] += len(items)
        for (gi, b, msg), (value, lp) in zip(items, drawn):
            k = _key(value)
            if k in seen.setdefault(id(b), set()):
                continue
            seen[id(b)].add(k)
            children[gi].append(b.fork(_site(msg, b, value, lp)))


def _self_consistency(programs: list[Program], n: int, engine: Engine, answer: str) -> list[Posterior]:
    out = []
    for forward in _forward(programs, n, engine):
        voting = [t for t in forward.traces if t.status == "done" and answer in t and t[answer] is not None]
        kept = {id(t) for t in voting}
        dropped = [t for t in forward.traces if id(t) not in kept]
        votes = Counter(_key(t[answer]) for t in voting)
        post = Posterior(voting, [0.0] * len(voting), "self_consistency", dropped,
                         {"votes": dict(votes.most_common()), "answer_name": answer, "k": n})
        post.info["answer"] = post.map(answer) if voting else None
        out.append(post)
    return out


def infer_many(cascades: list[Program], method: str, n: int, seed: int | torch.Generator = 0,
               **options: Any) -> list[Posterior]:
    """:func:`infer` on several cascades at once (e.g. one per question of a data set): every
    execution of every cascade runs in one engine, so language-model calls are batched across them;
    each cascade gets its own posterior (its own resampling, beams, tries). ``seed``: an integer, or a
    ``torch.Generator`` to draw from (inside a run: ``ctx.rng(name, step)``)."""
    if method not in METHODS:
        raise ValueError(f"method = {method!r}; allowed: {', '.join(METHODS)}")
    if int(n) < 1:
        raise ValueError(f"n = {n} must be >= 1")
    n = int(n)
    args = tuple(options.pop("args", ()))
    kwargs = dict(options.pop("kwargs", {}))
    batched = bool(options.pop("batched", True))
    unknown = set(options) - _OPTIONS[method]
    if unknown:
        raise TypeError(f"infer({method!r}): unknown option(s) {sorted(unknown)}; allowed: "
                        f"{sorted(_OPTIONS[method] | {'args', 'kwargs', 'batched'})}")
    programs = [bind(c, *args, **kwargs) for c in cascades]
    generator = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    engine = Engine(generator, batched=batched)
    if method == "forward":
        posts = _forward(programs, n, engine)
    elif method == "rejection":
        posts = _rejection(programs, n, engine, options.get("max_tries"))
    elif method == "importance":
        posts = _importance(programs, n, engine)
    elif method == "smc":
        posts = _smc(programs, n, engine, float(options.get("ess_threshold", 0.5)),
                     str(options.get("resampling", "systematic")))
    elif method == "beam":
        posts = _beam(programs, n, engine, int(options.get("expand", 4)))
    else:
        posts = _self_consistency(programs, n, engine, str(options.get("answer", RETURN)))
    for post in posts:
        post.info["engine"] = dict(engine.stats)
    return posts


def infer(cascade: Program, method: str, n: int, seed: int | torch.Generator = 0, **options: Any) -> Posterior:
    """Run inference method ``method`` with ``n`` samples (particles, beams, accepted traces or K) on
    ``cascade``.

    cascade: a generator function (or handler), called with ``options['args']``/``options['kwargs']``;
    seed: seeds every random choice the method makes (an integer, or a ``torch.Generator`` drawn from).
    The module docstring lists the options.
    """
    return infer_many([cascade], method, n, seed, **options)[0]
