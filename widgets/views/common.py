"""Small helpers for views: read stored data defensively (a live run may not have written it yet)."""
from __future__ import annotations

from typing import Any, Callable, Iterable


def stored(run_id: str, name: str) -> Any | None:
    """The latest artifact ``name`` of the run, or ``None`` when the run has not stored it (yet)."""
    from workbench import runs

    if not any(a.get("name") == name for a in runs.artifacts(run_id)):
        return None
    return runs.artifact(run_id, name)


def from_stored(name: str, figure: Callable[..., Any], **kwargs: Any) -> Callable[[str], Any]:
    """A view that draws ``figure(artifact, **kwargs)`` from the run's artifact ``name``, or ``None`` before it exists."""

    def draw(run_id: str) -> Any:
        value = stored(run_id, name)
        return None if value is None else figure(value, **kwargs)

    return draw


def table(value: Any) -> Any:
    """A stored table (DataFrame or list of dicts) as a DataFrame."""
    import pandas as pd

    return value if isinstance(value, pd.DataFrame) else pd.DataFrame(list(value))


def curves(run_id: str, names: Iterable[str], title: str = "", log_y: bool = False) -> Any | None:
    """A static figure of the run's metrics ``names`` (one panel each), or ``None`` if none is logged yet."""
    from workbench import runs

    from ..curves import Series, static_figure

    names = list(names)
    frame = runs.metrics(run_id, names=names)
    if not len(frame):
        return None
    series = Series()
    series.add_frame(run_id[9:] if len(run_id) > 16 else run_id, frame)
    return static_figure(series, metrics=[n for n in names if n in series.metrics], title=title, log_y=log_y,
                         cols=len(series.metrics))
