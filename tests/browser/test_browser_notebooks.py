"""Every method notebook in JupyterLab at 1600x1000, as a new user meets it: smoke injected after the ``parameters``
cell (as ``tests/notebooks`` does), Run > Run All Cells, then: every widget drew (no "Click to show javascript
error" / "Could not create a view"), the console is clean, every plotly figure fills the width of its output area,
and the notebook saved after the run is under 2 MB. One Lab server and one page for all of them; screenshots
during and after each run go to ``$WORKBENCH_SHOTS`` (default: the test's temporary directory)."""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import nbformat
import pytest

from browser_helpers import (ALL_RAN_JS, BROKEN_WIDGETS_JS, FIGURE_WIDTHS_JS, ROOT, TOKEN, open_notebook, run_all,
                             save)

pytestmark = pytest.mark.slow  # minutes: every notebook runs in smoke mode in a real Lab (about 3 min each on 2 busy cores)
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("0[0-8]_*.ipynb"))
#: run in Lab by `make test` (the tour, and a method notebook with multi-choice controls and live views); the others
#: are `extended` (`make test-all`) and run headless in `make test` (tests/notebooks)
IN_LAB_BY_DEFAULT = ("00_tour.ipynb", "02_goldilocks.ipynb")
MAX_BYTES = 2_000_000  # a notebook saved after Run All
WIDTH_SLACK = 0.05  # a figure may be this much narrower than its output area (scroll bars, padding)
RUN_TIMEOUT_MS = 240_000


def _shots(tmp: Path) -> Path:
    path = Path(os.environ.get("WORKBENCH_SHOTS") or tmp / "shots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _shot(page, path: Path) -> None:
    try:
        page.screenshot(path=str(path))
        print(f"screenshot: {path}")
    except Exception as err:  # noqa: BLE001 - a screenshot is for people; never the reason a test fails
        print(f"no screenshot {path}: {err}")


def _shutdown_kernels(base: str) -> None:
    """End every kernel of the Lab server (each notebook's run leaves one; the machine has few cores)."""
    import json
    import urllib.request

    sessions = json.load(urllib.request.urlopen(f"{base}/api/sessions?token={TOKEN}", timeout=10))
    for s in sessions:
        req = urllib.request.Request(f"{base}/api/sessions/{s['id']}?token={TOKEN}", method="DELETE")
        urllib.request.urlopen(req, timeout=30)


def _saved(path: Path, since: float, timeout: float = 60.0) -> nbformat.NotebookNode:
    """The notebook as saved after ``since`` (a time stamp; Lab also autosaves during the run)."""
    end = time.monotonic() + timeout
    while path.stat().st_mtime < since and time.monotonic() < end:
        time.sleep(0.2)
    time.sleep(0.5)  # the write completes
    return nbformat.read(path, as_version=4)


@pytest.mark.parametrize("name", [n if n in IN_LAB_BY_DEFAULT else pytest.param(n, marks=pytest.mark.extended)
                                  for n in NOTEBOOKS])
def test_notebook_runs_all_in_lab(wide_page, lab, name):
    from widgets.report import inject_parameters

    page = wide_page
    base, tmp, _home = lab
    page.console_errors.clear()
    page.external_requests.clear()
    shots = _shots(tmp)
    stem = name.removesuffix(".ipynb")
    path = tmp / name
    nbformat.write(inject_parameters(nbformat.read(ROOT / "notebooks" / name, as_version=4), {"smoke": True}), path)
    started = time.monotonic()
    try:
        open_notebook(page, base, name)
        run_all(page)
        dash = page.locator(".wb-dashboard").first
        dash.wait_for(timeout=RUN_TIMEOUT_MS)
        dash.scroll_into_view_if_needed()
        page.locator(".wb-dashboard .widget-html", has_text="step").first.wait_for(timeout=RUN_TIMEOUT_MS)
        _shot(page, shots / f"{stem}-during.png")
        page.wait_for_function(ALL_RAN_JS, timeout=RUN_TIMEOUT_MS, polling=500)
        page.wait_for_timeout(1500)  # the last figures draw
        dash.scroll_into_view_if_needed()
        _shot(page, shots / f"{stem}-after.png")
        clicked = time.time()
        save(page)
        saved = _saved(path, clicked)
        widths = page.evaluate(FIGURE_WIDTHS_JS)
        broken = page.evaluate(BROKEN_WIDGETS_JS)
        first_steps = page.locator(".wb-dashboard").first.locator(
            ".widget-text", has=page.locator("label", has_text=re.compile(r"^steps$"))).locator("input").input_value()
    finally:
        print(f"{name}: {time.monotonic() - started:.0f} s in Lab")
        _shutdown_kernels(base)
    from tests.common import smoke_notebook_problems

    assert smoke_notebook_problems(saved) == []  # the same checks as the headless run (tests/notebooks)
    unrun = [i for i, c in enumerate(saved.cells) if c.cell_type == "code" and not c.get("execution_count")]
    assert unrun == [], f"cells not run: {unrun}"
    assert broken == [], broken  # every control and view drew
    assert page.console_errors == [], page.console_errors
    assert page.external_requests == []
    if name == "00_tour.ipynb":  # the Stop demonstration ran in a dashboard of its own: the first form is as it was
        from workbench.core.registry import get

        assert first_steps == str(get("classify").smoke["steps"]), first_steps
    size = path.stat().st_size
    print(f"{name}: saved {size / 1e6:.2f} MB, {len(widths)} figures")
    narrow = [w for w in widths if w["width"] < (1 - WIDTH_SLACK) * w["area"]]
    for w in narrow:
        print(f"  narrow figure: {w}")
    assert size < MAX_BYTES, f"{name} saved after Run All weighs {size / 1e6:.1f} MB"
    assert narrow == [], f"{len(narrow)} of {len(widths)} figures narrower than their output area: {narrow}"
