from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # wb_tiny (import-mode=importlib adds no paths)

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    """Each test gets its own run store (unless the suite's conftest already set one up)."""
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    yield


@pytest.fixture()
def tiny():
    import wb_tiny as tiny

    return tiny.EXPERIMENT
