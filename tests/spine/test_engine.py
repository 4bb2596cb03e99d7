import threading

import pytest
import torch

import workbench
from workbench import runs
from workbench.core.engine import Control, NonFiniteLoss, RunContext, resolve_device
from workbench.core.params import ConfigError

from . import toy  # noqa: F401  (registers "toy")


def losses(run_id, name="train/loss"):
    df = runs.metrics(run_id, [name])
    return list(zip(df.step, df.value))


def test_completed_run_is_recorded_with_everything():
    res = workbench.run("toy", {"steps": 20}, progress=False)
    assert res.status == "completed" and res.error is None
    rec = runs.get(res.run_id)
    assert rec["method"] == "toy" and rec["status"] == "completed" and rec["config"]["steps"] == 20
    assert rec["seed"] == 0 and rec["device"] == "cpu" and rec["version"] == workbench.__version__
    assert rec["ended_at"] >= rec["created_at"]
    assert [s for s, _ in losses(res.run_id)] == list(range(20))
    assert runs.artifact(res.run_id, "weights").shape == (1, 4)
    assert runs.claims(res.run_id)[0]["claim"] == "the loss falls below 1"
    assert rec["summary"]["train/loss"] == pytest.approx(losses(res.run_id)[-1][1])


def test_same_seed_same_metrics_and_other_seed_differs():
    a = workbench.run("toy", {"steps": 15, "seed": 3}, progress=False)
    b = workbench.run("toy", {"steps": 15, "seed": 3}, progress=False)
    c = workbench.run("toy", {"steps": 15, "seed": 4}, progress=False)
    assert losses(a.run_id) == losses(b.run_id)
    assert losses(a.run_id) != losses(c.run_id)


def test_bad_config_raises_before_anything_runs():
    before = len(runs.list())
    with pytest.raises(ConfigError, match="parameter 'lr' = -1.0 is out of range"):
        workbench.run("toy", {"lr": -1.0})
    assert len(runs.list()) == before


def test_nan_loss_stops_the_run_with_the_reason():
    res = workbench.run("toy", {"steps": 20, "nan_at": 7}, progress=False)
    assert res.status == "failed" and "train/loss turned nan at step 7" in res.error
    assert runs.get(res.run_id)["error"] == res.error
    assert [s for s, _ in losses(res.run_id)] == list(range(7))  # everything before the NaN kept


def test_stop_request_ends_run_as_stopped_with_metrics_kept():
    res = workbench.run("toy", {"steps": 50, "stop_at": 9}, progress=False)
    assert res.status == "stopped"
    assert [s for s, _ in losses(res.run_id)] == list(range(10))


def test_stop_from_another_thread_and_pause():
    control = Control()
    out = {}
    thread = threading.Thread(target=lambda: out.update(r=workbench.run(
        "toy", {"steps": 100000, "sleep": 0.001}, control=control, progress=False)))
    thread.start()
    assert control.started.wait(30)
    while control.steps_done < 5:
        threading.Event().wait(0.01)
    control.pause()
    threading.Event().wait(0.3)
    paused_at = control.steps_done
    threading.Event().wait(0.3)
    assert control.steps_done == paused_at and control.paused
    control.resume()
    while control.steps_done < paused_at + 3:
        threading.Event().wait(0.01)
    control.stop()
    thread.join(30)
    assert out["r"].status == "stopped"
    assert len(losses(out["r"].run_id)) == control.steps_done


def test_stop_requested_through_the_store_from_elsewhere():
    control = Control()
    out = {}
    thread = threading.Thread(target=lambda: out.update(r=workbench.run(
        "toy", {"steps": 100000, "sleep": 0.001}, control=control, progress=False)))
    thread.start()
    assert control.started.wait(30)
    runs.stop(control.run_id)
    thread.join(30)
    assert out["r"].status == "stopped" and "run store" in out["r"].error


