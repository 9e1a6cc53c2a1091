"""Training glue the bundle configs reference: the distillation trainer, teacher loading, checkpoints, resume,
progress, torchrun helpers, the run record and the settings checks (the config boundary: ``InputError``)."""

from __future__ import annotations

from kd_components.training import checkpoints, data, distributed, runinfo, settings
from kd_components.training.batch import DistillationBatch, SelectChannelsBatch, SubsetInputBatch
from kd_components.training.metrics import LossTermAverages, RegionMetricsWriter
from kd_components.training.progress import EpochProgressBar
from kd_components.training.resume import BestMetricState, ResumeFromCheckpoint
from kd_components.training.saver import AtomicCheckpointSaver
from kd_components.training.stop import StopOnBadInput
from kd_components.training.teacher import load_teacher
from kd_components.training.trainer import DistillationTrainer, loss_terms

__all__ = [
    "AtomicCheckpointSaver",
    "BestMetricState",
    "DistillationBatch",
    "DistillationTrainer",
    "EpochProgressBar",
    "LossTermAverages",
    "RegionMetricsWriter",
    "ResumeFromCheckpoint",
    "SelectChannelsBatch",
    "SubsetInputBatch",
    "StopOnBadInput",
    "checkpoints",
    "data",
    "distributed",
    "load_teacher",
    "loss_terms",
    "runinfo",
    "settings",
]
