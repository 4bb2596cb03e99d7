"""Every notebook in notebooks/ runs top to bottom in smoke mode (nbclient, parameters injected after the
cell tagged ``parameters`` as papermill does), and is committed without outputs, its ``parameters`` cell holding
the real setting ``smoke = False`` (what a user gets from Run All)."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_clean_with_the_real_setting(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code"
    assert "parameters" in code[0].metadata.get("tags", []), f"{path.name}: first code cell must be tagged 'parameters'"
    assert re.search(r"^smoke = False\b", code[0].source, re.M), \
        f"{path.name}: the parameters cell must hold the real setting `smoke = False` (tests inject smoke = True)"
    dirty = [i for i, c in enumerate(code) if c.get("outputs") or c.get("execution_count")]
    assert not dirty, f"{path.name} is committed with outputs in code cells {dirty}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_runs_in_smoke_mode(path, tmp_path, monkeypatch):
    from tests.common import lab_runs_notebooks, smoke_notebook_problems

    if lab_runs_notebooks() and path.name in ("00_tour.ipynb", "02_goldilocks.ipynb"):  # IN_LAB_BY_DEFAULT there
        pytest.skip("run in JupyterLab instead, with the same checks (tests/browser/test_browser_notebooks.py)")
    from widgets.report import execute_notebook

    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    nb = execute_notebook(path, {"smoke": True}, timeout=300, cwd=tmp_path)
    assert smoke_notebook_problems(nb) == []