@pytest.mark.parametrize("pretrain", [0, 6])
def test_resumed_run_continues_the_same_curve(pretrain):
    full = workbench.run("toy", {"steps": 24, "pretrain": pretrain, "checkpoint_every": 4}, progress=False)
    cut = workbench.run("toy", {"steps": 24, "pretrain": pretrain, "checkpoint_every": 4, "stop_at": 13},
                        progress=False)
    assert cut.status == "stopped"
    resumed = workbench.run("toy", {"stop_at": -1}, resume=cut.run_id, progress=False)
    assert resumed.run_id == cut.run_id and resumed.status == "completed"
    assert losses(resumed.run_id) == losses(full.run_id)
    assert losses(resumed.run_id, "pretrain/loss") == losses(full.run_id, "pretrain/loss")
    assert runs.get(cut.run_id)["status"] == "completed"


def test_resume_in_the_middle_of_the_first_phase():
    full = workbench.run("toy", {"steps": 10, "pretrain": 12, "checkpoint_every": 5}, progress=False)
    cut = workbench.run("toy", {"steps": 10, "pretrain": 12, "checkpoint_every": 5, "nan_at": -1,
                                "stop_at": -1, "sleep": 0.0}, progress=False, control=_stop_after(8))
    assert cut.status == "stopped"
    resumed = workbench.run("toy", resume=cut.run_id, progress=False)
    assert losses(resumed.run_id, "pretrain/loss") == losses(full.run_id, "pretrain/loss")
    assert losses(resumed.run_id) == losses(full.run_id)


def _stop_after(n):
    class StopAfter(Control):
        @property
        def stop_requested(self):
            return self.steps_done >= n

    return StopAfter()


def test_resume_needs_a_checkpoint():
    res = workbench.run("toy", {"steps": 3}, progress=False)
    with pytest.raises(ConfigError, match="no checkpoint"):
        workbench.run("toy", resume=res.run_id)


def test_exception_in_method_is_recorded_as_failed():
    from workbench.core.registry import Experiment, register
    from tests.spine.toy import ToyConfig

    def broken(cfg, ctx):
        ctx.log(0, **{"train/loss": 1.0})
        raise RuntimeError("boom")

    register(Experiment("broken", ToyConfig, broken))
    res = workbench.run("broken", progress=False)
    assert res.status == "failed" and "RuntimeError: boom" in res.error
    assert len(losses(res.run_id)) == 1


def test_device_choice():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="device"):
            resolve_device("cuda")


def test_generators_are_named_streams():
    cfg = toy.ToyConfig(seed=1)
    ctx = RunContext(cfg, device=torch.device("cpu"), store=None, run_id=None, writer=None, control=Control())
    a = torch.rand(3, generator=ctx.generator("a"))
    assert ctx.generator("a") is ctx.generator("a")  # one stream per name, continued
    assert not torch.equal(a, torch.rand(3, generator=ctx.generator("a")))
    assert not torch.equal(a, torch.rand(3, generator=ctx.generator("b")))
    again = RunContext(cfg, device=torch.device("cpu"), store=None, run_id=None, writer=None, control=Control())
    assert torch.equal(a, torch.rand(3, generator=again.generator("a")))  # seeded by the run's seed and the name


def test_log_guard_only_on_losses():
    cfg = toy.ToyConfig()

    class W:
        rows = []

        def log(self, step, metrics):
            self.rows.append((step, metrics))

    ctx = RunContext(cfg, device=torch.device("cpu"), store=None, run_id=None, writer=W(), control=Control())
    ctx.log(0, **{"grad_norm": float("inf")})
    with pytest.raises(NonFiniteLoss):
        ctx.log(1, **{"val/loss": float("inf")})


def test_thread_count_small_models_one_thread_then_restored():
    from workbench.core.registry import Experiment, register
    from tests.spine.toy import ToyConfig

    seen = {}

    def probe(cfg, ctx):
        seen["before_track"] = torch.get_num_threads()
        ctx.track(model=torch.nn.Linear(3, 3))
        seen["small"] = torch.get_num_threads()
        return {}

    register(Experiment("threads_probe", ToyConfig, probe))
    torch.set_num_threads(2)
    workbench.run("threads_probe", progress=False)
    assert seen["small"] == 1 and torch.get_num_threads() == 2
    workbench.run("threads_probe", {"threads": 2}, progress=False)
    assert seen["small"] == 2
