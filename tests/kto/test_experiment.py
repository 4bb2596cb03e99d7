"""The ``kto`` experiment in smoke mode: it runs, logs TRL-named metrics, artifacts and claims."""
import json

import pytest
import torch

import workbench
from workbench import runs
from workbench.core.params import ConfigError
from workbench.core.registry import get


@pytest.fixture
def smoke_run(kto_smoke_run):
    return kto_smoke_run


def test_smoke_completes_with_every_method(smoke_run):
    names = set(runs.metrics(smoke_run.run_id)["name"])
    for method in ("kto", "dpo", "cdpo", "ipo", "slic", "csft", "ppo_offline", "sft", "kto_z0", "kto_drop"):
        assert f"{method}/loss" in names
        assert f"{method}/eval/reward_rate" in names and f"{method}/eval/kl" in names
    for trl in ("kl", "rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen", "logps/rejected"):
        assert f"kto/{trl}" in names
    assert "pretrain/loss" in names


def test_smoke_artifacts_and_claims(smoke_run):
    frontier = runs.artifact(smoke_run.run_id, "frontier")
    rows = frontier.to_dict("records") if hasattr(frontier, "to_dict") else frontier
    assert {r["method"] for r in rows} >= {"reference", "kto", "dpo", "kto_drop"}
    samples = runs.artifact(smoke_run.run_id, "samples")
    samples = samples.to_dict("records") if hasattr(samples, "to_dict") else samples
    assert {"reference"} < {r["source"] for r in samples}
    claims = {c["claim"]: c for c in runs.claims(smoke_run.run_id)}
    half = [c for k, c in claims.items() if "0.5·λ" in k]
    assert half and half[0]["measured"] == "0.000 ± 0.000"  # exact, even in a smoke run
    assert "max |loss − 0.5·λ| = 0 " in half[0]["detail"]
    assert half[0]["holds"] is None and "not evaluated (smoke run)" in half[0]["detail"]
    assert any("dropped" in k for k in claims) and any("equal sampled KL" in k for k in claims)


def test_trained_models_reload_in_a_plain_process(smoke_run):
    """The reference and every aligned policy reload with runs.load_model, and sample like the run's own."""
    import subprocess
    import sys

    names = runs.models(smoke_run.run_id)
    assert set(names) == {"reference", "kto", "dpo", "cdpo", "ipo", "slic", "csft", "ppo_offline", "sft", "kto_z0",
                          "kto_drop"}
    code = ("import torch; from workbench import runs; m = runs.load_model(%r, 'kto'); "
            "s = m.sample(['<food>'], max_new_tokens=4, generator=torch.Generator().manual_seed(0)); "
            "print(type(m).__name__, len(s))" % smoke_run.run_id)
    import os

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "WORKBENCH_HOME": str(runs.store().home)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["TinyLM", "1"]
    ref, kto = runs.load_model(smoke_run.run_id, "reference"), runs.load_model(smoke_run.run_id, "kto")
    assert any(not torch.equal(a, b) for a, b in zip(ref.state_dict().values(), kto.state_dict().values()))


def test_checkpoints_do_not_grow_with_evaluations(tmp_path):
    """Evaluations draw from ctx.rng (stateless): a long run's checkpoints track the same objects after every
    evaluation, and grow only by the evaluation's own numbers (a few hundred bytes), never by a generator's state."""
    import io

    from workbench.store.store import Store

    store = Store(tmp_path / "home")
    seen: list[tuple[int, list[str], int]] = []
    original = store.add_artifact

    def spy(run_id, name, value, kind=None, step=None, meta=None):
        if name == "checkpoint" and value["phase"] == "align":
            buf = io.BytesIO()
            torch.save(value["objects"], buf)
            seen.append((value["next_step"], sorted(value["objects"]), buf.getbuffer().nbytes))
        return original(run_id, name, value, kind=kind, step=step, meta=meta)

    store.add_artifact = spy
    res = workbench.run("kto", {"method": "kto", "steps": 12, "eval_every": 2, "checkpoint_every": 2}, smoke=True,
                        progress=False, store=store)
    assert res.status == "completed", res.error
    assert [s for s, _, _ in seen] == [2, 4, 6, 8, 10]  # after 1, 2, ..., 5 evaluations
    keys = {tuple(k) for _, k, _ in seen}
    assert len(keys) == 1, keys  # the same tracked objects after every evaluation
    assert not [k for k in seen[0][1] if k.startswith("rng/eval")]
    sizes = [n for _, _, n in seen]
    assert max(b - a for a, b in zip(sizes, sizes[1:])) < 2000  # a generator's state alone is ~5 kB


