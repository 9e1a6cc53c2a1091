"""Helpers for torchrun + DistributedDataParallel training with the bundles (``configs/multi_gpu_train.json``).

Only rank 0 writes: each writing handler in the bundle configs carries ``"_disabled_": "@is_not_rank0"``, MONAI's
own way (``monai.bundle.utils``), so it is never built on other ranks.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

from kd_components.errors import InputError

__all__ = ["backend", "check_adapter_for_ddp", "device", "init_process_group", "rank", "world_size"]


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


def init_process_group(backend: str) -> None:
    """Start torchrun's process group (once) and let Ignite know it, on every rank.

    Ignite's ``idist.get_rank()`` creates a process sub-group the first time it is called, which is a collective:
    every rank must take part. Checkpoint savers ask for the rank when they are built, and they are built on rank 0
    only, so without this sync rank 0 would wait there for ever while the others train.

    Args:
        backend: ``nccl`` or ``gloo`` (:func:`backend`).
    """
    import ignite.distributed as idist

    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    idist.sync()


def check_adapter_for_ddp(feature_adapter: nn.Module | None) -> None:
    """Refuse a trainable feature adapter under DDP: only the student network is synchronised across ranks.

    Raises:
        InputError: ``feature_adapter`` has parameters and more than one process trains.
    """
    if world_size() > 1 and feature_adapter is not None and any(True for _ in feature_adapter.parameters()):
        raise InputError(
            "the feature adapter (student and teacher feature widths differ) would train separately on each rank "
            "under DDP: use a student as wide as the teacher (init_filters) or --feature_weight 0 for multi-GPU."
        )
