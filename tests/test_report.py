"""The report from fixture evaluation files with hand-checked paired differences."""

from __future__ import annotations

import json
import math

import pytest

from kd_components.errors import InputError
from kd_components.tools.report import collect, main, paired_difference

CASES = ["c1", "c2", "c3"]


def _write(folder, tags, dice):
    """dice: {region: [per-case Dice]}; HD95 = 10 * (1 - Dice)."""
    folder.mkdir(parents=True)
    keys = [f"{m}_{r}" for r in ("tc", "wt", "et") for m in ("dice", "hd95")]
    lines = ["case," + ",".join(keys)]
    for i, c in enumerate(CASES):
        vals = []
        for r in ("tc", "wt", "et"):
            vals += [dice[r][i], 10 * (1 - dice[r][i])]
        lines.append(c + "," + ",".join(f"{v:.6g}" for v in vals))
    (folder / "metrics_per_case.csv").write_text("\n".join(lines) + "\n")
    (folder / "metrics_summary.json").write_text(json.dumps({"tags": tags, "metrics": {}}))


@pytest.fixture()
def runs(tmp_path):
    base = {"et": [0.5, 0.6, 0.7], "tc": [0.5, 0.5, 0.5], "wt": [0.8, 0.8, 0.8]}
    _write(
        tmp_path / "teacher" / "test",
        {"model": "teacher", "modality": "all", "seed": 0},
        {"et": [0.9, 0.9, 0.9], "tc": [0.9, 0.9, 0.9], "wt": [0.81, 0.81, 0.81]},
    )
    for seed, et_gain in ((0, 0.1), (1, 0.2)):
        _write(
            tmp_path / "t1ce" / f"seed{seed}" / "baseline" / "test",
            {"model": "baseline", "modality": "t1ce", "seed": seed},
            base,
        )
        _write(
            tmp_path / "t1ce" / f"seed{seed}" / "kd" / "test",
            {"model": "kd", "modality": "t1ce", "seed": seed},
            {"et": [v + et_gain for v in base["et"]], "tc": [0.6, 0.4, 0.5], "wt": base["wt"]},
        )
    return tmp_path


def test_paired_difference_hand_computed(runs):
    ev = collect(runs)
    kd = [e for e in ev if e["model"] == "kd"]
    base = [e for e in ev if e["model"] == "baseline"]
    # ET: every case +0.1 (seed 0) and +0.2 (seed 1) -> +0.15 per case, no spread
    et = paired_difference(kd, base, "dice_et")
    assert et["mean"] == pytest.approx(0.15) and et["low"] == pytest.approx(0.15) and et["n_better"] == 3
    # TC: per case +0.1, -0.1, 0 -> mean 0, sd 0.1, 95% half width t(0.975, 2) * 0.1 / sqrt(3) = 4.3027 * 0.057735
    tc = paired_difference(kd, base, "dice_tc")
    assert tc["mean"] == pytest.approx(0.0, abs=1e-9)
    assert tc["high"] == pytest.approx(4.302653 * 0.1 / math.sqrt(3), rel=1e-4)
    assert tc["n_better"] == 1 and tc["n_cases"] == 3 and tc["n_seeds"] == 2
    # HD95 = 10 (1 - Dice): KD better means lower, counted as better
    assert paired_difference(kd, base, "hd95_et")["n_better"] == 3


def test_report_table_and_figures(runs, capsys):
    assert main(["--runs", str(runs), "--command", "python -m kd_components.tools.demo --seeds 2"]) == 0
    text = (runs / "report.md").read_text()
    assert "| teacher | T1c+T1+T2+FLAIR | 1 | 0.900 | 0.900 | 0.810 |" in text
    assert "| baseline | T1c | 2 | 0.600 | 0.500 | 0.800 |" in text
    assert "| KD student | T1c | 2 | 0.750 ± 0.071 |" in text
    assert "| T1c | ET | +0.150 [+0.150, +0.150] | 3/3 |" in text
    # WT: the teacher (0.81) is not clearly better than the baseline (0.80): flagged
    assert "| T1c | WT |" in text and "teacher not clearly better: little to distil" in text.split("| T1c | WT |")[1]
    assert (runs / "regions.png").stat().st_size > 1000
    assert "python -m kd_components.tools.demo --seeds 2" in text


def test_ill_no_evaluations(tmp_path):
    with pytest.raises(InputError, match="no evaluation found"):
        collect(tmp_path)
    assert main(["--runs", str(tmp_path / "missing")]) == 1


def test_report_states_the_data_and_the_rules_without_machine_paths(runs, tmp_path):
    from kd_components.tools.report import write_report

    (runs / "demo_config.json").write_text(
        json.dumps({"data_dir": "None", "quick": True, "teacher_epochs": 2, "student_epochs": 1})
    )
    (runs / "data").mkdir()
    (runs / "data" / "datalist.json").write_text(json.dumps({"training": [1, 2, 3], "validation": [4], "test": [5, 6]}))
    report = write_report(runs, runs).read_text()
    assert "Data: the synthetic BraTS-like phantom (not real scans); 3 training, 1 validation, 2 test cases" in report
    assert "teacher 2 epochs, students 1 epochs" in report and "BraTS 2021 rules" in report
    assert str(tmp_path) not in report, "no absolute path of this machine"


