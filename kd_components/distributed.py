"""Helpers for torchrun + DistributedDataParallel training with the bundles (``configs/multi_gpu_train.json``).

The bundles' trainers and evaluators take their handler lists through :func:`handlers_for_rank`: without a process
group it returns the list unchanged; under torchrun, ranks other than 0 drop the handlers that write (checkpoints,
logs, TensorBoard, progress bars, metric files), so exactly one set of files is written, while the handlers every
rank must run (teacher inference, learning-rate schedule, validation, checkpoint loading) stay everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.distributed as dist

__all__ = [
    "WRITING_HANDLERS",
    "backend",
    "check_loss_for_ddp",
    "device",
    "handlers_for_rank",
    "log_dir_for_rank",
    "rank",
    "world_size",
]

#: handler classes (by name) that write files or logs: rank 0 only.
WRITING_HANDLERS = frozenset(
    {
        "CheckpointSaver",
        "AtomicCheckpointSaver",
        "StatsHandler",
        "TensorBoardStatsHandler",
        "TensorBoardImageHandler",
        "MetricsSaver",
        "ClassificationSaver",
        "MLFlowHandler",
        "EpochProgressBar",
        "ProgressBar",
        "RegionMetricsWriter",
    }
)


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def backend() -> str:
    """``nccl`` when CUDA is available, ``gloo`` otherwise (CPU)."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def device() -> torch.device:
    """``cuda:LOCAL_RANK`` on GPUs, ``cpu`` otherwise."""
    if torch.cuda.is_available():
        return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    return torch.device("cpu")


def handlers_for_rank(handlers: Sequence | None) -> list:
    """``handlers`` as they are on rank 0 (or without torchrun); without the writing ones on other ranks."""
    handlers = list(handlers or [])
    if rank() == 0:
        return handlers
    return [h for h in handlers if type(h).__name__ not in WRITING_HANDLERS]


def check_loss_for_ddp(loss) -> None:
    """Refuse trainable loss parameters (the feature adapter) under DDP: only the network is synchronised.

    Raises:
        InputError: ``loss`` has parameters and more than one process trains.
    """
    from kd_components.errors import InputError

    if world_size() > 1 and any(True for _ in loss.parameters()):
        raise InputError(
            "the feature adapter (student and teacher feature widths differ) would train separately on each rank "
            "under DDP: use a student as wide as the teacher (init_filters) or --feature_weight 0 for multi-GPU."
        )


def log_dir_for_rank(path: str) -> str:
    """``path`` on rank 0; on other ranks a temporary folder removed at exit.

    TensorBoard handlers open their event file when they are built, before a rank's writing handlers are dropped,
    so ranks other than 0 are pointed elsewhere (torchrun's ``RANK`` is read, so the process group need not exist
    yet).
    """
    import atexit
    import shutil
    import tempfile

    r = int(os.environ.get("RANK", rank()))
    if r == 0:
        return path
    tmp = tempfile.mkdtemp(prefix=f"kd_rank{r}_")
    atexit.register(shutil.rmtree, tmp, True)
    return tmp
