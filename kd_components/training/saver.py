"""Checkpoints written atomically: a kill while writing never leaves a truncated file."""

from __future__ import annotations

import os
from pathlib import Path

from ignite.engine import Engine
from ignite.handlers import DiskSaver
from monai.handlers import CheckpointSaver

__all__ = ["AtomicCheckpointSaver"]


class _AtomicDiskSaver(DiskSaver):
    """Ignite's ``DiskSaver`` with ``atomic=True`` (temporary file, then rename) and readable permissions."""

    def __init__(self, dirname: str, filename: str | None = None, replaces: str | None = None):
        super().__init__(dirname=dirname, require_empty=False, atomic=True)
        self.filename, self.replaces = filename, replaces

    def __call__(self, checkpoint, filename: str, metadata=None) -> None:
        filename = self.filename or filename
        super().__call__(checkpoint=checkpoint, filename=filename, metadata=metadata)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(os.path.join(self.dirname, filename), 0o666 & ~umask)  # the temporary file was 0600
        if self.replaces:  # older files of the same purpose, e.g. the last checkpoint of a run this one resumed
            for old in Path(self.dirname).glob(self.replaces):
                if old.name != filename:
                    old.unlink(missing_ok=True)

    def remove(self, filename: str) -> None:
        super().remove(filename=self.filename or filename)


class AtomicCheckpointSaver(CheckpointSaver):
    """MONAI's ``CheckpointSaver`` writing every file atomically: to a temporary file, then renamed.

    MONAI saves with ``atomic=False``, so a run killed while writing leaves a truncated ``model.pt``; here the old
    file stays whole until the new one is complete.

    Args:
        save_dir: folder of the checkpoints.
        save_dict: objects to save by name.
        save_engine_as: also save the engine it is attached to under this name (e.g. ``"trainer"`` for resuming:
            epoch and iteration), which a config cannot reference from inside the trainer's own handlers.
        kwargs: the other arguments of ``monai.handlers.CheckpointSaver``.
    """

    def __init__(self, save_dir: str, save_dict: dict, save_engine_as: str | None = None, **kwargs):
        self.save_engine_as = save_engine_as
        super().__init__(save_dir, save_dict, **kwargs)
        names = {
            "_final_checkpoint": kwargs.get("final_filename"),
            "_key_metric_checkpoint": kwargs.get("key_metric_filename"),
            "_interval_checkpoint": None,
        }
        # one interval checkpoint kept (n_saved 1): it replaces every older one of its prefix, also those of an
        # earlier run that this one resumed (Ignite only removes the files it wrote itself)
        prefix = kwargs.get("file_prefix", "")
        replaces = f"{prefix}_checkpoint_*.pt" if prefix and kwargs.get("n_saved", 1) == 1 else None
        for attr, filename in names.items():
            checkpoint = getattr(self, attr)
            if checkpoint is not None:
                kept = replaces if attr == "_interval_checkpoint" else None
                checkpoint.save_handler = _AtomicDiskSaver(self.save_dir, filename, kept)

    def attach(self, engine: Engine) -> None:
        if self.save_engine_as:
            self.save_dict[self.save_engine_as] = engine  # the Checkpoint objects hold this very dict
        super().attach(engine)
