"""How a run is named and described wherever it is shown (dashboard, runs table, compare legend, reports, app):
a short label, the smoke marker, the elapsed clock, the summary (one line, or a table with units), and the
claims table.
No UI imports: plain strings and HTML."""
from __future__ import annotations

import html
from typing import Any

SMOKE = "smoke run"
NOT_EVALUATED = "not evaluated (smoke run)"
#: one colour per outcome, everywhere a claim is shown (inconclusive amber, never the red of fails)
OUTCOME_COLOURS = {"holds": "#1e7e34", "fails": "#c0392b", "inconclusive": "#b7791f", "not evaluated": "#777777"}
_OUTCOME_CLASS = {"holds": "yes", "fails": "no", "inconclusive": "maybe", "not evaluated": "na"}
_CLAIMS_CSS = ("<style>table.wb-claims{border-collapse:collapse;margin:.5em 0;font-size:13px;width:100%}"
               "table.wb-claims th,table.wb-claims td{border:1px solid #ccc;padding:4px 8px;text-align:left;"
               "vertical-align:top;white-space:normal;word-break:normal}"
               "table.wb-claims th{background:#f2f2f2}"
               f"table.wb-claims td.yes{{color:{OUTCOME_COLOURS['holds']};font-weight:bold}}"
               f"table.wb-claims td.no{{color:{OUTCOME_COLOURS['fails']};font-weight:bold}}"
               f"table.wb-claims td.maybe{{color:{OUTCOME_COLOURS['inconclusive']};font-weight:bold;"
               "background:#fff8e6}"
               f"table.wb-claims td.na{{color:{OUTCOME_COLOURS['not evaluated']}}}"
               "table.wb-claims .why{font-weight:normal;display:block;margin-top:2px}"
               "table.wb-claims .sub{color:#666;font-size:12px;display:block;margin-top:2px}"
               "table.wb-claims td.rule{color:#444;font-size:12px}</style>")


def short_id(run_id: str) -> str:
    """The run id without its date ("20250101-142501-a3f9c2" → "142501-a3f9c2")."""
    return run_id[9:] if len(run_id) > 16 and run_id[8] == "-" else run_id[:16]


def run_label(record: dict) -> str:
    """A short legend label: method, the run id without its date, and "(smoke)" for a smoke run."""
    return f"{record['method']} {short_id(record['id'])}" + (" (smoke)" if record.get("smoke") else "")


def clock(seconds: float) -> str:
    """``m:ss.s`` (the elapsed time in a status line)."""
    m, s = divmod(max(0.0, seconds), 60)
    return f"{int(m)}:{s:04.1f}"


def summary_text(summary: Any, limit: int | None = 3) -> str:
    """``name=value, ...`` of a run's summary (floats to 4 significant digits)."""
    if not isinstance(summary, dict) or not summary:
        return ""
    items = list(summary.items())[:limit] if limit else list(summary.items())
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items)


#: The unit of a summary value, from the last part of its name (first match wins): (pattern, unit).
UNITS: tuple[tuple[str, str], ...] = (
    (r"(^|_)(ratio|over)(_|$)|invariance", "ratio"),
    (r"speedup", "× faster"),
    (r"psnr", "dB"),
    (r"seconds|(^|_)time(_s)?$|_s$", "s"),
    (r"^L\d+$", "s per step"),
    (r"(^|_)params$", "parameters"),
    (r"(^|_)steps?$", "steps"),
    (r"kendall_tau", "τ in [−1, 1]"),
    (r"(^|_)r2$", "R² (1: perfect)"),
    (r"accuracy|(^|_)ece|rate$|share", "fraction (0–1)"),
    (r"(^|_)(nll|kl|kl_final|kl_se|loss|nelbo|classification)$|^(chosen|rejected|margins)$", "nats"),
    (r"mse|crps|rmse|w1|prediction|change|std", "data units"),
)


def unit_of(name: str) -> str:
    """The unit of a summary entry ``name`` ("uniform/test/accuracy" → "fraction (0–1)"), "" when unknown."""
    import re

    last = str(name).rsplit("/", 1)[-1]
    for pattern, unit in UNITS:
        if re.search(pattern, last):
            return unit
    return ""


def value_text(value: Any) -> str:
    """A summary value for a table: floats to 4 significant digits, integers with thousands separators."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def summary_rows(summary: Any, keys: list[str] | None = None) -> list[dict]:
    """``[{"name", "value", "unit"}]`` of a run's summary (only ``keys`` when given), values formatted."""
    if not isinstance(summary, dict):
        return []
    names = [k for k in (keys if keys is not None else summary) if k in summary]
    return [{"name": k, "value": value_text(summary[k]), "unit": unit_of(k)} for k in names]


_SUMMARY_CSS = ("<style>table.wb-summary{border-collapse:collapse;margin:.4em 0;font-size:13px}"
                "table.wb-summary th,table.wb-summary td{border-bottom:1px solid #ddd;padding:3px 10px;"
                "text-align:left}table.wb-summary th{background:#f2f2f2}"
                "table.wb-summary td.value{text-align:right;font-variant-numeric:tabular-nums}"
                "table.wb-summary td.unit{color:#666}</style>")


def summary_html(summary: Any, keys: list[str] | None = None) -> str:
    """A run's summary as an HTML table (name, value, unit); "" for an empty summary."""
    rows = summary_rows(summary, keys)
    if not rows:
        return ""
    body = "".join(f"<tr><td class='name'>{html.escape(r['name'])}</td><td class='value'>{html.escape(r['value'])}"
                   f"</td><td class='unit'>{html.escape(r['unit'])}</td></tr>" for r in rows)
    return (_SUMMARY_CSS + "<table class='wb-summary'><thead><tr><th>name</th><th>value</th><th>unit</th></tr>"
            f"</thead><tbody>{body}</tbody></table>")


