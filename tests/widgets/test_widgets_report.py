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


def test_report_cli_executes_with_parameters_and_writes_offline_html(tmp_path, capfd):
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
    out, err = capfd.readouterr()  # the kernel's own stderr too (a subprocess)
    assert "wrote" in out and "without encryption" not in err and "WARNING" not in err


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
    assert "loss decreases" in html and "<td class='na' data-outcome='not evaluated'>– not evaluated" in html
    assert "not evaluated (smoke run)" in html and "(completed; claims: 1 not evaluated)" in html
    assert "✔ holds" not in html and "smoke run</span> (claims not evaluated)" in html
    assert html.count("plotly.js v") == 1 and remote_resources(html) == []
    assert html.count('class="plotly-graph-div"') == 2  # curves + the 'bars' view
    # the run's summary: a table with units, not a wall of key=value
    assert "<table class='wb-summary'>" in html and "<td class='name'>train/loss</td>" in html
    assert "<td class='unit'>nats</td>" in html and "train/loss = " not in html
    assert "width:700px" not in html.replace(" ", "") and '"width":700' not in html
    assert demo(["--only", "nosuch"]) == 2


def claim_records() -> list[dict]:
    from workbench.core.claims import Effect, superior

    base = Effect.paired([0.6, 0.7, 0.65], [0.5, 0.52, 0.55])
    return [superior("A beats B", "A", "B", base, paper="Fig. 3", detail="on CIFAR-10").to_record(),
            superior("B beats A", "B", "A", Effect(-0.1, -0.15, -0.05, seeds=3)).to_record(),
            superior("A beats C", "A", "C", Effect(0.01, -0.02, 0.04, seeds=3, how="t interval over 3 seeds"))
            .to_record(),
            superior("A beats D", "A", "D", base, precondition=(False, "accuracies differ by 0.05")).to_record(),
            superior("A beats E", "A", "E", base).not_evaluated("not evaluated (smoke run)").to_record(),
            {"claim": "old", "measured": "0.9", "holds": True, "detail": ""}]


def test_claims_table_shows_effect_rule_and_outcome_coloured_by_kind():
    """Every claim: statement, method vs arm, effect ± uncertainty with its interval and seeds, the rule in words,
    the outcome with its reason; inconclusive amber (never the red of fails), not evaluated grey."""
    from workbench.store.store import Store
    from widgets.labels import OUTCOME_COLOURS, claims_html, claims_text, outcome_counts

    import tempfile

    st = Store(tempfile.mkdtemp(prefix="wb-claims-view-"))
    rid = st.create_run("wbtiny", {})
    for record in claim_records():
        st.add_claim(rid, record)
    claims = st.claims(rid)
    html = claims_html(claims)
    rows = html.split("<tr>")[2:]
    assert len(rows) == 6
    assert "A beats B" in rows[0] and "A vs B" in rows[0] and "0.13 ± 0.11" in rows[0] and "[0.0119, 0.241]" in rows[0] and "3 seeds" in rows[0]
    assert "on CIFAR-10" in rows[0] and "paper: Fig. 3" in rows[0] and "lies entirely above 0" in rows[0]
    assert "class='yes' data-outcome='holds'>✔ holds" in rows[0]
    assert "class='no' data-outcome='fails'>✘ fails" in rows[1] and "[-0.150, -0.0500]" in rows[1]
    assert "class='maybe' data-outcome='inconclusive'>? inconclusive" in rows[2] and "straddles 0" in rows[2]
    assert "precondition not met: accuracies differ by 0.05" in rows[3] and "class='maybe'" in rows[3]
    assert "class='na' data-outcome='not evaluated'" in rows[4] and "not evaluated (smoke run)" in rows[4]
    assert "class='yes'" in rows[5] and "0.9" in rows[5]  # a schema-v4 record: its measured value, its verdict
    assert OUTCOME_COLOURS["inconclusive"] != OUTCOME_COLOURS["fails"]
    assert f"td.maybe{{color:{OUTCOME_COLOURS['inconclusive']}" in html and "td.no{color:#c0392b" in html
    text = claims_text(claims)
    assert "- A beats B (A vs B): 0.13 ± 0.11 [0.0119, 0.241], seeds 3" in text and "→ ✔ holds" in text and "    rule: holds if" in text
    assert "→ ? inconclusive: precondition not met" in text and "→ – not evaluated (smoke run)" in text
    assert outcome_counts(claims) == "2 hold, 1 fails, 2 inconclusive, 1 not evaluated"
    smoke = claims_html(claims[4:5], smoke=True)
    assert "smoke run</b>: the settings are far too small" in smoke and "✔" not in smoke and "✘" not in smoke


def test_a_notebook_saved_from_lab_exports_its_json_only_figures_with_plotlyjs_once():
    """Lab saves a figure as its plotly JSON only; the exported report must still draw it, offline."""
    import nbformat
    import plotly.graph_objects as go

    from widgets.render import PLOTLY_MIME
    from widgets.report import to_html

    nb = nbformat.v4.new_notebook()
    for i in range(2):
        fig = go.Figure(go.Scatter(x=[0, 1], y=[i, i + 1], name=f"trace{i}"))
        out = nbformat.v4.new_output("display_data", data={PLOTLY_MIME: fig.to_plotly_json()})
        nb.cells.append(nbformat.v4.new_code_cell("fig", outputs=[out]))
    html = to_html(nb)
    assert html.count("trace0") >= 1 and html.count("trace1") >= 1
    assert html.count("Plotly.newPlot") >= 2  # both figures drawn
    assert html.count("plotly.js v") == 1 or html.count("* plotly.js") == 1  # the library embedded once
    assert not re.search(r"<script[^>]+src=[\"']https?:", html)  # nothing loaded from outside
