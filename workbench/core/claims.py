"""Claims a reviewer can trust: the paper's statement, the comparison, the effect with its uncertainty, the
decision rule in words, and one outcome.

An outcome is decided from a confidence interval of the effect, never from the point estimate alone::

    effect = Effect.paired(kto_rewards, dpo_rewards)          # over seeds (t interval) ...
    effect = Effect.bootstrap(stat, correct_a, correct_b, generator=ctx.rng("claims"))  # ... or over test examples
    ctx.claim(superior("KTO reaches a higher reward than DPO", "KTO", "DPO", effect))

Rules (``better="lower"`` flips the sign for errors, losses and calibration errors):

- :func:`superior`: **holds** when the whole interval is above ``margin`` (default 0), **fails** when the whole
  interval is at or below it, **inconclusive** when it straddles it.
- :func:`not_worse`: "not worse by more than ``margin``" (non-inferiority): holds when the interval's low end is
  above ``-margin``, fails when its high end is below ``-margin``. A separately named claim, never a tolerance
  on a "beats" claim.
- :func:`exceeds`: one quantity (a ratio, a slope, a speed-up) against a fixed threshold, the same way.

A failed precondition (accuracy parity before comparing calibration, ranges that must overlap) makes the claim
**inconclusive** with the reason, whatever the effect. In a smoke run the engine records **not evaluated**.
No rule here turns a worse measured effect into "holds": the tests check it on constructed inputs.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Sequence

import torch

OUTCOMES = ("holds", "fails", "inconclusive", "not evaluated")
LEVEL = 0.95


@dataclass(frozen=True)
class Effect:
    """A measured effect with its ``level`` confidence interval [``low``, ``high``].

    value: method minus arm (``kind="difference"``), method / arm (``"ratio"``), or one quantity (``"value"``).
    uncertainty: what is shown after ±: the interval's half-width (symmetric intervals) or half its length.
    seeds: independent training runs behind it; ``samples``: test examples (bootstrap) or estimates behind it.
    how: how the interval was made ("t over 3 seeds", "bootstrap over 512 test examples", ...).
    """

    value: float
    low: float
    high: float
    kind: str = "difference"
    seeds: int = 1
    samples: int = 0
    how: str = ""
    level: float = LEVEL

    @property
    def uncertainty(self) -> float:
        return (self.high - self.low) / 2

    def text(self, digits: int = 3) -> str:
        return f"{self.value:.{digits}f} ± {self.uncertainty:.{digits}f}"

    # -- constructors ----------------------------------------------------------------------------------------
    @classmethod
    def normal(cls, value: float, se: float, *, kind: str = "difference", seeds: int = 1, samples: int = 0,
               how: str = "", level: float = LEVEL) -> "Effect":
        """A normal interval ``value ± z·se`` from a standard error (``z`` the two-sided ``level`` quantile)."""
        if se < 0:
            raise ValueError(f"normal effect: standard error {se} < 0")
        z = _z(level)
        return cls(float(value), float(value - z * se), float(value + z * se), kind, seeds, samples,
                   how or "normal interval from a standard error", level)

    @classmethod
    def paired(cls, a: Sequence[float], b: Sequence[float] | None = None, *, level: float = LEVEL,
               how: str = "") -> "Effect":
        """Mean of ``a − b`` over seeds (or of ``a`` alone) with a Student-t interval; one seed gives an
        unbounded interval (so any rule is inconclusive: one seed carries no uncertainty estimate)."""
        x = torch.as_tensor(a, dtype=torch.float64)
        kind = "value"
        if b is not None:
            y = torch.as_tensor(b, dtype=torch.float64)
            if x.shape != y.shape:
                raise ValueError(f"paired effect: {len(x)} values of the method against {len(y)} of the arm")
            x, kind = x - y, "difference"
        n = len(x)
        if n == 0:
            raise ValueError("paired effect: no values")
        mean = float(x.mean())
        if n == 1:
            return cls(mean, -math.inf, math.inf, kind, 1, 0, how or "one seed: no interval", level)
        half = t_quantile(level, n - 1) * float(x.std(unbiased=True)) / math.sqrt(n)
        return cls(mean, mean - half, mean + half, kind, n, 0, how or f"t interval over {n} seeds", level)

    @classmethod
    def proportions(cls, k_a: int, n_a: int, k_b: int, n_b: int, *, level: float = LEVEL, seeds: int = 1) -> "Effect":
        """Difference of two independent accuracies (``k`` correct of ``n``), Newcombe's hybrid score interval
        (Newcombe 1998, method 10): well behaved near 0 and 1, where the Wald interval is not."""
        if min(n_a, n_b) <= 0:
            raise ValueError("proportions: each arm needs at least one example")
        if not (0 <= k_a <= n_a and 0 <= k_b <= n_b):
            raise ValueError(f"proportions: successes out of range ({k_a} of {n_a}, {k_b} of {n_b})")
        p_a, p_b = k_a / n_a, k_b / n_b
        la, ua = _wilson(k_a, n_a, level)
        lb, ub = _wilson(k_b, n_b, level)
        d = p_a - p_b
        low = d - math.sqrt((p_a - la) ** 2 + (ub - p_b) ** 2)
        high = d + math.sqrt((ua - p_a) ** 2 + (p_b - lb) ** 2)
        return cls(d, low, high, "difference", seeds, n_a + n_b, f"Newcombe interval over {n_a} + {n_b} examples",
                   level)

    @classmethod
    def bootstrap(cls, statistic: Callable[..., float], *samples: Sequence[Any] | torch.Tensor,
                  generator: torch.Generator, resamples: int = 2000, kind: str = "difference", seeds: int = 1,
                  level: float = LEVEL, unit: str = "test examples") -> "Effect":
        """Expanded percentile bootstrap over ``n`` items (``unit``: test examples, sampled paths, networks):
        ``statistic(*resampled)``, the same indices drawn for every sample (paired: each sample is one arm's
        per-item results on the same items).

        The plain percentile interval is too narrow for small ``n`` (it has the plug-in variance, n−1 over n of
        the unbiased one, and normal tails); the expanded percentile interval (Hesterberg 2015, §"Expanded
        percentile") reads the quantiles at α' = Φ(−√(n/(n−1))·t_{n−1, 1−α/2}) instead of α/2, which matches
        the t interval's width for a mean and tends to the plain interval as ``n`` grows. Fewer than 2 items
        give an unbounded interval (no uncertainty estimate: every rule is inconclusive)."""
        tensors = [torch.as_tensor(s) for s in samples]
        n = len(tensors[0])
        if n == 0 or any(len(t) != n for t in tensors):
            raise ValueError(f"bootstrap: samples must be non-empty and of one length (the same {unit})")
        value = float(statistic(*tensors))
        if n < 2:
            return cls(value, -math.inf, math.inf, kind, seeds, n, f"one of the {unit}: no interval", level)
        idx = torch.randint(0, n, (resamples, n), generator=generator)
        stats = torch.tensor([float(statistic(*(t[i] for t in tensors))) for i in idx], dtype=torch.float64)
        stats = stats[torch.isfinite(stats)]
        if len(stats) < resamples // 2:
            return cls(value, -math.inf, math.inf, kind, seeds, n, "bootstrap undefined on most resamples", level)
        alpha = _expanded_alpha(level, n)
        low, high = torch.quantile(stats, torch.tensor([alpha, 1 - alpha], dtype=torch.float64)).tolist()
        return cls(value, low, high, kind, seeds, n,
                   f"expanded percentile bootstrap over {n} {unit} ({resamples} resamples)", level)


@dataclass(frozen=True)
class Claim:
    """One checked claim: what the paper says, against which arm, the effect, the rule and the outcome."""

    statement: str
    method: str
    arm: str
    effect: Effect | None
    rule: str
    outcome: str
    reason: str = ""
    detail: str = ""
    paper: str = field(default="", compare=False)
    measured: str = field(default="", compare=False)  # what was measured, in words (a claim without an Effect)

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"claim outcome {self.outcome!r}; one of {', '.join(OUTCOMES)}")

    @property
    def holds(self) -> bool | None:
        """The store's three-valued ``holds``: True, False, or None (inconclusive or not evaluated)."""
        return {"holds": True, "fails": False}.get(self.outcome)

    def not_evaluated(self, reason: str) -> "Claim":
        return replace(self, outcome="not evaluated", reason=reason)

    def to_record(self) -> dict[str, Any]:
        """A flat record (what the store, the views and ``workbench claims`` read): the fields, ``holds``,
        ``measured`` (``effect ± uncertainty``, or the measured words of a claim without an effect), and the
        effect's ``effect``, ``uncertainty``, ``low``, ``high`` (None where unbounded), ``kind``, ``seeds``,
        ``samples`` and ``how``."""
        e = self.effect
        rec = {k: v for k, v in asdict(self).items() if k != "effect"}
        measured, detail = self.measured, self.detail
        if e is None and not measured and detail.startswith("measured "):  # the legacy ctx.claim(text, measured, ..)
            measured, _, detail = detail[len("measured "):].partition("; ")
        rec.update(detail=detail)
        rec.update(holds=self.holds, measured=e.text() if e else measured,
                   effect=None if e is None else e.value, uncertainty=None if e is None else _finite(e.uncertainty),
                   low=None if e is None else _finite(e.low), high=None if e is None else _finite(e.high),
                   kind=None if e is None else e.kind, seeds=None if e is None else e.seeds,
                   samples=None if e is None else e.samples, how="" if e is None else e.how)
        return rec


# -- rules ---------------------------------------------------------------------------------------------------
def superior(statement: str, method: str, arm: str, effect: Effect, *, margin: float = 0.0,
             better: str = "higher", precondition: tuple[bool, str] | None = None, detail: str = "",
             paper: str = "") -> Claim:
    """"``method`` beats ``arm``": holds when the interval lies beyond "no effect" (0, or 1 for a ratio) by more
    than ``margin`` ≥ 0 in the better direction; fails when it lies entirely at or on the other side."""
    _check_better(better)
    if not margin >= 0:
        raise ValueError(f"superior: margin must be ≥ 0 (got {margin}); 'not worse by' is its own claim, not_worse")
    null = _null(effect)
    bound = null + margin if better == "higher" else null - margin
    word = "above" if better == "higher" else "below"
    unit = _unit(effect)
    rule = (f"holds if the {_pct(effect)} interval of the {unit} ({_versus(method, arm)}) lies entirely {word} "
            f"{bound:g}; fails if it lies entirely on the other side; inconclusive if it straddles {bound:g}")
    return _decide(statement, method, arm, effect, bound, better, rule, precondition, detail, paper)


def not_worse(statement: str, method: str, arm: str, effect: Effect, *, margin: float, better: str = "higher",
              precondition: tuple[bool, str] | None = None, detail: str = "", paper: str = "") -> Claim:
    """"``method`` is not worse than ``arm`` by more than ``margin``" (non-inferiority, its own named claim)."""
    _check_better(better)
    if not margin >= 0:
        raise ValueError(f"not_worse: margin must be ≥ 0 (got {margin})")
    null = _null(effect)
    bound = null - margin if better == "higher" else null + margin
    word = "above" if better == "higher" else "below"
    unit = _unit(effect)
    rule = (f"non-inferiority: holds if the {_pct(effect)} interval of the {unit} ({_versus(method, arm)}) "
            f"lies entirely {word} {bound:g}; fails if entirely beyond it; inconclusive otherwise")
    return _decide(statement, method, arm, effect, bound, better, rule, precondition, detail, paper)


def exceeds(statement: str, effect: Effect, threshold: float, *, better: str = "higher", method: str = "",
            arm: str = "threshold", precondition: tuple[bool, str] | None = None, detail: str = "",
            paper: str = "") -> Claim:
    """One quantity (a ratio, a slope, a speed-up) against a fixed ``threshold``."""
    _check_better(better)
    word = "above" if better == "higher" else "below"
    rule = (f"holds if the {_pct(effect)} interval lies entirely {word} {threshold:g}; fails if entirely "
            f"on the other side; inconclusive if it straddles {threshold:g}")
    return _decide(statement, method, arm, effect, threshold, better, rule, precondition, detail, paper)


def decide(effect: Effect, bound: float, better: str = "higher") -> str:
    """The outcome of an interval against ``bound``: holds when the interval and the point estimate lie beyond
    ``bound`` in the ``better`` direction, fails when the interval lies at or on the other side, inconclusive
    otherwise (a straddling interval, NaN, or a point estimate outside its own interval on the worse side)."""
    _check_better(better)
    sign = 1.0 if better == "higher" else -1.0
    low, high = sorted((sign * effect.low, sign * effect.high))
    value, bound = sign * effect.value, sign * bound
    if math.isnan(low) or math.isnan(high) or math.isnan(value) or math.isnan(bound):
        return "inconclusive"
    if low > bound and value > bound:
        return "holds"
    if high <= bound:
        return "fails"
    return "inconclusive"


def _decide(statement: str, method: str, arm: str, effect: Effect, bound: float, better: str, rule: str,
            precondition: tuple[bool, str] | None, detail: str, paper: str) -> Claim:
    outcome = decide(effect, bound, better)
    reason = ""
    if outcome == "inconclusive":
        low, high = sorted((effect.low, effect.high))
        if any(math.isnan(x) for x in (effect.value, effect.low, effect.high)):
            reason = "the effect or its interval is not a number (NaN)"
        elif math.isinf(low) or math.isinf(high):
            reason = "the interval is unbounded (" + (effect.how or "no uncertainty estimate") + ")"
        elif low <= bound <= high:
            reason = f"the interval [{low:.3g}, {high:.3g}] straddles {bound:g}"
        else:  # the interval lies beyond the bound, its own point estimate does not
            reason = (f"the point estimate {effect.value:.3g} lies on the worse side of {bound:g}, outside its "
                      f"interval [{low:.3g}, {high:.3g}]")
    if precondition is not None and not precondition[0]:
        outcome, reason = "inconclusive", f"precondition not met: {precondition[1]}"
    return Claim(statement, method, arm, effect, rule, outcome, reason, detail, paper)


# -- helpers -------------------------------------------------------------------------------------------------
def _check_better(better: str) -> None:
    if better not in ("higher", "lower"):
        raise ValueError(f"better must be 'higher' or 'lower', got {better!r}")


def _null(effect: Effect) -> float:
    """"No effect": 1 for a ratio, 0 otherwise."""
    return 1.0 if effect.kind == "ratio" else 0.0


def _unit(effect: Effect) -> str:
    return effect.kind if effect.kind in ("ratio", "difference") else "value"


def _pct(effect: Effect) -> str:
    return f"{effect.level * 100:g}%"


def _versus(method: str, arm: str) -> str:
    return f"{method} vs {arm}" if method and arm else method or arm or "the comparison"


def _z(level: float) -> float:
    return float(torch.special.ndtri(torch.tensor((1 + level) / 2, dtype=torch.float64)))


def t_quantile(level: float, dof: int) -> float:
    """The two-sided ``level`` quantile of Student's t with ``dof`` degrees of freedom (``scipy.stats.t.ppf``'s own
    routine, ``scipy.special.stdtrit``: the same numbers without importing ``scipy.stats``, about 0.4 s per process)."""
    from scipy.special import stdtrit

    return float(stdtrit(dof, (1 + level) / 2))


def _expanded_alpha(level: float, n: int) -> float:
    """The lower quantile the expanded percentile bootstrap reads: Φ(−√(n/(n−1))·t_{n−1, (1+level)/2})."""
    x = -math.sqrt(n / (n - 1)) * t_quantile(level, n - 1)
    return float(torch.special.ndtr(torch.tensor(x, dtype=torch.float64)))


def _wilson(k: int, n: int, level: float) -> tuple[float, float]:
    z, p = _z(level), k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
