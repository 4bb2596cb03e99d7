"""`workbench runs export ID --to tensorboard`: the views of the run arrive as images (through the notebook layer's
``workbench.images`` entry point; kaleido renders them with the system's Chromium)."""
import shutil

import pytest

import workbench


def test_tensorboard_export_carries_the_views_as_images(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install 'workbench[tensorboard]')")
    pytest.importorskip("kaleido", reason="kaleido is not installed (pip install 'workbench[tensorboard]')")
    if not (shutil.which("chromium") or shutil.which("google-chrome")):
        pytest.skip("kaleido needs Chromium (apt-get install chromium) to render the views")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from workbench import runs

    from workbench.core import cli

    res = workbench.run("classify", smoke=True, progress=False)
    assert cli.main(["runs", "export", res.run_id, "--to", "tensorboard", str(tmp_path / "tb")]) == 0
    acc = EventAccumulator(str(tmp_path / "tb" / "classify" / res.run_id), size_guidance={"images": 0})
    acc.Reload()
    tags = acc.Tags()["images"]
    from widgets.views import views_for

    drawn = {f"views/{v.title}" for v in views_for("classify") if v(res.run_id) is not None}
    assert drawn and set(tags) == drawn
    image = acc.Images(sorted(tags)[0])[0]
    assert image.width == 1000 and image.height > 100 and image.encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n"
    assert "train/loss" in acc.Tags()["scalars"] and runs.get(res.run_id)["status"] == "completed"
