"""The benchmark command end to end at toy size: every mode measured in its own process, report written."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow


def test_bench_writes_report_with_every_mode(tmp_path):
    out = tmp_path / "benchmarks.md"
    cmd = [sys.executable, "-m", "kd_components.tools.bench", "--roi", "32", "--shape", "40", "40", "40"]
    cmd += ["--iterations", "1", "--warmup", "1", "--sw-shape", "48", "48", "40", "--sw-roi", "32"]
    res = subprocess.run([*cmd, "--output", str(out)], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    report = out.read_text()
    for needle in ("| baseline |", "| kd_online |", "| kd_cached |", "Sliding-window inference over 48x48x40"):
        assert needle in report
    assert "python -m kd_components.tools.bench --roi 32" in report and "torch 2." in report
    data = json.loads(out.with_suffix(".json").read_text())
    for mode in ("baseline", "kd_online", "kd_cached"):
        r = data["results"][mode]
        assert r["iterations"] == 1 and r["iter_s"] > 0 and 0 <= r["data_share"] < 1 and r["peak_rss_gib"] > 0.1


def test_ill_bench_arguments():
    res = subprocess.run(
        [sys.executable, "-m", "kd_components.tools.bench", "--roi", "30"], capture_output=True, text=True, cwd=REPO
    )
    assert res.returncode == 1
    assert res.stderr.strip() == "error: --roi must be a multiple of 8, --iterations >= 1 and --cases >= 2."
