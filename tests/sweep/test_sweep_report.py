"""A notebook holding ``%wb_sweep`` exported by ``workbench report``: headless, the magic runs the sweep to its end
in the cell and leaves the sweep's figures and trials table as static outputs, so the report holds them offline
(plotly.js once, nothing fetched). The sweep itself is told by hand (no Ray; the Ray driver is tested in
test_sweep_ray.py, the live magic in JupyterLab in tests/browser/test_browser_sweep_magic.py)."""
from pathlib import Path

import pytest

pytest.importorskip("optuna")
pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[2]

SETUP = f"""import sys
sys.path.insert(0, {str(ROOT)!r})
from tests.sweep import toy  # registers "sweeptoy"
import workbench.core.sweep as sweeps
from workbench.core.sweep.driver import SweepResult

def told(method, space, store, sweep_id=None, **_):  # stands in for the Ray driver: a finished sweep
    study, _ = toy.told_sweep(store)
    return SweepResult(study.study_name, store)

sweeps.sweep = told"""


def test_workbench_report_of_a_notebook_with_a_sweep_holds_its_figures_offline(tmp_path, monkeypatch):
    import nbformat

    from widgets.cli import report
    from widgets.report import remote_resources
    from widgets.sweep import TITLES

    monkeypatch.setenv("WORKBENCH_STORE", str(tmp_path / "store"))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SETUP),
                                         nbformat.v4.new_code_cell("%load_ext widgets"),
                                         nbformat.v4.new_code_cell("%wb_sweep sweeptoy --space lr=0.01:0.5:log "
                                                                   "width=8,16 --trials 4")])
    nbformat.write(nb, tmp_path / "sweep.ipynb")
    out = tmp_path / "sweep.html"
    assert report([str(tmp_path / "sweep.ipynb"), "-o", str(out)]) == 0
    text = out.read_text()
    from workbench.core.sweep import study as studies
    from workbench.store.store import Store

    (sweep_id,) = studies.sweeps(Store(tmp_path / "store"))
    for title in TITLES.values():  # every figure of the sweep, titled
        assert f"{title} (val\\u002floss, sweep {sweep_id})" in text, title
    assert text.count("plotly.js v") == 1 and remote_resources(text) == []  # plotly.js once; nothing fetched
    assert f"<h3>Sweep {sweep_id}</h3>" in text and "3 completed, 1 pruned" in text
    assert text.count("<tr>") >= 5  # the trials table: a header and four trials