def outcome_text(claim: dict) -> tuple[str, str]:
    """(text, css class) of a claim's outcome: ``✔ holds`` (yes), ``✘ fails`` (no), ``? inconclusive`` (maybe),
    ``– not evaluated`` (na); records without an outcome (schema v4) read it from ``holds``."""
    from workbench.store.interop.claims import SYMBOLS, outcome_of

    outcome = outcome_of(claim)
    return f"{SYMBOLS[outcome]} {outcome}", _OUTCOME_CLASS[outcome]


def holds_text(claim: dict) -> tuple[str, str]:
    """(text, css class) of a claim's verdict in the words of ``holds``: holds / does not hold / inconclusive /
    not evaluated (smoke run); see :func:`outcome_text` for the outcome's own words."""
    from workbench.store.interop.claims import outcome_of

    outcome = outcome_of(claim)
    if outcome == "holds":
        return "✔ holds", "yes"
    if outcome == "fails":
        return "✘ does not hold", "no"
    if outcome == "inconclusive":
        return "? inconclusive", "maybe"
    return NOT_EVALUATED if SMOKE in str(claim.get("reason") or claim.get("detail") or "") else "not evaluated", "na"


def claims_html(claims: list[dict], smoke: bool = False) -> str:
    """Every claim in full, an HTML table that wraps its text, never cut: the statement (and its detail, the
    paper's figure), method vs arm, effect ± uncertainty with its interval, seeds and how it was made, the rule in
    words, and the outcome, coloured (holds green, fails red, inconclusive amber, not evaluated grey) with its
    reason."""
    from workbench.store.interop import claims as fmt

    if not claims:
        return "<p><i>no claims checked</i></p>"
    esc = lambda x: html.escape(str(x))  # noqa: E731
    rows = []
    for c in claims:
        text, cls = outcome_text(c)
        outcome = fmt.outcome_of(c)
        statement = esc(c.get("claim") or c.get("statement") or "")
        note, paper = fmt.note(c), str(c.get("paper") or "")
        if note:
            statement += f"<span class='sub'>{esc(note)}</span>"
        if paper:
            statement += f"<span class='sub'>paper: {esc(paper)}</span>"
        effect = esc(fmt.effect_text(c))
        if c.get("effect") is not None:
            kind = c.get("kind") or "difference"
            extra = [f"{kind} {fmt.interval_text(c)}"]
            if c.get("seeds") is not None:
                extra.append(f"{c['seeds']} seed{'s' if c['seeds'] != 1 else ''}")
            if c.get("how"):
                extra.append(str(c["how"]))
            effect += f"<span class='sub'>{esc(', '.join(extra))}</span>"
        reason = str(c.get("reason") or "")
        why = (f"<span class='why'>{esc(reason)}</span>" if reason and outcome in ("inconclusive", "not evaluated")
               else "")
        rows.append(f"<tr><td>{statement}</td><td>{esc(fmt.comparison(c))}</td><td>{effect}</td>"
                    f"<td class='rule'>{esc(c.get('rule') or '')}</td>"
                    f"<td class='{cls}' data-outcome='{esc(outcome)}'>{esc(text)}{why}</td></tr>")
    note = (f"<p style='color:#8a6d3b'><b>{SMOKE}</b>: the settings are far too small for these numbers to mean "
            "anything, so no claim is evaluated.</p>" if smoke else "")
    return (_CLAIMS_CSS + note + "<table class='wb-claims claims'><thead><tr><th>claim</th><th>method vs arm</th>"
            "<th>effect ± uncertainty</th><th>rule</th><th>outcome</th></tr></thead><tbody>" + "".join(rows)
            + "</tbody></table>")


def outcome_counts(claims: list[dict]) -> str:
    """``"2 hold, 1 fails, 1 inconclusive"``: how a run's claims came out, in one line ("" without claims)."""
    from workbench.store.interop.claims import OUTCOMES, outcome_of

    found = [outcome_of(c) for c in claims]
    words = {"holds": "hold", "fails": "fail"}
    parts = []
    for o in OUTCOMES:
        n = found.count(o)
        if n:
            parts.append(f"{n} {o if n == 1 else words.get(o, o)}")
    return ", ".join(parts)


def claims_text(claims: list[dict]) -> str:
    """The claims as plain text (terminals): per claim, the statement, method vs arm, effect ± uncertainty with
    its interval and seeds, and the outcome with its reason; the rule on the next line."""
    from workbench.store.interop import claims as fmt

    lines = []
    for c in claims:
        versus = fmt.comparison(c)
        effect = fmt.effect_text(c)
        if c.get("effect") is not None:
            effect += f" {fmt.interval_text(c)}, seeds {fmt.seeds_text(c)}"
        lines.append(f"- {c.get('claim') or c.get('statement')}" + (f" ({versus})" if versus else "")
                     + f": {effect} → {fmt.outcome_text(c)}")
        if c.get("rule"):
            lines.append(f"    rule: {c['rule']}")
    return "\n".join(lines)


def text_table(rows: list[dict], columns: list[str], max_width: int = 60) -> str:
    """A plain-text table (terminals, plain IPython): one line per row, columns padded."""
    cells = [[str(r.get(c, ""))[:max_width] for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(row) for row in cells])
