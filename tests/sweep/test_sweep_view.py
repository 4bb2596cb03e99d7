"""The sweep view draws from the stored study and runs (no Ray: a study told by hand)."""
import pytest

pytest.importorskip("optuna")
pytest.importorskip("plotly")

from optuna.trial import TrialState  # noqa: E402

from workbench.core.sweep import study as studies  # noqa: E402
from workbench.core.sweep.space import parse_space  # noqa: E402
from workbench.store.store import Store  # noqa: E402

from . import toy  # noqa: E402


def test_figures_and_table_of_a_stored_sweep(tmp_path):
    from widgets.sweep import sweep_figures, sweep_table

    store = Store(tmp_path)
    sp = parse_space(toy.EXPERIMENT, ["lr=0.01:0.5:log", "width=8,16"])
    spec = studies.SweepSpec("sweeptoy", sp.specs(), ["val/loss"], ["min"], sampler="random", seed=0)
    study = studies.create(store, spec)
    assert studies.sweeps(store) == [study.study_name]
    for i in range(4):
        trial = study.ask(sp.distributions())
        run_id = store.create_run("sweeptoy", sp.config_values(trial.params))
        store.finish(run_id, "completed" if i < 3 else "pruned")
        trial.set_user_attr("run_id", run_id)
        if i < 3:
            study.tell(trial, 1.0 / (1 + trial.params["lr"]))
        else:
            study.tell(trial, state=TrialState.PRUNED)
    figs = sweep_figures(study.study_name, store)
    assert set(figs) == {"history", "parallel", "importance", "slice"}
    assert all(study.study_name in f.layout.title.text for f in figs.values())
    table = sweep_table(study.study_name, store)
    assert list(table["status"]) == ["completed"] * 3 + ["pruned"]
    assert {"trial", "state", "run_id", "val/loss", "param/lr", "param/width"} <= set(table.columns)
    assert table["run_id"].notna().all()
