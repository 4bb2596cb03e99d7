"""``workbench serve``'s ``/sweeps`` in a real browser, offline: the list links a stored sweep (told by hand, no
Ray), its page shows the sweep's title, every figure titled and the trials table; nothing leaves 127.0.0.1 and the
console stays clean."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from widgets.app import free_port

HERE = Path(__file__).resolve().parent

SERVER = r"""
import sys
sys.path.insert(0, sys.argv[2])
import toy  # registers "sweeptoy"
from workbench.store import runs as runs_api

study, _ = toy.told_sweep(runs_api.store())
print("SWEEP", study.study_name, flush=True)
from widgets.cli import serve
sys.exit(serve(["--port", sys.argv[1], "--only", "sweeptoy"]))
"""


@pytest.fixture()
def sweep_app(tmp_path):
    pytest.importorskip("panel", reason="Panel is not installed (the 'notebook' extra)")
    pytest.importorskip("optuna", reason="optuna is not installed (the 'sweep' extra)")
    port = free_port()
    env = {**os.environ, "WORKBENCH_HOME": str(tmp_path / "home")}
    env.pop("WORKBENCH_STORE", None)
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(HERE.parent / "sweep")], stdout=log,
                            stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{base}/sweeps", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError((tmp_path / "serve.log").read_text())
                time.sleep(0.1)
        sweep_id = next(line.split()[1] for line in (tmp_path / "serve.log").read_text().splitlines()
                        if line.startswith("SWEEP "))
        yield base, sweep_id, tmp_path
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_sweeps_list_and_one_sweep_offline(page, sweep_app):
    from widgets.sweep import TITLES

    base, sweep_id, tmp = sweep_app
    page.goto(base + "/")
    page.locator("a[href='./sweeps']").first.wait_for(timeout=30_000)  # the index links the sweeps
    page.goto(base + "/sweeps")
    link = page.locator(f"a[href='./sweeps?id={sweep_id}']")
    link.wait_for(timeout=30_000)
    row = page.locator("tr", has=link)
    assert "sweeptoy" in row.inner_text() and "val/loss" in row.inner_text()
    link.click()
    page.wait_for_selector(f"text=Sweep {sweep_id}", timeout=30_000)
    plots = page.locator(".js-plotly-plot")  # Panel renders in shadow roots: locators pierce them
    plots.nth(len(TITLES) - 1).wait_for(timeout=30_000)
    titles: list = []
    for _ in range(100):  # each figure's title once plotly has drawn it
        titles = plots.evaluate_all("els => els.map(el => el.layout && el.layout.title && el.layout.title.text)")
        if sum(bool(t) for t in titles) >= len(TITLES):
            break
        page.wait_for_timeout(100)
    for title in TITLES.values():
        assert any(t and t.startswith(title) and sweep_id in t for t in titles), (title, titles)
    page.wait_for_selector(".tabulator-row", timeout=30_000)
    assert page.locator(".tabulator-row").count() == 4  # one row per trial
    page.screenshot(path=str(tmp / "app-sweep.png"), full_page=True)
    print(f"screenshot: {tmp / 'app-sweep.png'}")
    run_link = page.locator(".tabulator-row").nth(3).locator("a")  # the pruned trial's run id: a link to its page
    run_id = run_link.inner_text().strip()
    href = run_link.get_attribute("href")
    assert href == f"./sweeps?id={sweep_id}&run={run_id}" and run_link.get_attribute("target") == "_self"
    # a plain same-tab link: follow it (a click on it inside the table missed its navigation twice under the whole
    # suite's load, never alone or under CPU load; the link itself is what the user clicks)
    page.goto(f"{base}/{href[2:]}")
    try:  # a new page the server builds (curves and the method's views): slow on a loaded machine
        page.wait_for_selector(f"text=trial 3 of sweep {sweep_id}", timeout=120_000)
    except Exception:
        page.screenshot(path=str(tmp / "app-sweep-run-timeout.png"), full_page=True)
        print((tmp / "serve.log").read_text()[-4000:])
        raise
    assert f"run={run_id}" in page.url and run_id in page.locator(".wb-sweep-run-title").inner_text()
    assert "pruned" in page.locator(".wb-sweep-run-title").inner_text()
    page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)  # its curves
    page.locator(f"a[href='./sweeps?id={sweep_id}']").first.wait_for(timeout=30_000)  # back to the sweep
    page.screenshot(path=str(tmp / "app-sweep-run.png"), full_page=True)
    assert page.external_requests == [], page.external_requests
    assert page.console_errors == [], page.console_errors


def test_sweep_report_offline(page, tmp_path):
    """``reports/sweep-<id>.html`` (what ``workbench sweep`` writes) opened from disk: every figure drawn and
    titled, the trials table, nothing fetched, a clean console."""
    pytest.importorskip("optuna", reason="optuna is not installed (the 'sweep' extra)")
    sys.path.insert(0, str(HERE.parent / "sweep"))
    import toy  # noqa: E402 (registers "sweeptoy")

    from widgets.sweep import TITLES, sweep_report
    from workbench.store.store import Store

    store = Store(tmp_path / "store")
    study, run_ids = toy.told_sweep(store)
    sweep_id = study.study_name
    path = sweep_report(sweep_id, store, tmp_path / f"sweep-{sweep_id}.html")
    page.goto(path.as_uri())
    plots = page.locator(".js-plotly-plot")
    plots.nth(len(TITLES) - 1).wait_for(timeout=30_000)
    assert plots.count() == len(TITLES)
    titles = plots.evaluate_all("els => els.map(el => el.layout && el.layout.title && el.layout.title.text)")
    for title in TITLES.values():
        assert any(t and t.startswith(title) and sweep_id in t for t in titles), (title, titles)
    assert page.locator(".main-svg .gtitle").count() >= len(TITLES)  # the titles drawn, not only in the layout
    # every parameter's axis of the slice plot labelled (lr spans under a decade: a log axis plotly leaves bare)
    ticks = plots.evaluate_all("""els => els.filter(el => (el.layout.title.text || '').startsWith(%s))
        .map(el => [...el.querySelectorAll('.cartesianlayer .subplot')].map(
            sp => [...sp.querySelectorAll('.xaxislayer-above text')].filter(t => t.textContent).length))"""
                               % json.dumps(TITLES["slice"]))
    assert len(ticks) == 1 and len(ticks[0]) == 2 and min(ticks[0]) >= 2, ticks
    rows = page.locator("table.wb-sweep-trials tbody tr")
    assert rows.count() == 4 and all(r in page.inner_text("table.wb-sweep-trials") for r in run_ids)
    page.screenshot(path=str(tmp_path / "sweep-report.png"), full_page=True)
    print(f"screenshot: {tmp_path / 'sweep-report.png'}")
    assert page.external_requests == [], page.external_requests
    assert page.console_errors == [], page.console_errors
