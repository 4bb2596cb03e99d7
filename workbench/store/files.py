"""Where artifact files live: a local (or mounted, shared) directory, or any ``fsspec`` URL (``s3://...``).

The database indexes each artifact by a path relative to the root, so machines that mount a shared directory at
different places, or reach a bucket under different credentials, read the same rows.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any


class ArtifactFiles:
    """Files under ``root``: a directory path, or a URL that ``fsspec`` understands (``file://`` is a directory)."""

    def __init__(self, root: str | os.PathLike):
        text = os.fspath(root)
        if text.startswith("file://"):
            text = text[len("file://"):]
        self.url = "://" in text
        self._fs: Any = None
        if self.url:
            try:
                import fsspec
            except ImportError as err:  # pragma: no cover - fsspec comes with datasets
                raise ImportError(f"artifact root {text!r} is a URL: pip install fsspec (and its backend)") from err
            self._fs, self.root = fsspec.core.url_to_fs(text)
            self._protocol = text.split("://", 1)[0]
        else:
            self.root = str(Path(text).expanduser())

    def __repr__(self) -> str:
        return f"ArtifactFiles({self.where()!r})"

    def where(self, rel: str = "") -> str:
        """The full path (or URL) of ``rel``."""
        if self.url:
            path = self.root.rstrip("/") + ("/" + rel if rel else "")
            return f"{self._protocol}://{path}" if "://" not in path else path
        return str(Path(self.root) / rel) if rel else self.root

    def _path(self, rel: str) -> str:
        return self.root.rstrip("/") + "/" + rel if self.url else str(Path(self.root) / rel)

    def write(self, rel: str, data: bytes) -> str:
        """Write atomically where the file system allows it (a temporary name, then a rename)."""
        path = self._path(rel)
        if self.url:
            parent = path.rsplit("/", 1)[0]
            self._fs.makedirs(parent, exist_ok=True)
            self._fs.pipe_file(path, data)
            return self.where(rel)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        return str(target)

    def read(self, rel: str) -> bytes:
        path = self._path(rel)
        try:
            return self._fs.cat_file(path) if self.url else Path(path).read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(
                f"artifact file {self.where(rel)} is missing: the database indexes it but this machine does not "
                "see it. A PostgreSQL store needs an artifact root every machine reaches: set WORKBENCH_ARTIFACTS "
                "(or ?artifacts= in the store URL) to a shared directory or an fsspec URL"
            ) from None

    def exists(self, rel: str) -> bool:
        path = self._path(rel)
        return bool(self._fs.exists(path)) if self.url else Path(path).exists()

    def remove_tree(self, rel: str) -> None:
        path = self._path(rel)
        if self.url:
            if self._fs.exists(path):
                self._fs.rm(path, recursive=True)
        elif Path(path).exists():
            shutil.rmtree(path)
