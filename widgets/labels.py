"""How a run is named and described wherever it is shown (dashboard, runs table, compare legend, reports, app):
a short label, the smoke marker, the elapsed clock, the plain-text summary, and the claims table.
No UI imports: plain strings and HTML."""
from __future__ import annotations

import html
from typing import Any

SMOKE = "smoke run"
NOT_EVALUATED = "not evaluated (smoke run)"
_CLAIMS_CSS = ("<style>table.wb-claims{border-collapse:collapse;margin:.5em 0;font-size:13px;width:100%}"
               "table.wb-claims th,table.wb-claims td{border:1px solid #ccc;padding:4px 8px;text-align:left;"
               "vertical-align:top;white-space:normal;word-break:normal}"
               "table.wb-claims th{background:#f2f2f2}table.wb-claims td.yes{color:#1e7e34;font-weight:bold}"
               "table.wb-claims td.no{color:#c0392b;font-weight:bold}table.wb-claims td.na{color:#777}</style>")


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


def holds_text(claim: dict) -> tuple[str, str]:
    """(text, css class) of a claim's verdict: holds / does not hold / not evaluated (smoke run) / n/a."""
    holds = claim.get("holds")
    if holds is True or holds == 1:
        return "✔ holds", "yes"
    if holds is False or holds == 0:
        return "✘ does not hold", "no"
    if str(claim.get("detail") or "").startswith("not evaluated"):
        return NOT_EVALUATED, "na"
    return "n/a", "na"


def claims_html(claims: list[dict], smoke: bool = False) -> str:
    """Every claim in full (claim, measured, holds, detail): an HTML table that wraps its text, never cut."""
    if not claims:
        return "<p><i>no claims checked</i></p>"
    rows = []
    for c in claims:
        text, cls = holds_text(c)
        detail = str(c.get("detail") or "")
        if detail.startswith(NOT_EVALUATED):
            detail = detail[len(NOT_EVALUATED):].lstrip("; ")
        rows.append(f"<tr><td>{html.escape(str(c['claim']))}</td><td>{html.escape(str(c.get('measured', '')))}</td>"
                    f"<td class='{cls}'>{html.escape(text)}</td><td>{html.escape(detail)}</td></tr>")
    note = (f"<p style='color:#8a6d3b'><b>{SMOKE}</b>: the settings are far too small for these numbers to mean "
            "anything, so no claim is evaluated.</p>" if smoke else "")
    return (_CLAIMS_CSS + note + "<table class='wb-claims claims'><thead><tr><th>claim</th><th>measured</th>"
            "<th>holds</th><th>detail</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def claims_text(claims: list[dict]) -> str:
    """The claims as plain text lines (terminals)."""
    return "\n".join(f"- {c['claim']}: {c.get('measured', '')} → {holds_text(c)[0]}" for c in claims)


def text_table(rows: list[dict], columns: list[str], max_width: int = 60) -> str:
    """A plain-text table (terminals, plain IPython): one line per row, columns padded."""
    cells = [[str(r.get(c, ""))[:max_width] for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(row) for row in cells])
