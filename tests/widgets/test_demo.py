"""``workbench demo`` runs experiments concurrently (one process each, the store shared), longest first, and
rewrites its report as each ends; a failure sinks nothing else; Ctrl-C stops the children and keeps what ended."""
from __future__ import annotations

import operator
import re

import pytest

#: Test doubles built from the tiny experiment's config and run (importable by the demo's spawned processes).
QUICK = {"steps": 10, "delay": 0.5}  # ~5 s: long enough to overlap the slow one for sure
SLOW = {"steps": 24, "delay": 0.5}  # ~12 s: still running when the quick one has ended


def _doubles():
    import wb_tiny

    from workbench.core.registry import Experiment

    cfg = wb_tiny.TinyConfig
    return [Experiment(name="wbtiny_quick", title="Quick tiny", config=cfg, run=wb_tiny.run, smoke=QUICK),
            Experiment(name="wbtiny_slow", title="Slow tiny", config=cfg, run=wb_tiny.run, smoke=SLOW),
            Experiment(name="wbtiny_late", title="Late tiny", config=cfg, run=wb_tiny.run, smoke={"steps": 3}),
            # a method that raises inside its run (TinyConfig / RunContext is a TypeError)
            Experiment(name="wbtiny_broken", title="Broken tiny", config=cfg, run=operator.truediv),
            # a setting its own config refuses: fails before any process starts
            Experiment(name="wbtiny_badcfg", title="Bad config", config=cfg, run=wb_tiny.run,
                       smoke={"shape": "inv", "lr": 0.9})]


@pytest.fixture(scope="module")
def doubles():
    from workbench.core import registry

    added = [registry.register(e) for e in _doubles()]
    yield {e.name: e for e in added}
    for e in added:
        registry._REGISTRY.pop(e.name, None)


@pytest.fixture(scope="module")
def shared(doubles, tmp_path_factory):
    """One smoke demo of four experiments, two at a time, with every page it wrote and what it printed."""
    import contextlib
    import io

    from widgets.demo import run_demo

    tmp = tmp_path_factory.mktemp("demo")
    pages: list[tuple[str, list[dict]]] = []
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setenv("WORKBENCH_HOME", str(tmp / "home"))
        path, rows = run_demo(["wbtiny_quick", "wbtiny_slow", "wbtiny_broken", "wbtiny_badcfg"], smoke=True,
                              out=tmp / "demo.html", jobs=2,
                              expected={"wbtiny_quick": 1.0, "wbtiny_slow": 50.0, "wbtiny_broken": 10.0},
                              on_write=lambda p, r: pages.append((p.read_text(), r)))
    return {"home": tmp / "home", "path": path, "rows": {r["method"]: r for r in rows}, "pages": pages,
            "out": out.getvalue()}


def _store_runs(home):
    from workbench.store import runs

    return {r["method"]: r for r in runs.store(home).runs()}


def _section(page: str, name: str) -> str:
    return re.search(rf"<section id='{name}'>.*?</section>", page, re.S).group(0)


def test_two_experiments_run_at_once_and_a_third_waits_for_a_slot(shared):
    stored = _store_runs(shared["home"])
    quick, slow, broken = stored["wbtiny_quick"], stored["wbtiny_slow"], stored["wbtiny_broken"]
    assert quick["created_at"] < slow["ended_at"] and slow["created_at"] < quick["ended_at"]  # overlapping runs
    assert broken["created_at"] > quick["ended_at"]  # jobs=2: it started when the quick one's slot freed
    assert (quick["status"], slow["status"], broken["status"]) == ("completed", "completed", "failed")
    assert len({r["pid"] for r in (quick, slow, broken)}) == 3  # each in its own process
    out = shared["out"]
    assert str(shared["path"]) in out.splitlines()[0] and "4 experiments, 2 at a time" in out.splitlines()[1]
    started = [ln.split()[2] for ln in out.splitlines() if " running " in ln]
    assert started == ["wbtiny_quick", "wbtiny_slow", "wbtiny_broken"]  # quickest, then longest first
    assert re.search(r"completed wbtiny_quick in \d+ s \(run \S+\)\n.*running +wbtiny_broken\n.*report +2/4 sections "
                     r"written\n", out)


def test_a_failing_experiment_shows_its_reason_and_the_others_complete(shared):
    rows, final = shared["rows"], shared["pages"][-1][0]
    assert rows["wbtiny_quick"]["status"] == rows["wbtiny_slow"]["status"] == "completed"
    assert rows["wbtiny_broken"]["status"] == "failed" and rows["wbtiny_badcfg"]["status"] == "failed"
    broken = _section(final, "wbtiny_broken")
    assert "status <b>failed</b>" in broken and "TypeError: unsupported operand" in broken
    assert "Claims checked" in broken  # it has a run: its (empty) record is shown
    bad = _section(final, "wbtiny_badcfg")
    assert "ConfigError" in bad and "shape &#x27;inv&#x27; needs lr &lt;= 0.5" in bad
    assert re.search(r"failed +wbtiny_broken: TypeError: unsupported operand", shared["out"])
    assert re.search(r"failed +wbtiny_badcfg: ConfigError", shared["out"])
    for name in ("wbtiny_quick", "wbtiny_slow"):
        assert "status <b>completed</b>" in _section(final, name) and "Claims checked" in _section(final, name)


