"""``%wb_sweep`` for real in JupyterLab: a sweep of ``classify`` at smoke size, two trials on a local Ray cluster
started by the kernel. The cell returns at once with the live sweep view; while the trials run, then when both have
ended: the view's title, figures and trials table, a trial selected opens its run, a clean console, nothing
fetched. Screenshots during and after go to ``$WORKBENCH_SHOTS`` (default: the test's temporary directory)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import pytest

from browser_helpers import TOKEN, open_notebook, run_cell_containing

pytestmark = pytest.mark.extended  # a minute or more: Ray starts in the kernel, two smoke runs of classify
SWEEP = "lab-sweep"
TIMEOUT_MS = 420_000


def _shot(page, path: Path) -> None:
    try:
        page.screenshot(path=str(path))
        print(f"screenshot: {path}")
    except Exception as err:  # noqa: BLE001 - a screenshot is for people; never the reason a test fails
        print(f"no screenshot {path}: {err}")


def _end_kernels(base: str) -> None:
    import json
    import urllib.request

    for s in json.load(urllib.request.urlopen(f"{base}/api/sessions?token={TOKEN}", timeout=10)):
        req = urllib.request.Request(f"{base}/api/sessions/{s['id']}?token={TOKEN}", method="DELETE")
        urllib.request.urlopen(req, timeout=30)


@pytest.mark.timeout(900)
def test_wb_sweep_in_lab(wide_page, lab):
    pytest.importorskip("ray", reason="Ray is not installed (the 'sweep' extra)")
    from widgets.sweep import TITLES

    page = wide_page
    base, tmp, home = lab
    page.console_errors.clear()
    page.external_requests.clear()
    shots = Path(os.environ.get("WORKBENCH_SHOTS") or tmp / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    line = (f"%wb_sweep classify --space lr=1e-3:1e-1:log --trials 2 --parallel 2 --smoke --seed 0 "
            f"--name {SWEEP}")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("%load_ext widgets"),
                                         nbformat.v4.new_code_cell(line)])
    nbformat.write(nb, tmp / "sweep_magic.ipynb")
    started = time.monotonic()
    try:
        open_notebook(page, base, "sweep_magic.ipynb")
        run_cell_containing(page, "%load_ext widgets")
        cell = run_cell_containing(page, "%wb_sweep")
        view = cell.locator(".wb-sweep")
        view.locator(f"text=Sweep {SWEEP}").first.wait_for(timeout=120_000)  # the cell returned with the view
        view.locator("table.wb-sweep-trials tbody tr").first.wait_for(timeout=TIMEOUT_MS)
        _shot(page, shots / "sweep-magic-during.png")
        page.wait_for_function(  # both trials ended (the view redraws while they run)
            """() => { const rows = Array.from(document.querySelectorAll('table.wb-sweep-trials tbody tr'));
                       return rows.length === 2 && rows.every(r => /completed|pruned|failed/.test(r.innerText)); }""",
            timeout=TIMEOUT_MS, polling=1000)
        plots = view.locator(".js-plotly-plot")
        plots.first.wait_for(timeout=60_000)
        page.wait_for_timeout(1500)  # the last figures draw
        titles = plots.evaluate_all("els => els.map(el => el.layout && el.layout.title && el.layout.title.text)")
        table = view.locator("table.wb-sweep-trials").inner_text()
        view.locator(".wb-sweep-picker select").select_option(index=1)  # open the first trial's run
        view.locator(".wb-sweep-run-title").wait_for(timeout=60_000)
        opened = view.locator(".wb-sweep-run-title").inner_text()
        page.wait_for_timeout(1500)
        view.locator(f"text=Sweep {SWEEP}").first.scroll_into_view_if_needed()
        _shot(page, shots / "sweep-magic-after.png")
        view.locator("table.wb-sweep-trials").scroll_into_view_if_needed()
        _shot(page, shots / "sweep-magic-after-table.png")
        view.locator(".wb-sweep-run-title").scroll_into_view_if_needed()
        _shot(page, shots / "sweep-magic-after-run.png")
        stop = view.locator("button", has_text="Stop")
        for _ in range(120):  # the driver shuts Ray down, then the view's monitor ends and disables Stop
            if stop.is_disabled():
                break
            page.wait_for_timeout(500)
        stop_disabled = stop.is_disabled()
        stderr = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
        errors = cell.locator(stderr).all_inner_texts()
    except Exception:
        _shot(page, shots / "sweep-magic-failed.png")
        raise
    finally:
        print(f"%wb_sweep in Lab: {time.monotonic() - started:.0f} s")
        _end_kernels(base)
    assert all(any(t and t.startswith(TITLES[k]) and SWEEP in t for t in titles) for k in ("history", "slice")), titles
    assert table.count("completed") == 2, table
    assert errors == [], errors  # nothing on stderr (no log lines of Optuna or Ray in the cell)
    assert stop_disabled  # the sweep has ended: nothing to stop
    assert f"trial 0 of sweep {SWEEP}" in opened and "classify" in opened and "completed" in opened, opened
    assert page.console_errors == [], page.console_errors
    assert page.external_requests == [], page.external_requests
