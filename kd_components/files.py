"""Writing files so that a kill never leaves half of one: write a temporary file beside it, then rename."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_text", "file_md5"]


def _ending(name: str) -> str:
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed to ``path`` when the block ends without error.

    The temporary name keeps the ending (``.nii.gz``, ``.npz``, ``.zip`` ...), so writers that choose the format by
    it still do, and is unique per process. Creates the parent folder; on error the temporary file is removed and
    an existing ``path`` stays as it was.

    Example::

        with atomic_path("out/case.nii.gz") as tmp:
            nib.save(image, str(tmp))
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ending = _ending(path.name)
    tmp = path.with_name(f".{path.name[: len(path.name) - len(ending)]}.{os.getpid()}.tmp{ending}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through :func:`atomic_path`. Returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def file_md5(path: str | os.PathLike) -> str:
    """md5 of a file's bytes, read in 1 MiB chunks (checkpoint digests in large_files.yml and the logit cache)."""
    h = hashlib.md5()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
