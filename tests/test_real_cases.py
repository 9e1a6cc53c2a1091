"""The 42 public BraTS 2018 cases (``KD_BRATS2018_DIR``; skipped when absent): the committed split reads them, a
teacher and a KD student trained at 3 mm on real 240x240x155 scans write their label maps on the 1-mm grid, and the
faults the project refuses on the phantom are refused on real cases by name."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from conftest import REPO, run_workflow

from kd_components.data import build_datalist_from_split, load_datalist
from kd_components.errors import InputError
from kd_components.evaluation import HD95_EMPTY_PENALTY, score_files

pytestmark = pytest.mark.slow
TEACHER = REPO / "bundles" / "teacher" / "configs"
STUDENT = REPO / "bundles" / "student_kd" / "configs"
#: four cases: an LGG with little enhancement (TCIA10), two CBICA and a 2013 HGG
CASES = ["Brats18_TCIA10_639_1", "Brats18_CBICA_AQN_1", "Brats18_2013_3_1", "Brats18_CBICA_ABM_1"]


def test_committed_split_reads_the_42_cases(brats2018_dir, tmp_path):
    content = build_datalist_from_split(brats2018_dir, "brats2018_public42")
    counts = {k: len(content[k]) for k in ("training", "validation", "test")}
    assert counts == {"training": 26, "validation": 6, "test": 10}
    cases = {e["case"] for k in counts for e in content[k]}
    assert len(cases) == 42 and all(e["label_convention"] == "brats2021" for e in content["test"])


def _subset(brats2018_dir, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    for c in CASES:
        (root / c).symlink_to(brats2018_dir / c)
    split = {"training": CASES[:2], "validation": CASES[2:3], "test": CASES[3:]}
    (tmp_path / "split.json").write_text(json.dumps(split))
    subprocess.run(
        [sys.executable, "-m", "kd_components.data", "datalist", "--data-dir", str(root), "--output",
         str(root / "datalist.json"), "--split-file", str(tmp_path / "split.json")],
        check=True, cwd=REPO, capture_output=True,
    )  # fmt: skip
    return root


def test_teacher_and_student_at_3mm_segment_real_cases_on_their_1mm_grid(brats2018_dir, tmp_path):
    data = _subset(brats2018_dir, tmp_path)
    small = {"roi_size": [32, 32, 32], "pixdim": [3.0, 3.0, 3.0], "epochs": 1, "cache_rate": 1.0}
    run_workflow(TEACHER / "train.json", bundle_root=str(tmp_path / "teacher"), dataset_dir=str(data), **small)
    run_workflow(
        STUDENT / "train.json", meta_file=STUDENT / "metadata.json", bundle_root=str(tmp_path / "student"),
        dataset_dir=str(data), teacher_ckpt=str(tmp_path / "teacher" / "models" / "model.pt"), **small,
    )  # fmt: skip
    for who in ("teacher", "student"):
        settings = json.loads((tmp_path / who / "models" / "model_settings.json").read_text())
        assert settings["pixdim"] == [3.0, 3.0, 3.0]
    # the README's inference command: the student's folder, the data folder, no resolution given
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(STUDENT / "inference.json")]
    cmd += ["--ckpt_dir", str(tmp_path / "student" / "models"), "--dataset_dir", str(data)]
    cmd += ["--output_dir", str(tmp_path / "maps")]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "resampling inputs to 3x3x3 mm" in res.stderr + res.stdout
    for c in CASES:
        written = nib.load(tmp_path / "maps" / f"{c}_t1ce_seg_brats2021.nii.gz")
        source = nib.load(data / c / f"{c}_t1ce.nii.gz")
        assert written.shape == source.shape == (240, 240, 155)
        assert np.allclose(written.affine, source.affine, atol=1e-4)
        assert set(np.unique(np.asarray(written.dataobj)).tolist()) <= {0, 1, 2, 4}


def _copy_case(brats2018_dir, tmp_path, case="Brats18_CBICA_AQN_1"):
    root = tmp_path / "data"
    shutil.copytree(brats2018_dir / case, root / case)
    files = {s: root / case / f"{case}_{s}.nii.gz" for s in ("t1", "t1ce", "t2", "flair", "seg")}
    return root, files


def _refusal(root) -> str:
    content = {"training": [], "validation": [], "test": []}
    case = next(root.iterdir()).name
    item = {
        "image": [f"{case}/{case}_{s}.nii.gz" for s in ("t1ce", "t1", "t2", "flair")],
        "label": f"{case}/{case}_seg.nii.gz",
        "case": case,
        "label_convention": "brats2021",  # as kd_components.data datalist writes it for the 2018-2021 layout
    }
    content["training"] = [item]
    (root / "datalist.json").write_text(json.dumps(content))
    with pytest.raises(InputError) as err:
        load_datalist(root / "datalist.json", "training", root)
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    "fault",
    ["missing sequence", "another grid", "label outside the convention", "damaged gzip stream", "a mask as the scan"],
)
def test_real_case_faults_refused_by_name(fault, brats2018_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("KD_VALIDATION_CACHE", "0")
    root, files = _copy_case(brats2018_dir, tmp_path)
    if fault == "missing sequence":
        files["t2"].unlink()
        expected = r"image file '.*Brats18_CBICA_AQN_1_t2\.nii\.gz' does not exist"
    elif fault == "another grid":
        img = nib.load(files["flair"])
        half = nib.Nifti1Image(np.asarray(img.dataobj)[::2, ::2, ::2], img.affine @ np.diag([2, 2, 2, 1]))
        nib.save(half, files["flair"])
        expected = r"'.*_flair\.nii\.gz' has shape \(120, 120, 78\) but '.*_t1ce\.nii\.gz' \(240, 240, 155\)"
    elif fault == "damaged gzip stream":  # the trailer's checksum: nibabel still reads the voxels without an error
        raw = bytearray(files["t2"].read_bytes())
        raw[-8:-4] = bytes(b ^ 0xFF for b in raw[-8:-4])
        files["t2"].write_bytes(bytes(raw))
        expected = r"image file '.*_t2\.nii\.gz' is a damaged gzip file \(BadGzipFile: CRC check failed"
    elif fault == "a mask as the scan":
        img = nib.load(files["t1"])
        nib.save(nib.Nifti1Image((np.asarray(img.dataobj) != 0).astype(np.uint8), img.affine), files["t1"])
        expected = r"'.*_t1\.nii\.gz' holds one value \(1\) in all its \d+ non-zero voxels: no contrast"
    else:
        img = nib.load(files["seg"])
        seg = np.asarray(img.dataobj).copy()
        seg[seg == 4] = 3  # 2023's ET value inside a 2018-2021 case
        nib.save(nib.Nifti1Image(seg, img.affine), files["seg"])
        expected = r"label '.*_seg\.nii\.gz' has value\(s\) \[3\] outside \[0, 1, 2, 4\]"
    message = _refusal(root)
    assert re.search(expected, message), message


def test_a_case_without_enhancing_tumour_is_scored_by_the_brats_rules(brats2018_dir, tmp_path):
    """An LGG-like case: ET relabelled as necrosis. A prediction without ET scores ET 1 / HD95 0 under the 2021
    rules and NaN under the 2023 rules (left out of means); one with ET scores 0 / 373.13 (2021)."""
    _, files = _copy_case(brats2018_dir, tmp_path, "Brats18_TCIA10_639_1")
    img = nib.load(files["seg"])
    seg = np.asarray(img.dataobj).copy()
    seg[seg == 4] = 1
    ref = tmp_path / "ref.nii.gz"
    nib.save(nib.Nifti1Image(seg, img.affine), ref)
    same = tmp_path / "same.nii.gz"
    nib.save(nib.Nifti1Image(seg, img.affine), same)
    with_et = seg.copy()
    with_et[seg == 1] = 4
    other = tmp_path / "with_et.nii.gz"
    nib.save(nib.Nifti1Image(with_et, img.affine), other)
    assert score_files(ref, same, "brats2021", "2021")["ET"] == {"dice": 1.0, "hd95": 0.0}
    assert all(math.isnan(v) for v in score_files(ref, same, "brats2023", "2021")["ET"].values())
    assert score_files(ref, other, "brats2021", "2021")["ET"] == {"dice": 0.0, "hd95": HD95_EMPTY_PENALTY}
    assert score_files(ref, same, "brats2021", "2021")["WT"]["dice"] == 1.0
