"""Traces: the record of one execution of a cascade (every variable, its value, log-prob and parents).

The trace's weight is the product of the likelihoods of its observations and factors (log_weight);
its prior is the product of the probabilities of its sampled (unobserved) variables (log_prior);
their product is the joint p(x, y) of the program (Dohan et al. 2022).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator

RETURN = "_return"  # the name under which a trace's return value is read (marginal(RETURN))


def _plain(value: Any) -> Any:
    """``value`` itself when JSON can hold it, else its repr."""
    return value if value is None or isinstance(value, (str, int, float, bool)) else repr(value)


@dataclass
class Site:
    """One variable of a trace."""

    name: str
    kind: str
    value: Any
    log_prob: float
    observed: bool
    parents: tuple[str, ...] = ()
    dist: Any = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (the distribution as its description; values that JSON cannot hold as repr)."""
        value = _plain(self.value)
        lp = self.log_prob
        return {"name": self.name, "kind": self.kind, "value": value,
                "log_prob": None if lp is None or math.isnan(lp) else (lp if math.isfinite(lp) else str(lp)),
                "observed": self.observed, "parents": list(self.parents),
                "dist": self.dist.describe() if hasattr(self.dist, "describe") else None, "reason": self.reason}


@dataclass
class Trace:
    """The sites of one execution in order, its return value and status (``done``, ``rejected``,
    ``running``)."""

    sites: dict[str, Site] = field(default_factory=dict)
    value: Any = None
    status: str = "running"
    reason: str = ""

    def add(self, site: Site) -> None:
        if site.name in self.sites:
            raise ValueError(f"the name {site.name!r} is used twice in one execution: give each effect its own "
                             "name, or run a nested cascade under scope(...)")
        self.sites[site.name] = site

    def __getitem__(self, name: str) -> Any:
        if name == RETURN:
            return self.value
        return self.sites[name].value

    def __contains__(self, name: str) -> bool:
        return name == RETURN or name in self.sites

    def __iter__(self) -> Iterator[Site]:
        return iter(self.sites.values())

    def __len__(self) -> int:
        return len(self.sites)

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self else default

    @property
    def log_weight(self) -> float:
        """Σ log-probs of observed sites (observations, conditioned samples, factors, rejects)."""
        return math.fsum(s.log_prob for s in self.sites.values() if s.observed) if self.status != "rejected" \
            else -math.inf

    @property
    def log_prior(self) -> float:
        """Σ log-probs of the unobserved samples."""
        return math.fsum(s.log_prob for s in self.sites.values() if s.kind == "sample" and not s.observed)

    @property
    def log_joint(self) -> float:
        return self.log_prior + self.log_weight

    @property
    def accepted(self) -> bool:
        return self.status == "done" and self.log_weight > -math.inf

    def values(self) -> dict[str, Any]:
        """name → value of every site (plus the return value)."""
        return {**{s.name: s.value for s in self.sites.values()}, RETURN: self.value}

    def copy(self) -> "Trace":
        return Trace(dict(self.sites), self.value, self.status, self.reason)

    def to_dict(self) -> dict[str, Any]:
        value = _plain(self.value)
        lw, lp = self.log_weight, self.log_prior
        return {"sites": [s.to_dict() for s in self.sites.values()], "value": value, "status": self.status,
                "reason": self.reason, "log_weight": lw if math.isfinite(lw) else str(lw),
                "log_prior": lp if math.isfinite(lp) else (None if math.isnan(lp) else str(lp))}
