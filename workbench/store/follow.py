"""Follow a run through the store, live or finished, from any process: new metrics, new artifacts, status.

No UI here: the notebook dashboard, the Panel app, the demo report and the runs table all draw from it::

    follower = RunFollower(run_id)
    for update in follower.follow(interval=0.25):   # until the run has ended
        curves.add_frame(update.metrics); ...
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from workbench.store.store import Store

FINISHED = ("completed", "stopped", "failed", "crashed", "pruned")


@dataclass
class Update:
    """What changed since the previous poll."""

    record: dict[str, Any]
    metrics: "pd.DataFrame"  # new rows: id, step, name, value, time
    artifacts: list[str] = field(default_factory=list)  # names written or replaced since the last poll

    @property
    def status(self) -> str:
        return self.record["status"]

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


class RunFollower:
    """Polls one run of a store; each :meth:`poll` returns only what is new."""

    def __init__(self, run_id: str, store: "Store | None" = None):
        from workbench.store import runs

        self.store = store or runs.store()
        self.run_id: str = self.store.get(run_id)["id"]
        self.last_row: int | None = None
        self._last_artifact: int = 0

    def poll(self) -> Update:
        """New metric rows and artifacts since the last poll, and the run's record (status, summary...)."""
        import pandas as pd

        record = self.store.get(self.run_id)
        rows = self.store.metrics(self.run_id, since=self.last_row)
        frame = pd.DataFrame([tuple(r) for r in rows], columns=["id", "step", "name", "value", "time"])
        if len(frame):
            self.last_row = int(frame["id"].iloc[-1])
        new = [a for a in self.store.artifacts(self.run_id) if a["id"] > self._last_artifact]
        if new:
            self._last_artifact = max(a["id"] for a in new)
        return Update(record, frame, list(dict.fromkeys(a["name"] for a in new)))

    def follow(self, interval: float = 0.25, timeout: float | None = None) -> Iterator[Update]:
        """Yield an update every ``interval`` seconds until the run has ended (the last update is the final one)."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            update = self.poll()
            yield update
            if update.finished:
                return
            if end is not None and time.monotonic() > end:
                raise TimeoutError(f"run {self.run_id} still {update.status} after {timeout} s")
            time.sleep(interval)
