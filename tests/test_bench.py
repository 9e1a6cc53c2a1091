"""The benchmark command end to end at toy size: every mode and pipeline in its own process, the report section."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow


def test_bench_writes_its_machines_section_and_keeps_the_other(tmp_path):
    out = tmp_path / "benchmarks.md"
    out.write_text("<!-- section:gpu -->\n## GPU: an earlier run\n<!-- /section:gpu -->\n")
    cmd = [sys.executable, "-m", "kd_components.tools.bench", "--crops", "32", "--shape", "40", "40", "40"]
    cmd += [
        "--iterations",
        "1",
        "--warmup",
        "1",
        "--sw-shape",
        "48",
        "48",
        "40",
        "--sw-roi",
        "32",
        "--batch-sizes",
        "1",
        "2",
    ]
    res = subprocess.run([*cmd, "--output", str(out)], capture_output=True, text=True, cwd=REPO, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    report = out.read_text()
    for needle in ("| baseline | default | 32^3 | 1 |", "| kd_cached | fast | 32^3 | 2 |", "fast <= default:"):
        assert needle in report
    assert "Sliding-window inference over 48x48x40" in report and "faster: one 48x48x48 window" in report
    assert "## GPU: an earlier run" in report and "<!-- section:cpu -->" in report, "the other section is kept"
    assert "python -m kd_components.tools.bench --crops 32" in report and "torch 2." in report
    data = json.loads(out.with_suffix(".json").read_text())["cpu"]
    assert len(data["results"]) == 3 * 2 * 2
    for r in data["results"]:
        assert r["iterations"] == 1 and r["iter_s"] > 0 and r["floor_s"] > 0 and 0 <= r["data_share"] < 1
        assert r["samples_per_s"] > 0 and r["peak_rss_gib"] > 0.1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--crops", "30"], "error: --crops '30': give N or XxYxZ with sizes that are multiples of 16"),
        (["--iterations", "0"], "error: --iterations >= 1, --cases >= 2 and batch sizes >= 1 are needed."),
    ],
)
def test_ill_bench_arguments(args, message):
    res = subprocess.run(
        [sys.executable, "-m", "kd_components.tools.bench", *args], capture_output=True, text=True, cwd=REPO
    )
    assert res.returncode == 1 and res.stderr.strip().startswith(message)
