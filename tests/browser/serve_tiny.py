"""Serve the Panel app with the tiny test experiment registered: ``python serve_tiny.py PORT``."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "widgets"))
import wb_tiny  # noqa: E402,F401  (registers "wbtiny" and its view)

from widgets.cli import serve  # noqa: E402

sys.exit(serve(["--port", sys.argv[1], "--only", "wbtiny"]))