@pytest.mark.parametrize(
    "values, expected",
    [
        ([2.0, 3.0, 373.13], 3.0),  # one empty-region case is 99% of the sum: the median is shown
        ([2.0, 3.0, 4.0], None),  # no case dominates
        ([0.0, 0.0, 5.0], 0.0),
        ([1.0, 373.13], None),  # fewer than 3 cases: no median
    ],
)
def test_median_beside_a_mean_one_case_dominates(values, expected):
    from kd_components.tools.report import dominating_case_median

    evals = [{"seed": 0, "rows": [{"case": f"c{i}", "hd95_et": v} for i, v in enumerate(values)]}]
    assert dominating_case_median(evals, "hd95_et") == expected


def test_report_keeps_the_splits_apart(runs):
    """A folder scored on test and on validation: one split per report, named in it; test by default."""
    from kd_components.tools.report import write_report

    low = {"et": [0.1, 0.1, 0.1], "tc": [0.1, 0.1, 0.1], "wt": [0.1, 0.1, 0.1]}
    _write(
        runs / "t1ce" / "seed0" / "baseline" / "validation", {"model": "baseline", "modality": "t1ce", "seed": 0}, low
    )
    _write(runs / "t1ce" / "seed0" / "kd" / "validation", {"model": "kd", "modality": "t1ce", "seed": 0}, low)
    text = write_report(runs, runs / "r_test").read_text()
    assert "3 test case(s)" in text and "0.100" not in text
    text = write_report(runs, runs / "r_val", split="validation").read_text()
    assert "3 validation case(s)" in text and "| baseline | T1c | 1 | 0.100" in text


def test_ill_report_split_without_evaluations(runs):
    from kd_components.tools.report import write_report

    with pytest.raises(InputError, match=r"no evaluation on the validation split under '.*' \(found: test\)"):
        write_report(runs, runs / "r", split="validation")


def test_report_opens_with_a_one_line_headline(runs):
    """Line 3: per modality the three KD - baseline differences, whether each interval excludes zero, and the note
    that a short budget is not the converged result."""
    from kd_components.tools.report import write_report

    lines = write_report(runs, runs / "r_head").read_text().splitlines()
    head = lines[2]
    assert head.startswith("**Headline, KD − baseline Dice [95% CI]**: T1c (2 seed(s), test): ")
    assert "ET +0.150 [+0.150, +0.150] (above 0)" in head
    assert "TC +0.000 [-0.248, +0.248] (includes 0)" in head and "WT +0.000" in head
    assert "convergence in docs/results.md" in head


def _best(folder, tc, wt, et):
    folder.mkdir(parents=True, exist_ok=True)
    best = {"epoch": 4, "val_dice_tc": tc, "val_dice_wt": wt, "val_dice_et": et}
    (folder / "validation.json").write_text(json.dumps({"best": best, "last": best}))


@pytest.mark.parametrize(
    "config, expected",
    [({"quick": False, "kd_follow_margin": True}, True), ({"quick": False}, False), ({"quick": True}, False)],
)
def test_report_names_the_regions_kd_was_switched_off(runs, config, expected):
    """A demo run with --kd-follow-margin true (its demo_config.json) names, per seed, the regions where the
    teacher's validation Dice was not 0.02 above that seed's baseline's; the default run (off) says nothing."""
    from kd_components.tools.report import write_report

    (runs / "demo_config.json").write_text(json.dumps(config))
    _best(runs / "teacher" / "models", 0.80, 0.90, 0.70)
    _best(runs / "t1ce" / "seed0" / "baseline" / "models", 0.60, 0.70, 0.71)  # ET not better
    _best(runs / "t1ce" / "seed1" / "baseline" / "models", 0.60, 0.89, 0.60)  # WT +0.01 only
    text = write_report(runs, runs / "r_margin").read_text()
    assert ("T1c seed 0: off on ET; T1c seed 1: off on WT." in text) is expected
    assert ("kd_follow_margin" in text) is expected


def test_report_states_the_et_post_processing(runs):
    from kd_components.tools.report import write_report

    assert "ET post-processing: none" in write_report(runs, runs / "r_none").read_text()
    for summary in runs.rglob("metrics_summary.json"):
        content = json.loads(summary.read_text())
        content["tags"]["et_min_voxels"] = 500
        summary.write_text(json.dumps(content))
    text = write_report(runs, runs / "r_rule").read_text()
    assert "a predicted ET smaller than 500 voxels relabelled as necrosis (`et_min_voxels`" in text