def test_config_errors():
    exp = get("kto")
    with pytest.raises(ConfigError, match="n_head"):
        exp.make_config({"d_model": 30, "n_head": 4})
    with pytest.raises(ConfigError, match="max_new_tokens"):
        exp.make_config({"max_new_tokens": 40})
    with pytest.raises(ConfigError, match="max_new_tokens"):
        exp.make_config({"data": "some/file.jsonl", "max_new_tokens": 200, "max_context": 128})
    with pytest.raises(ConfigError, match="method"):
        exp.make_config({"method": "rlhf"})


PAIRED_ROWS = [{"prompt": "<food>", "chosen": "great tasty", "rejected": "bland bad"},
               {"prompt": "<movie>", "chosen": "funny good", "rejected": "dull"},
               {"prompt": "<hotel>", "chosen": "clean", "rejected": "noisy dirty"}]
UNPAIRED_ROWS = [{"prompt": "<food>", "completion": "great tasty", "label": True},
                 {"prompt": "<food>", "completion": "bland", "label": False},
                 {"prompt": "<movie>", "completion": "dull bad", "label": False},
                 {"prompt": "<phone>", "completion": "slow", "label": False}]


@pytest.mark.parametrize("rows", [PAIRED_ROWS, UNPAIRED_ROWS], ids=["paired", "unpaired"])
def test_external_data_with_hf_model(tmp_path, rows):
    pytest.importorskip("transformers")
    from workbench.methods.kto import toyworld as W
    from workbench.lib.lm import tiny_gpt2

    model_dir = tiny_gpt2(str(tmp_path / "m"), W.tokenizer().tokens, n_layer=1, n_embd=16, n_head=2)
    path = tmp_path / "feedback.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    res = workbench.run("kto", {"data": str(path), "model": model_dir, "method": "kto", "steps": 3,
                                "batch_size": 4, "eval_samples": 4, "eval_every": 3, "max_new_tokens": 4,
                                "heldout": 0.0}, progress=False)
    assert res.status == "completed", res.error
    assert res.summary["kto/kl"] == res.summary["kto/kl"]  # finite KL estimate
    assert "kto/rewards/chosen" in set(runs.metrics(res.run_id)["name"])
    summary = runs.artifact(res.run_id, "data_summary")
    assert summary["unpaired"] == (6 if rows is PAIRED_ROWS else 4)  # unpaired rows are all used by KTO


def test_resume_mid_alignment_matches_an_uninterrupted_run():
    import threading
    import time

    from workbench.core.engine import Control

    cfg = {"method": "kto", "steps": 6, "eval_every": 3, "checkpoint_every": 2}
    full = workbench.run("kto", cfg, smoke=True, progress=False)
    control = Control()

    def stop_in_alignment():
        while control.steps_done < 23:  # 20 pretraining steps, then 3 of the 6 alignment steps
            time.sleep(0.005)
        control.stop("test")

    threading.Thread(target=stop_in_alignment, daemon=True).start()
    part = workbench.run("kto", cfg, smoke=True, progress=False, control=control)
    assert part.status == "stopped" and control.phase == "align"
    resumed = workbench.run("kto", None, resume=part.run_id, progress=False)
    assert resumed.status == "completed", resumed.error
    assert resumed.summary == pytest.approx(full.summary, abs=1e-6)


def test_user_data_on_the_tiny_model_with_heldout_metrics_and_a_reward(tmp_path):
    """A user's own unpaired feedback, offline: a word tokenizer and a reference pretrained on the data, held-out
    implied rewards every evaluation, and the desirable rate from a reward callable."""
    import torch

    from workbench.methods.kto import toyworld as W

    reviews = W.generate_reviews(80, torch.Generator().manual_seed(3))
    rows = [{"prompt": p, "completion": c, "label": W.is_desirable(c, 1)} for p, c in reviews]
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    res = workbench.run("kto", {"data": str(path), "method": "kto", "steps": 4, "eval_every": 2,
                                "batch_size": 8, "eval_samples": 8, "max_new_tokens": 6, "pretrain_steps": 10,
                                "heldout": 0.25, "d_model": 32, "n_head": 2, "n_layer": 1,
                                "reward": "workbench.methods.kto.toyworld:reward", "reward_threshold": 1}, progress=False)
    assert res.status == "completed", res.error
    names = set(runs.metrics(res.run_id)["name"])
    assert {"kto/heldout/rewards/accuracy", "kto/heldout/rewards/margins", "kto/heldout/logps_change/chosen",
            "kto/eval/kl_se", "pretrain/loss"} <= names
    assert 0.0 <= res.summary["kto/reward_rate"] <= 1.0  # measured by the reward callable
    assert runs.artifact(res.run_id, "data_summary")["heldout"] == 20
    claims = {c["claim"]: c for c in runs.claims(res.run_id)}
    assert any("held-out desirable completions" in k for k in claims)
    frontier = runs.artifact(res.run_id, "frontier")
    steps = [r["step"] for r in (frontier.to_dict("records") if hasattr(frontier, "to_dict") else frontier)]
    assert steps == [0, 2, 4]  # the reference and every evaluation
