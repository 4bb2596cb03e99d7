"""Exported reports in a real browser: plots are drawn (not empty divs) with no network request;
the PDF comes from headless Chromium printing."""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

WIDGETS_TESTS = Path(__file__).resolve().parents[1] / "widgets"


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
    assert page.external_requests == []


def test_pdf_through_headless_chromium(executed):
    from widgets.report import write_report

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
    assert page.locator("table.claims td.yes").count() == 1
    assert page.external_requests == []
