"""Claims over seeds: each claim a sweep's trials checked, with its effect ± uncertainty over the trials' seeds.

Every trial (one seed) records its claims with an effect; across the trials of one setting the effects are
independent replicates, so the claim's effect over seeds is their mean with a Student-t interval
(:meth:`~workbench.core.claims.Effect.paired`), and the claim's own rule (the bound and direction it states) is
applied to that interval with :func:`~workbench.core.claims.decide`. Smoke runs stay "not evaluated"; a claim
whose precondition failed in any seed stays inconclusive, saying so.
"""
from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from workbench.core.claims import Effect, decide

if TYPE_CHECKING:  # pragma: no cover
    from workbench.store.store import Store

_RULE = re.compile(r"lies entirely (above|below) (-?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?|-?inf)")


def rule_bound(rule: str) -> tuple[float, str] | None:
    """The bound and better direction a rule of :mod:`workbench.core.claims` states, or None (a legacy rule)."""
    m = _RULE.search(rule or "")
    if m is None:
        return None
    return float(m.group(2)), "higher" if m.group(1) == "above" else "lower"


def aggregate(store: "Store", runs: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per (setting, claim): ``setting`` (the params other than the seed), statement, method, arm,
    ``effect`` (an :class:`Effect` over seeds), ``seeds``, ``outcome``, ``reason``, ``rule``, ``run_ids``."""
    groups: dict[tuple, dict[str, Any]] = {}
    for run_id, setting in runs:
        for c in store.claims(run_id):
            key = (tuple(sorted(setting.items())), c["statement"], c["method"], c["arm"], c["rule"], c["kind"])
            g = groups.setdefault(key, {"setting": dict(setting), "claims": [], "run_ids": []})
            g["claims"].append(c)
            g["run_ids"].append(run_id)
    rows = []
    for (_, statement, method, arm, rule, kind), g in groups.items():
        claims = g["claims"]
        values = [c["effect"] for c in claims if c["effect"] is not None and math.isfinite(c["effect"])]
        effect = None
        if values:
            effect = Effect.paired(values)
            effect = replace(effect, kind=kind or "value",
                             how=f"t interval over {len(values)} seeds (one effect per trial)")
        outcome, reason = _outcome(claims, effect, rule)
        rows.append({"setting": g["setting"], "statement": statement, "method": method, "arm": arm,
                     "effect": effect, "seeds": len(values), "outcome": outcome, "reason": reason, "rule": rule,
                     "run_ids": g["run_ids"]})
    return rows


def _outcome(claims: list[dict[str, Any]], effect: Effect | None, rule: str) -> tuple[str, str]:
    if all(c["outcome"] == "not evaluated" for c in claims):
        return "not evaluated", "smoke runs"
    failed = [c for c in claims if str(c.get("reason", "")).startswith("precondition not met")]
    if failed:
        return "inconclusive", f"{failed[0]['reason']} (in {len(failed)} of {len(claims)} seeds)"
    if effect is None:
        return "inconclusive", "no effect recorded"
    bound = rule_bound(rule)
    if bound is None:
        return "inconclusive", "the rule states no bound to test the interval against"
    outcome = decide(effect, bound[0], bound[1])
    if outcome != "inconclusive":
        return outcome, ""
    if math.isinf(effect.low) or math.isinf(effect.high):
        return outcome, f"the interval is unbounded ({effect.how})"
    return outcome, f"the interval [{effect.low:.3g}, {effect.high:.3g}] straddles {bound[0]:g}"


def claims_text(rows: list[dict[str, Any]]) -> str:
    """The aggregated claims as lines: outcome, statement, effect ± uncertainty over N seeds."""
    lines = []
    for r in rows:
        e = r["effect"]
        measured = f"{e.text()} over {r['seeds']} seeds" if e is not None else "no effect"
        setting = ", ".join(f"{k}={v}" for k, v in r["setting"].items())
        reason = f" ({r['reason']})" if r["reason"] else ""
        lines.append(f"{r['outcome']}{reason}: {r['statement']}" + (f" [{r['method']} vs {r['arm']}]"
                     if r["method"] or r["arm"] else "") + f": {measured}" + (f" at {setting}" if setting else ""))
    return "\n".join(lines)
