"""The code base stays ruff-clean (lint and format, 120 columns, settings in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]])
def test_ruff(args):
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    res = subprocess.run([ruff, *args], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_no_large_or_private_files_tracked():
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    big = [f for f in files if (REPO / f).is_file() and (REPO / f).stat().st_size > 1 << 20]
    assert not big, f"files over 1 MB are tracked: {big}"
    images = [f for f in files if f.endswith((".nii", ".nii.gz", ".pt", ".ts", ".pth"))]
    assert not images, f"images or checkpoints are tracked: {images}"


def _tracked() -> list[str]:
    return subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()


def test_no_logs_or_machine_paths_tracked():
    """Run logs and files that hold this machine's absolute paths (the checkout, the home folder, pytest's temporary
    folders) are never committed: they are outputs, not sources."""
    files = _tracked()
    logs = [f for f in files if f.endswith(".log")]
    assert not logs, f"log files are tracked: {logs}"
    markers = {str(REPO), str(REPO.parent), str(Path.home()), "/tmp/pytest-of-", "/root/", "/home/runner/"}
    # a folder is a marker with its separator: /work/ is this machine's, /workspace/ (the zoo's example) is not
    markers = {m if m.endswith("/") else m + "/" for m in markers if len(m) > 4}
    offending = []
    for f in files:
        path = REPO / f
        if not path.is_file() or path.suffix in (".png", ".zip", ".pt") or f == "tests/test_style.py":
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        hits = sorted(m for m in markers if m in text)
        if hits:
            offending.append(f"{f}: {hits[0]}")
    assert not offending, f"files hold absolute machine paths: {offending}"
