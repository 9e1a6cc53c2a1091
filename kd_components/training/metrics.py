"""``RegionMetricsWriter``: the evaluator handler that writes Dice and HD95 per case and region
(``kd_components.evaluation``'s rules) as ``metrics_per_case.csv`` and ``metrics_summary.json``;
``LossTermAverages``: the trainer handler that averages every loss term of the iterations per epoch."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events

from kd_components.evaluation import CONVENTIONS, check_convention, region_metrics, summarize
from kd_components.files import atomic_write_text
from kd_components.transforms import regions_to_labels

__all__ = ["LossTermAverages", "RegionMetricsWriter"]


def _spacing(x: torch.Tensor) -> list[float] | None:
    affine = getattr(x, "affine", None)
    if affine is None:
        return None
    a = torch.as_tensor(affine, dtype=torch.float64)
    return [float(v) for v in torch.linalg.norm(a[:3, :3], dim=0)]


class RegionMetricsWriter:
    """Evaluator handler: Dice and HD95 per case and region, written as a CSV and a summary JSON.

    Files in ``output_dir``: ``metrics_per_case.csv`` (one row per case) and ``metrics_summary.json`` (mean, std,
    median per metric, the number of cases, the conventions, and ``tags``). With ``save_cases > 0`` the first
    cases' arrays (image, ground truth and predicted label maps, cropped as evaluated) are kept in
    ``cases/CASE.npz`` for figures.

    Args:
        output_dir: folder to write (created).
        tags: free description stored in the summary, e.g. ``{"model": "kd", "modality": "t1ce", "seed": 0}``.
        pred_key: key of the binary region prediction (3 channels) in the engine output.
        label_key: key of the region ground truth.
        case_key: key of the case name in the batch (the datalist's ``case``).
        save_cases: number of cases whose arrays are kept for figures.
        convention: metric rules, ``brats2021`` or ``brats2023`` (stated in the summary).

    Raises:
        ValueError: an unknown convention.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        tags: Mapping | None = None,
        pred_key: str = "pred",
        label_key: str = "label",
        case_key: str = "case",
        save_cases: int = 0,
        convention: str = "brats2021",
    ):
        self.convention = check_convention(convention)
        self.output_dir = Path(output_dir)
        self.tags = dict(tags or {})
        self.pred_key, self.label_key, self.case_key = pred_key, label_key, case_key
        self.save_cases = int(save_cases)
        self.rows: list[dict] = []
        self.logger = logging.getLogger(self.__class__.__name__)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._write)

    def _reset(self, engine: Engine) -> None:
        self.rows = []

    def __call__(self, engine: Engine) -> None:
        outputs = engine.state.output if isinstance(engine.state.output, list) else [engine.state.output]
        batches = engine.state.batch if isinstance(engine.state.batch, list) else [engine.state.batch]
        for i, out in enumerate(outputs):
            pred, label = out[self.pred_key], out[self.label_key]
            item = batches[i] if i < len(batches) and isinstance(batches[i], Mapping) else {}
            case = item.get(self.case_key) or Path(str(getattr(label, "meta", {}).get("filename_or_obj", ""))).name
            row = {"case": str(case or f"case_{len(self.rows):04d}")}
            row.update(
                region_metrics(pred.detach().cpu(), label.detach().cpu(), _spacing(label), convention=self.convention)
            )
            self.rows.append(row)
            if len(self.rows) <= self.save_cases:
                self._save_case(row["case"], item.get("image", out.get("image")), pred, label)

    def _save_case(self, case: str, image, pred, label) -> None:
        folder = self.output_dir / "cases"
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {
            "pred": regions_to_labels(pred.detach().cpu())[0].numpy(),
            "label": regions_to_labels(label.detach().cpu())[0].numpy(),
        }
        if image is not None:
            arrays["image"] = torch.as_tensor(image).detach().cpu().numpy().astype(np.float16)
        np.savez_compressed(folder / f"{case}.npz", **arrays)

    def _write(self, engine: Engine) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        keys = [k for k in self.rows[0] if k != "case"] if self.rows else []
        lines = [",".join(["case", *keys])] + [",".join([r["case"], *(f"{r[k]:.6g}" for k in keys)]) for r in self.rows]
        atomic_write_text(self.output_dir / "metrics_per_case.csv", "\n".join(lines) + "\n")
        summary = {
            "tags": self.tags,
            "convention": self.convention,
            "conventions": {"regions": "TC = {1, ET}, WT = {1, 2, ET}, ET = {ET}", **CONVENTIONS[self.convention]},
            "num_cases": len(self.rows),
            "metrics": summarize(self.rows, keys, self.convention),
        }
        atomic_write_text(self.output_dir / "metrics_summary.json", json.dumps(summary, indent=4) + "\n")
        means = ", ".join(f"{k} {v['mean']:.3f}" for k, v in summary["metrics"].items())
        self.logger.info(
            f"evaluation of the label maps, {len(self.rows)} whole cases, {self.convention} rules (a region empty in "
            f"both = Dice 1), mean over cases -> {self.output_dir}: {means}"
        )


class LossTermAverages:
    """Trainer handler: the epoch average of every ``loss_<name>`` entry the iterations put into
    ``engine.state.output`` (the plugged-in distillation terms of ``kd_terms`` included, whatever their names), as
    ``engine.state.metrics["train_loss_<name>"]`` (read by the metric writers and TensorBoard), logged once per epoch.

    Entries a metric already averages (``train_loss_kd`` ... of the bundle's ``additional_metrics``) are left to it.

    Args:
        prefix: the metric name's prefix.
    """

    def __init__(self, prefix: str = "train_"):
        self.prefix = prefix
        self.logger = logging.getLogger("kd_components.training.LossTermAverages")
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._accumulate)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def _reset(self, engine: Engine) -> None:
        self._sums, self._counts = {}, {}

    def _accumulate(self, engine: Engine) -> None:
        output = engine.state.output
        output = output[0] if isinstance(output, list) and output else output
        if not isinstance(output, Mapping):
            return
        for key, value in output.items():
            if isinstance(key, str) and key.startswith("loss_") and isinstance(value, (torch.Tensor, float, int)):
                self._sums[key] = self._sums.get(key, 0.0) + float(torch.as_tensor(value).detach().float().mean())
                self._counts[key] = self._counts.get(key, 0) + 1

    def __call__(self, engine: Engine) -> None:
        new = {}
        for key, total in self._sums.items():
            name = f"{self.prefix}{key}"
            if name not in engine.state.metrics or name in getattr(self, "_own", set()):
                new[name] = total / self._counts[key]
        self._own = set(new)
        engine.state.metrics.update(new)
        if new:
            text = " ".join(f"{k}: {v:.4f}" for k, v in sorted(new.items()))
            self.logger.info(f"Epoch[{engine.state.epoch}] distillation terms -- {text}")
