"""``workbench serve`` in a real browser: moving a slider and pressing Run updates the plot."""
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
def app_url(tmp_path):
    pytest.importorskip("panel", reason="Panel is not installed (the 'notebook' extra)")
    port = free_port()
    env = {**os.environ, "WORKBENCH_HOME": str(tmp_path / "home")}
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, str(HERE / "serve_tiny.py"), str(port)], stdout=log,
                            stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/wbtiny"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError((tmp_path / "serve.log").read_text())
                time.sleep(0.1)
        yield url
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


def test_slider_and_run_update_the_plot(page, app_url):
    page.goto(app_url)
    page.wait_for_selector(".wb-curves .js-plotly-plot", timeout=30_000)
    assert page.locator(".wb-curves .js-plotly-plot .scatterlayer .trace").count() == 0
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
    # again with the slider back up: the plot follows
    _slide(page, scale, "ArrowRight", 10, "1.5")
    page.locator(".wb-run button").click()
    deadline = time.time() + 30
    while time.time() < deadline and abs(_trace_max(page) - 1.5 * 0.9048374180359595) > 1e-6:
        time.sleep(0.2)
    assert _trace_max(page) == pytest.approx(1.5 * 0.9048374180359595, rel=1e-6)
    assert page.external_requests == []
