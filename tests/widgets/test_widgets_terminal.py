"""Terminal use: plain IPython gets plain text from the magics, and every experiment's ``--help`` prints."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def ip():
    from IPython.testing.globalipapp import get_ipython

    shell = get_ipython()
    shell.run_line_magic("load_ext", "widgets")
    return shell


def test_wb_runs_prints_a_plain_table_in_a_terminal(ip, tiny, capsys):
    import workbench

    a = workbench.run("wbtiny", {"steps": 3}, progress=False).run_id
    b = workbench.run("wbtiny", smoke=True, progress=False).run_id
    assert ip.run_line_magic("wb_runs", "--method wbtiny") is None
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert lines[0].split() == ["id", "method", "status", "created", "summary"]
    assert any(a in ln and "completed" in ln and "smoke" not in ln for ln in lines)
    assert any(b in ln and "completed (smoke run)" in ln for ln in lines)
    assert "<" not in out  # no HTML


def test_cell_magic_prints_the_run_id_and_summary_in_a_terminal(ip, tiny, capsys):
    from workbench import runs

    result = ip.run_cell("%%wb wbtiny --smoke\nsteps = 4\n")
    assert result.success, result.error_in_exec
    out = capsys.readouterr().out
    rid = runs.list(method="wbtiny")["id"].iloc[-1]
    assert f"run {rid}: completed (smoke run)" in out
    assert "summary: train/loss=" in out and "loss decreases" in out and "not evaluated (smoke run)" in out
    assert "IPython.core.display" not in out and "<" not in out.replace("<=", "")
    assert runs.get(rid)["smoke"] is True and runs.get(rid)["config"]["steps"] == 4


def _registered():
    from workbench.core.registry import experiments

    return sorted(experiments())


@pytest.mark.parametrize("method", _registered())
def test_every_experiment_help_prints(method, capsys):
    """``workbench run METHOD --help`` prints every flag (a ``%`` in a doc once crashed argparse)."""
    from workbench.core.cli import main
    from workbench.core.registry import get

    with pytest.raises(SystemExit) as done:
        main(["run", method, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for name in get(method).config.params():
        assert f"--{name.replace('_', '-')}" in out