def test_the_page_is_written_at_once_then_as_each_ends(shared):
    from widgets.report import remote_resources

    pages = shared["pages"]
    first, rows = pages[0]
    assert "http-equiv='refresh' content='10'" in first
    assert "status <b>running…</b>" in _section(first, "wbtiny_slow") and "status <b>queued</b>" in _section(
        first, "wbtiny_broken")
    assert "plotly.js v" not in first  # nothing ended yet: no figure, no plotly.js
    # the page written when the quick one ended: its section is complete, the slow one still says running
    mid = next(p for p, r in pages if next(x for x in r if x["method"] == "wbtiny_quick")["status"] == "completed")
    assert "http-equiv='refresh'" in mid and "status <b>running…</b>" in _section(mid, "wbtiny_slow")
    assert 'class="plotly-graph-div"' in _section(mid, "wbtiny_quick") and mid.count("plotly.js v") == 1
    final = pages[-1][0]
    assert "http-equiv" not in final and "status <b>running" not in final and "status <b>queued" not in final
    assert final.count("plotly.js v") == 1 and remote_resources(final) == []
    assert shared["path"].read_text() == final


def test_order_is_quickest_then_unknown_then_longest_first(shared):
    from widgets.demo import DEMO_SECONDS, QUICK_FIRST_S, expected_seconds, plan

    assert plan(["a", "b", "c", "d"], {"a": 5, "b": 300, "c": 100, "d": None}) == ["a", "d", "b", "c"]
    assert plan(["b", "c"], {"b": 300, "c": QUICK_FIRST_S + 1}) == ["b", "c"]  # nothing quick: longest first
    builtin = plan(DEMO_SECONDS, DEMO_SECONDS)
    assert builtin[0] == "classify" and builtin[1] == "goldilocks"
    # the previous demo's durations come from the store (same setting, completed runs only)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_HOME", str(shared["home"]))
        seen = expected_seconds(["wbtiny_quick", "wbtiny_slow", "wbtiny_broken"], smoke=True)
        assert expected_seconds(["wbtiny_quick"], smoke=False) == {"wbtiny_quick": None}  # no demo-scale run stored
    stored = _store_runs(shared["home"])
    for name in ("wbtiny_quick", "wbtiny_slow"):
        assert seen[name] == pytest.approx(stored[name]["ended_at"] - stored[name]["created_at"])
    assert seen["wbtiny_broken"] is None and seen["wbtiny_slow"] > seen["wbtiny_quick"] + 5
    assert plan(seen, seen) == ["wbtiny_quick", "wbtiny_broken", "wbtiny_slow"]


def test_jobs_must_be_a_positive_integer(capsys):
    from widgets.cli import demo

    for bad in ("0", "-1", "two"):
        with pytest.raises(SystemExit) as exit_:  # the CLI's way: one line, exit status 2
            demo(["--only", "wbtiny", "--jobs", bad])
        assert exit_.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--jobs" in err and ">= 1" in err, err


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_ctrl_c_stops_the_children_and_writes_what_ended(doubles, tmp_path, capsys, how):
    import os
    import signal

    from widgets.demo import run_demo

    pages = []

    def interrupt_once_the_quick_one_ends(path, rows):
        pages.append(path.read_text())
        if len(pages) == 2:  # the page written as the quick one ended: Ctrl-C (or a SIGTERM, handled alike) now
            if how == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
            raise KeyboardInterrupt

    # the demo started as `workbench demo &` from a script: SIGINT ignored, and the children would inherit that
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_demo(["wbtiny_quick", "wbtiny_slow", "wbtiny_broken", "wbtiny_late"], smoke=True,
                     out=tmp_path / "d.html", jobs=2, on_write=interrupt_once_the_quick_one_ends,
                     expected={"wbtiny_quick": 1.0, "wbtiny_slow": 50.0, "wbtiny_broken": 10.0, "wbtiny_late": 5.0})
    finally:
        signal.signal(signal.SIGINT, before)
    final = (tmp_path / "d.html").read_text()
    assert final == pages[-1] and "http-equiv" not in final and "status <b>running" not in final
    assert "status <b>completed</b>" in _section(final, "wbtiny_quick")
    assert "status <b>stopped</b>" in _section(final, "wbtiny_slow")
    assert "status <b>stopped</b>" in _section(final, "wbtiny_broken")  # interrupted as it started
    late = _section(final, "wbtiny_late")
    assert "status <b>not run</b>" in late and "interrupted before it started" in late
    stored = _store_runs(tmp_path / "home")
    assert stored["wbtiny_slow"]["status"] == "stopped"  # the child recorded its own run as stopped
    assert "running" not in {r["status"] for r in stored.values()}
    assert "interrupted: stopping the running experiments" in capsys.readouterr().out


def test_a_section_that_cannot_be_drawn_says_why_and_the_page_stands():
    from widgets.demo import build_report

    page = build_report([{"method": "wbtiny", "title": "T", "status": "completed", "run_id": "nosuch", "seconds": 1.0},
                         {"method": "wbtiny_late", "title": "L", "status": "queued", "expected": 120.0}], live=True)
    assert "its section could not be drawn: KeyError" in _section(page, "wbtiny")
    assert "status <b>queued</b> (expected about 2 min)" in _section(page, "wbtiny_late")
    assert "http-equiv='refresh' content='10'" in page and "plotly.js v" not in page
