"""A run as TensorBoard event files: every metric as a scalar series (its steps and wall times), the config, summary
and claims as text, and, through an optional hook, images. ``pip install 'workbench[tensorboard]'``.

The core draws nothing (views live in the notebook layer, which the core never imports). Images come from a hook:
``images=fn`` with ``fn(run_id) -> {name: PNG bytes | PIL image | HxWxC uint8 array}``, or, with ``images="auto"``,
the first function registered under the ``workbench.images`` entry point group (the notebook layer can render
its views there); without one the export has scalars and text only.
"""
from __future__ import annotations

import io
import json
import math
import os
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from workbench.store.store import _jsonable

if TYPE_CHECKING:  # pragma: no cover
    from workbench.store.store import Store

ImageHook = Callable[[str], "dict[str, Any]"]


def image_hook() -> ImageHook | None:
    """The function registered under the ``workbench.images`` entry point group, if any."""
    for ep in entry_points(group="workbench.images"):
        return ep.load()
    return None


def export_tensorboard(store: "Store", run_id: str, logdir: str | os.PathLike,
                       images: ImageHook | str | None = None) -> Path:
    """Write run ``run_id`` under ``logdir/<method>/<run_id>/`` (``tensorboard --logdir logdir`` shows every run
    exported there side by side); returns that directory."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ImportError("TensorBoard export needs tensorboard: pip install 'workbench[tensorboard]'") from err
    record = store.get(run_id)
    out = Path(logdir) / record["method"] / record["id"]
    out.mkdir(parents=True, exist_ok=True)
    writer = SummaryWriter(log_dir=str(out), max_queue=1000, flush_secs=3600)
    try:
        for rows in store.metric_chunks(record["id"]):
            for _, step, name, value, when in rows:
                writer.add_scalar(name, math.nan if value is None else float(value), int(step), walltime=when)
        end = record.get("ended_at") or record.get("created_at")
        writer.add_text("workbench/config", _code(record.get("config") or {}), 0, walltime=end)
        writer.add_text("workbench/summary", _code(record.get("summary") or {}), 0, walltime=end)
        status = f"**{record['status']}**" + (f": {record['error']}" if record.get("error") else "")
        writer.add_text("workbench/status", status, 0, walltime=end)
        claims = store.claims(record["id"])
        if claims:
            writer.add_text("workbench/claims", _claims_table(claims), 0, walltime=end)
        hook = image_hook() if images == "auto" else images
        if callable(hook):
            for name, image in (hook(record["id"]) or {}).items():
                writer.add_image(name, _hwc(image), 0, walltime=end, dataformats="HWC")
    finally:
        writer.close()
    return out


def _code(value: Any) -> str:
    text = json.dumps(_jsonable(value), indent=2)
    return "\n".join("    " + line for line in text.splitlines())  # markdown code block


def _claims_table(claims: list[dict[str, Any]]) -> str:
    """The claims as a markdown table (TensorBoard renders the text as markdown): statement, method vs arm,
    effect ± uncertainty with its interval, seeds, rule, outcome with its reason, detail."""
    from .claims import interval_text, markdown_table, note, rows

    cols = (("claim", "claim"), ("comparison", "method vs arm"), ("effect", "effect ± uncertainty"),
            ("interval", "interval"), ("seeds", "seeds"), ("rule", "rule"), ("outcome", "outcome"),
            ("note", "detail"))
    table = [{**r, "interval": interval_text(c), "note": note(c)} for r, c in zip(rows(claims), claims)]
    return markdown_table(table, cols)


def _hwc(image: Any) -> Any:
    """PNG bytes, a PIL image or an array as an HxWxC uint8 array."""
    import numpy as np

    if isinstance(image, (bytes, bytearray)):
        from PIL import Image

        image = Image.open(io.BytesIO(image))
    if hasattr(image, "convert"):
        image = np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.dtype != np.uint8:
        array = (np.clip(array, 0, 1) * 255).astype(np.uint8)
    return array
