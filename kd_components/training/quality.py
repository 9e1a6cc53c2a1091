"""The teacher quality gate: is the teacher better than the student trained alone, region by region?

Distillation passes on what the teacher knows better; where the teacher is not better than the single-modality
baseline there is nothing to pass on, and users of other KD repositories have distilled weak teachers without
noticing. Two pieces:

- ``ValidationRecord``, a validation handler of both bundles, writes ``validation.json`` beside the checkpoints
  after each validation: the metrics of the last validation and of the best one (the weights in ``model.pt``).
- ``teacher_quality_gate``, in the student's ``initialize``, reads the teacher's record (beside its checkpoint)
  and, when given, the baseline's, logs both per region in one line, and warns in one line per region where the
  teacher is not better by ``margin``. It never stops a run: a user may distil a weak teacher on purpose.
- ``margin_channel_weights``, with the student's ``kd_follow_margin`` on, turns the gate into the KD term's
  per-region weights: a region where the teacher is not better than the baseline on validation gets weight 0, so
  the student is not pulled toward a teacher that knows no more there (on the phantom the four-sequence teacher
  is not better than a T1c student on enhancing tumour, which T1c shows best).
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

from ignite.engine import Engine, Events

from kd_components import brats, options
from kd_components.errors import InputError
from kd_components.files import atomic_write_text

__all__ = [
    "RECORD_NAME",
    "REGION_METRICS",
    "ValidationRecord",
    "collapsed",
    "margin_channel_weights",
    "read_validation_record",
    "teacher_quality_gate",
]

logger = logging.getLogger("kd_components.quality")

#: the file ``ValidationRecord`` writes beside the checkpoints.
RECORD_NAME = "validation.json"
#: region -> the validation metric of the bundles' ``validate#additional_metrics``.
REGION_METRICS = {"ET": "val_dice_et", "TC": "val_dice_tc", "WT": "val_dice_wt"}
#: the teacher counts as better on a region when its validation Dice is above the baseline's by at least this.
TEACHER_MARGIN = 0.02


class ValidationRecord:
    """Writes ``<save_dir>/validation.json`` after each validation: ``{"last", "best", "history"}``.

    Each entry holds the epoch and every scalar metric of the evaluator (``val_mean_dice``, ``val_dice_tc`` ...);
    ``best`` is the validation whose key metric was best so far, i.e. the weights the key-metric checkpoint
    (``model.pt``) holds; ``history`` is every validation of this process's run in order (the learning curve; a
    resumed run starts a new one). The file is written atomically.

    It also guards against a silent collapse: when the key metric (``val_mean_dice``) falls below
    ``collapse_fraction`` of the best it reached (once that best is at least ``collapse_min_best``), it logs one
    warning line and writes ``collapsed`` into the record (the first such validation; it stays). A run whose loss
    keeps falling while its Dice falls to 0 is the signature of a teacher term that swamps the supervised one (e.g.
    sigmoid KD at ``kd_weight * T^2 = 10``): the student fits the teacher's softened maps, whose values sit below
    the 0.5 threshold wherever the student cannot tell tumour from background. ``model.pt`` still holds the best
    weights; the ablation and study tables leave collapsed runs out and name them.

    Args:
        save_dir: the folder of the checkpoints (``ckpt_dir``).
        key_metric: the validation metric watched for a collapse.
        collapse_fraction: a validation below this fraction of the best counts as a collapse (0 switches it off).
        collapse_min_best: the best must have reached this before a fall counts (a run that never learnt is not a
            collapse).
    """

    def __init__(
        self,
        save_dir: str | os.PathLike,
        key_metric: str = "val_mean_dice",
        collapse_fraction: float = 0.5,
        collapse_min_best: float = 0.1,
    ):
        if not 0 <= float(collapse_fraction) < 1:
            raise ValueError(f"collapse_fraction must be in [0, 1), got {collapse_fraction}.")
        self.path = Path(save_dir) / RECORD_NAME
        self.record: dict = {}
        self.key_metric = key_metric
        self.collapse_fraction, self.collapse_min_best = float(collapse_fraction), float(collapse_min_best)
        self.best_value = -math.inf

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        metrics = {k: float(v) for k, v in engine.state.metrics.items() if isinstance(v, (int, float))}
        entry = {"epoch": int(engine.state.epoch), **metrics}
        self.record["last"] = entry
        self.record.setdefault("history", []).append(entry)
        best_epoch = getattr(engine.state, "best_metric_epoch", -1)
        if best_epoch == engine.state.epoch or "best" not in self.record:
            self.record["best"] = entry
        self._check_collapse(entry)
        atomic_write_text(self.path, json.dumps(self.record, indent=4) + "\n")

    def _check_collapse(self, entry: dict) -> None:
        value = entry.get(self.key_metric)
        if not isinstance(value, float) or math.isnan(value):
            return
        if (
            "collapsed" not in self.record
            and self.collapse_fraction > 0
            and self.best_value >= self.collapse_min_best
            and value < self.collapse_fraction * self.best_value
        ):
            self.record["collapsed"] = {"epoch": entry["epoch"], self.key_metric: value, "best": self.best_value}
            logger.warning(
                f"collapse: validation {self.key_metric} fell to {value:.3f} at epoch {entry['epoch']} from its best "
                f"{self.best_value:.3f}; a teacher term that swamps the supervised one does this while the loss "
                f"still falls: lower --kd_weight (or --kd_temperature); model.pt keeps the best weights"
            )
        self.best_value = max(self.best_value, value)


def collapsed(path: str | os.PathLike) -> dict | None:
    """The ``collapsed`` entry of a validation record (``path``: the record or its folder), None if none or if the
    run recovered: its best validation (the weights ``model.pt`` holds) came after the fall, above the best before it,
    so the evaluated weights are a result of the run's settings, not of the weights before a collapse."""
    p = Path(path)
    p = p / RECORD_NAME if p.is_dir() else p
    try:
        record = json.loads(p.read_text())
        entry, best = record.get("collapsed"), record.get("best")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(entry, dict):
        return None
    if isinstance(best, dict) and isinstance(best.get("epoch"), int) and best["epoch"] > entry.get("epoch", math.inf):
        return None
    return entry


