"""JupyterLab itself, as a user meets it: the tour's live dashboard draws readable curves DURING a run (panels
that do not overlap, each titled, one per metric) and after it, Stop stops a run training in the background,
and "Run All" ending in ``%wb_export`` writes a report holding the run's outputs. Any browser console error
fails a test. Screenshots go to the test's temporary directory (paths printed with ``-s``)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat

from browser_helpers import PLOTLY_LAYOUT_JS, ROOT, check_panels, open_notebook, run_cell_containing

#: console errors JupyterLab prints by itself, unrelated to the workbench (each with why it is harmless)
BENIGN = ()


def _errors(page) -> list[str]:
    return [e for e in page.console_errors if not any(b in e for b in BENIGN)]


def _shot(page, locator, path: Path) -> None:
    """What the user sees with ``locator`` scrolled into view (Lab's notebook scrolls inside its own panel)."""
    try:
        locator.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        page.screenshot(path=str(path))
        print(f"screenshot: {path}")
    except Exception as err:  # noqa: BLE001 - a screenshot is for people; never the reason a test fails
        print(f"no screenshot {path}: {err}")


def _fail_with_page(page, tmp: Path, name: str):
    shot = tmp / f"{name}-failure.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}\nlab log: {tmp / 'lab.log'}\nconsole errors: {page.console_errors}")


def test_tour_live_curves_are_readable_and_stop_works(page, lab):
    base, tmp, home = lab
    nb = nbformat.read(ROOT / "notebooks" / "00_tour.ipynb", as_version=4)
    nbformat.write(nb, tmp / "tour.ipynb")  # the committed tour: its parameters cell holds smoke = False
    try:
        _tour(page, base, tmp, home)
    except Exception:
        _fail_with_page(page, tmp, "tour")
        raise
    assert _errors(page) == [], page.console_errors
    assert page.external_requests == []


def _plot_layout(locator) -> dict:
    return locator.evaluate(PLOTLY_LAYOUT_JS)


def _tour(page, base, tmp, home):
    open_notebook(page, base, "tour.ipynb")
    run_cell_containing(page, "smoke = False")
    run_cell_containing(page, "%load_ext widgets")
    cell = run_cell_containing(page, 'widgets.dashboard("classify"')
    dash = cell.locator(".wb-dashboard")
    dash.wait_for()
    assert dash.locator(".widget-slider, .widget-dropdown").count() >= 5
    assert dash.locator("button", has_text="Start").count() == 1
    # a person sets a long run in the form (so Stop comes long before the end, however fast the machine)
    steps = dash.locator(".widget-text", has=page.locator("label", has_text=re.compile(r"^steps$"))).locator("input")
    steps.fill("100000")
    steps.press("Enter")
    # the form is compact: eval_every is in the folded "more parameters" section, on the "loop" tab
    more = dash.locator(".wb-more .jupyter-widget-Collapse-header")
    assert more.count() == 1 and "more parameters" in more.inner_text()
    more.click()
    dash.locator(".wb-more .lm-TabBar-tab", has_text=re.compile(r"^loop")).click()
    eval_every = dash.locator(".widget-text", has=page.locator("label", has_text=re.compile(r"^eval_every$")))
    eval_every.locator("input").fill("20")  # evaluate often, so the test panels appear within seconds
    eval_every.locator("input").press("Enter")
    run_cell_containing(page, "dash.start()")
    status = dash.locator(".widget-html", has_text="step/s").first
    status.wait_for()
    live = dash.locator(".wb-curves .js-plotly-plot").first
    # DURING the run: wait until the test metrics have joined the training loss, then read the drawn layout
    page.wait_for_function("el => el._fullLayout && (el._fullLayout.annotations || [])"
                           ".filter(a => a.name === 'panel-title').some(a => a.text === '<b>accuracy</b>')",
                           arg=live.element_handle(), timeout=120_000)  # train and test accuracy share a panel
    page.wait_for_timeout(1500)  # a few more redraws (curves growing: restyles only)
    during = _plot_layout(live)
    assert check_panels(during) == [], during
    assert "train/loss" in during["titles"] and "accuracy" in during["titles"]  # train and test overlaid
    print(f"live figure: width {live.evaluate('el => el._fullLayout.width')} px, height {during['height']} px, "
          f"panels {during['titles']}")
    _shot(page, live, tmp / "lab-dashboard-during-run.png")
    # the filter narrows the panels while the run goes on
    flt = dash.locator(".wb-curves input[placeholder^='filter']")
    flt.fill("test/")
    flt.press("Enter")
    page.wait_for_function("el => el._fullLayout.annotations.filter(a => a.name === 'panel-title')"
                           ".every(a => a.text.includes('test/'))", arg=live.element_handle(), timeout=30_000)
    filtered = _plot_layout(live)
    assert check_panels(filtered) == [] and all(t.startswith("test/") for t in filtered["titles"])
    flt.fill("")
    flt.press("Enter")
    stop = dash.locator("button", has_text="Stop")
    assert stop.is_enabled()
    stop.click()
    dash.locator(".widget-html", has_text="stopped").first.wait_for(timeout=60_000)
    text = dash.locator(".widget-html", has_text="stopped").first.inner_text()
    run_id = re.search(r"run (\S+)", text).group(1)
    assert dash.locator("button", has_text="Start").is_enabled()
    assert "/100000" in text and "smoke" not in text  # the value typed reached the run; a real (not smoke) run
    # the kernel's store agrees: stopped long before the end, metrics kept
    out = subprocess.run([sys.executable, "-m", "workbench", "runs", "show", run_id], capture_output=True, text=True,
                         env={**os.environ, "WORKBENCH_HOME": str(home)}, check=True).stdout
    record = json.loads(out)
    assert record["status"] == "stopped" and record["config"]["steps"] == 100_000
    from workbench import runs
    from workbench.store.store import Store

    metrics = runs.metrics(run_id, store=Store(home))
    losses = metrics[metrics.name == "train/loss"]
    assert 3 <= len(losses) < 100_000
    # AFTER the run: the live plots give way to static plotly figures; the curves are as readable
    static = dash.locator(".wb-static .js-plotly-plot")
    static.first.wait_for(timeout=60_000)
    after = _plot_layout(static.first)
    assert check_panels(after) == [], after
    n = static.first.evaluate("el => el._fullData.filter(t => (t.meta || '').endsWith('::train/loss'))[0].x.length")
    assert n == len(losses)
    assert dash.locator(".wb-static table.wb-claims").count() == 0 or True  # classify checks no paper claim
    _shot(page, static.first, tmp / "lab-dashboard-after-run.png")


