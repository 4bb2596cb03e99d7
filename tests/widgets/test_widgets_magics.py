"""The magics through IPython's own shell: %load_ext widgets, %wb, %%wb, %wb_runs, %wb_compare, %wb_export."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def ip():
    from IPython.testing.globalipapp import get_ipython

    shell = get_ipython()
    shell.run_line_magic("load_ext", "widgets")
    return shell


def _run(ip, code):
    result = ip.run_cell(code)
    return result


def test_line_magic_builds_a_dashboard_with_those_defaults(ip, tiny):
    from widgets.dashboards import Dashboard

    ip.user_ns["n"] = 7
    dash = ip.run_line_magic("wb", "wbtiny --steps $n --lr={0.1 * 2} --shape inv --noisy")
    assert isinstance(dash, Dashboard)
    assert dash.form.values["steps"] == 7 and dash.form.values["lr"] == pytest.approx(0.2)
    assert dash.form.values["shape"] == "inv" and dash.form.values["noisy"] is True
    assert not dash.running  # the line form only shows the dashboard


def test_cell_magic_runs_to_completion(ip, tiny, capsys):
    from workbench import runs

    before = len(runs.list(method="wbtiny"))
    result = ip.run_cell("%%wb wbtiny --smoke\nsteps = 6\nlr = 0.3\n")
    assert result.success, result.error_in_exec
    df = runs.list(method="wbtiny")
    assert len(df) == before + 1
    rec = runs.get(df["id"].iloc[-1])
    assert rec["status"] == "completed" and rec["config"]["steps"] == 6 and rec["config"]["lr"] == 0.3
    # YAML works as well as key = value lines
    assert ip.run_cell("%%wb wbtiny\nsteps: 3\nshape: inv\n").success
    assert runs.get(runs.list(method="wbtiny")["id"].iloc[-1])["config"]["shape"] == "inv"


@pytest.mark.parametrize("line, message", [
    ("wb wbtiny --steps 0", "out of range"),
    ("wb wbtiny --nope 3", "unknown parameter --nope"),
    ("wb wbtiny --no_pe 3", "unknown parameter --no-pe; known: --steps, --lr, --delay"),
    ("wb nosuch", "unknown experiment 'nosuch'"),
    ("wb", "usage: %wb METHOD"),
    ("wb wbtiny --steps", "--steps needs a value"),
    ("wb wbtiny --nproc 2", "cell form"),
    ("wb_compare", "the following arguments are required"),
    ("wb_runs --status nonsense", "invalid choice"),
])
def test_bad_arguments_give_one_line_usage_errors(ip, tiny, capsys, line, message):
    result = ip.run_cell("%" + line)
    assert not result.success
    err = capsys.readouterr()
    text = err.out + err.err
    assert "UsageError" in text and message in text
    assert "Traceback" not in text


def test_cell_magic_bad_body_is_a_usage_error(ip, tiny, capsys):
    result = ip.run_cell("%%wb wbtiny\nsteps = -4\n")
    assert not result.success
    text = "".join(capsys.readouterr())
    assert "UsageError" in text and "out of range" in text and "Traceback" not in text


def test_runs_and_compare_magics(ip, tiny, monkeypatch):
    import workbench
    from widgets import magics
    from widgets.runlist import RunsTable

    a = workbench.run("wbtiny", {"steps": 4}, progress=False).run_id
    b = workbench.run("wbtiny", {"steps": 6}, progress=False).run_id
    monkeypatch.setattr(magics, "front_end", lambda: True)  # as in JupyterLab
    table = ip.run_line_magic("wb_runs", "--method wbtiny")
    assert isinstance(table, RunsTable) and {a, b} <= set(table.checks)
    ip.user_ns.update(first=a, second=b)
    fig = ip.run_line_magic("wb_compare", "{first} $second")
    assert sorted(len(t.x) for t in fig.data if t.meta.endswith("train/loss")) == [4, 6]


def test_export_magic_writes_the_live_outputs(tiny, tmp_path):
    """In the middle of "Run All" the saved file has no outputs yet: %wb_export (in a real kernel) exports the
    kernel's own outputs of the cells it ran."""
    import nbformat

    from widgets.report import execute_notebook

    path, out = tmp_path / "live.ipynb", tmp_path / "live.html"
    cells = [nbformat.v4.new_code_cell("%load_ext widgets"),
             nbformat.v4.new_code_cell("print('hello from the kernel')"),
             nbformat.v4.new_code_cell("from IPython.display import HTML, display\ndisplay(HTML('<i>displayed</i>'))\n"
                                       "print('printed after')\nHTML('<b>shown live</b>')"),
             nbformat.v4.new_code_cell("print('next cell')"),
             nbformat.v4.new_code_cell(f"%wb_export {out} --notebook {path} --no-input")]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)  # saved without outputs, like a fresh Run All
    nb = execute_notebook(path, timeout=120, cwd=tmp_path)
    html = out.read_text()
    assert "hello from the kernel" in html and "<b>shown live</b>" in html
    # each output under its own cell, in the order it came
    assert html.index("hello from the kernel") < html.index("<i>displayed</i>") < html.index("printed after") \
        < html.index("<b>shown live</b>") < html.index("next cell")
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert "wrote" in printed and "this kernel's live outputs of 3 cells" in printed


