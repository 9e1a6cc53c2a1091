"""The benchmark: its report from canned measurements (fast: every figure and verdict follows from the rows by
construction), and the command end to end at toy size on two real rows (slow). No test asserts a duration."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from kd_components.tools import bench


def _row(mode, pipeline, iter_s, floor_s=1.0, rss=1.0):
    return {
        "mode": mode,
        "pipeline": pipeline,
        "batch": 1,
        "crop": [128, 128, 128],
        "iterations": 3,
        "iter_s": iter_s,
        "iter_s_all": [iter_s - 0.1, iter_s, iter_s + 0.2],
        "floor_s": floor_s,
        "teacher_s": 0.0,
        "data_share": 0.05,
        "samples_per_s": 1 / iter_s,
        "peak_rss_gib": rss,
        "peak_gpu_gib": None,
    }


def test_section_from_canned_rows_states_ratios_and_verdicts():
    results = [
        _row("baseline", "default", 10.0),
        _row("kd_online", "default", 13.0),  # 1.30x <= 1.30: met
        _row("kd_cached", "default", 11.5, rss=4.5),  # 1.15x > 1.05: NOT met; RSS above 4 GiB
        _row("baseline", "fast", 9.0),  # fast <= default: met
    ]
    sw = {
        k: 1.0
        for k in (
            "student_default",
            "teacher_default",
            "student_one_window",
            "teacher_one_window",
            "student_whole",
            "teacher_whole",
        )
    }
    sw["whole_window"] = [48, 48, 48]
    args = argparse.Namespace(
        shape=[160, 160, 144], cases=3, warmup=2, iterations=3, sw_shape=[240, 240, 155], sw_roi=128, sw_batch=2
    )
    machine = {"kind": "cpu", "cpu": "test CPU, 2 cores", "gpu": "none", "versions": "v", "threads": 2}
    text = bench._section(results, sw, 5.0, args, machine, "python -m kd_components.tools.bench")
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): line for line in text.splitlines() if "| 128^3 |" in line}
    assert "| 10.00 (9.90-10.20) | 1.00 | 10.00 | 1.00 |" in rows[("baseline", "default")]
    assert "| 1.30 |" in rows[("kd_online", "default")] and "<= 1.30x baseline: met" in rows[("kd_online", "default")]
    assert (
        "| 1.15 |" in rows[("kd_cached", "default")] and "<= 1.05x baseline: NOT met" in rows[("kd_cached", "default")]
    )
    assert "fast <= default: met" in rows[("baseline", "fast")]
    assert "128^3 default pipeline: 4.50 GiB (target < 4 GiB: NOT met)" in text
    assert "fast / default in this run: baseline 0.90x" in text
    skipped = bench._section(results, None, 5.0, args, machine, "python -m kd_components.tools.bench")
    assert "Sliding-window inference: not measured in this run (`--no-sliding-window`)" in skipped
    assert "| setting | student" not in skipped and "| 10.00 (9.90-10.20) |" in skipped
    merged = bench._merge(Path("/nonexistent/benchmarks.md"), "cpu", text)
    assert merged.startswith(bench.HEADER) and "<!-- section:cpu -->" in merged and "Pending: no GPU run" in merged


def test_rounds_pair_each_kd_run_with_its_own_rounds_baseline():
    """Three rounds: the machine slows in round 2 for every mode alike. The pooled medians give cached 10.6 / 10.0 =
    1.06x (NOT met at 1.05); the paired per-round ratios are 1.04, 1.04, 1.06: median 1.04 (met), range 1.04-1.06."""

    def rounds(mode, times):
        return bench._combine([{**_row(mode, "default", t), "iter_s_all": [t, t, t]} for t in times])

    base = rounds("baseline", [10.0, 15.0, 10.0])
    cached = rounds("kd_cached", [10.4, 15.6, 10.6])
    assert base["iter_s"] == 10.0 and base["iterations"] == 9 and base["rounds_s"] == [10.0, 15.0, 10.0]
    assert cached["iter_s"] == 10.6
    median, lo, hi = bench._ratio(cached, base)
    assert (round(median, 3), round(lo, 3), round(hi, 3)) == (1.04, 1.04, 1.06)
    assert bench._verdicts(cached, [base, cached], "cpu") == "<= 1.05x baseline: met"
    one = bench._combine([_row("kd_online", "default", 12.0)])
    assert bench._ratio(one, bench._combine([_row("baseline", "default", 10.0)]))[0] == pytest.approx(1.2)


def test_gpu_verdicts_from_canned_rows():
    """The GPU goals: data share < 5%, <= 1.15x the floor, online <= 1.35x and cached <= 1.05x the baseline, and a
    batch-2 row at >= 1.8x the samples per second of its batch-1 row."""
    base = {**_row("baseline", "fast", 0.10, floor_s=0.09), "data_share": 0.04}  # 1.11x floor, 4%
    online = {**_row("kd_online", "fast", 0.14, floor_s=0.13), "data_share": 0.06}  # 1.40x: NOT met
    cached = _row("kd_cached", "fast", 0.104, floor_s=0.08)  # 1.04x; 1.30x floor: NOT met
    b2 = {**_row("baseline", "fast", 0.105), "batch": 2, "samples_per_s": 2 / 0.105}  # 1.90x samples/s: met
    rows = [base, online, cached, b2]
    assert bench._verdicts(base, rows, "gpu") == "data < 5%: met; <= 1.15x floor: met"
    assert "data < 5%: NOT met" in bench._verdicts(online, rows, "gpu")
    assert "<= 1.35x baseline: NOT met" in bench._verdicts(online, rows, "gpu")
    verdict = bench._verdicts(cached, rows, "gpu")
    assert (
        "<= 1.15x floor: NOT met" in verdict and "<= 1.05x baseline: met" in verdict and "<= KD online: met" in verdict
    )
    assert bench._verdicts(b2, rows, "gpu").endswith("samples/s >= 1.8x batch 1: met")


@pytest.mark.slow
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
        "--modes",
        "baseline",
        "kd_cached",
        "--pipelines",
        "default",
    ]
    res = subprocess.run([*cmd, "--output", str(out)], capture_output=True, text=True, cwd=REPO, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    report = out.read_text()
    for needle in ("| baseline | default | 32^3 | 1 |", "| kd_cached | default | 32^3 | 1 |", "<= 1.05x baseline:"):
        assert needle in report
    assert "Sliding-window inference over 48x48x40" in report and "faster: one 48x48x48 window" in report
    assert "## GPU: an earlier run" in report and "<!-- section:cpu -->" in report, "the other section is kept"
    assert "python -m kd_components.tools.bench --crops 32" in report and "torch 2." in report
    data = json.loads(out.with_suffix(".json").read_text())["cpu"]
    assert [(r["mode"], r["pipeline"]) for r in data["results"]] == [("baseline", "default"), ("kd_cached", "default")]
    for r in data["results"]:
        assert r["iterations"] == 1 and r["iter_s"] > 0 and r["floor_s"] > 0 and 0 <= r["data_share"] < 1
        assert r["samples_per_s"] > 0 and r["peak_rss_gib"] > 0.1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--crops", "30"], "error: --crops '30': give N or XxYxZ with sizes that are multiples of 16"),
        (
            ["--iterations", "0"],
            "error: --iterations >= 1, --cases >= 2, --rounds >= 1 and batch sizes >= 1 are needed.",
        ),
        (["--rounds", "0"], "error: --iterations >= 1, --cases >= 2, --rounds >= 1 and batch sizes >= 1 are needed."),
    ],
)
def test_ill_bench_arguments(args, message):
    res = subprocess.run(
        [sys.executable, "-m", "kd_components.tools.bench", *args], capture_output=True, text=True, cwd=REPO
    )
    assert res.returncode == 1 and res.stderr.strip().startswith(message)
