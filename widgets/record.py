"""The outputs of each cell this kernel ran, in order, as notebook outputs: what ``%wb_export`` writes when the
notebook on disk has not been saved since (the middle of "Run All").

``%load_ext widgets`` installs one :class:`OutputRecorder` per shell. It keeps, per cell source (the latest
run of each), the displays (``display_data``) and the printed text (``stream``) in the order they came; the
results (``execute_result``) and errors come from IPython's own history. A display made from a background
thread started with the cell's context (the dashboards do) is filed under that cell, through the message it
answers. :func:`attach` files outputs that only an export should show (a live dashboard's static figures, which
the page already shows inside the dashboard).
"""
from __future__ import annotations

import sys
import threading
from typing import Any

_RECORDERS: dict[int, "OutputRecorder"] = {}


class OutputRecorder:
    """Records display and stream outputs per execution count of one IPython shell."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.cells: dict[int, list[dict]] = {}  # run number -> outputs
        self.sources: dict[str, int] = {}  # cell source (stripped) -> its latest run number
        self.current: int | None = None
        self._runs = 0
        self._by_message: dict[str, int] = {}
        self._lock = threading.Lock()

    # hooks ----------------------------------------------------------------------------------------
    def install(self) -> "OutputRecorder":
        shell = self.shell
        shell.events.register("pre_run_cell", self._pre_run_cell)
        pub = shell.display_pub
        publish, clear = pub.publish, pub.clear_output

        def recorded_publish(data: dict, metadata: dict | None = None, *args: Any, **kw: Any) -> Any:
            if not kw.get("update"):
                self._add({"output_type": "display_data", "data": dict(data), "metadata": dict(metadata or {})})
            return publish(data, metadata, *args, **kw)

        def recorded_clear(wait: bool = False) -> Any:
            count = self._count()
            if count is not None:
                with self._lock:
                    self.cells[count] = []
            return clear(wait)

        pub.publish, pub.clear_output = recorded_publish, recorded_clear
        self._wrap_streams()
        return self

    def _wrap_streams(self) -> None:
        """Record what is printed. IPython swaps ``stream.write`` during each cell and puts back what it found,
        so this runs before every cell, wrapping whatever writer is current unless it is already ours."""
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            write = stream.write
            if getattr(write, "_wb_recorder", None) is self:
                continue

            def recorded_write(text: str, *args: Any, _name: str = name, _write: Any = write, **kw: Any) -> Any:
                if text:
                    self._add({"output_type": "stream", "name": _name, "text": text})
                return _write(text, *args, **kw)

            recorded_write._wb_recorder = self  # type: ignore[attr-defined]
            try:
                stream.write = recorded_write
            except (AttributeError, TypeError):  # a stream that does not allow it: its text is not recorded
                pass

    def _pre_run_cell(self, info: Any = None) -> None:
        self._wrap_streams()
        with self._lock:
            self._runs += 1
            run = self._runs
            self.cells[run] = []
            source = str(getattr(info, "raw_cell", "") or "").strip()
            if source:
                self.sources[source] = run
        self.current = run
        msg_id = self._message_id()
        if msg_id:
            self._by_message[msg_id] = run

    def _message_id(self) -> str | None:
        header = getattr(self.shell.display_pub, "parent_header", None) or {}
        return (header.get("header") or {}).get("msg_id") or header.get("msg_id")

    def _count(self) -> int | None:
        msg_id = self._message_id()
        return self._by_message.get(msg_id, self.current) if msg_id else self.current

    def _add(self, output: dict) -> None:
        count = self._count()
        if count is None:
            return
        with self._lock:
            outputs = self.cells.setdefault(count, [])
            last = outputs[-1] if outputs else None
            if (output["output_type"] == "stream" and last is not None and last["output_type"] == "stream"
                    and last["name"] == output["name"]):
                last["text"] += output["text"]
            else:
                outputs.append(output)

    # reading ----------------------------------------------------------------------------------------
    def outputs(self, source: str) -> tuple[list[dict], int | None] | None:
        """The notebook outputs of the latest run of the cell ``source`` and its execution count
        (None when this recorder did not see it run)."""
        source = source.strip()
        run = self.sources.get(source)
        if run is None:
            return None
        with self._lock:
            out = [dict(o) for o in self.cells.get(run, [])]
        history = getattr(self.shell, "history_manager", None)
        raw = list(getattr(history, "input_hist_raw", []) or [])
        count = max((i for i, s in enumerate(raw) if i and s.strip() == source), default=None)
        if count is not None:
            for item in (getattr(history, "outputs", {}) or {}).get(count, []):
                if item.output_type == "execute_result":
                    out.append({"output_type": "execute_result", "data": dict(item.bundle), "metadata": {},
                                "execution_count": count})
            err = (getattr(history, "exceptions", {}) or {}).get(count)
            if err:
                out.append({"output_type": "error", "ename": str(err.get("ename", "")),
                            "evalue": str(err.get("evalue", "")), "traceback": list(err.get("traceback", []))})
        return out, count


def install(shell: Any) -> OutputRecorder:
    """The recorder of ``shell`` (installed once)."""
    key = id(shell)
    if key not in _RECORDERS:
        _RECORDERS[key] = OutputRecorder(shell).install()
    return _RECORDERS[key]


def recorder(shell: Any) -> OutputRecorder | None:
    return _RECORDERS.get(id(shell))


def attach(outputs: list[dict]) -> bool:
    """File ``outputs`` under the cell now running, for exports only: the front end is not sent them (a live
    dashboard already shows them). False when no recorder runs here (``%load_ext widgets`` not loaded)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    rec = recorder(get_ipython()) if get_ipython() is not None else None
    if rec is None:
        return False
    for out in outputs:
        rec._add(dict(out))
    return True
