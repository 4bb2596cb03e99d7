"""JupyterLab itself: the tour's dashboard renders (form, buttons, live plot) and its Stop button stops a
run that is training in the background (status ``stopped``, metrics kept)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from widgets.app import free_port

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "wb-test-token"


@pytest.fixture()
def lab(tmp_path):
    """JupyterLab on 127.0.0.1 over a copy of the tour whose parameters cell asks for a full-length run."""
    pytest.importorskip("jupyterlab", reason="JupyterLab is not installed (the 'notebook' extra)")
    nb = nbformat.read(ROOT / "notebooks" / "00_tour.ipynb", as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source = "smoke = False"
    nbformat.write(nb, tmp_path / "tour.ipynb")
    port = free_port()
    env = {**os.environ, "WORKBENCH_HOME": str(tmp_path / "home"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    env.pop("WORKBENCH_HEADLESS", None)
    log = open(tmp_path / "lab.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={tmp_path}",
         "--allow-root", "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.extension_manager=readonly"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError((tmp_path / "lab.log").read_text()[-3000:])
                time.sleep(0.1)
        yield base, tmp_path
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _run_cell_containing(page, text: str) -> None:
    """Select the code cell whose source contains ``text`` and run it (Shift+Enter)."""
    cell = page.locator(".jp-Notebook .jp-CodeCell").filter(has=page.locator(".jp-InputArea", has_text=text)).first
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    return cell


def test_tour_dashboard_renders_and_stop_works(page, lab):
    base, tmp = lab
    try:
        _tour(page, base, tmp)
    except Exception:
        shot = tmp / "failure.png"
        page.screenshot(path=str(shot), full_page=True)
        (tmp / "failure.html").write_text(page.content())
        print(f"screenshot: {shot}\nlab log: {tmp / 'lab.log'}")
        raise


def _tour(page, base, tmp):
    page.set_default_timeout(90_000)
    page.goto(f"{base}/lab/tree/tour.ipynb?token={TOKEN}&reset")
    page.wait_for_selector(".jp-Notebook .jp-CodeCell")
    select = page.locator(".jp-Dialog button", has_text="Select")
    try:  # a fresh JupyterLab may ask which kernel to start
        select.wait_for(timeout=15_000)
        select.click()
    except Exception:  # noqa: BLE001 - no dialog: the kernel started by itself
        pass
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
    _run_cell_containing(page, "smoke = False")
    _run_cell_containing(page, "%load_ext widgets")
    cell = _run_cell_containing(page, 'widgets.dashboard("classify"')
    dash = cell.locator(".wb-dashboard")
    dash.wait_for()
    # the form, the buttons and the live plot are drawn
    assert dash.locator(".widget-slider, .widget-dropdown").count() >= 5
    assert dash.locator("button", has_text="Start").count() == 1
    dash.locator(".js-plotly-plot").first.wait_for()
    # a person sets a long run in the form (so Stop comes long before the end, however fast the machine)
    steps = dash.locator(".widget-text", has=page.locator("label", has_text=re.compile(r"^steps$"))).locator("input")
    steps.fill("100000")
    steps.press("Enter")
    _run_cell_containing(page, "dash.start()")
    status = dash.locator(".widget-html", has_text="step/s").first
    status.wait_for()
    page.wait_for_function(
        "el => /step (\\d+)/.test(el.textContent) && +el.textContent.match(/step (\\d+)/)[1] >= 3",
        arg=status.element_handle(), timeout=120_000)
    stop = dash.locator("button", has_text="Stop")
    assert stop.is_enabled()
    stop.click()
    dash.locator(".widget-html", has_text="stopped").first.wait_for(timeout=60_000)
    text = dash.locator(".widget-html", has_text="stopped").first.inner_text()
    run_id = re.search(r"run (\S+)", text).group(1)
    assert dash.locator("button", has_text="Start").is_enabled()
    assert "/100000" in text  # the value typed into the form reached the run
    # the kernel's store agrees: stopped long before the end, metrics kept
    home = tmp / "home"
    out = subprocess.run([sys.executable, "-m", "workbench", "runs", "show", run_id], capture_output=True, text=True,
                         env={**os.environ, "WORKBENCH_HOME": str(home)}, check=True).stdout
    record = json.loads(out)
    assert record["status"] == "stopped"
    from workbench import runs
    from workbench.store import Store

    metrics = runs.metrics(run_id, store=Store(home))
    losses = metrics[metrics.name == "train/loss"]
    assert 3 <= len(losses) < 100_000 and record["config"]["steps"] == 100_000
    # at the end the live plots give way to static plotly figures (plain outputs inside the dashboard)
    static = dash.locator(".wb-static .js-plotly-plot")
    static.first.wait_for(timeout=60_000)
    n = static.first.evaluate("el => el._fullData.filter(t => (t.meta || '').endsWith('train/loss'))[0].x.length")
    assert n == len(losses)
    assert page.external_requests == []
    dash.screenshot(path=str(tmp / "dashboard.png"))  # for a person looking into a failure or a change
