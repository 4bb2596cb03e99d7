"""``workbench demo``: run every registered experiment's quick default and write one offline HTML report
(one section per experiment: its key curves, one panel per metric with the methods overlaid, its key views
and the table of paper claims it checked; a smoke run is labelled as one)."""
from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any, Iterable

from .labels import SMOKE, claims_html, outcome_counts, run_label, summary_html

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;color:#222}
h1{margin-bottom:0} .meta{color:#666} section{margin:2.5em 0;border-top:1px solid #ddd;padding-top:1em}
pre.error{background:#fdecea;padding:8px;white-space:pre-wrap} .smoke{color:#8a6d3b;font-weight:bold}
"""


def _figure_html(fig: Any, first: bool) -> str:
    if not hasattr(fig, "to_plotly_json") and hasattr(fig, "_repr_html_"):  # an HTML view (a table)
        return fig._repr_html_()
    import plotly.io as pio

    from .style import house

    return pio.to_html(house(fig), include_plotlyjs=bool(first), full_html=False, include_mathjax=False,
                       default_width="100%", validate=False, config={"responsive": True})


def claims_table(claims: list[dict], smoke: bool = False) -> str:
    """Every claim in full: statement, method vs arm, effect ± uncertainty, rule and outcome with its reason
    (see :func:`widgets.labels.claims_html`)."""
    return claims_html(claims, smoke=smoke)


def section_figures(method: str, run_id: str) -> list[tuple[str, Any]]:
    """The key figures of one run: curves of its key metrics (one panel per metric, methods overlaid), then
    the method's key views."""
    from workbench.store.follow import RunFollower
    from workbench.core.registry import get

    from .curves import Series, static_figure
    from .views import render

    exp, update = get(method), RunFollower(run_id).poll()
    metrics = update.metrics
    series = Series()
    series.add_frame(run_label(update.record), metrics[metrics.name.map(exp.is_key_metric)])
    figs = [("training curves", static_figure(series, title="training curves", min_points=2))] if series.metrics else []
    return figs + render(method, run_id, key_only=True, claims=False)


def build_report(results: list[dict], title: str = "Workbench demo") -> str:
    """The whole page; ``results`` rows: method, title, run_id, status, error, seconds."""
    from workbench import runs
    from workbench.core.registry import get

    parts, first = [], True
    claims = {r["run_id"]: runs.claims(r["run_id"]) for r in results if r.get("run_id")}
    toc = "".join(f"<li><a href='#{html.escape(r['method'])}'>{html.escape(r['title'] or r['method'])}</a> "
                  f"({html.escape(r['status'])}"
                  + (f"; claims: {html.escape(outcome_counts(claims[r['run_id']]))}"
                     if claims.get(r.get("run_id")) else "") + ")</li>" for r in results)
    for r in results:
        out = [f"<section id='{html.escape(r['method'])}'><h2>{html.escape(r['title'] or r['method'])} "
               f"<small>({html.escape(r['method'])})</small></h2>"]
        meta = f"status <b>{html.escape(r['status'])}</b>, {r['seconds']:.1f} s"
        if r.get("run_id"):
            meta = f"run <code>{html.escape(r['run_id'])}</code>, " + meta
            rec = runs.get(r["run_id"])
            if rec.get("smoke"):
                meta += f" · <span class='smoke'>{SMOKE}</span> (claims not evaluated)"
            summary = rec.get("summary") or {}
            keys = [k for k in summary if get(r["method"]).is_key_metric(k)] or list(summary)
        out.append(f"<p class='meta'>{meta}</p>")
        if r.get("error"):
            out.append(f"<pre class='error'>{html.escape(str(r['error'])[-3000:])}</pre>")
        if r.get("run_id"):
            out.append("<h3>Claims checked</h3>" + claims_table(claims[r["run_id"]], smoke=bool(rec.get("smoke"))))
            if summary_html(summary, keys):
                out.append(f"<h3>Summary</h3>{summary_html(summary, keys)}")
            for fig_title, fig in section_figures(r["method"], r["run_id"]):
                out.append(f"<h3>{html.escape(fig_title)}</h3>" + _figure_html(fig, first))
                first = False
        out.append("</section>")
        parts.append("".join(out))
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1><p class='meta'>{stamp}</p>"
            f"<ul>{toc}</ul>{''.join(parts)}</body></html>")


def run_demo(only: Iterable[str] | None = None, smoke: bool = False, out: str | Path = "reports/demo.html",
             progress: bool = True) -> tuple[Path, list[dict]]:
    """Run the demo config of each experiment (or the smoke config), then write the report."""
    import workbench
    from workbench.core.registry import experiments

    known = experiments()
    names = list(only) if only else list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown experiment(s) {', '.join(unknown)}; known: {', '.join(known)}")
    results = []
    for name in names:
        exp = known[name]
        print(f"== {name}: {exp.title}", flush=True)
        t0 = time.time()
        try:
            res = workbench.run(name, {} if smoke else dict(exp.demo), smoke=smoke, progress=progress)
            row = {"run_id": res.run_id, "status": res.status, "error": res.error}
        except Exception as err:  # noqa: BLE001 - one broken experiment must not sink the report
            row = {"run_id": None, "status": "failed", "error": f"{type(err).__name__}: {err}"}
        row.update(method=name, title=exp.title, seconds=time.time() - t0)
        print(f"   {row['status']} in {row['seconds']:.1f} s" + (f" (run {row['run_id']})" if row["run_id"] else ""),
              flush=True)
        results.append(row)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_report(results), encoding="utf-8")
    return path, results
