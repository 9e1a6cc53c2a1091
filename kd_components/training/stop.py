"""Bad input found while an engine runs stops it at once: one line, no final checkpoint, no metric file."""

from __future__ import annotations

import logging
import sys

from ignite.engine import Engine, Events

from kd_components.errors import InputError

__all__ = ["StopOnBadInput"]


class StopOnBadInput:
    """Re-raises an ``InputError`` (e.g. a case that cannot be loaded) before any other exception handler runs.

    Ignite hands an exception to the ``EXCEPTION_RAISED`` handlers in the order they were attached, and the first
    one that raises ends the list. MONAI's handlers there save a "final" checkpoint (``CheckpointSaver``) and log a
    traceback (``StatsHandler``); for bad input neither is wanted, so this handler must come first in the engine's
    handlers. Other exceptions pass on to them unchanged.

    Example (bundle config)::

        "handlers": [{"_target_": "kd_components.training.StopOnBadInput"}, ...]
    """

    def __init__(self):
        self.logger = logging.getLogger(self.__class__.__name__)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EXCEPTION_RAISED, self)

    def __call__(self, engine: Engine, e: BaseException) -> None:
        if isinstance(e, InputError):
            print(file=sys.stderr, flush=True)  # a progress bar may have left the line open: the error gets its own
            raise e
