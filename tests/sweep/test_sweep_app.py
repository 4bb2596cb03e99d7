"""The app's ``/sweeps`` page and the ``%wb_sweep`` magic, for a sweep told by hand in a temp store (no Ray)."""
import re

import pytest

pytest.importorskip("optuna")
pytest.importorskip("plotly")
pytest.importorskip("panel")


from workbench.core.sweep import study as studies  # noqa: E402
from workbench.core.sweep.space import parse_space  # noqa: E402
from workbench.store.store import Store  # noqa: E402

from . import toy  # noqa: E402



def _resources(page: str) -> list[str]:
    """The URLs a page loads: every ``<script src>``, ``<link href>``, ``<img src>`` (not strings inside scripts)."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag in ("script", "img", "iframe") and a.get("src"):
                found.append(a["src"])
            if tag == "link" and a.get("href"):
                found.append(a["href"])

    Parser().feed(page)
    return found


def _external(urls: list[str]) -> list[str]:
    return [u for u in urls if re.match(r"(?:https?:)?//", u) and not re.match(r"(?:https?:)?//(127\.0\.0\.1|localhost)", u)]


@pytest.fixture()
def swept(tmp_path):
    """A store holding one sweep of four trials: three completed, one pruned."""
    store = Store(tmp_path)
    study, run_ids = toy.told_sweep(store)
    return store, study.study_name, run_ids, study.best_value


def _html(obj, path) -> str:
    from bokeh.resources import INLINE

    obj.save(str(path), resources=INLINE, embed=False)
    return path.read_text()


def test_sweeps_list(swept):
    from widgets.app import sweeps_html, sweeps_page

    store, sweep_id, _ids, best = swept
    text = sweeps_html(store)
    assert f"href='./sweeps?id={sweep_id}'" in text
    row = re.search(r"<tbody>(.*)</tbody>", text).group(1)
    cells = re.findall(r"<td>(.*?)</td>", row)
    assert cells[1:3] == ["sweeptoy", "4"]
    assert cells[3].startswith(f"val/loss = {best:.4g}")
    page = sweeps_page(store=store)
    assert "<h2>Sweeps</h2>" in page.object and sweep_id in page.object


def test_empty_store_says_so(tmp_path):
    from widgets.app import sweeps_html

    assert "no sweeps yet" in sweeps_html(Store(tmp_path))


def test_one_sweep_page(swept, tmp_path):
    from widgets.app import sweeps_page
    from widgets.sweep import TITLES

    store, sweep_id, run_ids, _best = swept
    page = sweeps_page(sweep_id, store)
    text = _html(page, tmp_path / "sweep.html")
    assert f"Sweep {sweep_id}" in text
    for title in TITLES.values():  # every figure, titled
        assert f"{title} (val/loss, sweep {sweep_id})" in text
    for run_id in run_ids:  # the trials table lists every trial's run
        assert run_id in text
    assert "pruned" in text


def test_served_sweep_pages_load_nothing_from_outside(swept, monkeypatch):
    """``workbench serve``'s /sweeps and /sweeps?id=...: every script and stylesheet from the server itself."""
    import time
    import urllib.request

    import panel as pn

    from widgets.app import free_port, serve

    store, sweep_id, _ids, _best = swept
    monkeypatch.setenv("WORKBENCH_STORE", str(store.home))
    monkeypatch.setenv("BOKEH_RESOURCES", "server")  # serve() sets it; restored afterwards
    monkeypatch.setattr(pn.config, "inline", pn.config.inline)
    port = free_port()
    server = serve(port=port, only=["sweeptoy"], threaded=True)
    try:
        pages = {}
        for path in ("/sweeps", f"/sweeps?id={sweep_id}", "/"):
            for _ in range(200):
                try:
                    pages[path] = urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30).read().decode()
                    break
                except OSError:
                    time.sleep(0.1)
        assert set(pages) == {"/sweeps", f"/sweeps?id={sweep_id}", "/"}
        for path, page in pages.items():
            urls = _resources(page)
            assert any(u.startswith("static/") or "/static/" in u for u in urls), (path, urls)  # served here
            assert _external(urls) == [], (path, _external(urls))
    finally:
        server.stop()


def test_unknown_sweep_is_one_line_and_the_list(swept):
    from widgets.app import sweeps_page

    store, sweep_id, _ids, _best = swept
    page = sweeps_page("nosuch", store)
    assert "no sweep &#x27;nosuch&#x27;" in page.object and f"./sweeps?id={sweep_id}" in page.object


def test_routes_and_index_link():
    from widgets.app import build_app, index_page

    routes = build_app()
    assert "sweeps" in routes
    assert "href='./sweeps'" in index_page([]).object


# --- %wb_sweep -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ip():
    from IPython.testing.globalipapp import get_ipython

    shell = get_ipython()
    shell.run_line_magic("load_ext", "widgets")
    return shell


def _args(ip, line):
    from IPython.core.magic_arguments import parse_argstring

    from widgets.magics import WorkbenchMagics

    return parse_argstring(WorkbenchMagics.wb_sweep, line)


