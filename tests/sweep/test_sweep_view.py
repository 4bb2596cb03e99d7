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
