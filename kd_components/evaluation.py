"""Per-case, per-region evaluation (Dice and HD95) with the BraTS conventions for empty regions.

Conventions (those of the BraTS 2021 evaluation scripts, stated because later releases differ):

- region empty in both prediction and ground truth: Dice 1, HD95 0;
- empty in exactly one of them: Dice 0, HD95 373.13 mm (the diagonal of the BraTS volume).

Dice and HD95 come from MONAI (``compute_dice``, ``compute_hausdorff_distance(percentile=95)``, with the
voxel spacing of the image, so HD95 is in mm). MONAI's HD95 takes the larger of the two directed 95th
percentiles; the 2023+ official tool pools both directions, which can give slightly smaller values.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.metrics import compute_dice, compute_hausdorff_distance

from kd_components.brats import REGIONS
from kd_components.files import atomic_write_text
from kd_components.transforms import regions_to_labels

__all__ = ["HD95_EMPTY_PENALTY", "region_metrics", "summarize", "RegionMetricsWriter"]

#: HD95 (mm) when a region is empty in exactly one of prediction and ground truth.
HD95_EMPTY_PENALTY = 373.13


def region_metrics(
    pred: torch.Tensor, label: torch.Tensor, spacing: Sequence[float] | None = None, regions: Sequence[str] = REGIONS
) -> dict[str, float]:
    """Dice and HD95 per region of one case.

    Args:
        pred: binary regions, (C, H, W, D) with C = len(regions) (TC, WT, ET).
        label: binary regions, same shape.
        spacing: voxel size in mm (HD95 in mm); None for voxel units.
        regions: names of the channels.

    Returns:
        ``{"dice_tc": ..., "hd95_tc": ..., ...}``.

    Raises:
        ValueError: shapes differ (both printed).
    """
    if pred.shape != label.shape or pred.shape[0] != len(regions):
        raise ValueError(
            f"pred {tuple(pred.shape)} and label {tuple(label.shape)} must both be ({len(regions)}, H, W, D)."
        )
    out: dict[str, float] = {}
    p, y = (torch.as_tensor(pred) > 0.5).float(), (torch.as_tensor(label) > 0.5).float()
    for c, name in enumerate(regions):
        pc, yc = p[c : c + 1][None], y[c : c + 1][None]  # (1, 1, H, W, D)
        p_empty, y_empty = not bool(pc.any()), not bool(yc.any())
        key = name.lower()
        if p_empty and y_empty:
            dice, hd = 1.0, 0.0
        elif p_empty or y_empty:
            dice, hd = 0.0, HD95_EMPTY_PENALTY
        else:
            dice = float(compute_dice(pc, yc, include_background=True)[0, 0])
            hd = float(
                compute_hausdorff_distance(pc, yc, include_background=True, percentile=95, spacing=spacing)[0, 0]
            )
        out[f"dice_{key}"], out[f"hd95_{key}"] = dice, hd
    return out


def summarize(rows: Sequence[Mapping[str, float]], keys: Sequence[str]) -> dict[str, dict[str, float]]:
    """Mean, standard deviation, median and count of each metric over cases."""
    summary = {}
    for k in keys:
        v = np.array([float(r[k]) for r in rows], dtype=np.float64)
        summary[k] = {
            "mean": float(v.mean()) if len(v) else float("nan"),
            "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "median": float(np.median(v)) if len(v) else float("nan"),
            "n": len(v),
        }
    return summary


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
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        tags: Mapping | None = None,
        pred_key: str = "pred",
        label_key: str = "label",
        case_key: str = "case",
        save_cases: int = 0,
    ):
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
            row.update(region_metrics(pred.detach().cpu(), label.detach().cpu(), _spacing(label)))
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
            "conventions": {
                "regions": "TC = {1, ET}, WT = {1, 2, ET}, ET = {ET}",
                "both_empty": "Dice 1, HD95 0",
                "one_empty": f"Dice 0, HD95 {HD95_EMPTY_PENALTY}",
                "hd95": "MONAI compute_hausdorff_distance(percentile=95), mm",
            },
            "num_cases": len(self.rows),
            "metrics": summarize(self.rows, keys),
        }
        atomic_write_text(self.output_dir / "metrics_summary.json", json.dumps(summary, indent=4) + "\n")
        means = ", ".join(f"{k} {v['mean']:.3f}" for k, v in summary["metrics"].items())
        self.logger.info(f"{len(self.rows)} cases evaluated -> {self.output_dir}: {means}")


def read_per_case(path: str | os.PathLike) -> list[dict]:
    """Rows of a ``metrics_per_case.csv`` with floats for the metrics."""
    with open(path, newline="") as f:
        return [{k: (v if k == "case" else float(v)) for k, v in row.items()} for row in csv.DictReader(f)]
