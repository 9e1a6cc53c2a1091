"""Resuming an interrupted training run: the trainer's objects and the validator's best metric."""

from __future__ import annotations

import logging
import os

from ignite.engine import Engine, Events
from monai.handlers import CheckpointLoader

__all__ = ["BestMetricState", "ResumeFromCheckpoint"]


class ResumeFromCheckpoint:
    """Load the last interval checkpoint into the trainer's objects when ``checkpoint`` is given, else nothing.

    Wraps MONAI's ``CheckpointLoader`` (``weights_only=True``) at the trainer's ``STARTED`` event: network, optimizer,
    scheduler, the trainer's epoch and iteration, and the validator's best metric continue where they were.

    Args:
        checkpoint: the checkpoint file, or ``None`` (no resume).
        load_dict: the objects to restore, by the names they were saved under.
        map_location: device for the loaded tensors.
    """

    def __init__(self, checkpoint: str | os.PathLike | None, load_dict: dict, map_location=None):
        self.checkpoint = None if checkpoint in (None, "") else str(checkpoint)
        self.load_dict, self.map_location = load_dict, map_location
        self.logger = logging.getLogger(self.__class__.__name__)

    def attach(self, engine: Engine) -> None:
        if self.checkpoint is None:
            return
        load_dict = {**self.load_dict, "trainer": engine}
        CheckpointLoader(self.checkpoint, load_dict, map_location=self.map_location).attach(engine)
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        self.logger.info(f"resumed from '{self.checkpoint}' at epoch {engine.state.epoch}")


class BestMetricState:
    """The validator's best metric and its epoch as a state dict, so that a resumed run keeps its best model.

    Args:
        evaluator: the validation engine (``state.best_metric``, ``state.best_metric_epoch``).
    """

    def __init__(self, evaluator: Engine):
        self.evaluator = evaluator

    def state_dict(self) -> dict:
        state = self.evaluator.state
        return {"best_metric": float(state.best_metric), "best_metric_epoch": int(state.best_metric_epoch)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.evaluator.state.best_metric = float(state_dict["best_metric"])
        self.evaluator.state.best_metric_epoch = int(state_dict["best_metric_epoch"])
