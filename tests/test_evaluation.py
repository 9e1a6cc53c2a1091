from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from official_cases import cases

from kd_components.evaluation import HD95_EMPTY_PENALTY, region_metrics, score_files, summarize
from kd_components.training import RegionMetricsWriter


def _cube(lo, hi, shape=(10, 10, 10)):
    m = torch.zeros(shape)
    m[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = 1
    return m


def _regions(tc, wt, et):
    return torch.stack([tc, wt, et])


EMPTY = torch.zeros(10, 10, 10)
CUBE = _cube((2, 2, 2), (6, 6, 6))
SHIFTED = _cube((3, 2, 2), (7, 6, 6))  # the same 4^3 cube moved by one voxel along x


def test_identical_masks():
    m = region_metrics(_regions(CUBE, CUBE, CUBE), _regions(CUBE, CUBE, CUBE))
    assert all(m[f"dice_{r}"] == 1.0 and m[f"hd95_{r}"] == 0.0 for r in ("tc", "wt", "et"))


def test_empty_region_conventions():
    # TC: empty in both; WT: predicted but absent; ET: present but missed
    m = region_metrics(_regions(EMPTY, CUBE, EMPTY), _regions(EMPTY, EMPTY, CUBE))
    assert (m["dice_tc"], m["hd95_tc"]) == (1.0, 0.0)
    assert (m["dice_wt"], m["hd95_wt"]) == (0.0, HD95_EMPTY_PENALTY)
    assert (m["dice_et"], m["hd95_et"]) == (0.0, HD95_EMPTY_PENALTY)


def test_shifted_cube_hand_computed():
    # overlap 3x4x4 = 48 of 64 + 64 voxels: Dice = 2 * 48 / 128 = 0.75; every surface voxel lies within one voxel
    # of the other surface and 20 of 56 at exactly one: HD95 = 1 voxel = 2 mm at 2 mm spacing
    m = region_metrics(_regions(SHIFTED, SHIFTED, SHIFTED), _regions(CUBE, CUBE, CUBE), spacing=[2.0, 2.0, 2.0])
    assert m["dice_wt"] == pytest.approx(0.75)
    assert m["hd95_wt"] == pytest.approx(2.0)


def test_summarize_hand_computed():
    s = summarize([{"d": 0.2}, {"d": 0.4}, {"d": 0.9}], ["d"])["d"]
    assert s["mean"] == pytest.approx(0.5) and s["median"] == pytest.approx(0.4) and s["n"] == 3
    assert s["std"] == pytest.approx(((0.09 + 0.01 + 0.16) / 2) ** 0.5)


def test_writer_files(tmp_path):
    from ignite.engine import Engine

    label = MetaTensor(_regions(CUBE, CUBE, EMPTY), affine=torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))
    image = torch.randn(4, 10, 10, 10)
    batches = [[{"case": "A", "image": image}], [{"case": "B", "image": image}]]
    outputs = [
        [{"pred": _regions(CUBE, CUBE, EMPTY), "label": label}],
        [{"pred": _regions(SHIFTED, EMPTY, EMPTY), "label": label}],
    ]

    def step(engine, batch):
        engine.state.batch = batch
        return outputs[engine.state.iteration - 1]

    engine = Engine(step)
    RegionMetricsWriter(tmp_path, tags={"model": "kd", "modality": "t1ce", "seed": 1}, save_cases=1).attach(engine)
    engine.run(batches, max_epochs=1)
    rows = (tmp_path / "metrics_per_case.csv").read_text().splitlines()
    assert rows[0] == "case,dice_tc,hd95_tc,dice_wt,hd95_wt,dice_et,hd95_et"
    assert rows[1] == "A,1,0,1,0,1,0"
    assert rows[2].startswith("B,0.75,2,0,373.13,1,0")
    summary = json.loads((tmp_path / "metrics_summary.json").read_text())
    assert summary["tags"] == {"model": "kd", "modality": "t1ce", "seed": 1} and summary["num_cases"] == 2
    assert summary["metrics"]["dice_tc"]["mean"] == pytest.approx(0.875)
    assert sorted(p.name for p in (tmp_path / "cases").iterdir()) == ["A.npz"]


def test_ill_shapes():
    with pytest.raises(ValueError, match=r"pred \(3, 10, 10, 10\) and label \(2, 10, 10, 10\)"):
        region_metrics(_regions(CUBE, CUBE, CUBE), torch.stack([CUBE, CUBE]))


# ------------------------------------------------------------------------------------------- official 2023+ rules
OFFICIAL = json.loads((Path(__file__).parent / "data" / "brats_evaluation.json").read_text())


