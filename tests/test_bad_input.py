"""The table of bad input: each row breaks a copy of a tiny phantom in one way and asserts the exact problem the
user is told (before any work starts), plus the bundle's one-line output listing every problem at once."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import REPO, run_workflow

from kd_components.data import load_datalist
from kd_components.errors import InputError


def _case(root: Path, index: int = 0) -> tuple[str, Path]:
    content = json.loads((root / "datalist.json").read_text())
    entry = content["training"][index]
    return entry["case"], root


def _rewrite(path: Path, fn) -> None:
    img = nib.load(path)
    data = fn(np.asarray(img.dataobj).copy())
    nib.save(nib.Nifti1Image(data, img.affine), path)


def _file(root: Path, role: str, index: int = 0) -> Path:
    entry = json.loads((root / "datalist.json").read_text())["training"][index]
    return root / (entry["label"] if role == "seg" else entry["image"][["t1ce", "t1", "t2", "flair"].index(role)])


def _missing(root):
    _file(root, "t2").unlink()
    return r"image file '.*_t2\.nii\.gz' does not exist"


def _unreadable(root):
    _file(root, "flair").write_bytes(b"not a nifti at all")
    return r"image file '.*_flair\.nii\.gz' cannot be read \(.*\); re-export it"


def _shape(root):
    _rewrite(_file(root, "t1"), lambda d: d[:-2])
    return r"'.*_t1\.nii\.gz' has shape \(30, 32, 32\) but '.*_t1ce\.nii\.gz' \(32, 32, 32\); resample all modalities"


def _affine(root):
    path = _file(root, "t2")
    img = nib.load(path)
    affine = img.affine.copy()
    affine[0, 3] += 5.0
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), affine), path)
    return r"'.*_t2\.nii\.gz' has another affine .*; co-register the modalities and the label"


def _nan(root):
    _rewrite(_file(root, "t1ce"), lambda d: np.where(d > d.max() * 0.9, np.nan, d).astype(np.float32))
    return r"'.*_t1ce\.nii\.gz' has \d+ NaN/Inf voxel\(s\); replace them"


def _zero(root):
    _rewrite(_file(root, "flair"), lambda d: np.zeros_like(d))
    return r"'.*_flair\.nii\.gz' is zero everywhere; the modality is empty"


def _labels(root):
    _rewrite(_file(root, "seg"), lambda d: np.where(d == 2, 7, d).astype(np.uint8))
    return r"label '.*_seg\.nii\.gz' has value\(s\) \[7\] outside \[0, 1, 2, 4\] \(2018-2021 labels are 1 NCR/NET"


def _empty_datalist(root):
    (root / "datalist.json").write_text(json.dumps({"training": [], "validation": [], "test": []}))
    return r"has no 'training' cases: it needs a non-empty list under 'training'"


def _not_json(root):
    (root / "datalist.json").write_text("{'training': oops")
    return r"datalist '.*datalist\.json' is not valid JSON"


def _entry_without_image(root):
    content = json.loads((root / "datalist.json").read_text())
    content["training"][0] = {"label": content["training"][0]["label"]}
    (root / "datalist.json").write_text(json.dumps(content))
    return r"entry 0 of 'training' has no 'image'"


BAD_INPUT = {
    "missing modality file": _missing,
    "unreadable modality file": _unreadable,
    "modality of another shape": _shape,
    "modality of another affine": _affine,
    "NaN voxels": _nan,
    "all-zero modality": _zero,
    "label value outside the convention": _labels,
    "empty datalist split": _empty_datalist,
    "datalist that is not JSON": _not_json,
    "datalist entry without image": _entry_without_image,
}


@pytest.fixture()
def broken(tiny_phantom, tmp_path, monkeypatch):
    monkeypatch.setenv("KD_VALIDATION_CACHE", "0")
    root = tmp_path / "data"
    shutil.copytree(tiny_phantom, root)
    return root


@pytest.mark.parametrize("what", list(BAD_INPUT))
def test_bad_input_table(what, broken):
    expected = BAD_INPUT[what](broken)
    with pytest.raises(InputError) as err:
        load_datalist(broken / "datalist.json", "training", broken)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"datalist '{broken / 'datalist.json'}'")
    import re

    assert re.search(expected, message), f"{what}: {message}"


def test_every_problem_reported_at_once_by_the_bundle(broken, tmp_path):
    _missing(broken)
    _zero(broken)
    _rewrite(_file(broken, "seg", 1), lambda d: np.where(d == 1, 9, d).astype(np.uint8))
    cmd = [sys.executable, "-m", "monai.bundle", "run", "training"]
    cmd += ["--config_file", str(REPO / "bundles" / "teacher" / "configs" / "train.json")]
    cmd += ["--dataset_dir", str(broken), "--bundle_root", str(tmp_path / "out")]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300, env=_env())
    assert res.returncode == 1
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: datalist") and "does not exist" in last and "zero everywhere" in last
    assert "[9] outside" in last
    assert not (tmp_path / "out" / "models").exists() or not any((tmp_path / "out" / "models").iterdir())


def _env():
    import os

    return {**os.environ, "KD_VALIDATION_CACHE": "0"}


def test_images_smaller_than_the_crop_are_padded(tiny_phantom, tmp_path):
    """32^3 images, 48^3 crops: training pads instead of failing."""
    run_workflow(
        REPO / "bundles" / "teacher" / "configs" / "train.json",
        bundle_root=str(tmp_path / "teacher"),
        dataset_dir=str(tiny_phantom),
        roi_size=[48, 48, 48],
        epochs=1,
        init_filters=8,
    )
    assert (tmp_path / "teacher" / "models" / "model_final.pt").is_file()


def test_validation_memory_skips_unchanged_cases_and_rechecks_changed(tiny_phantom, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("KD_VALIDATION_CACHE", raising=False)
    root = tmp_path / "data"
    shutil.copytree(tiny_phantom, root)
    load_datalist(root / "datalist.json", "training", root)
    remembered = json.loads((tmp_path / "cache" / "kd_components" / "validated.json").read_text())
    assert len(remembered) == len(json.loads((root / "datalist.json").read_text())["training"])
    _zero(root)  # a changed file is checked again
    with pytest.raises(InputError, match="zero everywhere"):
        load_datalist(root / "datalist.json", "training", root)
