"""Exported reports in a real browser: plots are drawn (not empty divs) with no network request, equations are
typeset (rendered math elements, no raw ``$…$`` left), claims tables are complete; the PDF comes from headless
Chromium printing (skipped, like every browser check, where Chromium is not installed)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest

from browser_helpers import ROOT

WIDGETS_TESTS = Path(__file__).resolve().parents[1] / "widgets"

#: Each drawn plotly figure's width, its container's, its legend's box and its plotting area's, in px.
FIGURE_BOXES_JS = """() => Array.from(document.querySelectorAll('.plotly-graph-div')).map(el => {
  const box = el.parentElement.getBoundingClientRect();
  const legend = el.querySelector('.legend');
  const plot = el.querySelector('.cartesianlayer .xy .gridlayer') || el.querySelector('.cartesianlayer');
  const r = x => x ? x.getBoundingClientRect() : null;
  return {width: el._fullLayout.width, container: box.width, layoutWidth: (el.layout || {}).width || null,
          title: (el._fullLayout.title && el._fullLayout.title.text) || '', legend: r(legend), plot: r(plot),
          section: (el.closest('section') || {}).id || ''};
})"""


def width_problems(figures: list[dict], tolerance: float = 0.03) -> list[str]:
    """Figures narrower or wider than their container (by more than ``tolerance``), or with a fixed width."""
    out = []
    for f in figures:
        if f["layoutWidth"] is not None:
            out.append(f"{f['section']} '{f['title'][:60]}': fixed width {f['layoutWidth']}")
        if abs(f["width"] - f["container"]) > tolerance * f["container"]:
            out.append(f"{f['section']} '{f['title'][:60]}': {f['width']} px in a {f['container']:.0f} px container")
    return out


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The tiny notebook, executed once (smoke) for the tests of this module."""
    import os

    from widgets.report import execute_notebook

    tmp = tmp_path_factory.mktemp("report")
    os.environ["WORKBENCH_HOME"] = str(tmp / "home")
    cells = [
        nbformat.v4.new_code_cell("smoke = True", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(f"import sys; sys.path.insert(0, {str(WIDGETS_TESTS)!r}); import wb_tiny\n"
                                  "%load_ext widgets"),
        nbformat.v4.new_code_cell("%%wb wbtiny --smoke $smoke\nsteps = 12"),
    ]
    path = tmp / "tiny.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return tmp, execute_notebook(path, {"smoke": True})


def test_exported_html_draws_its_plots_offline(page, executed):
    from widgets.report import write_report

    tmp, nb = executed
    out = write_report(nb, tmp / "tiny.html")
    page.goto(out.as_uri())
    page.wait_for_selector(".plotly-graph-div .main-svg", timeout=30_000)
    graphs = page.locator(".plotly-graph-div")
    assert graphs.count() == 2  # curves + the tiny experiment's 'bars' view
    assert page.locator(".plotly-graph-div .scatterlayer .trace").count() >= 2  # lines drawn, not an empty div
    assert page.locator(".plotly-graph-div .barlayer .trace").count() == 1
    n_points = page.locator(".plotly-graph-div").first.evaluate("el => el._fullData[0].x.length")
    assert n_points == 12
    figures = page.evaluate(FIGURE_BOXES_JS)
    assert len(figures) == 2 and width_problems(figures) == []  # each figure as wide as its output area
    rows = page.locator("table.wb-claims tbody tr")  # the generic claims table, complete
    assert rows.count() == 1 and "not evaluated (smoke run)" in rows.first.inner_text()
    assert page.external_requests == [] and page.console_errors == []


def test_notebook_equations_are_typeset_offline(page, tmp_path):
    """Every markdown cell of the five notebooks, exported: KaTeX (inlined) turns each $…$ into MathML."""
    from widgets.report import write_report

    cells = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells += [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"]
    assert sum(c.source.count("$") for c in cells) > 40  # the notebooks do teach with equations
    out = write_report(nbformat.v4.new_notebook(cells=cells), tmp_path / "math.html")
    page.goto(out.as_uri())
    page.wait_for_selector(".jp-RenderedMarkdown math", timeout=30_000)
    assert page.locator(".jp-RenderedMarkdown math").count() >= 20
    text = page.locator("body").inner_text()
    leftover = re.findall(r"\$[^$\n]{1,80}\$", text)
    assert leftover == [] and "\\underbrace" not in text and "\\frac" not in text
    assert page.locator(".katex-error").count() == 0
    page.screenshot(path=str(tmp_path / "math.png"), full_page=False)
    print(f"screenshot: {tmp_path / 'math.png'}")
    assert page.external_requests == [] and page.console_errors == []


def test_pdf_through_headless_chromium(executed):
    from widgets.report import chromium_path, write_report

    if chromium_path() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); the PDF export check is skipped")
    tmp, nb = executed
    pdf = write_report(nb, tmp / "tiny.pdf", to="pdf")
    data = pdf.read_bytes()
    assert data[:5] == b"%PDF-" and len(data) > 10_000


def test_demo_page_draws_its_plots(page, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    sys.path.insert(0, str(WIDGETS_TESTS))
    import wb_tiny  # noqa: F401

    from widgets.cli import demo

    out = tmp_path / "demo.html"
    assert demo(["--only", "wbtiny", "--smoke", "--out", str(out), "--no-progress"]) == 0
    page.goto(out.as_uri())
    page.wait_for_selector(".plotly-graph-div .main-svg", timeout=30_000)
    assert page.locator(".plotly-graph-div .main-svg").count() >= 2
    assert page.locator("table.claims td.na", has_text="not evaluated (smoke run)").count() == 1
    assert page.external_requests == [] and page.console_errors == []


@pytest.mark.timeout(900)  # the smoke run of every experiment, then the page: minutes on a loaded 2-core machine
def test_every_method_section_of_the_demo_draws_titled_figures(page, tmp_path, monkeypatch):
    """The smoke demo of every registered experiment, opened in Chromium: each section completed, each of its
    figures drawn with a heading and a plot title or a table, axes that do not overlap, claims labelled smoke."""
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    from widgets.cli import demo
    from workbench.core.registry import experiments

    builtin = [n for n, e in experiments().items() if e.run.__module__.startswith("workbench.")]  # not test doubles
    assert len(builtin) >= 10
    out = tmp_path / "demo.html"
    assert demo(["--only", *builtin, "--smoke", "--out", str(out), "--no-progress"]) == 0
    page.goto(out.as_uri(), timeout=180_000)  # ~6 MB of figures: slow to load on a busy machine
    page.wait_for_selector(".plotly-graph-div .main-svg", timeout=60_000)
    for name in builtin:
        section = page.locator(f"section#{name}")
        assert section.count() == 1, name
        assert "status completed" in section.locator("p.meta").inner_text(), name
        headings = section.locator("h3").all_inner_texts()
        assert headings[0] == "Claims checked" and len(headings) >= 2, (name, headings)
        graphs = section.locator(".plotly-graph-div")
        assert graphs.count() + section.locator("table").count() >= 2, name
        for i in range(graphs.count()):
            graph = graphs.nth(i)
            assert graph.locator(".main-svg").count() >= 1, (name, i)
            layout = graph.evaluate("g => ({title: (g.layout.title || {}).text || '', w: g._fullLayout.width,"
                                    " axes: Object.keys(g._fullLayout).filter(k => /^[xy]axis\\d*$/.test(k))"
                                    ".map(k => [k, g._fullLayout[k].domain])})")
            assert layout["title"].strip(), (name, i, "untitled figure")
            assert layout["w"] > 900, (name, i, f"{layout['w']} px wide in a 1300 px window")
            for letter in "xy":  # subplot domains lie inside the figure
                for _, dom in (a for a in layout["axes"] if a[0].startswith(letter)):
                    assert 0 <= dom[0] < dom[1] <= 1, (name, i, layout["axes"])
        assert section.locator("table.claims td.na", has_text="not evaluated (smoke run)").count() >= 1, name
        assert section.locator("table.wb-summary th", has_text="unit").count() == 1, name  # summary with units
    figures = page.evaluate(FIGURE_BOXES_JS)
    assert width_problems(figures) == []  # every figure takes the width of its section
    for f in figures:  # a legend sits outside the plotting area: above it or right of it, never over it
        if f["legend"] and f["plot"] and f["legend"]["width"] > 0:
            leg, plot = f["legend"], f["plot"]
            beside = leg["x"] >= plot["x"] + plot["width"] - 2 or leg["y"] + leg["height"] <= plot["y"] + 2
            assert beside, (f["section"], f["title"][:60], leg, plot)
    page.screenshot(path=str(tmp_path / "demo.png"), full_page=False)
    print(f"screenshot: {tmp_path / 'demo.png'}")
    assert page.external_requests == [] and page.console_errors == []
