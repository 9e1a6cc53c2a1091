"""Test-only Ignite handlers: record the cases and loss of each batch per rank; kill the process mid-epoch."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ignite.engine import Engine, Events
from monai.handlers import from_engine


def with_probe(handler: dict) -> dict:
    """Config overrides that add the test handler ``handler`` (a config dict) to a bundle's trainer."""
    return {"probe": handler, "train#trainer#train_handlers": "$@train#handlers + [@probe]"}


class RecordBatches:
    """Append ``{"rank", "epoch", "cases", "loss"}`` per iteration to ``<folder>/rank<R>.jsonl``."""

    def __init__(self, folder: str):
        self.folder = Path(folder)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        import torch.distributed as dist

        rank = dist.get_rank() if dist.is_initialized() else 0
        batch = engine.state.batch  # MONAI decollates it into a list of items for postprocessing
        items = batch if isinstance(batch, list) else [batch]
        cases = [Path(str(item["label"].meta["filename_or_obj"])).parent.name for item in items]
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / f"rank{rank}.jsonl").open("a") as f:
            record = {"rank": rank, "world": int(os.environ.get("WORLD_SIZE", 1)), "epoch": engine.state.epoch}
            f.write(
                json.dumps(
                    {**record, "cases": cases, "loss": float(from_engine(["loss"], first=True)(engine.state.output))}
                )
                + "\n"
            )


class KillAt:
    """Kill this process (SIGKILL, as a power cut would) after iteration ``iteration`` of epoch ``epoch``."""

    def __init__(self, epoch: int, iteration: int = 1):
        self.epoch, self.iteration = int(epoch), int(iteration)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        import signal

        in_epoch = (engine.state.iteration - 1) % engine.state.epoch_length + 1
        if engine.state.epoch == self.epoch and in_epoch == self.iteration:
            os.kill(os.getpid(), signal.SIGKILL)
