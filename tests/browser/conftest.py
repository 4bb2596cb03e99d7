"""Browser tests: Python Playwright driving Debian's Chromium (never a downloaded browser).

Every page records the requests that leave 127.0.0.1 (``page.external_requests``) and the browser console's
errors (``page.console_errors``: console.error messages and uncaught exceptions); tests fail on either.
One JupyterLab server serves every Lab test of the session (``lab`` fixture), each in its own notebook.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # browser_helpers (import-mode=importlib adds no paths)

from browser_helpers import ROOT, TOKEN  # noqa: E402

CHROMIUM = os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
LOCAL_SCHEMES = ("file", "data", "blob", "about")


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.browser)


def chromium() -> str | None:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    return shutil.which("chromium")


@pytest.fixture(scope="session")
def browser():
    exe = chromium()
    if exe is None:
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium); browser tests skipped")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright Python package is not installed (pip install playwright)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=ARGS)
        yield b
        b.close()


def is_local(url: str) -> bool:
    """A request that stays on this machine: file/data/blob URLs, or http(s)/ws(s) to 127.0.0.1 (or localhost)."""
    parsed = urlparse(url)
    return parsed.scheme in LOCAL_SCHEMES or parsed.hostname in ("127.0.0.1", "localhost")


def new_page(browser, width: int = 1300, height: int = 900):
    """A page in a fresh browser context that records external requests and console errors."""
    context = browser.new_context(viewport={"width": width, "height": height})
    pg = context.new_page()
    pg.external_requests = []  # type: ignore[attr-defined]
    pg.console_errors = []  # type: ignore[attr-defined]

    def record(request):
        if not is_local(request.url):
            pg.external_requests.append(request.url)  # type: ignore[attr-defined]

    def console(msg):
        if msg.type == "error":
            pg.console_errors.append(msg.text)  # type: ignore[attr-defined]

    pg.on("request", record)
    pg.on("websocket", lambda ws: record(ws))
    pg.on("console", console)
    pg.on("pageerror", lambda err: pg.console_errors.append(f"uncaught: {err}"))  # type: ignore[attr-defined]
    return context, pg


@pytest.fixture()
def page(browser):
    context, pg = new_page(browser)
    yield pg
    context.close()


@pytest.fixture(scope="module")
def wide_page(browser):
    """One 1600x1000 page for a module's tests (a person's laptop screen); each test clears its records."""
    context, pg = new_page(browser, 1600, 1000)
    yield pg
    context.close()


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """One JupyterLab server on 127.0.0.1 for the session: ``(base URL, root dir, workbench home)``."""
    pytest.importorskip("jupyterlab", reason="JupyterLab is not installed (the 'notebook' extra)")
    if chromium() is None:
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium); browser tests skipped")
    from widgets.app import free_port

    tmp = tmp_path_factory.mktemp("lab")
    port = free_port()
    home = tmp / "home"
    env = {**os.environ, "WORKBENCH_HOME": str(home),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
           "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp / "config"),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "widgets"), os.environ.get("PYTHONPATH", "")])}
    env.pop("WORKBENCH_HEADLESS", None)
    news = tmp / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')  # no "news?" pop-up
    tracker = tmp / "settings" / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    # every cell in the page (no windowing): the tests read every output, not only those scrolled into view
    (tracker / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    log = open(tmp / "lab.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={tmp}",
         "--allow-root", "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.extension_manager=readonly"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError((tmp / "lab.log").read_text()[-3000:])
                time.sleep(0.1)
        yield base, tmp, home
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


