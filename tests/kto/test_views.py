"""The kto views draw a smoke run from stored data only."""
import pytest

pytest.importorskip("plotly")

from widgets.views import views_for  # noqa: E402
from widgets.views import kto as kv  # noqa: E402


def test_views_registered():
    titles = {v.title for v in views_for("kto")}
    assert {"alignment curves", "reward rate vs KL", "sampled completions"} <= titles


def test_views_draw_a_run(kto_smoke_run):
    rid = kto_smoke_run.run_id
    curves = kv.alignment_curves(rid)
    assert {t.name for t in curves.data} >= {"kto", "dpo", "sft"}
    front = kv.frontier(rid)
    methods = {t.name for t in front.data if t.showlegend is not False}
    assert {"kto", "dpo", "kto_drop", "csft"} <= methods
    for trace in front.data:
        assert all(0 <= y <= 1 for y in trace.y)
    tab = kv.samples_table(rid)
    cells = tab.data[0].cells
    desirable = cells.values[4]
    fills = cells.fill.color[0]
    assert all((f == "#d9f2d9") == (d == "True") for d, f in zip(desirable, fills))


def test_views_return_none_for_an_empty_run():
    from workbench import runs

    rid = runs.store().create_run("kto", {}, device="cpu", world_size=1)
    assert kv.alignment_curves(rid) is None and kv.frontier(rid) is None and kv.samples_table(rid) is None
