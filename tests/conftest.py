"""Every test runs offline, against a fresh run store in a temporary workbench home."""
import os
import tempfile

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["WORKBENCH_HOME"] = tempfile.mkdtemp(prefix="workbench-test-home-")
for _name in ("WORKBENCH_STORE", "WORKBENCH_MLFLOW", "WORKBENCH_ARTIFACTS"):  # a user's team store stays out of tests
    os.environ.pop(_name, None)
# one torch thread per pytest-xdist worker (the workers already use every core), two in a plain run
os.environ.setdefault("OMP_NUM_THREADS", "1" if os.environ.get("PYTEST_XDIST_WORKER") else "2")


def _skip_rfc3987_syntax() -> None:
    """``import jsonschema`` compiles the 38 Lark grammars of ``rfc3987_syntax`` when that optional package is
    installed (Jupyter's ``jsonschema[format-nongpl]`` brings it): about 3 CPU-seconds in every process that imports
    nbformat, nbclient, Jupyter's server or plotly's FigureWidget, and the suite starts dozens (kernels, Lab servers,
    workers). Nothing here validates the IRI formats it serves, so the test processes and their children see a
    module that fails to import, and jsonschema leaves those two format checks out (as the sweep's Ray processes do,
    workbench/core/sweep/execute.py)."""
    import sys
    from pathlib import Path

    stub = Path(tempfile.gettempdir()) / "workbench-test-stubs"
    stub.mkdir(exist_ok=True)
    target, text = stub / "rfc3987_syntax.py", 'raise ImportError("left out of the test processes (slow to import)")\n'
    if not target.exists() or target.read_text() != text:
        tmp = stub / f".rfc3987_syntax.{os.getpid()}"
        tmp.write_text(text)
        os.replace(tmp, target)
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if str(stub) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(stub), *filter(None, paths)])
    sys.modules.setdefault("rfc3987_syntax", None)  # this process: `import rfc3987_syntax` raises ImportError


_skip_rfc3987_syntax()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say which checks were skipped and what to install to run them (a new user's `make test` passes without
    Chromium; CI installs it and runs them)."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    reasons: dict[str, int] = {}
    for report in skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    terminalreporter.section("checks skipped")
    for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{n:3d} skipped: {reason}")
    if any("Chromium" in r or "playwright" in r for r in reasons):
        terminalreporter.write_line("to run the browser checks: apt-get install chromium  (Debian's Chromium at "
                                    "/usr/bin/chromium, or set WORKBENCH_CHROMIUM) and pip install playwright; "
                                    "no browser download is needed")


# -- pytest-xdist: `make test` runs the suite on every core (-n auto --dist loadgroup) --------------------------------
#: Fixtures wider than a function that each xdist worker may build its own of: cheap next to the tests that use them,
#: and safe to run twice at once (their own temporary directory, a free port or a Unix socket, nothing at a fixed path).
#: Not ``lab``: a JupyterLab server and its kernels cost more than its four tests gain from two workers, so they
#: share one server on one worker.
PER_WORKER = frozenset({"browser", "pg", "wide_page", "reloader"})


def _sharing_keys(item) -> list[str]:
    """What ``item`` shares with other tests: its ``xdist_group`` marks, and each fixture wider than a function that
    a test module or conftest under tests/ defines (plugins' fixtures are per-process and cheap), named by the
    instance the test gets, or by the group the fixture names (``tests.common.shared``)."""
    keys = [f"group:{m.args[0] if m.args else m.kwargs.get('name', 'default')}"
            for m in item.iter_markers("xdist_group")]
    infos = getattr(item, "_fixtureinfo", None)
    for name in getattr(item, "fixturenames", ()):
        defs = infos.name2fixturedefs.get(name) if infos else None
        if not defs or name in PER_WORKER:
            continue
        fixture = defs[-1]
        group = getattr(fixture.func, "xdist_group", None)
        if group:
            keys.append(f"group:{group}")
        elif not fixture.baseid or fixture.scope == "function":
            continue
        elif fixture.scope in ("session", "package"):
            keys.append(f"{fixture.baseid}::{name}")
        elif fixture.scope == "module":
            keys.append(item.nodeid.split("::")[0])
        else:  # class
            keys.append("::".join(item.nodeid.split("::")[:2]))
    return keys


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook writes the groups into the test ids
def pytest_collection_modifyitems(config, items):
    """Under ``--dist loadgroup``: the tests that share a fixture wider than a function (a smoke run trained once,
    a module's fixture) form one group and run on one worker, so it is built once; a group named by a test's
    ``xdist_group`` mark or by a fixture joins everything linked to it. Every other test goes to whichever worker
    is free. The groups are the same on every worker (they depend on the collection only)."""
    if not getattr(config.option, "loadgroup", False):
        return
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        parent.setdefault(key, key)
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    keyed = {item.nodeid: _sharing_keys(item) for item in items}
    for keys in keyed.values():
        for key in keys:
            a, b = find(keys[0]), find(key)
            if a != b:
                parent[max(a, b)] = min(a, b)
    named: dict[str, str] = {}  # component -> its first named group (else its root key)
    for keys in keyed.values():
        for key in keys:
            if key.startswith("group:"):
                named.setdefault(find(key), key.removeprefix("group:"))
    groups = {item.nodeid: named.get(find(keyed[item.nodeid][0]), find(keyed[item.nodeid][0])).replace("@", "_")
              for item in items if keyed[item.nodeid]}
    for item in items:  # one group per test: xdist would join the names of several marks into a new group
        for node in item.listchain():
            node.own_markers[:] = [m for m in node.own_markers if m.name != "xdist_group"]
    for item in items:
        if item.nodeid in groups:
            item.add_marker(pytest.mark.xdist_group(groups[item.nodeid]))


class _GroupIds:
    """pytest-xdist 3.8 writes a test's group into ``item._nodeid``, which pytest 9 no longer reads (a node keeps its
    id in ``item._id``): without this, ``--dist loadgroup`` would group nothing. Runs after xdist's own hook and
    only where that did not take."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config, items):
        if not getattr(config.option, "loadgroup", False):
            return
        from _pytest.nodeid import NodeId

        for item in items:
            names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                            for m in item.iter_markers("xdist_group")})
            if names and "@" not in item.nodeid and hasattr(item, "_id"):
                item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(names)}")


def pytest_configure(config):
    config.pluginmanager.register(_GroupIds(), "workbench-xdist-group-ids")


@pytest.fixture(scope="session")
def ddp(tmp_path_factory):
    """The suite's one ``torchrun --nproc-per-node 2`` launch of every experiment and unit check (``tests.ddp``);
    the tests that read it form one xdist group, so it runs once."""
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch built without the gloo backend")
    from tests.ddp import launch

    return launch(tmp_path_factory.mktemp("ddp"))
