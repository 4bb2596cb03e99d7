"""Stored claims as text: one spelling of an effect, an outcome and a claims table, shared by the exports (bundles,
MLflow, TensorBoard), the ``workbench claims`` command and the notebook layer's views.

A claim record is what :meth:`workbench.store.store.Store.claims` returns (statement, method vs arm, effect with
its interval, seeds, rule, outcome and reason; records of schema v4 carry a measured value and a verdict only).
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

from workbench.store.store import OUTCOMES, claim_note, legacy_outcome

SYMBOLS = {"holds": "✔", "fails": "✘", "inconclusive": "?", "not evaluated": "–"}
#: the columns of a claims table (terminal, markdown, TensorBoard), as (key, heading)
TABLE = (("claim", "claim"), ("comparison", "method vs arm"), ("effect", "effect ± uncertainty"),
         ("seeds", "seeds"), ("rule", "rule"), ("outcome", "outcome"))

__all__ = ["OUTCOMES", "SYMBOLS", "number", "effect_text", "interval_text", "outcome_of", "outcome_text",
           "comparison", "seeds_text", "note", "rows", "markdown_table", "plain_table"]


def number(x: Any, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits, plainly (exponent only outside [1e-3, 1e5))."""
    if x is None:
        return "–"
    x = float(x)
    if not math.isfinite(x):
        return "NaN" if math.isnan(x) else ("∞" if x > 0 else "−∞")
    if x == 0:
        return "0"
    if not 1e-3 <= abs(x) < 1e5:
        return f"{x:.{digits - 1}e}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    return f"{x:.{decimals}f}"


def _pair(value: float, unc: float) -> tuple[str, str]:
    """Value and uncertainty to the same decimals, set by the uncertainty's two significant digits."""
    if not (math.isfinite(unc) and unc > 0) or not 1e-4 <= abs(unc) < 1e5 or abs(value) >= 1e6:
        return number(value), number(unc, 2)
    decimals = min(6, max(0, 1 - math.floor(math.log10(unc))))
    return f"{value:.{decimals}f}", f"{unc:.{decimals}f}"


def outcome_of(claim: dict[str, Any]) -> str:
    """The outcome of a claim record (derived from ``holds`` and ``detail`` for a record without one)."""
    outcome = claim.get("outcome")
    return outcome if outcome in OUTCOMES else legacy_outcome(claim.get("holds"), claim.get("detail"))


def effect_text(claim: dict[str, Any]) -> str:
    """``effect ± uncertainty`` (``± ∞`` for an unbounded interval); the measured words of a claim without an
    effect."""
    value = claim.get("effect")
    if value is None:
        return str(claim.get("measured") or "–")
    unc = claim.get("uncertainty")
    if unc is None:
        return f"{number(value)} ± ∞"
    v, u = _pair(float(value), float(unc))
    return f"{v} ± {u}"


def interval_text(claim: dict[str, Any]) -> str:
    """``[low, high]`` of the claim's interval ("" without an effect)."""
    if claim.get("effect") is None:
        return ""
    low, high = claim.get("low"), claim.get("high")
    return f"[{'−∞' if low is None else number(low)}, {'∞' if high is None else number(high)}]"


def comparison(claim: dict[str, Any]) -> str:
    """``method vs arm`` ("" for a claim recorded without one)."""
    method, arm = claim.get("method") or "", claim.get("arm") or ""
    return f"{method} vs {arm}" if method and arm else method or arm


def seeds_text(claim: dict[str, Any]) -> str:
    seeds = claim.get("seeds")
    return "–" if seeds is None else str(seeds)


def note(claim: dict[str, Any]) -> str:
    """The claim's own detail (without its reason, shown with the outcome)."""
    return claim_note(claim)


def outcome_text(claim: dict[str, Any], reason: bool = True) -> str:
    """``✔ holds``, ``✘ fails``, ``? inconclusive: <reason>``, ``– not evaluated (smoke run)``."""
    outcome = outcome_of(claim)
    text = f"{SYMBOLS[outcome]} {outcome}"
    why = str(claim.get("reason") or "")
    if reason and why and outcome in ("inconclusive", "not evaluated"):
        text = f"{SYMBOLS[outcome]} {why}" if why.startswith(outcome) else f"{text}: {why}"
    return text


def rows(claims: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    """The claims as table rows of text, keyed as :data:`TABLE`."""
    out = []
    for c in claims:
        out.append({"claim": str(c.get("claim") or c.get("statement") or ""), "comparison": comparison(c),
                    "effect": effect_text(c), "seeds": seeds_text(c), "rule": str(c.get("rule") or ""),
                    "outcome": outcome_text(c)})
    return out


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ").strip()


def markdown_table(records: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]] = TABLE) -> str:
    """A GitHub-flavoured markdown table of ``records`` (text rows, e.g. :func:`rows`), ``columns`` as
    (key, heading)."""
    lines = ["| " + " | ".join(h for _, h in columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_cell(r.get(k, "")) for k, _ in columns) + " |" for r in records]
    return "\n".join(lines)


def plain_table(records: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]],
                widths: dict[str, int] | None = None) -> str:
    """A plain-text table (terminals): columns padded, a cell longer than its ``widths`` entry cut with "…"."""
    widths = widths or {}

    def cut(key: str, text: str) -> str:
        limit = widths.get(key)
        return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"

    cells = [[cut(k, str(r.get(k, ""))) for k, _ in columns] for r in records]
    size = [max([len(h)] + [len(row[i]) for row in cells]) for i, (_, h) in enumerate(columns)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, size)).rstrip()  # noqa: E731
    return "\n".join([line([h for _, h in columns]), line(["-" * w for w in size])] + [line(r) for r in cells])
