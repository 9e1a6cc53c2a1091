"""The main job in --quick mode, end to end, as the README runs it."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def _demo(*args, timeout=900):
    return subprocess.run(
        [sys.executable, "-m", "kd_components.demo", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def test_quick_demo_end_to_end_and_reuse(tmp_path):
    out = tmp_path / "demo"
    res = _demo("--output", str(out), "--quick")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "=== synthetic phantom ===" in res.stdout and "=== teacher (4 modalities) ===" in res.stdout
    assert "python -m monai.bundle run training" in res.stdout.replace(sys.executable, "python")
    assert (out / "data" / "datalist.json").is_file()
    assert (out / "teacher" / "models" / "model.pt").is_file()
    again = _demo("--output", str(out), "--quick")
    assert again.returncode == 0 and again.stdout.count("done already") == 2


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
