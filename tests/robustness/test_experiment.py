"""robustness_compare trains all seven recipes in smoke mode and checks the four claims."""
from __future__ import annotations

import pandas as pd

import workbench
from workbench import runs
from workbench.robustness_compare.experiment import ALL_RECIPES


def test_compare_smoke():
    res = workbench.run("robustness_compare", smoke=True, progress=False)
    assert res.status == "completed", res.error
    summary = pd.DataFrame(runs.artifact(res.run_id, "summary")).to_dict("records")
    assert [r["variant"] for r in summary] == list(ALL_RECIPES)
    claims = runs.claims(res.run_id)
    # NFM: noise, clean; NoisyMix: ECE, clean (corruption_set='noise' in smoke: no mean corruption accuracy)
    assert [c["claim"].split(":")[0] for c in claims] == [
        "NFM keeps the highest accuracy as test-time noise grows", "nfm", "The stability (JSD) loss lowers ECE",
        "noisymix"]
    assert all(c["holds"] is None and c["detail"].startswith("not evaluated (smoke run)") for c in claims)
    assert runs.get(res.run_id)["smoke"] is True
    assert runs.artifact(res.run_id, "augmix_preview")["names"][-1] == "AugMix"
    preview = runs.artifact(res.run_id, "corruption_preview")
    assert len(preview["images"]) == len(preview["names"]) and preview["names"][0] == "clean"


def test_resume_after_stop_gives_the_same_numbers():
    """Stopped in the second recipe's phase (checkpoint every step), resumed: the same numbers as an
    uninterrupted run, so every model, optimiser, batch order and mixing generator was restored."""
    from workbench.engine import Control

    class StopInNFM(Control):
        @property
        def stop_requested(self) -> bool:
            return (self.phase == "train nfm" and self.steps_done >= 6) or super().stop_requested  # 4 + 2 steps

    cfg = {"variants": "baseline,nfm", "steps": 4, "checkpoint_every": 1}
    full = workbench.run("robustness_compare", cfg, smoke=True, progress=False)
    ctl = StopInNFM()
    ctl.reason = "test stop"
    part = workbench.run("robustness_compare", cfg, smoke=True, progress=False, control=ctl)
    assert part.status == "stopped", part.error
    resumed = workbench.run("robustness_compare", resume=part.run_id, progress=False)
    assert resumed.status == "completed", resumed.error
    a = pd.DataFrame(runs.artifact(full.run_id, "summary")).set_index("variant")
    b = pd.DataFrame(runs.artifact(resumed.run_id, "summary")).set_index("variant")
    pd.testing.assert_frame_equal(a, b)

    def last_loss(run_id):
        m = runs.metrics(run_id)
        return m[m["name"] == "nfm/train/loss"].sort_values("step")["value"].iloc[-1]

    assert last_loss(resumed.run_id) == last_loss(full.run_id)  # the loss after resuming: bit-exact
