"""The sweep view draws from the stored study and runs (no Ray: a study told by hand)."""
import pytest

pytest.importorskip("optuna")
pytest.importorskip("plotly")

from workbench.core.sweep import study as studies  # noqa: E402
from workbench.store.store import Store  # noqa: E402

from . import toy  # noqa: E402


def test_figures_and_table_of_a_stored_sweep(tmp_path):
    from widgets.sweep import sweep_figures, sweep_table

    store = Store(tmp_path)
    study, _ = toy.told_sweep(store)
    assert studies.sweeps(store) == [study.study_name]
    figs = sweep_figures(study.study_name, store)
    assert set(figs) == {"history", "parallel", "importance", "slice"}
    assert all(study.study_name in f.layout.title.text for f in figs.values())
    table = sweep_table(study.study_name, store)
    assert list(table["status"]) == ["completed"] * 3 + ["pruned"]
    assert {"trial", "state", "run_id", "val/loss", "param/lr", "param/width"} <= set(table.columns)
    assert table["run_id"].notna().all()


@pytest.fixture()
def told(tmp_path, monkeypatch):
    """A told sweep in the default store (views read runs through ``workbench.runs``); its pruned trial's run has
    a curve (from toy.told_sweep), a claim and the pruner's message."""
    from workbench.core.claims import Effect, exceeds

    monkeypatch.setenv("WORKBENCH_STORE", str(tmp_path / "store"))
    store = Store(tmp_path / "store")
    study, run_ids = toy.told_sweep(store)
    pruned = run_ids[3]
    store.add_claim(pruned, exceeds("the toy's score exceeds 0.4", Effect.normal(0.5, 0.0, kind="value"), 0.4,
                                    method="toy").to_record())
    store.finish(pruned, "pruned", "pruned by the median pruner at step 3")
    return store, study.study_name, run_ids


def _html(obj, path) -> str:
    from bokeh.resources import INLINE

    obj.save(str(path), resources=INLINE, embed=False)
    return path.read_text()


def test_selecting_a_trial_opens_its_run(told, tmp_path):
    from widgets.sweep import sweep_view

    store, sweep_id, run_ids = told
    view = sweep_view(sweep_id, store)
    assert view.opened.objects == []
    view.table.selection = [3]  # what a click on the fourth row does
    (panel,) = view.opened.objects
    text = _html(panel, tmp_path / "run.html")
    assert f"trial 3 of sweep {sweep_id}" in text and run_ids[3] in text and "pruned by the median pruner" in text
    assert "val/loss" in text  # its curve
    assert "score exceeds 0.4" in text  # its claims view
    view.table.selection = [0]  # another trial replaces it
    (panel,) = view.opened.objects
    assert run_ids[0] in _html(panel, tmp_path / "run0.html") and run_ids[3] not in panel.objects[0].object


def test_report_is_one_offline_page_with_every_figure(told, tmp_path):
    import re

    from widgets.sweep import TITLES, sweep_report

    store, sweep_id, run_ids = told
    path = sweep_report(sweep_id, store, tmp_path / "reports" / "s.html")
    text = path.read_text()
    assert text.count("plotly.js v") == 1  # plotly.js inlined once
    assert not re.findall(r"<(?:script|img|iframe)[^>]+src=[\"']?(?:https?:)?//", text)  # nothing to fetch
    assert not re.findall(r"<link[^>]+href=[\"']?(?:https?:)?//", text)
    for title in TITLES.values():  # each figure, titled (JSON inside a script escapes "/")
        assert f"{title} (val\\u002floss, sweep {sweep_id})" in text
    for run_id in run_ids:
        assert run_id in text
    assert "1 pruned" in text and "pruned by the median pruner" in text


def test_cli_writes_the_report_through_the_entry_point(told, tmp_path, monkeypatch):
    from workbench.core.sweep import cli

    from widgets.sweep import sweep_report

    store, sweep_id, _ = told
    monkeypatch.setattr(cli, "_report_writer", lambda: sweep_report)
    monkeypatch.chdir(tmp_path)
    assert sweep_id.startswith("sweep-")  # a generated id: the file is named after it, without a second "sweep-"
    assert cli.write_report(sweep_id, store) == f"report: reports/{sweep_id}.html"
    assert f"Sweep {sweep_id}" in (tmp_path / "reports" / f"{sweep_id}.html").read_text()
    monkeypatch.setattr(cli, "_report_writer", lambda: None)
    assert cli.write_report(sweep_id, store).startswith("no report written: no writer registered under the "
                                                        "workbench.reports entry point")

    def broken(*_):
        raise OSError("disk full\nno space left")

    monkeypatch.setattr(cli, "_report_writer", lambda: broken)
    assert cli.write_report(sweep_id, store) == "no report written: OSError: no space left"


def test_notebook_dashboard_draws_the_sweep_and_opens_a_selected_run(told):
    from widgets.render import PLOTLY_MIME
    from widgets.sweep import TITLES, SweepDashboard

    store, sweep_id, run_ids = told
    dash = SweepDashboard(sweep_id, store, poll=0.05)
    assert dash.table.value.count("<tr>") == 5 and all(r in dash.table.value for r in run_ids)  # header + 4 trials
    titles = [o["data"][PLOTLY_MIME]["layout"]["title"]["text"] for o in dash.figures.outputs]
    assert [t.split(" (")[0] for t in titles] == list(TITLES.values())
    assert [v for _label, v in dash.picker.options] == ["", *run_ids] and dash.opened.outputs == ()
    dash.picker.value = run_ids[3]  # what choosing the pruned trial does
    head, *figs = dash.opened.outputs
    assert f"trial 3 of sweep {sweep_id}" in head["data"]["text/html"] and "pruned by the median" in head["data"][
        "text/html"]
    assert PLOTLY_MIME in figs[0]["data"] and "score exceeds 0.4" in figs[-1]["data"]["text/html"]  # curves, claims
    dash.picker.value = ""
    assert dash.opened.outputs == ()
    dash.follow()  # no trial runs and no driver: the monitor draws once more and ends
    assert dash.wait(30)
