"""Images of a run's views for exports outside the notebook (``workbench runs export ID --to tensorboard``).

Registered under the ``workbench.images`` entry point, so the core finds it without importing the notebook layer.
Each plotly view of the method is rendered to PNG with kaleido (it drives the system's Chromium); tables and
views that draw nothing are left out. Without kaleido the export has scalars and text only, and says so.
"""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def view_images(run_id: str, width: int = 1000, scale: float = 1.0) -> dict[str, bytes]:
    """``{"views/<title>": PNG bytes}`` for every plotly view of the run (read from the default run store)."""
    try:
        import kaleido  # noqa: F401
    except ImportError:
        log.warning("view images need kaleido (pip install 'workbench[tensorboard]'); exporting without them")
        return {}
    import plotly.graph_objects as go

    from workbench import runs

    from .views import render

    method = runs.get(run_id)["method"]
    out: dict[str, bytes] = {}
    for title, fig in render(method, run_id, claims=False):
        if not isinstance(fig, go.Figure):
            continue
        height = int(fig.layout.height or 450)
        try:
            out[f"views/{title}"] = fig.to_image(format="png", width=width, height=height, scale=scale)
        except Exception as err:  # noqa: BLE001 - one view that cannot be drawn must not sink the export
            log.warning("view %r of run %s could not be rendered: %s", title, run_id, err)
    return out