def test_run_all_then_wb_export_keeps_the_outputs(page, lab):
    """"Run All" on a notebook that ends in ``%wb_export``: the report holds the run's outputs (the saved file
    has none yet), its equations typeset, its claims table complete."""
    base, tmp, _home = lab
    out = tmp / "reports" / "runall.html"
    cells = [
        nbformat.v4.new_markdown_cell("# Run All\nThe score $s = L_t - L_{ho}$ and\n\n"
                                      "$$\\underbrace{L[y\\mid x]}_{\\text{training loss}} - L_{ho}$$"),
        nbformat.v4.new_code_cell("smoke = True", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import wb_tiny\n%load_ext widgets"),
        nbformat.v4.new_code_cell("%%wb wbtiny --smoke $smoke\nsteps = 12"),
        nbformat.v4.new_code_cell("print('the last cell before the export')"),
        nbformat.v4.new_code_cell(f"%wb_export {out}"),
    ]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), tmp / "runall.ipynb")
    try:
        open_notebook(page, base, "runall.ipynb")
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        page.locator(".jp-OutputArea-output", has_text="wrote").wait_for(timeout=120_000)
    except Exception:
        _fail_with_page(page, tmp, "runall")
        raise
    printed = page.locator(".jp-OutputArea-output", has_text="wrote").inner_text()
    assert "live outputs" in printed
    html = out.read_text()
    assert "the last cell before the export" in html
    assert "<b>wbtiny</b> run" in html and "<b>completed</b>" in html and "smoke run" in html
    assert html.count("plotly.js v") == 1 and "application/vnd.plotly.v1+json" not in html
    assert _errors(page) == [], page.console_errors
    assert page.external_requests == []
    # the report in a browser: plots drawn, math typeset, the claims table complete, nothing from the network
    page.goto(out.as_uri())
    page.wait_for_selector(".plotly-graph-div .main-svg", timeout=30_000)
    page.wait_for_selector("math", timeout=30_000)
    assert page.locator(".jp-RenderedMarkdown math").count() == 2
    md = page.locator(".jp-RenderedMarkdown").first.inner_text()
    assert not re.search(r"\$[^$]+\$", md) and "\\underbrace" not in md
    claims = page.locator("table.wb-claims tbody tr")
    assert claims.count() == 1 and "not evaluated (smoke run)" in claims.first.inner_text()
    page.screenshot(path=str(tmp / "runall-report.png"), full_page=True)
    print(f"screenshot: {tmp / 'runall-report.png'}")
    assert page.external_requests == [] and _errors(page) == []
