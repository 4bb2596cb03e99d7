"""Views that say what they show: "never reached" speedups, every heatmap row labelled, previews drawn from
stored artifacts only, the generic claims table complete and honest about smoke runs."""
from __future__ import annotations

import math

import numpy as np


def test_speedup_never_reached_is_said_not_drawn_as_zero():
    from widgets.views.goldilocks import NEVER, speedup_figure

    rows = [{"method": "uniform", "speedup_steps": 1.0, "speedup_wallclock": 1.0},
            {"method": "rho_loss", "speedup_steps": 2.5, "speedup_wallclock": 1.5},
            {"method": "train_loss", "speedup_steps": 0.0, "speedup_wallclock": 0.0},
            {"method": "bald", "speedup_steps": math.nan, "speedup_wallclock": math.nan}]
    fig = speedup_figure(rows)
    steps = fig.data[0]
    assert list(steps.x) == ["rho_loss", "train_loss", "bald"]
    assert list(steps.y) == [2.5, None, None] and list(steps.text) == ["2.50×", NEVER, NEVER]
    notes = [a.text for a in fig.layout.annotations if NEVER in (a.text or "")]
    assert len(notes) == 2 and "0.000" not in fig.to_json()


def test_heatmap_labels_every_corruption():
    from widgets.views.robustness import heatmap_figure

    names = [f"c{i}" for i in range(21)]
    rows = [{"variant": v, "corruption": c, "severity": s, "accuracy": 0.5} for v in ("baseline", "nfm")
            for c in names for s in range(1, 6)]
    fig = heatmap_figure(rows)
    assert list(fig.layout.yaxis.tickvals) == names and fig.layout.yaxis.tickmode == "array"
    assert fig.layout.height >= 21 * 16  # room for 21 readable rows


def test_previews_are_drawn_from_stored_artifacts_only(tiny):
    import workbench
    from widgets.views import render, views_for
    from widgets.views.robustness import stored_preview_figure

    images = np.random.default_rng(0).random((3, 1, 8, 8))
    fig = stored_preview_figure({"severity": 3, "names": ["clean", "gaussian_noise", "fog"], "images": images})
    assert [a.text for a in fig.layout.annotations] == ["clean", "gaussian noise", "fog"] and len(fig.data) == 3
    assert "severity 3" in fig.layout.title.text
    rid = workbench.run("wbtiny", {"steps": 2}, progress=False).run_id
    # a run without the preview artifacts: the preview views draw nothing (and compute nothing)
    titles = [v.title for v in views_for("noisymix")]
    assert "corruption previewer" in titles and "AugMix chains" in titles and "claims" not in titles
    drawn = [t for t, _ in render("noisymix", rid)]
    assert "corruption previewer" not in drawn and "AugMix chains" not in drawn


def test_generic_claims_view_is_complete_and_marks_smoke_runs(tiny):
    import workbench
    from widgets.views import HTMLView, render

    long = workbench.run("wbtiny", {"steps": 3}, progress=False).run_id
    (title, table), = [(t, f) for t, f in render("wbtiny", long) if t == "claims"]
    assert isinstance(table, HTMLView) and "✔ holds" in table.html and "loss decreases" in table.html
    assert "…" not in table.html and "tiny check" in table.html
    smoke = workbench.run("wbtiny", smoke=True, progress=False).run_id
    html = dict(render("wbtiny", smoke))["claims"].html
    assert "not evaluated (smoke run)" in html and "✔" not in html and "✘" not in html


def test_run_labels_mark_smoke_runs():
    from widgets.labels import holds_text, run_label

    assert run_label({"id": "20250101-142501-a3f9c2", "method": "kto", "smoke": True}) == "kto 142501-a3f9c2 (smoke)"
    assert run_label({"id": "20250101-142501-a3f9c2", "method": "kto"}) == "kto 142501-a3f9c2"
    assert holds_text({"holds": None, "detail": "not evaluated (smoke run)"})[0] == "not evaluated (smoke run)"
    assert holds_text({"holds": False})[0] == "✘ does not hold"