def _same(ours: float, official) -> bool:
    official = float(official)  # "NaN" / "Infinity" as the JSON stores them
    if math.isnan(official) or math.isinf(official):
        return (math.isnan(ours) and math.isnan(official)) or ours == official
    return ours == pytest.approx(official, rel=1e-9, abs=1e-9)


def _write_case(folder: Path, name: str):
    ref, pred, spacing = cases()[name]
    affine = np.diag([*spacing, 1.0])
    nib.save(nib.Nifti1Image(ref, affine), folder / f"{name}_ref.nii.gz")
    nib.save(nib.Nifti1Image(pred, affine), folder / f"{name}_pred.nii.gz")
    return folder / f"{name}_ref.nii.gz", folder / f"{name}_pred.nii.gz"


@pytest.mark.parametrize("name", sorted(cases()))
def test_brats2023_rules_equal_the_official_tool(tmp_path, name):
    """Dice and HD95 equal brats-evaluation's (recorded with its version in tests/data/brats_evaluation.json) on
    overlap, one-voxel shift, erosion, dilation, disjoint masks, one or both empty, anisotropic spacing."""
    ref, pred = _write_case(tmp_path, name)
    ours = score_files(ref, pred, "brats2023", "2023")
    for region, values in OFFICIAL["results"][name].items():
        for metric in ("dice", "hd95"):
            assert _same(ours[region][metric], values[metric]), (name, region, metric, ours[region], values)


def test_score_command_prints_one_json_object(tmp_path):
    ref, pred = _write_case(tmp_path, "both_et_empty")
    res = subprocess.run(
        [sys.executable, "-m", "kd_components.tools.score", "--reference", str(ref), "--prediction", str(pred)]
        + ["--convention", "brats2023"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout)
    assert list(out) == ["ET", "TC", "WT"] and math.isnan(out["ET"]["dice"]) and math.isnan(out["ET"]["hd95"])
    assert out["WT"]["dice"] == pytest.approx(float(OFFICIAL["results"]["both_et_empty"]["WT"]["dice"]))
    disjoint = score_files(*_write_case(tmp_path, "disjoint"), convention="brats2023")
    assert disjoint["ET"] == {"dice": 0.0, "hd95": math.inf}
    # the same maps under the 2021 rules: both empty is a perfect score, HD95 in mm
    old = score_files(*_write_case(tmp_path, "both_et_empty"), convention="brats2021")
    assert old["ET"] == {"dice": 1.0, "hd95": 0.0}
    aniso = score_files(*_write_case(tmp_path, "anisotropic_spacing"), convention="brats2021")
    assert aniso["WT"]["hd95"] == pytest.approx(3.0), "brats2021 HD95 is in mm (3 mm slices)"


def test_brats2023_summary_counts_inf_as_373_and_leaves_nan_out():
    rows = [{"h": 2.0}, {"h": math.inf}, {"h": math.nan}]
    s = summarize(rows, ["h"], "brats2023")["h"]
    assert s["n"] == 2 and s["mean"] == pytest.approx((2.0 + 373.0) / 2)


def test_ill_score(tmp_path):
    ref, pred = _write_case(tmp_path, "overlap")
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), np.eye(4)), tmp_path / "small.nii.gz")
    with pytest.raises(ValueError, match=r"has shape \(4, 4, 4\) but --reference .* \(32, 30, 28\)"):
        score_files(ref, tmp_path / "small.nii.gz")
    moved = nib.load(pred)
    affine = moved.affine.copy()
    affine[0, 3] += 5.0  # the origin moved by 5 mm
    nib.save(nib.Nifti1Image(np.asarray(moved.dataobj), affine), tmp_path / "moved.nii.gz")
    with pytest.raises(ValueError, match=r"has another affine than --reference .* \(origin differ by up to 5\)"):
        score_files(ref, tmp_path / "moved.nii.gz")
    flipped = affine.copy()
    flipped[0, 3] -= 5.0
    flipped[:3, 0] *= -1  # an axis flipped: direction differs
    nib.save(nib.Nifti1Image(np.asarray(moved.dataobj), flipped), tmp_path / "flipped.nii.gz")
    with pytest.raises(ValueError, match=r"spacing/direction differ"):
        score_files(ref, tmp_path / "flipped.nii.gz")
    with pytest.raises(ValueError, match="--convention 'brats2019': use brats2023 or brats2021"):
        score_files(ref, pred, "brats2019")
    with pytest.raises(ValueError, match=r"holds values \[0, 1, 2, 3\]; expected \[0, 1, 2, 4\]"):
        score_files(ref, pred, labels="2021")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "kd_components.tools.score",
            "--reference",
            str(tmp_path / "nope.nii.gz"),
            "--prediction",
            str(pred),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        res.returncode == 1 and res.stderr.strip().startswith("error: --reference '") and "Traceback" not in res.stderr
    )