def read_validation_record(path: str | os.PathLike) -> dict | None:
    """The ``best`` entry of a validation record: ``path`` is the record, its folder, or a checkpoint beside it.

    Returns None when there is no readable record (e.g. published weights without one).
    """
    p = Path(path)
    if p.is_dir():
        p = p / RECORD_NAME
    elif p.name != RECORD_NAME:  # a checkpoint (present or not): the record beside it
        p = p.parent / RECORD_NAME
    try:
        best = json.loads(p.read_text()).get("best")
    except (OSError, ValueError, AttributeError):
        return None
    return best if isinstance(best, dict) else None


def _fmt(best: dict) -> str:
    values = [f"{r} {best[m]:.3f}" for r, m in REGION_METRICS.items() if isinstance(best.get(m), float)]
    return ", ".join(values) + f" (epoch {best.get('epoch', '?')})"


def weak_regions(teacher: dict, baseline: dict, margin: float = TEACHER_MARGIN) -> list[str]:
    """The regions where the teacher's validation Dice is not above the baseline's by ``margin``.

    Args:
        teacher: the teacher's ``best`` validation entry (``read_validation_record``).
        baseline: the baseline student's ``best`` entry.
        margin: how much better the teacher must be to count as better.

    Returns:
        region names in ``REGION_METRICS`` order; a region missing from either record is not judged (not weak).
    """
    weak = []
    for region, metric in REGION_METRICS.items():
        t, b = teacher.get(metric, math.nan), baseline.get(metric, math.nan)
        if isinstance(t, float) and isinstance(b, float) and not t >= b + margin:
            weak.append(region)
    return weak


