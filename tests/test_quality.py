from __future__ import annotations

import json
import logging

import pytest
from ignite.engine import Engine

from kd_components.errors import InputError
from kd_components.training.quality import (
    ValidationRecord,
    collapsed,
    margin_channel_weights,
    read_validation_record,
    teacher_quality_gate,
)


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


def test_record_keeps_the_history_of_every_validation(tmp_path):
    record = ValidationRecord(tmp_path)
    for epoch, d in ((2, 0.2), (4, 0.5), (6, 0.4)):
        _validate(record, epoch, 4, {"tc": d, "wt": d, "et": d})
    saved = json.loads((tmp_path / "validation.json").read_text())
    assert [h["epoch"] for h in saved["history"]] == [2, 4, 6]
    assert [h["val_dice_tc"] for h in saved["history"]] == pytest.approx([0.2, 0.5, 0.4])
    assert "collapsed" not in saved, "0.4 of a best of 0.5 is no collapse"


@pytest.mark.parametrize(
    "dice, collapsed_at",
    [
        ([0.6, 0.7, 0.34, 0.0], 6),  # below half the best (0.35) at epoch 6: recorded once, the first time
        ([0.6, 0.7, 0.36, 0.36], None),  # just above half
        ([0.05, 0.08, 0.0, 0.0], None),  # never learnt (best < 0.1): not a collapse
    ],
)
def test_collapse_is_warned_once_and_recorded(tmp_path, caplog, dice, collapsed_at):
    record = ValidationRecord(tmp_path)
    with caplog.at_level(logging.WARNING, logger="kd_components.quality"):
        for i, d in enumerate(dice):
            _validate(record, 2 * (i + 1), 2, {"tc": d, "wt": d, "et": d})
    saved = json.loads((tmp_path / "validation.json").read_text())
    warnings = [r for r in caplog.records if "collapse" in r.getMessage()]
    if collapsed_at is None:
        assert "collapsed" not in saved and not warnings
    else:
        assert saved["collapsed"]["epoch"] == collapsed_at and saved["collapsed"]["best"] == pytest.approx(0.7)
        assert len(warnings) == 1 and "lower --kd_weight" in warnings[0].getMessage()
        assert collapsed(tmp_path) == saved["collapsed"]


def test_a_run_that_recovers_past_its_best_is_not_left_out(tmp_path):
    """A transient fall (a real baseline's validation went 0.459 -> 0.046 -> 0.497) stays in the record, but the run
    is not collapsed once a later validation beats the best before the fall: model.pt holds those later weights."""
    record = ValidationRecord(tmp_path)
    for epoch, best_epoch, d in ((2, 2, 0.6), (4, 4, 0.7), (6, 4, 0.05), (8, 4, 0.65)):
        _validate(record, epoch, best_epoch, {"tc": d, "wt": d, "et": d})
    assert collapsed(tmp_path)["epoch"] == 6, "0.65 is back above half, but below the best 0.7: still collapsed"
    _validate(record, 10, 10, {"tc": 0.75, "wt": 0.75, "et": 0.75})
    saved = json.loads((tmp_path / "validation.json").read_text())
    assert saved["collapsed"]["epoch"] == 6 and saved["best"]["epoch"] == 10
    assert collapsed(tmp_path) is None


def test_ill_collapse_fraction(tmp_path):
    with pytest.raises(ValueError, match="collapse_fraction must be in"):
        ValidationRecord(tmp_path, collapse_fraction=1.5)


@pytest.mark.parametrize(
    "teacher, baseline, weights, expected",
    [
        # TC, WT, ET Dice; better means above the baseline by at least 0.02
        ((0.80, 0.90, 0.70), (0.60, 0.70, 0.71), None, [1.0, 1.0, 0.0]),  # ET below: off
        ((0.80, 0.90, 0.73), (0.60, 0.89, 0.70), [1.0, 0.5, 2.0], [1.0, 0.0, 2.0]),  # WT +0.01: off; ET +0.03: kept
        ((0.80, 0.90, 0.80), (0.60, 0.70, 0.60), [0.5, 1.0, 1.0], [0.5, 1.0, 1.0]),  # better everywhere: as given
    ],
)
def test_margin_weights_switch_kd_off_where_the_teacher_is_not_better(
    tmp_path, caplog, teacher, baseline, weights, expected
):
    t = _record(tmp_path / "teacher", *teacher)
    b = _record(tmp_path / "baseline", *baseline)
    with caplog.at_level(logging.INFO, logger="kd_components.quality"):
        got = margin_channel_weights(t / "model.pt", b, weights, follow_margin=True)
    assert got == pytest.approx(expected)
    assert "KD region weights follow the teacher's validation margin" in caplog.text


def test_margin_weights_off_or_without_a_kd_term_are_the_given_weights(tmp_path):
    t = _record(tmp_path / "teacher", 0.5, 0.5, 0.5)
    b = _record(tmp_path / "baseline", 0.9, 0.9, 0.9)  # teacher worse everywhere: would be refused when followed
    assert margin_channel_weights(t, b, [1, 0.5, 1], follow_margin=False) == [1, 0.5, 1]
    assert margin_channel_weights(t, b, None, follow_margin="false") is None  # a CLI string
    assert margin_channel_weights(t, b, None, follow_margin=True, kd_weight=0) is None  # the baseline


def test_ill_margin_weights(tmp_path):
    t = _record(tmp_path / "teacher", 0.5, 0.5, 0.5)
    b = _record(tmp_path / "baseline", 0.9, 0.9, 0.9)
    with pytest.raises(InputError, match="not better than the baseline on any region"):
        margin_channel_weights(t, b, None, follow_margin=True)
    with pytest.raises(InputError, match="needs the validation records .* a baseline record is missing"):
        margin_channel_weights(t, None, None, follow_margin=True)
    with pytest.raises(InputError, match=r"the teacher's validation.json beside '.*published.pt' is missing"):
        margin_channel_weights(tmp_path / "published.pt", b, None, follow_margin=True)
    with pytest.raises(ValueError, match="kd_follow_margin"):
        margin_channel_weights(t, b, None, follow_margin="maybe")
