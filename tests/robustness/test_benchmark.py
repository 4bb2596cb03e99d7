"""The corruption benchmark of several models reads each corruption once and agrees with the one-model path."""
from __future__ import annotations

import torch

from workbench.lib import data
from workbench.lib.nn import build_model
from workbench.lib.robustness.benchmark import corruption_rows, corruption_summary, evaluate_classifier
from workbench.lib.robustness.dataset_c import load_c


def test_corruption_rows_of_several_models_equal_the_loaded_path(tmp_path):
    names = ("fog", "contrast")
    xt, yt = data.tensors("digits", "test")
    models = {}
    for i, name in enumerate(("a", "b")):
        torch.manual_seed(i)
        models[name] = build_model("cnn", (1, 8, 8), 10, width=4).eval()
    rows = corruption_rows(models, "digits", names, yt[:12], limit=12, root=tmp_path)
    for name, model in models.items():
        loaded = {(c, s): load_c("digits", c, s, limit=12, root=tmp_path)[0] for c in names for s in range(1, 6)}
        ev = evaluate_classifier(model, "digits", names, limit=12, corrupted=loaded, root=tmp_path, noise=False)
        assert ev["rows"] == rows[name]
        n = ev["summary"]["clean_accuracy"] * len(yt)
        assert abs(n - round(n)) < 1e-3  # the clean accuracy counts all test images, not the first 12
    assert corruption_summary(rows["a"]) == {}  # neither the 15 standard nor the 4 extra corruptions complete
