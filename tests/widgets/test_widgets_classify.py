"""The classify views against the stored run (two computation paths must agree), and %%wb --nproc
following a torchrun job through the store."""
from __future__ import annotations

import re

import numpy as np
import pytest


@pytest.fixture(autouse=True, scope="module")
def _home(tmp_path_factory):
    """One store for the whole module (the classify run is shared by its tests)."""
    import os

    old = os.environ.get("WORKBENCH_HOME")
    os.environ["WORKBENCH_HOME"] = str(tmp_path_factory.mktemp("classify-home"))
    yield
    if old is None:
        os.environ.pop("WORKBENCH_HOME", None)
    else:
        os.environ["WORKBENCH_HOME"] = old


@pytest.fixture(scope="module")
def classify_run():
    import workbench

    res = workbench.run("classify", smoke=True, progress=False)
    assert res.status == "completed", res.error
    return res


def test_views_agree_with_the_stored_metrics(classify_run):
    from widgets.views import render
    from workbench import runs

    rid = classify_run.run_id
    figs = dict(render("classify", rid))
    assert list(figs) == ["test accuracy and calibration", "confusion matrix", "per-class accuracy",
                          "reliability diagram", "claims"]  # the generic claims table comes last, for free
    summary = runs.get(rid)["summary"]
    # confusion: rows are fractions of each true class; the diagonal, weighted by class size, is the accuracy
    heat = figs["confusion matrix"].data[0]
    z, counts = np.asarray(heat.z), np.asarray(heat.text, dtype=float)
    assert z.shape == (10, 10)
    np.testing.assert_allclose(z.sum(axis=1)[counts.sum(axis=1) > 0], 1.0)
    assert np.trace(counts) / counts.sum() == pytest.approx(summary["test/accuracy"], abs=1e-6)
    # per-class accuracy weighted by class size is the accuracy
    bar = figs["per-class accuracy"].data[0]
    acc, n = np.asarray(bar.y, dtype=float), np.asarray(bar.customdata, dtype=float)
    assert np.nansum(acc * n) / n.sum() == pytest.approx(summary["test/accuracy"], abs=1e-6)
    # the reliability diagram's ECE (from the stored bins) is the ECE the engine logged
    title = figs["reliability diagram"].layout.title.text
    ece = float(re.search(r"ECE ([0-9.]+)", title).group(1))
    assert ece == pytest.approx(summary["test/ece"], abs=1e-3)
    assert len(figs["test accuracy and calibration"].layout.annotations) == 3


def test_views_of_a_run_without_artifacts_draw_nothing(tiny):
    import workbench
    from widgets.views import render

    rid = workbench.run("wbtiny", {"steps": 2}, progress=False).run_id
    # only the curves of the metrics it shares (test/accuracy); the artifact views have nothing to draw
    shown = render("classify", rid, claims=False)
    assert [t for t, _ in shown] == ["test accuracy and calibration"]
    assert [a.text for a in shown[0][1].layout.annotations] == ["<b>test/accuracy</b>"]


@pytest.mark.slow
def test_cell_magic_nproc_follows_a_torchrun_job(tiny):
    from IPython.testing.globalipapp import get_ipython

    from workbench import runs

    ip = get_ipython()
    ip.run_line_magic("load_ext", "widgets")
    result = ip.run_cell("%%wb classify --nproc 2 --smoke\nsteps = 4\n")
    assert result.success, result.error_in_exec
    df = runs.list(method="classify")
    rec = runs.get(df["id"].iloc[-1])
    assert rec["status"] == "completed" and rec["world_size"] == 2 and rec["config"]["steps"] == 4
    losses = runs.metrics(rec["id"], names=["train/loss"])
    assert list(losses.step) == [0, 1, 2, 3]