def test_export_magic_never_writes_an_empty_report(ip, tiny, tmp_path, monkeypatch, capsys):
    import nbformat

    cells = [nbformat.v4.new_code_cell("x_never_run_here = 1")]
    path = tmp_path / "empty.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    out = tmp_path / "empty.html"
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))
    result = ip.run_cell(f"%wb_export {out}")
    assert not result.success and not out.exists()
    text = "".join(capsys.readouterr())
    assert "Save the notebook" in text and "nothing was written" in text and "wrote" not in text
    monkeypatch.delenv("JPY_SESSION_NAME")
    assert not ip.run_cell(f"%wb_export {out}").success  # no notebook known


def test_nproc_command_line():
    from widgets.magics import distributed_command

    cmd = distributed_command("classify", {"steps": 5, "amp": False}, 2)
    assert cmd[1:4] == ["-m", "torch.distributed.run", "--standalone"]
    assert "--nproc-per-node=2" in cmd
    assert cmd[cmd.index("-m", 2):][:4] == ["-m", "workbench", "run", "classify"]
    assert cmd[-4:] == ["--steps", "5", "--amp", "false"]


def test_help_lists_the_declared_parameters(ip, tiny, capsys):
    assert ip.run_line_magic("wb", "wbtiny --help") is None
    out = capsys.readouterr().out
    assert "--steps" in out and "[1, 100000] steps" in out and "exp, inv" in out and "curve shape" in out
    assert "engine:" in out and "--checkpoint-every" in out  # groups as sections, flags spelt as on the CLI


def test_live_notebook_shows_each_output_once_and_exports_them(tiny, tmp_path, monkeypatch):
    """A live kernel (not headless): ``dash.run()`` and ``%%wb`` display nothing beyond the dashboard (which shows
    the figures), figures carry no plotly.js, so the saved notebook stays small; ``%wb_export`` still writes the
    static figures, with plotly.js embedded exactly once."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("WORKBENCH_HEADLESS", "0")
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent))
    path, out = tmp_path / "live.ipynb", tmp_path / "live.html"
    cells = [nbformat.v4.new_code_cell("%load_ext widgets\nimport wb_tiny, widgets"),
             nbformat.v4.new_code_cell("dash = widgets.dashboard('wbtiny', steps=6, poll=0.02)\ndash"),
             nbformat.v4.new_code_cell("result = dash.run()"),
             nbformat.v4.new_code_cell("%%wb wbtiny\nsteps = 4"),
             nbformat.v4.new_code_cell("import plotly.graph_objects as go\ngo.Figure(go.Bar(y=[1, 2]))"),
             nbformat.v4.new_code_cell(f"%wb_export {out} --notebook {path}")]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", store_widget_state=False,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outs = [c.outputs for c in nb.cells]
    assert outs[2] == []  # dash.run(): the result, no second copy of the figures
    assert [o.output_type for o in outs[3]] == ["display_data"]  # %%wb: its dashboard only
    assert "application/vnd.jupyter.widget-view+json" in outs[3][0].data
    (fig,) = outs[4]
    assert "application/vnd.plotly.v1+json" in fig.data and "text/html" not in fig.data  # JSON only: no plotly.js
    nb.metadata.pop("widgets", None)  # widget state: JupyterLab saves none by default (saveState: false)
    assert len(nbformat.writes(nb)) < 100_000
    report = out.read_text()
    assert report.count("plotly.js v") == 1  # embedded once for the report
    assert report.count("<b>wbtiny</b> run") == 2 and report.count("Plotly.newPlot") >= 5  # curves + bars, twice
    assert "loss decreases" in report  # the claims table



def test_for_export_gives_figures_html_and_plotlyjs_once():
    """Live figures carry JSON only; a report needs their HTML and plotly.js, embedded once before the first."""
    import nbformat
    import plotly.graph_objects as go

    from widgets.render import PLOTLY_MIME, for_export, output

    fig = go.Figure(go.Bar(y=[1, 2]), layout={"title": {"text": "bars"}})
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)"), nbformat.v4.new_code_cell("fig"),
                                         nbformat.v4.new_code_cell("fig")])
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    for cell in nb.cells[1:]:
        cell.outputs = [nbformat.from_dict(output(fig))]
    assert "text/html" not in nb.cells[1].outputs[0].data and PLOTLY_MIME in nb.cells[1].outputs[0].data
    assert for_export(nb) == 2
    first = nb.cells[1].outputs
    assert len(first) == 2 and first[0].data["text/html"].count("plotly.js v") == 1  # plotly.js, then the figure
    assert "Plotly.newPlot" in first[1].data["text/html"] and '"bars"' in first[1].data["text/html"]
    assert len(nb.cells[2].outputs) == 1 and "plotly.js v" not in nb.cells[2].outputs[0].data["text/html"]
    assert for_export(nb) == 0 and sum(len(c.outputs) for c in nb.cells) == 4  # a second call adds nothing
