"""The model zoo's ``brats_mri_segmentation`` as teacher: its bundle folder is accepted as ``--teacher_ckpt``, its
window is the one its own inference slides, and the teacher bundle's inference of its weights writes the label map
the zoo's own ``inference.json`` writes."""

from __future__ import annotations

import json
import logging
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import REPO, run_workflow
from monai.networks.nets import SegResNet

from kd_components.brats import TEACHER_CHANNELS
from kd_components.data.datalist import find_cases
from kd_components.deploy import weights
from kd_components.training.teacher import ZOO_SPLIT_WARNING, teacher_weights

ZOO_CONFIGS = REPO / "tests" / "data" / "zoo_brats_mri_segmentation" / "configs"


@pytest.fixture
def zoo_bundle(tmp_path):
    """A downloaded ``brats_mri_segmentation`` as ``monai.bundle download`` leaves it: the zoo's configs and a
    ``models/model.pt`` (here a seeded random state dict of the zoo's network; the real weights are not shipped)."""
    bundle = tmp_path / "zoo" / "brats_mri_segmentation"
    shutil.copytree(ZOO_CONFIGS, bundle / "configs")
    (bundle / "models").mkdir()
    torch.manual_seed(0)
    net = SegResNet(blocks_down=[1, 2, 2, 4], blocks_up=[1, 1, 1], init_filters=16, in_channels=4, out_channels=3)
    torch.save(net.state_dict(), bundle / "models" / "model.pt")
    return bundle


def test_teacher_ckpt_takes_the_zoo_bundle_folder_and_warns_about_its_split(zoo_bundle, caplog, tmp_path):
    with caplog.at_level(logging.WARNING, logger="kd_components.teacher"):
        assert teacher_weights(zoo_bundle) == str(zoo_bundle / "models" / "model.pt")
        assert teacher_weights(zoo_bundle / "models" / "model.pt") == str(zoo_bundle / "models" / "model.pt")
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [ZOO_SPLIT_WARNING] * 2 and "seed 123" in ZOO_SPLIT_WARNING
    # our own teacher bundle's folder, or a plain file: taken as they are, no warning
    own = tmp_path / "teacher"
    (own / "models").mkdir(parents=True)
    (own / "models" / "model.pt").write_bytes(b"")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kd_components.teacher"):
        assert teacher_weights(own) == str(own / "models" / "model.pt")
        assert teacher_weights(tmp_path / "missing.pt") == str(tmp_path / "missing.pt")
    assert caplog.records == []


def test_the_zoo_bundles_window_is_the_one_its_inference_slides(zoo_bundle, tmp_path):
    assert weights.trained_window(zoo_bundle / "models") == [240, 240, 160]
    assert weights.trained_window(zoo_bundle / "models", [32, 32, 32]) == [32, 32, 32]
    (tmp_path / "loose").mkdir()
    assert weights.trained_window(tmp_path / "loose") == list(weights.DEFAULT_WINDOW)


@pytest.mark.slow
def test_teacher_inference_writes_the_zoos_label_map(zoo_bundle, tiny_phantom, tmp_path):
    """The zoo's ``inference.json`` as published and the teacher bundle's ``inference.json``, same weights, same
    case: the same label map. One window for both (the zoo's 240x240x160 on a 32^3 phantom would only pad)."""
    case = find_cases(tiny_phantom)[0]
    images = [str(case.files[m]) for m in TEACHER_CHANNELS]  # the zoo's order: t1ce, t1, t2, flair
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"testing": [{"image": images}], "test": [{"image": images}]}))
    window = [32, 32, 32]
    run_workflow(
        zoo_bundle / "configs" / "inference.json",
        run_id="run",
        tiny=False,
        bundle_root=str(zoo_bundle),
        data_list_file_path=str(datalist),
        dataset_dir=str(tiny_phantom),
        output_dir=str(tmp_path / "zoo_out"),
        device="$torch.device('cpu')",
        **{"dataloader#num_workers": 0, "dataloader#shuffle": False, "inferer#roi_size": window},
    )
    run_workflow(
        REPO / "bundles" / "teacher" / "configs" / "inference.json",
        run_id="run",
        tiny=False,
        ckpt_dir=str(zoo_bundle / "models"),
        data_list_file_path=str(datalist),
        dataset_dir=str(tiny_phantom),
        output_dir=str(tmp_path / "ours"),
        roi_size=window,
        num_workers=0,
        device="$torch.device('cpu')",
    )
    (zoo_file,) = (tmp_path / "zoo_out").rglob("*.nii.gz")
    (our_file,) = (tmp_path / "ours").glob("*.nii.gz")
    assert our_file.name == f"{case.name}_teacher_seg_brats2021.nii.gz"
    zoo_map, our_map = nib.load(str(zoo_file)), nib.load(str(our_file))
    zoo_arr, our_arr = np.asarray(zoo_map.dataobj), np.asarray(our_map.dataobj)
    assert len(np.unique(our_arr)) > 1, "a random teacher still labels some voxels: the comparison is not trivial"
    np.testing.assert_array_equal(our_arr, zoo_arr)
    np.testing.assert_allclose(our_map.affine, zoo_map.affine, atol=1e-5)


def test_student_training_takes_the_zoo_bundle_folder(zoo_bundle, tiny_phantom, tmp_path, caplog):
    """``--teacher_ckpt <downloaded brats_mri_segmentation folder>``: the student's checks pass, the teacher is the
    zoo's weights, and the split warning is logged once."""
    with caplog.at_level(logging.WARNING, logger="kd_components.teacher"):
        wf = run_workflow(
            REPO / "bundles" / "student_kd" / "configs" / "train.json",
            run=False,
            bundle_root=str(tmp_path / "student"),
            dataset_dir=str(tiny_phantom),
            teacher_ckpt=str(zoo_bundle),
        )
    teacher = wf.parser.get_parsed_content("teacher")
    expected = torch.load(zoo_bundle / "models" / "model.pt", weights_only=True)
    assert all(torch.equal(teacher.state_dict()[k], v) for k, v in expected.items())
    assert [r.getMessage() for r in caplog.records].count(ZOO_SPLIT_WARNING) == 1