def test_magic_arguments(ip):
    from widgets.magics import sweep_kwargs

    args = _args(ip, "sweeptoy --space lr=1e-3:1e-1:log width=8,16 --space arch=a,b --trials 6 --parallel 2 --smoke")
    kw = sweep_kwargs(args)
    assert kw["method"] == "sweeptoy" and kw["space"] == ["lr=1e-3:1e-1:log", "width=8,16", "arch=a,b"]
    assert kw["trials"] == 6 and kw["parallel"] == 2 and kw["smoke"] is True and kw["sampler"] is None
    assert kw["sweep_id"] is None and sweep_kwargs(_args(ip, "sweeptoy --space lr --name lr-1"))["sweep_id"] == "lr-1"


@pytest.mark.parametrize("line, message", [
    ("wb_sweep sweeptoy --space nope=1,2", "unknown parameter 'nope'"),
    ("wb_sweep sweeptoy --space lr=0.5:9", "lr"),
    ("wb_sweep sweeptoy", "give at least one --space"),
    ("wb_sweep nosuch --space lr", "unknown experiment 'nosuch'"),
    ("wb_sweep sweeptoy --space lr --parallel 0", "--parallel must be >= 1"),
    ("wb_sweep", "the following arguments are required"),
])
def test_magic_bad_arguments_are_one_line(ip, capsys, line, message):
    import workbench.core.sweep as sweep_pkg

    called = []
    real = sweep_pkg.sweep
    sweep_pkg.sweep = lambda *a, **k: called.append(1)  # nothing may start
    try:
        result = ip.run_cell(f"%{line}")
    finally:
        sweep_pkg.sweep = real
    assert not result.success and not called
    err = capsys.readouterr()
    text = err.err + err.out
    assert "UsageError" in text and message in text, text
    assert "Traceback" not in text


def test_start_sweep_runs_in_the_background_and_names_the_sweep(tmp_path):
    """The magic names the sweep itself (``sweep_id=``): another sweep created in the same store meanwhile (another
    kernel, the CLI) is not mistaken for it."""
    import threading

    from widgets.magics import BACKGROUND_SWEEPS, start_sweep

    store = Store(tmp_path)
    release = threading.Event()
    got = {}

    def fake_sweep(method, space, store, sweep_id, **_):  # another sweep first, then its own study, then "runs"
        sp = parse_space(toy.EXPERIMENT, space)
        spec = studies.SweepSpec(method, sp.specs(), ["val/loss"], ["min"])
        studies.create(store, spec, "someone-else")
        got["id"] = sweep_id
        studies.create(store, spec, sweep_id)
        release.wait(10)

    sweep_id = start_sweep({"method": "sweeptoy", "space": ["lr"]}, store, sweep=fake_sweep)
    assert sweep_id == got["id"] and sweep_id.startswith("sweep-") and BACKGROUND_SWEEPS[sweep_id].is_alive()
    assert sorted(studies.sweeps(store)) == sorted([sweep_id, "someone-else"])
    release.set()
    BACKGROUND_SWEEPS[sweep_id].join(10)


def test_start_sweep_takes_a_name_and_refuses_a_taken_or_bad_one(tmp_path):
    from IPython.core.error import UsageError

    from widgets.magics import BACKGROUND_SWEEPS, start_sweep

    store = Store(tmp_path)

    def fake_sweep(method, space, store, sweep_id, **_):
        sp = parse_space(toy.EXPERIMENT, space)
        studies.create(store, studies.SweepSpec(method, sp.specs(), ["val/loss"], ["min"]), sweep_id)

    assert start_sweep({"method": "sweeptoy", "space": ["lr"], "sweep_id": "lr-search"}, store,
                       sweep=fake_sweep) == "lr-search"
    BACKGROUND_SWEEPS["lr-search"].join(10)
    with pytest.raises(UsageError, match="'lr-search' names a sweep already in the store; continue it with resume"):
        start_sweep({"method": "sweeptoy", "space": ["lr"], "sweep_id": "lr-search"}, store, sweep=fake_sweep)
    with pytest.raises(UsageError, match="parameter 'sweep_id' = 'a b' is not allowed"):
        start_sweep({"method": "sweeptoy", "space": ["lr"], "sweep_id": "a b"}, store, sweep=fake_sweep)
    assert studies.sweeps(store) == ["lr-search"]


def test_start_sweep_error_before_the_study_is_one_line(tmp_path):
    from IPython.core.error import UsageError

    from widgets.magics import start_sweep

    def failing(**_):
        raise RuntimeError("ray would not start\nno cluster here")

    with pytest.raises(UsageError, match="the sweep did not start: no cluster here"):
        start_sweep({"method": "sweeptoy", "space": ["lr"]}, Store(tmp_path), sweep=failing)


def test_trials_table_links_each_run_to_its_page(swept, tmp_path):
    """In the app each trial's run id links to ``/sweeps?id=SWEEP&run=RUN``: that run's page (trial, status,
    curves, views) with a link back to the sweep."""
    from widgets.app import sweeps_page

    store, sweep_id, run_ids, _best = swept
    view = sweeps_page(sweep_id, store).objects[1]
    assert view.table.formatters["run_id"] == {"type": "link", "urlPrefix": f"./sweeps?id={sweep_id}&run=",
                                               "target": "_self"}
    page = sweeps_page(sweep_id, store, run_id=run_ids[3])
    text = _html(page, tmp_path / "run.html")
    assert f"trial 3 of sweep {sweep_id}" in text and run_ids[3] in text and "pruned" in text
    assert f"./sweeps?id={sweep_id}" in page.objects[0].object  # back to the sweep
    missing = sweeps_page(sweep_id, store, run_id="nosuch")
    assert "nosuch" in missing.objects[1].object
