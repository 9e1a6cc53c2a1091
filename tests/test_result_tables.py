"""scripts/data_efficiency_table.py and scripts/variant_table.py: the result tables from the per-case tables."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import REPO

spec = importlib.util.spec_from_file_location("data_efficiency_table", REPO / "scripts" / "data_efficiency_table.py")
det = importlib.util.module_from_spec(spec)
spec.loader.exec_module(det)
spec = importlib.util.spec_from_file_location("variant_table", REPO / "scripts" / "variant_table.py")
vt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(vt)


def _runs(folder, dice_by_case, split="test", seed=0):
    table = folder / f"seed{seed}" / split / "metrics_per_case.csv"
    table.parent.mkdir(parents=True)
    lines = ["case,dice_tc,hd95_tc,dice_wt,hd95_wt,dice_et,hd95_et"]
    lines += [f"{c},{d},1,{d},1,{d},1" for c, d in dice_by_case.items()]
    table.write_text("\n".join(lines) + "\n")


def test_rows_and_paired_differences_by_hand(tmp_path):
    full, part = tmp_path / "full", tmp_path / "quarter"
    _runs(full / "baseline" / "t1ce", {"a": 0.7, "b": 0.6})
    _runs(part / "baseline" / "t1ce", {"a": 0.5, "b": 0.5})
    # teacher outputs only: a +0.1, b +0.3 over the fraction's baseline -> mean +0.2, 2 of 2 better;
    # t(1) 97.5% = 12.706, sd 0.1414 / sqrt 2 = 0.1 -> [-1.071, +1.471]
    _runs(part / "voxel_mean_unlabelled" / "t1ce", {"a": 0.6, "b": 0.8})
    out = det.table(full, part, "t1ce", 0, "6", "26").splitlines()
    # full-label baseline: a +0.2, b +0.1 over the fraction's -> +0.15, sd 0.0707 / sqrt 2 = 0.05 -> [-0.485, +0.785]
    assert out[2].startswith("| all labels, baseline | 26 | 0.650 / 0.650 / 0.650 | +0.150 [−0.485, +0.785] 2/2 |")
    assert out[3] == "| all labels, KD (shipped recipe) | 26 | (not run) | | | | | | |"
    unlabelled = out[5]
    assert "| 0.700 / 0.700 / 0.700 | +0.200 [−1.071, +1.471] 2/2 |" in unlabelled
    # against the full-label baseline: a -0.1, b +0.2 -> +0.05, sd 0.2121 / sqrt 2 = 0.15 -> [-1.856, +1.956]
    assert unlabelled.endswith("+0.050 [−1.856, +1.956] 1/2 |")
    assert "(not run)" in out[6] and "(not run)" in out[7], "no pseudo-label runs yet"


def test_ill_folders(tmp_path):
    with pytest.raises(SystemExit, match="not a folder; give the ablation's --output folders"):
        det.main(["--full", str(tmp_path / "nope"), "--fraction", str(tmp_path)])


def test_variant_table_by_hand(tmp_path):
    """scripts/variant_table.py: each variant against the baseline and the shipped recipe, paired by case."""
    _runs(tmp_path / "baseline" / "t1ce", {"a": 0.5, "b": 0.5})
    _runs(tmp_path / "voxel_mean" / "t1ce", {"a": 0.6, "b": 0.6})
    _runs(tmp_path / "voxel_mean_cwd" / "t1ce", {"a": 0.4, "b": 0.6})
    out = vt.table(tmp_path, "t1ce", ["voxel_mean_cwd", "voxel_mean_affinity"]).splitlines()
    assert out[2] == "| `baseline` | 0.500 / 0.500 / 0.500 |  |  |  |  |  |  |"
    assert out[3].startswith("| `voxel_mean` | 0.600 / 0.600 / 0.600 | **+0.100 [+0.100, +0.100] 2/2** |")
    # cwd: a -0.1, b +0.1 against the baseline (mean 0, sd 0.1414 / sqrt 2 = 0.1 -> [-1.271, +1.271]), 1 of 2 better;
    # against the recipe: a -0.2, b 0 -> -0.1 [-1.371, +1.171], none better
    assert "| 0.500 / 0.500 / 0.500 | +0.000 [−1.271, +1.271] 1/2 |" in out[4]
    assert out[4].endswith("−0.100 [−1.371, +1.171] 0/2 |")
    assert out[5] == "| `voxel_mean_affinity` | (not run) | | | | | | |"


def test_variant_table_reads_the_split_asked(tmp_path):
    """``--split validation`` tabulates the validation evaluations, not the test ones beside them."""
    dice = {"baseline": (0.5, 0.2), "voxel_mean": (0.6, 0.3), "voxel_mean_agree": (0.7, 0.1)}  # test, validation
    for variant, (test_dice, val_dice) in dice.items():
        _runs(tmp_path / variant / "t1ce", {"a": test_dice, "b": test_dice})
        _runs(tmp_path / variant / "t1ce", {"a": val_dice, "b": val_dice, "c": val_dice}, split="validation")
    out = vt.table(tmp_path, "t1ce", ["voxel_mean_agree"], split="validation").splitlines()
    assert out[2] == "| `baseline` | 0.200 / 0.200 / 0.200 |  |  |  |  |  |  |"
    # agree: -0.1 against the baseline and -0.2 against the recipe on each of the 3 cases (sd 0: a point interval)
    assert out[4] == (
        "| `voxel_mean_agree` | 0.100 / 0.100 / 0.100 | "
        + " | ".join(["**−0.100 [−0.100, −0.100] 0/3**"] * 3)
        + " | "
        + " | ".join(["**−0.200 [−0.200, −0.200] 0/3**"] * 3)
        + " |"
    )
    assert vt.table(tmp_path, "t1ce", [], split="test").splitlines()[2].startswith("| `baseline` | 0.500 / 0.500")


def test_variant_table_over_two_seeds_by_hand(tmp_path):
    """``--seeds 0,1``: Dice averaged over the seeds; differences paired by case and seed, each case's averaged over
    the seeds (the study table's rule); a variant missing one of the seeds is not run, not half a row."""
    by_seed = [((0.5, 0.5), (0.6, 0.4), (0.7, 0.5)), ((0.3, 0.5), (0.4, 0.4), (0.5, 0.7))]  # cases a, b
    for seed, (base, ref, t1) in enumerate(by_seed):
        _runs(tmp_path / "baseline" / "t1ce", dict(zip("ab", base)), seed=seed)
        _runs(tmp_path / "voxel_mean" / "t1ce", dict(zip("ab", ref)), seed=seed)
        _runs(tmp_path / "voxel_mean_t1" / "t1ce", dict(zip("ab", t1)), seed=seed)
    _runs(tmp_path / "voxel_mean_agree" / "t1ce", {"a": 0.9, "b": 0.9})  # seed 0 only
    out = vt.table(tmp_path, "t1ce", ["voxel_mean_t1", "voxel_mean_agree"], seed=[0, 1]).splitlines()
    assert out[0].startswith("| t1ce, seeds 0, 1 |")
    # baseline: seed 0 mean 0.5, seed 1 mean 0.4 -> 0.45
    assert out[2] == "| `baseline` | 0.450 / 0.450 / 0.450 |  |  |  |  |  |  |"
    # t1 - baseline: case a (+0.2, +0.2) -> +0.2, case b (0, +0.2) -> +0.1: mean +0.15, sd 0.0707 / sqrt 2 = 0.05
    # -> [+0.15 - 12.706 * 0.05, ...] = [-0.485, +0.785], 2 of 2 better
    assert out[4].startswith("| `voxel_mean_t1` | 0.600 / 0.600 / 0.600 | +0.150 [−0.485, +0.785] 2/2 |")
    # t1 - recipe: a (+0.1, +0.1) -> +0.1, b (+0.1, +0.3) -> +0.2: the same interval shifted
    assert out[4].endswith("+0.150 [−0.485, +0.785] 2/2 |")
    assert out[5] == "| `voxel_mean_agree` | (not run) | | | | | | |"


def test_ill_variant_table_seeds(tmp_path):
    with pytest.raises(SystemExit, match="--seeds 0,x: not comma-separated integers"):
        vt.main(["--runs", str(tmp_path), "--variants", "voxel_mean_t1", "--seeds", "0,x"])
