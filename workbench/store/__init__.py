"""The run store: runs, metrics, artifacts and claims on SQLite or PostgreSQL, artifact files, follow, exports.

- :mod:`.store`: :class:`Store` (one API over both databases) and the run's metric writer.
- :mod:`.sql`: the two SQL dialects. :mod:`.files`: artifact files on a local path or an fsspec URL.
- :mod:`.follow`: follow a run, live or finished, from any process. :mod:`.interop`: MLflow, TensorBoard, bundles.
"""
from workbench.store.store import Store, default_home

__all__ = ["Store", "default_home"]
