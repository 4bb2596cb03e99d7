"""Reports and the demo page: parameters injected like papermill, offline HTML, claims table, CLI."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent


def tiny_notebook(path: Path) -> Path:
    """A small notebook over the tiny experiment (the parameters cell sets steps)."""
    cells = [
        nbformat.v4.new_code_cell("smoke = True\nsteps = 3", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(f"import sys; sys.path.insert(0, {str(HERE)!r}); import wb_tiny\n%load_ext widgets"),
        nbformat.v4.new_code_cell("%%wb wbtiny --steps $steps\nlr = 0.2"),
        nbformat.v4.new_code_cell("print('steps were', steps)"),
    ]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def test_parse_value_like_papermill():
    from widgets.report import parse_value

    assert parse_value("3") == 3 and parse_value("0.5") == 0.5 and parse_value("False") is False
    assert parse_value("true") is True and parse_value("[1, 2]") == [1, 2] and parse_value("digits") == "digits"
    assert parse_value("None") is None


def test_inject_parameters_after_the_parameters_cell():
    from widgets.report import inject_parameters

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("x"),
                                         nbformat.v4.new_code_cell("a = 1", metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_code_cell("print(a)")])
    inject_parameters(nb, {"a": 2, "name": "b"})
    assert [c.source.splitlines()[-1] for c in nb.cells][1:3] == ["a = 1", "name = 'b'"]
    assert nb.cells[2].metadata["tags"] == ["injected-parameters"]
    inject_parameters(nb, {"a": 3})  # re-injection replaces, never stacks
    assert sum("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1


def test_report_cli_executes_with_parameters_and_writes_offline_html(tmp_path, capsys):
    from widgets.cli import report
    from widgets.report import remote_resources

    nb = tiny_notebook(tmp_path / "t.ipynb")
    out = tmp_path / "t.html"
    assert report([str(nb), "-p", "steps", "5", "-o", str(out), "--no-input"]) == 0
    html = out.read_text()
    assert "steps were 5" in html
    assert remote_resources(html) == []
    assert not re.search(r"<script[^>]*src=[\"']https?://", html)
    assert html.count("plotly.js v") == 1  # embedded once
    assert "print(&#39;steps were&#39;" not in html and "print('steps were'" not in html  # --no-input
    assert "<b>wbtiny</b> run" in html and "<b>completed</b>" in html
    assert "wrote" in capsys.readouterr().out


def test_report_cli_errors(tmp_path, capsys):
    from widgets.cli import report

    assert report([str(tmp_path / "missing.ipynb")]) == 2
    bad = tmp_path / "bad.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1/0")]), bad)
    assert report([str(bad), "-o", str(tmp_path / "bad.html")]) == 1
    err = capsys.readouterr().err
    assert "ZeroDivisionError" in err


def test_demo_writes_one_section_per_experiment_with_claims(tmp_path, tiny, capsys):
    from widgets.cli import demo
    from widgets.report import remote_resources

    out = tmp_path / "demo.html"
    assert demo(["--only", "wbtiny", "--smoke", "--out", str(out), "--no-progress"]) == 0
    html = out.read_text()
    assert html.count("<section") == 1 and "Tiny test experiment" in html
    # the claims table: a smoke run says so, and its claims are "not evaluated", never yes/no
    assert "loss decreases" in html and "<td class='na'>not evaluated (smoke run)</td>" in html
    assert "✔ holds" not in html and "smoke run</span> (claims not evaluated)" in html
    assert html.count("plotly.js v") == 1 and remote_resources(html) == []
    assert html.count('class="plotly-graph-div"') == 2  # curves + the 'bars' view
    assert demo(["--only", "nosuch"]) == 2
