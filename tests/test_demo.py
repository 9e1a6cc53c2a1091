"""The main job in --quick mode, end to end, as the README runs it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow


def _demo(*args, timeout=900):
    return subprocess.run(
        [sys.executable, "-m", "kd_components.tools.demo", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


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


def test_ill_output_holds_other_run(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "demo_config.json").write_text('{"data_dir": "elsewhere", "quick": false}')
    res = _demo("--output", str(out), "--quick")
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1].startswith(f"error: output folder '{out}' holds a demo run with other")


def test_ill_data_dir_missing(tmp_path):
    res = _demo("--output", str(tmp_path / "d"), "--data-dir", str(tmp_path / "none"), "--quick")
    assert res.returncode == 1 and "--data-dir" in res.stderr and "does not exist" in res.stderr


def test_ill_unknown_modality(tmp_path):
    res = _demo("--output", str(tmp_path / "d"), "--modalities", "t1,dwi", "--quick")
    assert res.returncode == 1 and res.stderr.strip().splitlines()[-1].startswith("error: unknown modality 'dwi'")


def test_ill_data_dir_without_brats_cases(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    res = _demo("--output", str(tmp_path / "d"), "--data-dir", str(tmp_path / "notes"), "--quick")
    assert res.returncode == 1 and "no BraTS case found under" in res.stderr.strip().splitlines()[-1]


def test_ill_epochs(tmp_path):
    res = _demo("--output", str(tmp_path / "d"), "--student-epochs", "0", "--quick")
    assert res.returncode == 1 and res.stderr.strip().splitlines()[-1] == "error: --student-epochs 0: give 1 or more."
