"""The main job in --quick mode, end to end, as the README runs it (slow); its plan and refusals in process (fast)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO

from kd_components.tools import demo


def _demo(*args, timeout=900):
    return subprocess.run(
        [sys.executable, "-m", "kd_components.tools.demo", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _refused(capsys, *args) -> str:
    """Run the demo in process on arguments it must refuse; the one line it prints."""
    assert demo.main(list(args)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.slow
def test_quick_demo_end_to_end_and_reuse(tmp_path):
    out = tmp_path / "demo"
    res = _demo("--output", str(out), "--quick")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    for stage in (
        "synthetic phantom",
        "teacher (4 modalities): training",
        "t1ce student, seed 0, baseline: training",
        "t1ce student, seed 0, KD: evaluation on the test split",
        "report",
    ):
        assert f"] {stage} ===" in res.stdout, stage
    assert "python -m monai.bundle run training" in res.stdout.replace(sys.executable, "python")
    assert (out / "teacher" / "models" / "model.pt").is_file()
    for model in ("baseline", "kd"):
        assert (out / "t1ce" / "seed0" / model / "test" / "metrics_per_case.csv").is_file()
    report = (out / "report.md").read_text()
    assert "| KD student | T1c | 1 |" in report and "| T1c | ET |" in report and "One seed is not evidence" in report
    assert (out / "regions.png").is_file() and (out / "case.png").is_file()
    again = _demo("--output", str(out), "--quick")
    assert again.returncode == 0 and again.stdout.count("done already") == 7, "finished stages are reused"


def _kd_training(stages):
    return next(s for s in stages if s.name.endswith("KD: training"))


@pytest.mark.parametrize("quick, flag, expected", [(False, None, "False"), (True, None, "False"), (True, True, "True")])
def test_plan_passes_the_margin_rule_and_the_seeds_baseline(tmp_path, quick, flag, expected):
    stages = demo.plan(tmp_path, None, quick, ["t1ce"], [0], kd_follow_margin=flag)
    names = [s.name for s in stages]
    assert names.index("t1ce student, seed 0, baseline: training") < names.index("t1ce student, seed 0, KD: training")
    cmd = _kd_training(stages).cmd
    assert cmd[cmd.index("--kd_follow_margin") + 1] == expected
    assert cmd[cmd.index("--baseline_validation") + 1] == str(tmp_path / "t1ce" / "seed0" / "baseline" / "models")


def test_ill_output_holds_other_run(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "demo_config.json").write_text('{"data_dir": "elsewhere", "quick": false}')
    assert _refused(capsys, "--output", str(out), "--quick").startswith(
        f"error: output folder '{out}' holds a demo run with other"
    )


def test_ill_data_dir_missing(tmp_path, capsys):
    line = _refused(capsys, "--output", str(tmp_path / "d"), "--data-dir", str(tmp_path / "none"), "--quick")
    assert "--data-dir" in line and "does not exist" in line
    assert not (tmp_path / "d").exists(), "a refused run writes nothing"


def test_ill_unknown_modality(tmp_path, capsys):
    line = _refused(capsys, "--output", str(tmp_path / "d"), "--modalities", "t1,dwi", "--quick")
    assert line.startswith("error: --modalities: unknown modality 'dwi'")


def test_ill_data_dir_without_brats_cases(tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    line = _refused(capsys, "--output", str(tmp_path / "d"), "--data-dir", str(tmp_path / "notes"), "--quick")
    assert "no BraTS case found under" in line


def test_ill_epochs(tmp_path, capsys):
    line = _refused(capsys, "--output", str(tmp_path / "d"), "--student-epochs", "0", "--quick")
    assert line == "error: --student-epochs 0: give 1 or more."
