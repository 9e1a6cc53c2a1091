"""Learning curves of a study (``kd_components.tools.curves``): steps from the run record, the plateau rule, files."""

from __future__ import annotations

import json

import pytest

from kd_components.tools.curves import main, plateaued, read_curve, steps_per_epoch


@pytest.mark.parametrize(
    "values, expected",
    [
        ([0.2, 0.5, 0.6, 0.603, 0.604, 0.601], True),  # last 3 within 0.005 of the best before (0.6)
        ([0.2, 0.5, 0.6, 0.61, 0.604, 0.601], False),  # 0.61 is up by 0.01
        ([0.5, 0.6, 0.6], False),  # too short to tell
    ],
)
def test_plateau_rule(values, expected):
    assert plateaued(values, last=3, delta=0.005) is expected


def _run(folder, datalist, history, extra=()):
    (folder / "models").mkdir(parents=True)
    (folder / "train").mkdir()
    (folder / "models" / "validation.json").write_text(json.dumps({"history": history}))
    cmd = ["python", "-m", "monai.bundle", "run", "training", "--data_list_file_path", str(datalist), *extra]
    (folder / "train" / "run_record.json").write_text(json.dumps({"command": cmd}))


def _history(values):
    return [
        {"epoch": 2 * (i + 1), "val_mean_dice": v, "val_dice_tc": v, "val_dice_wt": v, "val_dice_et": v}
        for i, v in enumerate(values)
    ]


def test_steps_follow_the_items_of_each_run(tmp_path):
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"training": [{}] * 5, "training_unlabelled": [{}] * 15}))
    assert steps_per_epoch({"command": ["--data_list_file_path", str(datalist)]}) == 5
    extra = ["--unlabelled_split", "training_unlabelled", "--batch_size", "2"]
    assert steps_per_epoch({"command": ["--data_list_file_path", str(datalist), *extra]}) == 10
    _run(tmp_path / "teacher", datalist, _history([0.3, 0.6]))
    _run(tmp_path / "baseline" / "t1ce" / "seed0", datalist, _history([0.2, 0.5, 0.5, 0.5, 0.5]))
    _run(
        tmp_path / "kd" / "t1ce" / "seed0",
        datalist,
        _history([0.3, 0.5]),
        ["--unlabelled_split", "training_unlabelled"],
    )
    assert read_curve(tmp_path / "kd" / "t1ce" / "seed0")["steps"] == [40, 80]
    assert main(["--runs", str(tmp_path), "--output", str(tmp_path / "out" / "c.png")]) == 0
    summary = json.loads((tmp_path / "out" / "c.json").read_text())
    assert (tmp_path / "out" / "c.png").stat().st_size > 0
    assert summary["teacher"]["steps"] == 20 and summary["teacher"]["plateau"] is False
    base = summary["runs"]["baseline"]["t1ce"][0]
    assert base["plateau"] is True and base["final_mean_dice"] == pytest.approx(0.5) and base["steps"] == 50


def test_ill_runs_without_history(tmp_path, capsys):
    assert main(["--runs", str(tmp_path)]) == 1
    assert "no run with a validation history" in capsys.readouterr().err
    assert main(["--runs", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --runs") and "does not exist" in err and len(err.splitlines()) == 1