def teacher_quality_gate(
    teacher_ckpt: str | os.PathLike,
    baseline: str | os.PathLike | None = None,
    required: bool = True,
    margin: float = TEACHER_MARGIN,
) -> list[str]:
    """Log the teacher's validation Dice per region beside the baseline's; warn where the teacher is not better.

    Args:
        teacher_ckpt: the teacher's checkpoint; its ``validation.json`` is read from the same folder.
        baseline: the baseline student's checkpoint folder or record (its ``validation.json``); None if unknown.
        required: False when no teacher term has weight (nothing is checked).
        margin: the teacher must beat the baseline's Dice by at least this much to count as better.

    Returns:
        the regions where the teacher is not better (empty when unknown or all better).
    """
    if not required:
        return []
    teacher = read_validation_record(teacher_ckpt)
    if teacher is None:
        logger.info(
            f"teacher quality: no {RECORD_NAME} beside '{teacher_ckpt}' (published or older weights), so the "
            f"teacher's validation Dice is unknown; compare it with the baseline's before trusting the student"
        )
        return []
    base = read_validation_record(baseline) if baseline else None
    logger.info(
        f"teacher quality: teacher validation Dice {_fmt(teacher)}"
        + (f"; baseline {_fmt(base)}" if base else "; baseline unknown (pass --baseline_validation DIR to compare)")
    )
    if base is None:
        return []
    weak = weak_regions(teacher, base, margin)
    for region in weak:
        t, b = teacher[REGION_METRICS[region]], base[REGION_METRICS[region]]
        logger.warning(
            f"teacher quality: the teacher is not better than the baseline on {region} (validation Dice {t:.3f} "
            f"vs {b:.3f}): distillation has little to pass on there; train the teacher longer or check its data"
        )
    return weak


def margin_channel_weights(
    teacher_ckpt: str | os.PathLike | None,
    baseline: str | os.PathLike | None,
    weights: list[float] | None = None,
    follow_margin: bool = False,
    kd_weight: float = 1.0,
    margin: float = TEACHER_MARGIN,
) -> list[float] | None:
    """The KD term's per-region weights (``brats.REGIONS`` order: TC, WT, ET), zero where the teacher is not better.

    Args:
        teacher_ckpt: the teacher's checkpoint (its ``validation.json`` beside it).
        baseline: the baseline student's checkpoint folder or record.
        weights: the configured weights (``kd_channel_weights``); None weighs every region 1.
        follow_margin: off (default): ``weights`` unchanged. On: each region where the teacher's validation Dice
            is not above the baseline's by ``margin`` gets weight 0.
        kd_weight: the KD term's weight; 0 (the baseline) leaves ``weights`` unchanged, as there is no term.
        margin: as in ``teacher_quality_gate``.

    Raises:
        InputError: with ``follow_margin`` on, a record is missing (the teacher's beside its checkpoint, or no
            ``--baseline_validation``), or the teacher is better on no region (nothing to distil).
    """
    if not options.as_bool(follow_margin, "kd_follow_margin") or float(kd_weight) == 0:
        return weights
    base_weights = [1.0] * len(brats.REGIONS) if weights is None else [float(w) for w in weights]
    teacher = read_validation_record(teacher_ckpt) if teacher_ckpt else None
    base = read_validation_record(baseline) if baseline else None
    if teacher is None or base is None:
        missing = f"the teacher's {RECORD_NAME} beside '{teacher_ckpt}'" if teacher is None else "a baseline record"
        raise InputError(
            f"--kd_follow_margin true needs the validation records of the teacher and of the baseline, but "
            f"{missing} is missing: pass --baseline_validation with the baseline student's models folder, or set "
            f"--kd_follow_margin false."
        )
    weak = weak_regions(teacher, base, margin)
    gated = [0.0 if region in weak else w for region, w in zip(brats.REGIONS, base_weights)]
    if max(gated) == 0:
        raise InputError(
            f"--kd_follow_margin true: the teacher is not better than the baseline on any region by {margin} "
            f"(teacher {_fmt(teacher)}; baseline {_fmt(base)}): nothing to distil; train the teacher longer, or set "
            f"--kd_follow_margin false to distil it anyway."
        )
    logger.info(
        "KD region weights follow the teacher's validation margin: "
        + ", ".join(f"{r} {w:g}" for r, w in zip(brats.REGIONS, gated))
        + (f" (the teacher is not better on {', '.join(weak)})" if weak else "")
    )
    return gated
