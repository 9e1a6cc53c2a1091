"""MSD Task01_BrainTumour: an MSD-layout folder built from the phantom converts to the BraTS layout with the same
regions and images, and the teacher trains on it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import REPO, run_workflow

from kd_components.brats import TEACHER_CHANNELS
from kd_components.data import msd
from kd_components.data.datalist import find_cases
from kd_components.errors import InputError
from kd_components.transforms import labels_to_regions

#: Task01_BrainTumour's dataset.json, as the Decathlon ships it (the keys this project reads)
DATASET_JSON = {
    "name": "BRATS",
    "reference": "https://www.med.upenn.edu/sbia/brats2017.html",
    "licence": "CC-BY-SA 4.0",
    "tensorImageSize": "4D",
    "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
    "labels": {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"},
}
MSD_ORDER = ["flair", "t1", "t1ce", "t2"]
#: BraTS 2021 label -> MSD label (1 NCR/NET -> 2 non-enhancing, 2 ED -> 1 edema, 4 ET -> 3 enhancing)
BRATS_TO_MSD = {0: 0, 1: 2, 2: 1, 4: 3}


def make_msd(phantom, out, n=None):
    """Write the phantom's cases as an MSD task: 4-D images in dataset.json's channel order, MSD labels."""
    (out / "imagesTr").mkdir(parents=True)
    (out / "labelsTr").mkdir()
    training = []
    for i, case in enumerate(find_cases(phantom)[:n]):
        name = f"BRATS_{i + 1:03d}.nii.gz"
        ref = nib.load(str(case.files["t1ce"]))
        vols = [np.asarray(nib.load(str(case.files[m])).dataobj, dtype=np.float32) for m in MSD_ORDER]
        nib.save(nib.Nifti1Image(np.stack(vols, -1), ref.affine), str(out / "imagesTr" / name))
        seg = np.asarray(nib.load(str(case.files["seg"])).dataobj).astype(np.uint8)
        lut = np.zeros(5, np.uint8)
        for b, m in BRATS_TO_MSD.items():
            lut[b] = m
        nib.save(nib.Nifti1Image(lut[seg], ref.affine), str(out / "labelsTr" / name))
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}", "source": case.name})
    (out / "dataset.json").write_text(json.dumps({**DATASET_JSON, "numTraining": len(training), "training": training}))
    return training


@pytest.fixture
def msd_task(tiny_phantom, tmp_path):
    training = make_msd(tiny_phantom, tmp_path / "Task01_BrainTumour")
    return tmp_path / "Task01_BrainTumour", training


def test_conversion_keeps_the_regions_and_the_images(msd_task, tiny_phantom, tmp_path):
    task, training = msd_task
    datalist = msd.convert_msd(task, tmp_path / "brats")
    converted = {c.name: c for c in find_cases(tmp_path / "brats")}
    original = {c.name: c for c in find_cases(tiny_phantom)}
    assert len(converted) == len(training) == 5
    for item in training:
        new, old = converted[item["image"].split("/")[-1][: -len(".nii.gz")]], original[item["source"]]
        assert new.convention == "brats2021"
        # the regions the bundles train on, from the converted label and from the original BraTS label
        new_seg = np.asarray(nib.load(str(new.files["seg"])).dataobj)[None]
        old_seg = np.asarray(nib.load(str(old.files["seg"])).dataobj)[None]
        assert torch.equal(labels_to_regions(new_seg, "brats2021"), labels_to_regions(old_seg, "brats2021"))
        for m in TEACHER_CHANNELS:  # each sequence where its name says, on the original grid
            a, b = nib.load(str(new.files[m])), nib.load(str(old.files[m]))
            np.testing.assert_array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
            np.testing.assert_allclose(a.affine, b.affine, atol=1e-5)
    content = json.loads(datalist.read_text())
    assert content["label_convention"] == "brats2021"
    assert sum(len(content[k]) for k in ("training", "validation", "test")) == 5
    provenance = json.loads((tmp_path / "brats" / "msd_conversion.json").read_text())
    assert provenance["channels"]["t1ce"] == {"index": 2, "msd_name": "t1gd"}
    assert provenance["labels"]["to_brats2021"] == {"0": 0, "1": 2, "2": 1, "3": 4}
    assert sorted(p.name for p in task.iterdir()) == ["dataset.json", "imagesTr", "labelsTr"], "input untouched"


@pytest.mark.parametrize(
    "modality, expected",
    [
        ({"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}, {"t1ce": 2, "t1": 1, "t2": 3, "flair": 0}),
        ({"0": "T1c", "1": "T1", "2": "T2", "3": "FLAIR"}, {"t1ce": 0, "t1": 1, "t2": 2, "flair": 3}),
    ],
)
def test_channel_map(modality, expected):
    assert msd.channel_map(modality) == expected


@pytest.mark.parametrize(
    "labels, expected",
    [
        (DATASET_JSON["labels"], {0: 0, 1: 2, 2: 1, 3: 4}),
        (
            {"0": "background", "1": "edema", "2": "non-enhancing tumour", "3": "enhancing tumor"},
            {0: 0, 1: 2, 2: 1, 3: 4},
        ),
    ],
)
def test_label_map(labels, expected):
    assert msd.label_map(labels) == expected


@pytest.mark.parametrize(
    "modality, words",
    [
        ({"0": "FLAIR", "1": "T1w", "2": "PD", "3": "T2w"}, "unknown MSD channel name 'PD'"),
        ({"0": "FLAIR", "1": "T1w", "2": "T1w", "3": "T2w"}, "both name t1"),
        ({"0": "FLAIR", "1": "T1w", "2": "t1gd"}, "not the four BraTS sequences"),
    ],
)
def test_ill_channel_map(modality, words):
    with pytest.raises(ValueError, match=words):
        msd.channel_map(modality)


def test_ill_label_map():
    with pytest.raises(ValueError, match="unknown MSD label name 'liver'"):
        msd.label_map({"0": "background", "1": "liver"})


def test_ill_msd_input(msd_task, tmp_path):
    task, training = msd_task
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(InputError, match="is not empty"):
        msd.convert_msd(task, tmp_path / "full")
    with pytest.raises(InputError, match="lies inside --data-dir"):
        msd.convert_msd(task, task / "converted")
    # a 3-D image where a 4-D one is named
    bad = task / "imagesTr" / training[0]["image"].split("/")[-1]
    nib.save(nib.Nifti1Image(np.zeros((32, 32, 32), np.float32), np.eye(4)), str(bad))
    with pytest.raises(InputError, match=r"has shape \(32, 32, 32\): an MSD Task01 image is 4-D"):
        msd.convert_msd(task, tmp_path / "out1")
    # a label value dataset.json does not name
    shutil.rmtree(tmp_path / "out1")
    good = nib.load(str(task / "imagesTr" / training[1]["image"].split("/")[-1]))
    nib.save(good, str(bad))
    label = task / "labelsTr" / training[0]["label"].split("/")[-1]
    nib.save(nib.Nifti1Image(np.full((32, 32, 32), 7, np.uint8), good.affine), str(label))
    with pytest.raises(InputError, match=r"holds values \[7\]; dataset.json names \[0, 1, 2, 3\]"):
        msd.convert_msd(task, tmp_path / "out2")


def test_datalist_on_an_msd_folder_points_at_the_converter(msd_task, tmp_path):
    """A 4-D MSD folder given where a BraTS folder is expected: one line naming the conversion command."""
    res = subprocess.run(
        [sys.executable, "-m", "kd_components.data", "datalist", "--data-dir", str(msd_task[0])]
        + ["--output", str(tmp_path / "dl.json")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1
    assert "Medical Segmentation Decathlon" in res.stderr and "python -m kd_components.data msd" in res.stderr
    assert not (tmp_path / "dl.json").exists()


@pytest.mark.slow
def test_teacher_trains_on_a_converted_msd_task(msd_task, tmp_path, capsys):
    """The command line a user runs: convert, then one teacher epoch on the converted folder."""
    from kd_components.data.__main__ import main

    task, _ = msd_task
    out = tmp_path / "brats"
    assert main(["msd", "--data-dir", str(task), "--output", str(out)]) == 0
    assert "label convention brats2021" in capsys.readouterr().out
    wf = run_workflow(
        REPO / "bundles" / "teacher" / "configs" / "train.json",
        bundle_root=str(tmp_path / "teacher"),
        dataset_dir=str(out),
        epochs=1,
    )
    assert wf.parser.get_parsed_content("train#trainer").state.iteration > 0
    assert (tmp_path / "teacher" / "models" / "model.pt").is_file()
