"""Errors a user can act on: a file, dataset or model that a run needs is missing or unreadable.

``str(err)`` is ONE line (what is wrong, which file or name, what to do): the command line prints it and the
run store keeps it as the failed run's error; ``err.details`` holds the longer explanation, kept with the
traceback in the run's record. Experiments raise them from their ``preflight`` (before a run is created) or
while running; the engine records the run as failed with that one line.
"""
from __future__ import annotations


class SourceError(Exception):
    """A file, dataset or model the run needs is missing or unreadable (one-line message, ``details``)."""

    def __init__(self, message: str, details: str = ""):
        super().__init__(" ".join(message.split()))  # one line, whatever the caller wrote
        self.details = details

    def __str__(self) -> str:
        return self.args[0] if self.args else ""


class DataNotFound(SourceError, LookupError):
    """No source could serve a dataset."""


class DataCorrupt(SourceError, ValueError):
    """A data file exists but cannot be read (truncated, not the format its name says)."""


class ModelNotFound(SourceError, OSError):
    """A model directory or hub id cannot be loaded."""
