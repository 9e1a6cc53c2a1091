"""The table of bad input: each row breaks a copy of a tiny phantom in one way and asserts the exact problem the
user is told (before any work starts), plus the bundle's one-line output listing every problem at once."""

from __future__ import annotations

import json
import re
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
    # named against the grid the other four files share, not against the first file
    return (
        r"'.*_t1\.nii\.gz' has shape \(30, 32, 32\) but '.*_t1ce\.nii\.gz' \(32, 32, 32\) \(like 3 other file\(s\) of "
        r"the case\); resample all modalities"
    )


def _affine(root):
    path = _file(root, "t2")
    img = nib.load(path)
    affine = img.affine.copy()
    affine[0, 3] += 5.0
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), affine), path)
    return r"'.*_t2\.nii\.gz' has another affine .*; co-register the modalities and the label"


def _four_d(root):
    _rewrite(_file(root, "t2"), lambda d: np.stack([d, d], axis=-1))
    return r"image file '.*_t2\.nii\.gz' has shape \(32, 32, 32, 2\): a 3-D volume per file is needed"


def _trailing_singleton(root):
    _rewrite(_file(root, "flair"), lambda d: d[..., None])
    return (
        r"image file '.*_flair\.nii\.gz' has shape \(32, 32, 32, 1\): a 3-D volume is needed and trailing "
        r"dimensions of size 1 are refused, not guessed away; drop them once with nibabel"
    )


def _two_d_label(root):
    _rewrite(_file(root, "seg"), lambda d: d[:, :, 16])
    return r"label file '.*_seg\.nii\.gz' has shape \(32, 32\): a 3-D volume is needed"


def _nan(root):
    _rewrite(_file(root, "t1ce"), lambda d: np.where(d > d.max() * 0.9, np.nan, d).astype(np.float32))
    return r"'.*_t1ce\.nii\.gz' has \d+ NaN/Inf voxel\(s\); replace them"


def _zero(root):
    _rewrite(_file(root, "flair"), lambda d: np.zeros_like(d))
    return r"'.*_flair\.nii\.gz' is zero everywhere; the modality is empty"


def _damaged_gzip(root):
    """A .nii.gz whose stream is damaged after the voxels nibabel reads (its checksum here): it loads without an
    error, so only reading the stream to its end finds it (a copy damaged in the middle loads wrong voxels alike)."""
    path = _file(root, "t2")
    raw = bytearray(path.read_bytes())
    raw[-8:-4] = bytes(b ^ 0xFF for b in raw[-8:-4])  # the CRC-32 of the gzip trailer
    path.write_bytes(bytes(raw))
    assert np.isfinite(np.asarray(nib.load(path).dataobj)).all(), "nibabel reads it: the check must not rely on that"
    return r"image file '.*_t2\.nii\.gz' is a damaged gzip file \(.*CRC.*\): its voxels cannot be trusted"


def _no_contrast(root):
    _rewrite(_file(root, "t1"), lambda d: (d != 0).astype(np.uint8))  # a brain mask given as the T1 scan
    return r"'.*_t1\.nii\.gz' holds one value \(1\) in all its \d+ non-zero voxels: no contrast, a mask"


def _first_off_grid(root):
    path = _file(root, "t1ce")  # the first image: the message names it, not the four files on the case's grid
    img = nib.load(path)
    affine = img.affine.copy()
    affine[1, 3] += 3.0
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), affine), path)
    return (
        r"'.*_t1ce\.nii\.gz' has another affine \(orientation/origin/spacing\) than '.*_t1\.nii\.gz' \(like 3 other "
        r"file\(s\) of the case\); co-register"
    )


def _swapped_channels(root):
    content = json.loads((root / "datalist.json").read_text())
    images = content["training"][0]["image"]
    images[0], images[3] = images[3], images[0]  # FLAIR where T1c belongs: the teacher would read it as T1c
    (root / "datalist.json").write_text(json.dumps(content))
    return r"'.*_flair\.nii\.gz' is named FLAIR but is read as channel 0 \(T1c\); 'image' lists T1c, T1, T2, FLAIR in"


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
    "4-D modality": _four_d,
    "trailing singleton dimension": _trailing_singleton,
    "2-D label": _two_d_label,
    "NaN voxels": _nan,
    "all-zero modality": _zero,
    "damaged gzip stream": _damaged_gzip,
    "modality without contrast (a mask)": _no_contrast,
    "first modality off the case's grid": _first_off_grid,
    "images listed out of channel order": _swapped_channels,
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
    assert (tmp_path / "teacher" / "models" / "last_checkpoint_epoch=1.pt").is_file()


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


