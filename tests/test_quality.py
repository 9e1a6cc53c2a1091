from __future__ import annotations

import json
import logging

import pytest
from ignite.engine import Engine

from kd_components.training.quality import ValidationRecord, read_validation_record, teacher_quality_gate


def _validate(record: ValidationRecord, epoch: int, best_epoch: int, dice: dict) -> None:
    engine = Engine(lambda e, b: None)
    engine.state.epoch, engine.state.best_metric_epoch = epoch, best_epoch
    engine.state.metrics = {"val_mean_dice": sum(dice.values()) / 3, **{f"val_dice_{k}": v for k, v in dice.items()}}
    record(engine)


def test_record_keeps_the_best_validation_and_the_last(tmp_path):
    record = ValidationRecord(tmp_path)
    _validate(record, 2, 2, {"tc": 0.5, "wt": 0.6, "et": 0.4})
    _validate(record, 4, 2, {"tc": 0.3, "wt": 0.5, "et": 0.2})  # worse: best stays at epoch 2
    saved = json.loads((tmp_path / "validation.json").read_text())
    assert saved["best"]["epoch"] == 2 and saved["best"]["val_dice_tc"] == pytest.approx(0.5)
    assert saved["last"]["epoch"] == 4 and saved["last"]["val_dice_et"] == pytest.approx(0.2)
    _validate(record, 6, 6, {"tc": 0.7, "wt": 0.8, "et": 0.6})
    assert read_validation_record(tmp_path / "model.pt")["epoch"] == 6  # found beside a checkpoint


def _record(folder, tc, wt, et):
    folder.mkdir(parents=True, exist_ok=True)
    best = {"epoch": 8, "val_dice_tc": tc, "val_dice_wt": wt, "val_dice_et": et}
    (folder / "validation.json").write_text(json.dumps({"best": best, "last": best}))
    return folder


def test_gate_warns_in_one_line_where_the_teacher_is_not_better(tmp_path, caplog):
    teacher = _record(tmp_path / "teacher", tc=0.80, wt=0.78, et=0.70)
    baseline = _record(tmp_path / "baseline", tc=0.50, wt=0.77, et=0.71)
    with caplog.at_level(logging.INFO, logger="kd_components.quality"):
        weak = teacher_quality_gate(teacher / "model.pt", baseline)
    assert weak == ["ET", "WT"]  # WT: 0.78 is not 0.02 above 0.77; ET below
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all("\n" not in w for w in warnings)
    assert "on WT (validation Dice 0.780 vs 0.770)" in warnings[1]
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO][0]
    assert "teacher validation Dice ET 0.700, TC 0.800, WT 0.780 (epoch 8); baseline ET 0.710" in info


def test_gate_without_records_or_teacher_terms(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="kd_components.quality"):
        assert teacher_quality_gate(tmp_path / "published.pt") == []
    assert "validation Dice is unknown" in caplog.text
    teacher = _record(tmp_path / "teacher", tc=0.1, wt=0.1, et=0.1)
    assert teacher_quality_gate(teacher / "model.pt", None) == []  # no baseline: logged, nothing to compare
    assert teacher_quality_gate(teacher / "model.pt", _record(tmp_path / "b", 0.9, 0.9, 0.9), required=False) == []
