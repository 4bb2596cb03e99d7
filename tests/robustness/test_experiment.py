"""robustness_compare trains all seven recipes in smoke mode and checks the four claims."""
from __future__ import annotations

import pandas as pd

import workbench
from workbench import runs
from workbench.methods.robustness_compare.experiment import ALL_RECIPES
from tests.common import smoke_group, smoke_run


@smoke_group("robustness_compare")
def test_compare_smoke():
    res = smoke_run("robustness_compare").result
    assert res.status == "completed", res.error
    summary = pd.DataFrame(runs.artifact(res.run_id, "summary")).to_dict("records")
    assert [r["variant"] for r in summary] == list(ALL_RECIPES)
    claims = runs.claims(res.run_id)
    # NFM: noise (three arms), clean; NoisyMix: JSD ablation, ECE, clean (corruption_set='noise' in smoke: no
    # corruption claims)
    assert [(c["method"], c["arm"] if c["method"] != "nfm" or "clean" in c["claim"] else "*") for c in claims] == [
        ("nfm", "*"), ("nfm", "*"), ("nfm", "*"), ("nfm", "baseline"), ("augmix_jsd", "augmix"),
        ("noisymix", "baseline"), ("noisymix", "baseline"), ("noisymix", "baseline")]
    assert all(c["outcome"] == "not evaluated" and c["holds"] is None for c in claims)
    assert all(c["effect"] is not None and c["uncertainty"] is not None and c["rule"] for c in claims)
    assert runs.get(res.run_id)["smoke"] is True
    assert runs.artifact(res.run_id, "augmix_preview")["names"][-1] == "AugMix"
    preview = runs.artifact(res.run_id, "corruption_preview")
    assert len(preview["images"]) == len(preview["names"]) and preview["names"][0] == "clean"


def test_resume_after_stop_gives_the_same_numbers():
    """Stopped in the second recipe's phase (checkpoint every step), resumed: the same numbers as an
    uninterrupted run, so every model, optimiser, batch order and mixing generator was restored."""
    from workbench.core.engine import Control

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


def test_paper_and_cpu_presets_follow_the_papers():
    """The paper presets are the papers' CIFAR-10 protocols (PreActResNet-18, 200 epochs, crop + flip, their noise
    levels and normalisation); the CPU claim settings use the same protocol at a smaller size."""
    from workbench.methods.nfm.experiment import CPU_CLAIMS as NFM_CPU
    from workbench.methods.noisymix.experiment import CPU_CLAIMS as NOISYMIX_CPU
    from workbench.core.registry import get

    nfm, noisymix, compare = (get(n).make_config(scale="paper") for n in ("nfm", "noisymix", "robustness_compare"))
    for cfg in (nfm, noisymix, compare):
        assert (cfg.dataset, cfg.arch, cfg.width, cfg.blocks, cfg.augment) == ("cifar10", "resnet", 64, 2, "crop_flip")
        assert cfg.steps == 200 * (45_000 // 128) and cfg.lr == 0.1 and cfg.weight_decay == 5e-4
    assert (nfm.schedule, nfm.normalise, nfm.add_noise, nfm.mult_noise, nfm.alpha) == ("step", "dataset", 0.4, 0.2, 1.0)
    assert (noisymix.schedule, noisymix.normalise, noisymix.add_noise, noisymix.mult_noise, noisymix.sparsity,
            noisymix.jsd_weight) == ("cosine", "fixed", 0.5, 0.5, 0.65, 12.0)
    assert (compare.nfm_add_noise, compare.nfm_mult_noise, compare.add_noise) == (0.4, 0.2, 0.5)
    for name, values in (("nfm", NFM_CPU), ("noisymix", NOISYMIX_CPU)):
        cfg = get(name).make_config(values)
        assert cfg.augment == "crop_flip" and cfg.arch == "resnet" and cfg.dataset == "fashion_mnist"