# ------------------------------------------------------------------------------------------- while running
#: validation bypassed, so that a broken file first meets the data loader (as a file changed after validation would)
UNCHECKED = {
    "train_datalist": "$kd_components.data.load_datalist(@data_list_file_path, 'training', @dataset_dir, check=False)",
    "val_datalist": "$kd_components.data.load_datalist(@data_list_file_path, @eval_split, @dataset_dir, check=False)",
}


def _bundle_cli(run_id, configs, tmp_path, data, overlay: dict, *args):
    cfg = tmp_path / "unchecked.json"
    cfg.write_text(json.dumps(overlay))
    files = "[" + ",".join(f"'{REPO / 'bundles' / 'teacher' / 'configs' / c}'" for c in configs) + f",'{cfg}']"
    cmd = [sys.executable, "-m", "monai.bundle", "run", run_id, "--config_file", files, "--dataset_dir", str(data)]
    cmd += ["--bundle_root", str(tmp_path / "out"), "--roi_size", "[32, 32, 32]", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600, env=_env())


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["0", "2"])
def test_loader_failure_stops_training_in_one_line(broken, tmp_path, workers):
    """A case that fails in the loader (its thread or a worker process) stops training at once: exit 1, one line
    naming the case and its files, no checkpoint, never a shorter epoch."""
    _four_d(broken)
    overlay = {"train_datalist": UNCHECKED["train_datalist"], "val_datalist": UNCHECKED["train_datalist"]}
    res = _bundle_cli(
        "training",
        ["train.json"],
        tmp_path,
        broken,
        overlay,
        "--epochs",
        "1",
        "--num_workers",
        workers,
        "--init_filters",
        "8",
    )
    assert res.returncode == 1, res.stderr[-2000:]
    last = res.stderr.strip().splitlines()[-1]
    assert re.match(r"error: case '.*' could not be loaded \(folder '.*': .*_t2\.nii\.gz.*\): ValueError: ", last), last
    assert "Traceback" not in res.stderr
    assert not list((tmp_path / "out").rglob("*.pt")), "no checkpoint from a run stopped by bad input"


@pytest.mark.slow
def test_loader_failure_stops_evaluation_without_metric_files(broken, tiny_phantom, teacher_ckpt, tmp_path):
    content = json.loads((broken / "datalist.json").read_text())
    case = content["test"][0]
    _rewrite(broken / case["image"][0], lambda d: d[..., None])  # trailing singleton in the test case's T1c
    (tmp_path / "out" / "models").mkdir(parents=True)
    shutil.copy(teacher_ckpt, tmp_path / "out" / "models" / "model.pt")
    res = _bundle_cli(
        "evaluating", ["train.json", "evaluate.json"], tmp_path, broken, {"val_datalist": UNCHECKED["val_datalist"]}
    )
    assert res.returncode == 1, res.stderr[-2000:]
    assert re.match(rf"error: case '{case['case']}' could not be loaded", res.stderr.strip().splitlines()[-1]), (
        res.stderr[-3000:]
    )
    assert not list((tmp_path / "out").rglob("metrics_*")), "no metric file from a stopped evaluation"


@pytest.mark.slow
@pytest.mark.parametrize("breakage", [_four_d, _trailing_singleton])
def test_dimension_problems_refused_before_any_work(broken, tmp_path, breakage):
    breakage(broken)
    cmd = [sys.executable, "-m", "monai.bundle", "run", "training"]
    cmd += ["--config_file", str(REPO / "bundles" / "teacher" / "configs" / "train.json")]
    cmd += ["--dataset_dir", str(broken), "--bundle_root", str(tmp_path / "out")]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300, env=_env())
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "a 3-D volume" in res.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out" / "models").exists() or not any((tmp_path / "out" / "models").iterdir())
