"""A progress bar over each epoch's iterations that a bundle config can set up."""

from __future__ import annotations

from collections.abc import Callable

from ignite.engine import Engine, Events

try:
    from ignite.handlers import ProgressBar
except ImportError:  # pytorch-ignite < 0.5 (MONAI Label's environment) keeps it in contrib
    from ignite.contrib.handlers import ProgressBar

__all__ = ["EpochProgressBar"]


class EpochProgressBar:
    """tqdm progress bar over the iterations of each epoch, showing the running loss.

    Ignite's ``ProgressBar`` takes its ``output_transform`` in ``attach``, which MONAI engines call with the
    engine only; this wrapper takes it in ``__init__`` so that a bundle config can set it.

    Args:
        output_transform: maps ``engine.state.output`` to the values shown (default: the ``loss`` of the batch).
        persist: keep the bar on screen after each epoch.
    """

    def __init__(self, output_transform: Callable | None = None, persist: bool = False):
        self.output_transform = output_transform or _loss_of
        self.persist = persist

    def attach(self, engine: Engine) -> None:
        bar = ProgressBar(persist=self.persist)
        bar.attach(engine, output_transform=self.output_transform, event_name=Events.ITERATION_COMPLETED)


def _loss_of(output) -> dict:
    out = output[0] if isinstance(output, list) else output
    return {"loss": float(out["loss"])} if isinstance(out, dict) and "loss" in out else {}
