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

__all__ = ["ZOO_TEACHER", "load_teacher", "teacher_weights"]

logger = logging.getLogger("kd_components.teacher")

#: the model zoo's BraTS bundle, usable as the teacher (same SegResNet, channels T1c, T1, T2, FLAIR)
ZOO_TEACHER = "brats_mri_segmentation"
ZOO_SPLIT_WARNING = (
    "the teacher is the model zoo's brats_mri_segmentation: its weights were trained on its own random split of "
    "BraTS 2018 (scripts/prepare_datalist.py, seed 123, 200 training / 42 validation / 43 test cases), which this "
    "project cannot reproduce; cases of BraTS 2018 (and the 2018 cases inside later releases) in your validation or "
    "test split may be cases the teacher was trained on: test on cases it never saw (e.g. BraTS 2023 cases new "
    "after 2018)"
)


def _zoo_bundle_name(bundle_dir: Path) -> str | None:
    import json

    meta = bundle_dir / "configs" / "metadata.json"
    try:
        name = json.loads(meta.read_text()).get("name", "") if meta.is_file() else ""
    except (OSError, ValueError):
        name = ""
    if bundle_dir.name == ZOO_TEACHER or "BraTS MRI segmentation" in str(name):
        return ZOO_TEACHER
    return None


def teacher_weights(path: str | os.PathLike) -> str:
    """The teacher's weights file for ``--teacher_ckpt``: a ``model.pt``, or a bundle folder (this project's teacher
    bundle, or the model zoo's downloaded ``brats_mri_segmentation``), whose ``models/model.pt`` is taken.

    Logs one warning when the weights are the model zoo's ``brats_mri_segmentation`` (it was trained on a split of
    BraTS 2018 this project cannot know). Checks nothing else: a path that does not exist comes back as given and
    is refused, in one line, only where a teacher is needed.
    """
    p = Path(path)
    if p.is_dir():
        for candidate in (p / "models" / "model.pt", p / "model.pt"):
            if candidate.is_file():
                p = candidate
                break
    bundle = p.parent.parent if p.parent.name == "models" else p.parent
    if p.is_file() and _zoo_bundle_name(bundle):
        logger.warning(ZOO_SPLIT_WARNING)
    return str(p)


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
