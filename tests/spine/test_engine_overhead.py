"""The step loop's per-step work: the progress bar is redrawn at most once per ``PROGRESS_REFRESH_S``, a stop or
pause is honoured before the next step, and ``ctx.log`` keeps its checks (behaviour, never timing)."""
import threading

import numpy as np
import pytest
import torch

from tests.spine import toy
from workbench.core import context
from workbench.core.context import Control, NonFiniteLoss, RunContext, RunStopped


class _Rows:
    def __init__(self) -> None:
        self.rows: list = []

    def log(self, step, metrics):
        self.rows.append((step, dict(metrics)))


def _ctx(progress: bool = False, control: Control | None = None, writer=None) -> RunContext:
    return RunContext(toy.ToyConfig(), device=torch.device("cpu"), store=None, run_id=None,
                      writer=writer or _Rows(), control=control or Control(), progress=progress)


class _Clock:
    """A clock the test advances by hand (seconds)."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def fake_bar(monkeypatch):
    """Replace tqdm with a recorder of (time, position) at every update, and the loop's clock with a manual one."""
    import tqdm.auto

    clock = _Clock()
    bars = []

    class Bar:
        def __init__(self, total, initial=0, **kw):
            self.n, self.total, self.kw, self.updates, self.closed = initial, total, kw, [], False
            bars.append(self)

        def update(self, k):
            self.n += k
            self.updates.append((clock.t, self.n))

        def close(self):
            self.closed = True

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    monkeypatch.setattr(context, "_clock", clock)
    return clock, bars


@pytest.mark.parametrize("step_s", [0.001, 0.03, 0.7])
def test_bar_updates_at_most_once_per_refresh_interval_and_stays_current(fake_bar, step_s):
    clock, bars = fake_bar
    refresh = context.PROGRESS_REFRESH_S
    total = 400
    for step in _ctx(progress=True).steps(total):
        clock.t += step_s  # the step's (simulated) duration
        bar = bars[0]
        # after every step the bar is at most one refresh interval behind the loop
        last = bar.updates[-1] if bar.updates else (100.0, 0)
        assert clock.t - last[0] < refresh + step_s
    bar = bars[0]
    assert bar.closed and bar.kw["mininterval"] == 0  # tqdm draws on each of our updates, no more
    times = [t for t, _ in bar.updates]
    assert all(b - a >= refresh for a, b in zip(times, times[1:]))
    elapsed = total * step_s
    assert len(times) <= elapsed / refresh + 1
    if step_s >= refresh:  # slow steps: every step is shown
        assert [n for _, n in bar.updates] == list(range(1, total + 1))
    else:
        assert len(times) >= elapsed / (refresh + step_s) - 1
    assert [n for _, n in bar.updates] == sorted({n for _, n in bar.updates})  # forward only, whole steps


def test_real_tqdm_redraws_are_bounded_by_elapsed_time(capsys):
    """With the real tqdm writing to stderr, a fast loop redraws about twice a second, not at every step."""
    import time

    t0 = time.perf_counter()
    n = 0
    for _ in _ctx(progress=True).steps(30_000):
        n += 1
    elapsed = time.perf_counter() - t0
    draws = capsys.readouterr().err.count("\r")
    assert n == 30_000
    assert draws <= elapsed / context.PROGRESS_REFRESH_S + 4  # opening draw, close, and the clear


def test_resumed_bar_starts_at_the_resume_step(fake_bar):
    clock, bars = fake_bar
    for _ in _ctx(progress=True).steps(50, start=20):
        clock.t += 1.0
    assert bars[0].n == 50 and bars[0].updates[0] == (101.0, 21)


def test_stop_requested_inside_a_step_ends_the_loop_before_the_next():
    ctx = _ctx()
    seen = []
    with pytest.raises(RunStopped, match="enough"):
        for step in ctx.steps(100):
            seen.append(step)
            if step == 3:
                ctx.control.stop("enough")
    assert seen == [0, 1, 2, 3] and ctx.control.steps_done == 4


def test_paused_loop_waits_and_resumes():
    ctx = _ctx()
    paused, seen = threading.Event(), []
    for step in ctx.steps(6):
        seen.append(step)
        if step == 2:
            ctx.control.pause()
            threading.Thread(target=lambda: (paused.wait(5), ctx.control.resume()), daemon=True).start()
            paused.set()
    assert seen == list(range(6)) and not ctx.control.paused


def test_control_subclass_deciding_stop_itself_is_still_asked():
    class After3(Control):
        @property
        def stop_requested(self):
            return self.steps_done >= 3

    seen = []
    with pytest.raises(RunStopped):
        for step in _ctx(control=After3()).steps(10):
            seen.append(step)
    assert seen == [0, 1, 2]


def test_log_converts_checks_and_leaves_the_callers_dict_alone():
    rows = _Rows()
    ctx = _ctx(writer=rows)
    values = {"train/loss": torch.tensor(0.25), "acc": np.float32(0.5), "n": 3, "ok": True}
    ctx.log(7, **values)
    assert isinstance(values["train/loss"], torch.Tensor)  # the caller's mapping is not rewritten
    step, logged = rows.rows[0]
    assert step == 7 and logged == {"train/loss": 0.25, "acc": 0.5, "n": 3.0, "ok": 1.0}
    assert all(type(v) is float for v in logged.values()) and ctx.last == logged
    ctx.log(8, **{"grad_norm": float("inf"), "val/acc": float("nan")})  # only losses must stay finite
    for bad in (float("nan"), float("inf"), -float("inf"), torch.tensor(float("nan"))):
        with pytest.raises(NonFiniteLoss, match="train/loss turned"):
            ctx.log(9, **{"train/loss": bad})
    assert len(rows.rows) == 2 and ctx.last["train/loss"] == 0.25  # a refused row is not recorded
