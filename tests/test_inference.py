"""The images inference segments: found in both BraTS layouts, refused in one line when training would refuse them.

The bundles' inference configs run these in ``initialize``; a refused scan means no label map at all.
"""

from __future__ import annotations

import json
import re

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import REPO, refused
from monai.data import MetaTensor

from kd_components.deploy import inference
from kd_components.deploy.inference import check_images, find_images, student_datalist, teacher_datalist
from kd_components.errors import InputError
from kd_components.transforms import RegionsToBratsLabeld

STUDENT = REPO / "bundles" / "student_kd" / "configs"
TEACHER = REPO / "bundles" / "teacher" / "configs"


def _scan(path, data=None, affine=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = np.zeros((8, 8, 8), np.float32)
        data[2:6, 2:6, 2:6] = np.linspace(1.0, 2.0, 64).reshape(4, 4, 4)  # a brain with contrast
    nib.save(nib.Nifti1Image(np.asarray(data), np.eye(4) if affine is None else affine), str(path))
    return path


def test_find_images_in_both_layouts_by_any_name(tmp_path):
    a = _scan(tmp_path / "A" / "A_t1ce.nii.gz")
    b = _scan(tmp_path / "B" / "B-t1c.nii.gz")
    c = _scan(tmp_path / "C" / "C_t1ce.nii")
    _scan(tmp_path / "A" / "A_flair.nii.gz")
    _scan(tmp_path / "B" / "B-t2f.nii.gz")
    real = _scan(tmp_path / "elsewhere" / "D" / "D-t1c.nii.gz")
    (tmp_path / "D").symlink_to(real.parent, target_is_directory=True)  # a symlinked case folder is followed
    expected = sorted(str(p) for p in (a, b, c, tmp_path / "D" / "D-t1c.nii.gz"))
    assert find_images(tmp_path, "t1ce") == expected == find_images(tmp_path, "T1C")
    assert find_images(tmp_path, "t2f") == sorted(
        [str(tmp_path / "A" / "A_flair.nii.gz"), str(tmp_path / "B" / "B-t2f.nii.gz")]
    )
    assert find_images(tmp_path, "t2") == []


def test_student_datalist_from_input_or_search(tmp_path):
    a = _scan(tmp_path / "A" / "A-t2f.nii.gz")
    assert student_datalist(None, tmp_path, "flair") == [{"image": str(a)}]
    assert student_datalist([], tmp_path, "t2f") == [{"image": str(a)}]
    assert student_datalist(str(a), tmp_path / "none", "flair") == [{"image": str(a)}]  # given: no search
    assert student_datalist([a, a], tmp_path, "flair") == [{"image": str(a)}, {"image": str(a)}]
    plain = _scan(tmp_path / "B" / "scan.nii.gz")  # a name that says no sequence: taken as the student's
    assert student_datalist(str(plain), tmp_path, "t1") == [{"image": str(plain)}]


def test_ill_case_folder_with_two_files_of_one_sequence(tmp_path):
    """CASE_t1ce.nii and CASE_t1ce.nii.gz in one folder: which is the scan is not guessed (one used to win by sort
    order), for the dedicated and the any student alike."""
    _scan(tmp_path / "A" / "A_t1ce.nii.gz")
    _scan(tmp_path / "A" / "A_t1ce.nii")
    two = r"case folder '.*A' holds two T1c files, 'A_t1ce.nii(.gz)?' and 'A_t1ce.nii(.gz)?': keep one"
    with pytest.raises(InputError, match=two):
        student_datalist(None, tmp_path, "t1ce")
    with pytest.raises(InputError, match=two):
        student_datalist(None, tmp_path, "any")


def test_ill_student_given_a_file_named_for_another_sequence(tmp_path):
    """A T1c student given CASE_flair.nii.gz would segment FLAIR as if it were T1c (a wrong map, exit 0): the name
    is read and the file refused, alone, in a list, stacked, stacked in another order, or a label map."""
    flair = _scan(tmp_path / "A" / "A-t2f.nii.gz")
    said = r"'A-t2f.nii.gz' is named FLAIR but is read as T1c: a scan read as another sequence gives a wrong map"
    with pytest.raises(InputError, match=rf"--input_image '.*A-t2f.nii.gz': {said}"):
        student_datalist(str(flair), tmp_path, "t1ce")
    with pytest.raises(InputError, match=said):
        student_datalist([str(_scan(tmp_path / "B" / "B_t1ce.nii.gz")), str(flair)], tmp_path, "t1ce")
    stacked = _scan(tmp_path / "C" / "C_t1ce+flair.nii.gz")
    with pytest.raises(InputError, match=r"'C_t1ce\+flair.nii.gz' is named T1c\+FLAIR but is read as T1c: "):
        student_datalist(str(stacked), tmp_path, "t1ce")
    assert student_datalist(str(stacked), tmp_path, "flair+t1ce") == [{"image": str(stacked)}]
    # the same two sequences stacked FLAIR first: the student would read FLAIR as its T1c channel
    swapped = _scan(tmp_path / "D" / "D-t2f+t1c.nii.gz")
    with pytest.raises(
        InputError, match=r"is named FLAIR\+T1c but is read as T1c\+FLAIR: .*kd_components.data stack writes"
    ):
        student_datalist(str(swapped), tmp_path, "t1ce+flair")
    seg = str(_scan(tmp_path / "E" / "E_seg.nii.gz"))
    with pytest.raises(InputError, match=r"'E_seg.nii.gz' is named a label map but is read as T1c"):
        student_datalist(seg, tmp_path, "t1ce")
    # among a combination's or the any student's images, named or not, with --input_modalities or without
    unnamed = str(_scan(tmp_path / "E" / "scan.nii.gz"))
    for images, modality, said in [([unnamed, seg], "t1ce+flair", None), ([seg], "any", "t1ce"), ([seg], "any", None)]:
        with pytest.raises(InputError, match=r"'.*E_seg.nii.gz': its name says it is a label map"):
            student_datalist(images, tmp_path, modality, said)


def test_ill_student_datalist(tmp_path):
    with pytest.raises(
        InputError, match=r"no case folder under --dataset_dir .* holds a FLAIR image \(CASE/CASE_flair"
    ):
        student_datalist(None, tmp_path, "flair")
    with pytest.raises(InputError, match=r"--input_image '.*typo.nii.gz' does not exist"):
        student_datalist(str(tmp_path / "typo.nii.gz"), tmp_path, "t1")
    with pytest.raises(InputError, match="--student_modality: unknown modality 'dwi'"):
        student_datalist(None, tmp_path, "dwi")
    with pytest.raises(InputError, match=r"^--dataset_dir '.*runs/demo/dat' does not exist: give the folder"):
        student_datalist(None, tmp_path / "runs" / "demo" / "dat", "t1ce")


def _weights(tmp_path):
    """A model.pt that is never read: inference refuses the scan before it loads weights."""
    (tmp_path / "models").mkdir(exist_ok=True)
    (tmp_path / "models" / "model.pt").write_bytes(b"not read")
    return tmp_path / "models"


def _bad_scans(tmp_path):
    """name -> (file, the phrase its refusal must hold)."""
    nan = np.ones((8, 8, 8), np.float32)
    nan[0, 0, 0] = 0
    nan[:2, :2, :2] = np.nan
    zscored = np.full((8, 8, 8), -3.6, np.float32)
    zscored[2:6, 2:6, 2:6] = 0.5
    rng = np.random.default_rng(0)  # noise: the compressed file is long enough to cut after its header
    good = _scan(tmp_path / "good.nii.gz", rng.random((16, 16, 16)).astype(np.float32))
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return {
        "nan": (_scan(tmp_path / "nan.nii.gz", nan), "has 8 NaN/Inf voxel(s)"),
        "empty": (_scan(tmp_path / "empty.nii.gz", np.zeros((8, 8, 8), np.float32)), "is zero everywhere"),
        "zscored": (_scan(tmp_path / "zscored.nii.gz", zscored), "has no zero background (0.0% of voxels at 0"),
        "four_d": (_scan(tmp_path / "four_d.nii.gz", np.ones((8, 8, 8, 2), np.float32)), "a 3-D volume per file"),
        "truncated": (truncated, "cannot be read"),
    }


@pytest.mark.parametrize("name", ["nan", "empty", "zscored", "four_d", "truncated"])
def test_ill_scan_refused_naming_the_file(tmp_path, name):
    path, phrase = _bad_scans(tmp_path)[name]
    with pytest.raises(InputError) as e:
        check_images([{"image": str(_scan(tmp_path / "ok.nii.gz"))}, {"image": str(path)}])
    line = str(e.value)
    assert str(path) in line and phrase in line and line.endswith("no label map written."), line
    assert "\n" not in line


def test_ill_teacher_images_on_different_grids(tmp_path):
    shifted = np.eye(4)
    shifted[0, 3] = 5.0
    images = [str(_scan(tmp_path / f"c_{m}.nii.gz")) for m in ("t1ce", "t1", "t2")]
    images.append(str(_scan(tmp_path / "c_flair.nii.gz", affine=shifted)))
    with pytest.raises(InputError, match="'c_flair.nii.gz' has another affine"):
        check_images([{"image": images}], channels=4)
    assert check_images([{"image": images[:3] + images[:1]}], channels=4) == [{"image": images[:3] + images[:1]}]


def test_ill_teacher_datalist(tmp_path):
    with pytest.raises(InputError, match=r"datalist '.*datalist.json' does not exist: write it with"):
        teacher_datalist(tmp_path / "datalist.json", tmp_path, "test")
    (tmp_path / "datalist.json").write_text(json.dumps({"test": [{"image": ["gone.nii.gz"]}]}))
    with pytest.raises(InputError, match=r"image '.*gone.nii.gz' of datalist"):
        teacher_datalist(tmp_path / "datalist.json", tmp_path, "test")
    # FLAIR listed first: the teacher would read it as T1c; refused by the names, before any voxel is read
    order = [f"c/c_{m}.nii.gz" for m in ("flair", "t1", "t2", "t1ce")]
    for name in order:
        _scan(tmp_path / name)
    (tmp_path / "datalist.json").write_text(json.dumps({"test": [{"image": order}]}))
    with pytest.raises(
        InputError, match=r"'c_flair.nii.gz' is named FLAIR but is read as channel 0 \(T1c\); 'image' lis"
    ):
        teacher_datalist(tmp_path / "datalist.json", tmp_path, "test")
    # one stacked file named in another order than the teacher's channels: refused alike
    _scan(tmp_path / "c" / "c_flair+t1+t2+t1ce.nii.gz")
    (tmp_path / "datalist.json").write_text(json.dumps({"test": [{"image": "c/c_flair+t1+t2+t1ce.nii.gz"}]}))
    with pytest.raises(InputError, match=r"is named FLAIR\+T1\+T2\+T1c but is read as T1c\+T1\+T2\+FLAIR"):
        teacher_datalist(tmp_path / "datalist.json", tmp_path, "test")


def test_outputs_checked_before_any_work(tmp_path, caplog):
    """Two scans of one case name would be written under one name (the second replacing the first): refused; an
    --output_dir that is a file: refused; a map from an earlier run: replaced, with a warning."""
    import logging

    from kd_components.deploy.inference import check_outputs

    a, b = _scan(tmp_path / "p1" / "DICOM.nii.gz"), _scan(tmp_path / "p2" / "DICOM.nii.gz")
    items = [{"image": str(a)}, {"image": str(b)}]
    with pytest.raises(InputError, match=r"'.*p1/DICOM.nii.gz' and '.*p2/DICOM.nii.gz' would both be written as "):
        check_outputs(items, tmp_path / "out", "t1ce")
    with pytest.raises(InputError, match=r"--output_dir '.*DICOM.nii.gz' is a file, not a folder"):
        check_outputs(items[:1], a, "t1ce")
    with pytest.raises(InputError, match=r"--output_dir '.*DICOM.nii.gz/sub' lies in '.*DICOM.nii.gz', a file, not"):
        check_outputs(items[:1], a / "sub", "t1ce")
    out = tmp_path / "out"
    out.mkdir()
    (out / "DICOM_t1ce_seg_brats2021.nii.gz").write_bytes(b"earlier")
    with caplog.at_level(logging.WARNING, logger="kd_components.inference"):
        assert check_outputs(items[:1], out, "t1ce") == items[:1]
    assert "1 label map(s) in" in caplog.text and "DICOM_t1ce_seg_brats2021.nii.gz" in caplog.text
    teacher_items = [{"image": [str(a)] * 4}, {"image": [str(_scan(tmp_path / "p3" / "X.nii.gz"))] * 4}]
    assert check_outputs(teacher_items, out, "teacher", "brats2023") == teacher_items


def test_ill_student_inference_of_two_scans_of_one_name_writes_nothing(tmp_path):
    a, b = _scan(tmp_path / "p1" / "DICOM.nii.gz"), _scan(tmp_path / "p2" / "DICOM.nii.gz")
    line = refused(
        "run", "--config_file", STUDENT / "inference.json", "--ckpt_dir", _weights(tmp_path),
        "--input_image", f"['{a}','{b}']", "--bundle_root", tmp_path / "s", "--output_dir", tmp_path / "pred",
    )  # fmt: skip
    assert line.startswith("error: ") and "would both be written as" in line, line
    assert not (tmp_path / "pred").exists()


def test_ill_teacher_weights_given_to_the_student_inference(tmp_path):
    """The teacher's models folder given to the student's inference: refused by its recorded channel count before
    anything loads (it used to fail deep in the run, on the state dict)."""
    from kd_components.deploy.weights import write_model_settings

    weights = _weights(tmp_path)
    write_model_settings(weights, [64, 64, 64], 4, None)
    line = refused(
        "run", "--config_file", STUDENT / "inference.json", "--ckpt_dir", weights,
        "--input_image", _scan(tmp_path / "c_t1ce.nii.gz"), "--bundle_root", tmp_path / "s",
        "--output_dir", tmp_path / "pred",
    )  # fmt: skip
    assert re.match(r"error: --ckpt_dir '.*' holds weights of the four-sequence teacher \(4 input channel", line), line
    assert not (tmp_path / "pred").exists()


@pytest.mark.parametrize("name", ["nan", "zscored", "truncated"])
def test_ill_student_inference_writes_nothing_from_a_refused_scan(tmp_path, name):
    """The bundle's own inference config refuses in one line before loading weights: no output folder at all."""
    path, phrase = _bad_scans(tmp_path)[name]
    line = refused(
        "run",
        "--config_file",
        STUDENT / "inference.json",
        "--ckpt_dir",
        _weights(tmp_path),
        "--input_image",
        path,
        "--bundle_root",
        tmp_path / "s",
        "--output_dir",
        tmp_path / "pred",
    )
    assert line.startswith("error: ") and str(path) in line and phrase in line, line
    assert not (tmp_path / "pred").exists() and not (tmp_path / "s").exists()


def test_ill_teacher_inference_writes_nothing_from_a_refused_scan(tmp_path):
    path, _ = _bad_scans(tmp_path)["nan"]
    images = [str(_scan(tmp_path / f"c_{m}.nii.gz")) for m in ("t1ce", "t1", "t2")] + [str(path)]
    (tmp_path / "datalist.json").write_text(json.dumps({"test": [{"image": images}]}))
    line = refused(
        "run",
        "--config_file",
        TEACHER / "inference.json",
        "--ckpt_dir",
        _weights(tmp_path),
        "--dataset_dir",
        tmp_path,
        "--data_list_file_path",
        tmp_path / "datalist.json",
        "--bundle_root",
        tmp_path / "t",
        "--output_dir",
        tmp_path / "pred",
    )
    assert str(path) in line and "NaN/Inf" in line
    assert not (tmp_path / "pred").exists()


def test_ill_stacked_teacher_image_checked_per_channel(tmp_path):
    """One file with the teacher's four channels on its last axis (MONAI Label's form): each channel is checked."""
    data = np.zeros((8, 8, 8, 4), np.float32)
    data[2:6, 2:6, 2:6] = np.linspace(1.0, 2.0, 64).reshape(4, 4, 4, 1)
    good = _scan(tmp_path / "stack.nii.gz", data)
    assert check_images([{"image": str(good)}], channels=4) == [{"image": str(good)}]
    data[0, 0, 0, 3] = np.nan
    bad = _scan(tmp_path / "stack_nan.nii.gz", data)
    with pytest.raises(InputError, match=r"'.*stack_nan.nii.gz' channel 3 has 1 NaN/Inf voxel"):
        check_images([{"image": str(bad)}], channels=4)
    damaged = tmp_path / "stack_damaged.nii.gz"  # the stacked form reads through MONAI: its stream is checked too
    raw = bytearray(good.read_bytes())
    raw[-8:-4] = bytes(b ^ 0xFF for b in raw[-8:-4])  # the gzip trailer's CRC-32
    damaged.write_bytes(bytes(raw))
    with pytest.raises(InputError, match=r"image '.*stack_damaged.nii.gz' is a damaged gzip file"):
        check_images([{"image": str(damaged)}], channels=4)


# ------------------------------------------------------------------------------------------- output names, convention
@pytest.mark.parametrize(
    "source, asked, expected",
    [
        ("/d/A/A-t1c.nii.gz", None, "A_teacher_seg_brats2023"),
        ("/d/A/A_t1ce.nii.gz", None, "A_teacher_seg_brats2021"),
        ("/d/B/B_flair.nii", None, "B_teacher_seg_brats2021"),
        ("/d/dicom_series", None, "dicom_series_teacher_seg_brats2021"),  # no layout in the name: the default
        ("/d/scan.nrrd", None, "scan_teacher_seg_brats2021"),
        ("/d/A/A-t1c.nii.gz", "brats2021", "A_teacher_seg_brats2021"),  # asked for: as asked
    ],
)
def test_output_convention_follows_each_input(source, asked, expected):
    assert inference.output_convention(asked) == asked
    assert inference.output_name(source, "teacher", asked) == expected


def test_label_maps_of_both_layouts_in_one_run_each_follow_their_input():
    """A folder of 2021 and 2023 cases: ET is written 4 in one map and 3 in the other, not one rule for both."""
    regions = torch.zeros(3, 4, 4, 4)
    regions[:, :2] = 1  # TC, WT and ET on the first half
    step = RegionsToBratsLabeld(keys="pred", convention=None)
    for name, et in (("/d/A/A_t1ce.nii.gz", 4), ("/d/B/B-t1c.nii.gz", 3), ("/d/scan.nrrd", 4)):
        out = step({"pred": MetaTensor(regions, meta={"filename_or_obj": name})})["pred"]
        assert set(torch.unique(out).tolist()) == {0, et}, name
    # a prediction without metadata: the image's file name decides
    image = MetaTensor(torch.zeros(1, 4, 4, 4), meta={"filename_or_obj": "/d/B/B-t1c.nii.gz"})
    assert int(step({"pred": regions, "image": image})["pred"].max()) == 3
    # asked for: every map in that convention
    fixed = RegionsToBratsLabeld(keys="pred", convention="brats2021")
    assert int(fixed({"pred": MetaTensor(regions, meta={"filename_or_obj": "/d/B/B-t1c.nii.gz"})})["pred"].max()) == 4


def test_ill_output_convention():
    with pytest.raises(InputError, match="--output_label_convention 'brats2020' is not one of"):
        inference.output_convention("brats2020")
    with pytest.raises(ValueError, match="or None"):
        RegionsToBratsLabeld(keys="pred", convention="brats2020")


@pytest.mark.parametrize(
    "source, subject",
    [
        ("/d/BraTS-GLI-00001-000/BraTS-GLI-00001-000-t1c.nii.gz", "BraTS-GLI-00001-000_teacher_seg_brats2023"),
        ("/d/BraTS2021_00001/BraTS2021_00001_t1ce.nii.gz", "BraTS2021_00001_teacher_seg_brats2021"),
        ("/d/Phantom_00002/Phantom_00002_flair.nii", "Phantom_00002_teacher_seg_brats2021"),
        ("/d/dicom_series", "dicom_series_teacher_seg_brats2021"),
        ("/d/scan.nrrd", "scan_teacher_seg_brats2021"),
        ("/d/t1ce.nii.gz", "t1ce_teacher_seg_brats2021"),  # nothing left without the suffix: the name stays
        ("/d/case.v2_t1ce.nii.gz", "case.v2_teacher_seg_brats2021"),  # a dot in the case name is kept
    ],
)
def test_output_names_say_the_case_and_the_model(source, subject, tmp_path):
    from functools import partial

    from monai.transforms import SaveImage

    formatter = partial(inference.case_name_formatter, model="teacher", convention=None)
    saver = SaveImage(output_dir=tmp_path, output_postfix="", output_name_formatter=formatter, separate_folder=False)
    path = saver.folder_layout.filename(**formatter({"filename_or_obj": source}, saver))
    assert path == str(tmp_path / f"{subject}.nii.gz")


# ------------------------------------------------------------------------------------------- combinations
def _case(root, name, layout="brats2021", modalities=("t1ce", "t1", "t2", "flair")):
    sep = "_" if layout == "brats2021" else "-"
    names = {"brats2021": {}, "brats2023": {"t1ce": "t1c", "t1": "t1n", "t2": "t2w", "flair": "t2f"}}[layout]
    return {m: _scan(root / name / f"{name}{sep}{names.get(m, m)}.nii.gz") for m in modalities}


def test_combination_items_by_case_in_the_teachers_order(tmp_path):
    a = _case(tmp_path, "A")
    b = _case(tmp_path, "B", "brats2023")
    items = student_datalist(None, tmp_path, "flair+t1ce")
    assert items == [{"image": [str(a["t1ce"]), str(a["flair"])]}, {"image": [str(b["t1ce"]), str(b["flair"])]}]
    # one case's files in any order: the names say their sequences
    assert student_datalist([str(b["flair"]), str(b["t1ce"])], tmp_path, "t1ce+flair") == [
        {"image": [str(b["t1ce"]), str(b["flair"])]}
    ]
    # several cases: a list of lists; one stacked file: as given
    assert (
        len(
            student_datalist(
                [[str(a["t1ce"]), str(a["flair"])], [str(b["flair"]), str(b["t1ce"])]], tmp_path, "t1ce+flair"
            )
        )
        == 2
    )
    stacked = str(_scan(tmp_path / "A" / "A_t1ce+flair.nii.gz"))
    assert student_datalist(stacked, tmp_path, "t1ce+flair") == [{"image": stacked}]
    with pytest.raises(InputError, match=r"is named T1c but is read as T1c\+FLAIR"):
        student_datalist(str(a["t1ce"]), tmp_path, "t1ce+flair")  # one sequence is not the stacked pair
    # names that say nothing: the order given
    other = [str(_scan(tmp_path / "x" / "one.nii.gz")), str(_scan(tmp_path / "x" / "two.nii.gz"))]
    assert student_datalist(other, tmp_path / "x", "t1ce+flair") == [{"image": other}]


def test_ill_combination_items(tmp_path):
    a = _case(tmp_path, "A")
    _case(tmp_path, "B", modalities=("t1ce", "t1", "t2"))  # no FLAIR
    with pytest.raises(InputError, match=r"case folder\(s\) .*B lack one of the t1ce\+flair images"):
        student_datalist(None, tmp_path, "t1ce+flair")
    with pytest.raises(InputError, match="needs 2 images per case"):
        student_datalist([str(a["t1ce"]), str(a["t2"]), str(a["flair"])], tmp_path, "t1ce+flair")
    with pytest.raises(InputError, match=r"their names say t1ce\+t2, the student's inputs are t1ce\+flair"):
        student_datalist([str(a["t1ce"]), str(a["t2"])], tmp_path, "t1ce+flair")
    with pytest.raises(InputError, match="--student_modality: .* names flair twice"):
        student_datalist(None, tmp_path, "flair+t2f")


def test_any_student_items_from_whatever_a_case_has(tmp_path):
    """The ``any`` student takes each case folder with whatever sequences it holds, or the files given, and lists
    their sequences in the order of the images (the teacher's order where the names say them)."""
    a = _case(tmp_path, "A")
    b = _case(tmp_path, "B", "brats2023", modalities=("t2", "flair"))
    c = _case(tmp_path, "C", modalities=("flair",))
    items = student_datalist(None, tmp_path, "any")
    assert items == [
        {"image": [str(a[m]) for m in ("t1ce", "t1", "t2", "flair")], "modalities": "t1ce+t1+t2+flair"},
        {"image": [str(b["t2"]), str(b["flair"])], "modalities": "t2+flair"},
        {"image": [str(c["flair"])], "modalities": "flair"},
    ]
    assert student_datalist(str(c["flair"]), tmp_path, "any") == [{"image": str(c["flair"]), "modalities": "flair"}]
    assert student_datalist([str(a["flair"]), str(a["t1ce"])], tmp_path, "any") == [
        {"image": [str(a["t1ce"]), str(a["flair"])], "modalities": "t1ce+flair"}
    ]
    stacked = _scan(tmp_path / "s" / "S_t1ce+flair.nii.gz")
    assert student_datalist(str(stacked), tmp_path, "any") == [{"image": str(stacked), "modalities": "t1ce+flair"}]
    other = [str(_scan(tmp_path / "x" / "one.nii.gz")), str(_scan(tmp_path / "x" / "two.nii.gz"))]
    assert student_datalist(other, tmp_path, "any", input_modalities="t2f+t1c") == [
        {"image": other, "modalities": "flair+t1ce"}
    ]
    check_images(items, channels=8)  # each item checked with its own channel count


def test_ill_any_student_items(tmp_path):
    a = _case(tmp_path, "A")
    one = str(_scan(tmp_path / "x" / "one.nii.gz"))
    with pytest.raises(InputError, match=r"--input_image '.*one.nii.gz': its name does not say its sequence"):
        student_datalist(one, tmp_path, "any")
    with pytest.raises(InputError, match=r"the names do not say their sequences; name the files CASE_<sequence>"):
        student_datalist([str(a["t1ce"]), one], tmp_path, "any")
    with pytest.raises(InputError, match="t1ce given twice"):
        student_datalist([str(a["t1ce"]), str(a["t1ce"])], tmp_path, "any")
    twice = str(_scan(tmp_path / "s" / "S_t1ce+t1ce.nii.gz"))
    with pytest.raises(InputError, match=r"S_t1ce\+t1ce.nii.gz': its name is read as .* names t1ce twice"):
        student_datalist(twice, tmp_path, "any")
    with pytest.raises(InputError, match=r"--input_modalities t1ce but the names of .* say flair: a scan read as"):
        student_datalist(str(a["flair"]), tmp_path, "any", input_modalities="t1ce")
    with pytest.raises(InputError, match=r"--input_modalities flair names 1 sequence\(s\) for the 2 images"):
        student_datalist([str(a["t1ce"]), str(a["t2"])], tmp_path, "any", input_modalities="flair")
    with pytest.raises(InputError, match="--input_image '.*missing_flair.nii.gz' does not exist"):
        student_datalist(str(tmp_path / "missing_flair.nii.gz"), tmp_path, "any")
    with pytest.raises(InputError, match="no case folder under --dataset_dir .* holds a BraTS image"):
        student_datalist(None, tmp_path / "x", "any")
