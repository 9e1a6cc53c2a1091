"""Loading the teacher for distillation: checked, frozen, in eval mode, before anything is built or written."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from kd_components.errors import InputError
from kd_components.training.checkpoints import load_network
from kd_components.training.settings import missing_teacher

__all__ = ["load_teacher"]

logger = logging.getLogger("kd_components.teacher")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def load_teacher(
    network: nn.Module,
    checkpoint: str | os.PathLike,
    required: bool = True,
    protected_dirs: Sequence[str | os.PathLike] = (),
) -> nn.Module | None:
    """The teacher: ``network`` with the weights of ``checkpoint``, frozen and in eval mode; None when not required.

    Reads a plain state dict, ``{"model": ...}`` (MONAI ``CheckpointSaver``, model-zoo ``model.pt``) or TorchScript,
    always with ``weights_only=True``; the weights must fit ``network`` strictly. The teacher's parameters get
    ``requires_grad_(False)``; ``DistillationTrainer`` moves it to its device, keeps it in eval mode every iteration
    and runs it under ``torch.no_grad()``. It is never wrapped in DDP.

    Example (bundle config)::

        "teacher": {
            "_target_": "kd_components.training.load_teacher",
            "network": "@teacher_def",
            "checkpoint": "@teacher_ckpt",
            "required": "$@loss.needs_teacher",
            "protected_dirs": ["@ckpt_dir", "@output_dir"]
        }

    Args:
        network: the teacher's architecture.
        checkpoint: its weights.
        required: False when no teacher term has weight: then nothing is read (not even the path checked) and
            None comes back, so the trainer runs no teacher.
        protected_dirs: the student's output folders; a checkpoint inside one is refused (student training would
            write beside or over the teacher).

    Raises:
        InputError: a missing or unreadable checkpoint, one that does not fit ``network``, or one inside
            ``protected_dirs``.
    """
    if not required:
        logger.info("no teacher term has weight (kd_weight = feature_weight = 0): the teacher is not loaded")
        return None
    path = Path(checkpoint)
    if not path.is_file():
        raise InputError(missing_teacher(path) + ".")
    resolved = path.resolve()
    for folder in (Path(d).resolve() for d in protected_dirs):
        if _inside(resolved, folder) or folder == resolved.parent:
            raise InputError(
                f"teacher checkpoint '{path}' lies in the student's output folder '{folder}': student training would "
                f"write beside or over the teacher; copy the teacher elsewhere or change the student's --ckpt_dir / "
                f"--output_dir."
            )
    teacher = load_network(network, path, "teacher checkpoint")
    teacher.eval()
    if not isinstance(teacher, torch.jit.ScriptModule):
        # channels-last 3D convolutions: about 1.8x faster teacher forwards on CPU (docs/benchmarks.md)
        teacher.to(memory_format=torch.channels_last_3d)
    for param in teacher.parameters():  # (TorchScript modules have no requires_grad_())
        param.requires_grad_(False)
    logger.info(f"teacher loaded from {path}, frozen")
    return teacher
