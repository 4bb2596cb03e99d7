"""``workbench serve`` in a real browser, offline: the workbench's own index, the runs browser comparing stored
runs, an experiment page where moving a slider and pressing Run updates the plot; float sliders read at their
precision; no request leaves 127.0.0.1 and the console stays clean on every page."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from widgets.app import free_port

HERE = Path(__file__).resolve().parent


@pytest.fixture()
def app(tmp_path):
    pytest.importorskip("panel", reason="Panel is not installed (the 'notebook' extra)")
    port = free_port()
    home = tmp_path / "home"
    env = {**os.environ, "WORKBENCH_HOME": str(home)}
    sys.path.insert(0, str(HERE.parent / "widgets"))
    import wb_tiny  # noqa: F401  (registers "wbtiny" here too: two stored runs for the runs browser)
    import workbench
    from workbench.store.store import Store

    store = Store(home)
    ids = [workbench.run("wbtiny", {"steps": n}, progress=False, store=store).run_id for n in (5, 8)]
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, str(HERE / "serve_tiny.py"), str(port)], stdout=log,
                            stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{base}/wbtiny", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError((tmp_path / "serve.log").read_text())
                time.sleep(0.1)
        yield base, ids, tmp_path
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
    text = (tmp_path / "serve.log").read_text()
    assert f"http://127.0.0.1:{port}/" in text  # the URL is printed


def _trace_max(page) -> float:
    return page.locator(".wb-curves .js-plotly-plot").evaluate(
        "el => Math.max(...el._fullData.filter(t => (t.meta || '').endsWith('train/loss')).flatMap(t => Array.from(t.y)))")


def _slide(page, handle, key: str, presses: int, expect: str) -> None:
    """Move a slider with the keyboard, as a person would, until its readout shows ``expect``."""
    readout = page.locator(".bk-slider-title", has_text=f"scale: {expect}")
    handle.click()  # focus the handle (a click on the handle itself does not move it)
    for _ in range(presses):
        handle.press(key)
        page.wait_for_timeout(50)
    readout.wait_for(timeout=10_000)
    page.wait_for_timeout(300)  # the value reaches the server


def test_index_and_runs_browser_offline(page, app):
    base, ids, tmp = app
    page.goto(base + "/")
    page.wait_for_selector("text=Workbench")
    assert page.locator("a", has_text="Tiny test experiment").count() == 1  # the workbench's own index
    for rid in ids:
        assert page.locator("code", has_text=rid).count() == 1  # recent runs
    page.screenshot(path=str(tmp / "app-index.png"), full_page=True)
    page.goto(base + "/runs")
    picker = page.locator(".wb-run-picker select")
    picker.wait_for(timeout=30_000)
    values = picker.evaluate("(el, ids) => [...el.options].filter(o => ids.some(i => o.text.includes(i)))"
                             ".map(o => o.value)", ids)
    assert len(values) == 2
    picker.select_option(values)
    page.wait_for_timeout(500)
    page.locator(".wb-compare button").click()
    plot = page.locator(".wb-compare-plot .js-plotly-plot")
    plot.wait_for(timeout=30_000)
    page.wait_for_function("el => el._fullData && el._fullData.length >= 4", arg=plot.element_handle(),
                           timeout=30_000)
    names = plot.evaluate("el => [...new Set(el._fullData.map(t => t.name))]")
    assert len(names) == 2 and all(any(rid[9:] in n for n in names) for rid in ids)  # one curve per run
    page.screenshot(path=str(tmp / "app-runs.png"), full_page=True)
    print(f"screenshots: {tmp / 'app-index.png'} {tmp / 'app-runs.png'}")
    assert page.external_requests == [], page.external_requests
    assert page.console_errors == [], page.console_errors


def test_slider_and_run_update_the_plot(page, app):
    base, _ids, tmp = app
    page.goto(base + "/wbtiny")
    page.wait_for_selector(".wb-curves .js-plotly-plot", timeout=30_000)
    assert page.locator(".wb-curves .js-plotly-plot .scatterlayer .trace").count() == 0
    assert page.locator(".bk-slider-title", has_text="decay: 0.0005").count() == 1  # 5e-4, not "0"
    # move the 'scale' slider from 1.0 down to 0.5 with the keyboard, as a person would
    titles = page.locator(".bk-slider-title")
    index = [titles.nth(i).inner_text().startswith("scale:") for i in range(titles.count())].index(True)
    scale = page.locator(".noUi-handle").nth(index)  # sliders and their handles come in the same order
    _slide(page, scale, "ArrowLeft", 5, "0.5")
    page.locator(".wb-run button").click()
    page.locator(".wb-status").get_by_text("completed").wait_for(timeout=30_000)
    page.wait_for_timeout(600)
    assert page.locator(".wb-curves .js-plotly-plot .scatterlayer .trace").count() >= 2
    top = _trace_max(page)
    assert top == pytest.approx(0.5 * 0.9048374180359595, rel=1e-6)  # scale * exp(-lr * 1)
    page.locator("table.wb-claims").wait_for(timeout=30_000)  # the run's claims, below its views
    page.screenshot(path=str(tmp / "app-page.png"), full_page=True)
    print(f"screenshot: {tmp / 'app-page.png'}")
    # again with the slider back up: the plot follows
    _slide(page, scale, "ArrowRight", 10, "1.5")
    page.locator(".wb-run button").click()
    deadline = time.time() + 30
    while time.time() < deadline and abs(_trace_max(page) - 1.5 * 0.9048374180359595) > 1e-6:
        time.sleep(0.2)
    assert _trace_max(page) == pytest.approx(1.5 * 0.9048374180359595, rel=1e-6)
    assert page.external_requests == [], page.external_requests
    assert page.console_errors == [], page.console_errors


@pytest.fixture()
def real_app(tmp_path):
    """The app over two real experiments (pages built, nothing trained): goldilocks (a row of method checkboxes)
    and nfm (a description written in reST)."""
    pytest.importorskip("panel", reason="Panel is not installed (the 'notebook' extra)")
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "serve", "--port", str(port), "--only", "goldilocks",
                             "nfm"], stdout=log, stderr=subprocess.STDOUT, cwd=HERE.parents[1],
                            env={**os.environ, "WORKBENCH_HOME": str(tmp_path / "home")})
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{base}/", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError((tmp_path / "serve.log").read_text())
                time.sleep(0.1)
        yield base, tmp_path
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_descriptions_are_markdown_and_nothing_is_clipped(page, real_app):
    """Descriptions read as text (reST markup rendered, never cut mid-word); every method checkbox of the Goldilocks
    page lies inside the sidebar."""
    base, tmp = real_app
    page.set_default_timeout(120_000)  # a page is built on its first request (a loaded machine: tens of seconds)
    page.goto(base + "/")
    page.wait_for_selector(".wb-description")
    texts = page.locator(".wb-description").all_inner_texts()
    assert len(texts) == 2 and all(t.strip().endswith(".") for t in texts), texts  # whole sentences
    assert not any("``" in t or ":func:" in t for t in texts), texts
    assert page.locator(".wb-description code", has_text="nfm").count() == 1  # ``nfm`` is code
    page.goto(base + "/goldilocks")
    boxes = page.locator(".wb-checkboxes input[type=checkbox]")
    boxes.first.wait_for()
    from workbench.core.registry import get

    assert boxes.count() == len(get("goldilocks").config.params()["methods"].choices)
    column = page.locator(".wb-checkboxes").first.evaluate("el => el.getBoundingClientRect().right")
    sidebar = page.locator(".wb-about").first.evaluate(
        "el => { let p = el; while (p && p.getBoundingClientRect().width < 300) p = p.parentElement; "
        "return p.getBoundingClientRect().right; }")
    lefts_rights = page.locator(".wb-checkboxes label").evaluate_all(
        "els => els.map(e => e.getBoundingClientRect().right)")
    assert max(lefts_rights) <= min(column, sidebar) + 1, (lefts_rights, column, sidebar)
    about = page.locator(".wb-about").first.inner_text()
    assert "``" not in about and "Mindermann" in about  # the experiment's description, whole
    page.screenshot(path=str(tmp / "app-goldilocks.png"), full_page=True)
    print(f"screenshot: {tmp / 'app-goldilocks.png'}")
    assert page.console_errors == [], page.console_errors and page.external_requests == []
