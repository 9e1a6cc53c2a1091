"""Writing files so that a kill never leaves half of one: write a temporary file beside it, then rename."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["atomic_write_text", "file_md5"]


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder (unique per process) and a rename.

    Creates the parent folder. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def file_md5(path: str | os.PathLike) -> str:
    """md5 of a file's bytes, read in 1 MiB chunks (checkpoint digests in large_files.yml and the logit cache)."""
    h = hashlib.md5()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
