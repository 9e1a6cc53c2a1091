"""Cached teacher logits: the cache command, the student's cached_teacher.json overlay, and agreement with the
online teacher on unaugmented crops."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import REPO, run_workflow
from monai.bundle import ConfigParser
from monai.transforms import Compose, RandCropByPosNegLabeld, SpatialPadd

from kd_components.errors import InputError
from kd_components.tools.cache import cache_teacher_logits
from kd_components.training.trainer import fill_padded_logits

STUDENT = REPO / "bundles" / "student_kd" / "configs"
ROI = [32, 32, 32]


@pytest.fixture(scope="module")
def full_fov(tiny_phantom, tmp_path_factory):
    """Three phantom cases whose brain fills the whole 32^3 field of view (every modality + 1), so the brain crop
    is the whole volume, roi_size needs no padding and one sliding window covers it: the teacher then sees the very
    same tensor online and when caching."""
    import nibabel as nib

    from kd_components.data import build_datalist, find_cases, write_datalist

    out = tmp_path_factory.mktemp("full_fov")
    for case in find_cases(tiny_phantom)[:3]:
        folder = out / case.name
        folder.mkdir()
        for role, path in case.files.items():
            img = nib.load(path)
            data = np.asarray(img.dataobj)
            data = data if role == "seg" else data.astype(np.float32) + 1.0
            nib.save(nib.Nifti1Image(data, img.affine), folder / path.name)
    write_datalist(build_datalist(out, val_fraction=0.34, test_fraction=0.0), out / "datalist.json")
    return out


@pytest.fixture(scope="module", autouse=True)
def _no_background_needed():
    """The full-field-of-view cases have no zero background on purpose (the brain crop must be the whole volume);
    this module alone lets them through the check that refuses such scans elsewhere."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("kd_components.data.validate.MIN_ZERO_FRACTION", 0.0)
        yield


@pytest.fixture(scope="module")
def cached(full_fov, teacher_ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("cache")
    return cache_teacher_logits(teacher_ckpt, full_fov, output=out, overrides={"roi_size": ROI}, device="cpu")


@pytest.mark.slow
def test_cache_writes_float16_logits_on_the_image_grid(cached, full_fov, teacher_ckpt, capsys):
    content = json.loads(cached.read_text())
    assert content["teacher_logits"]["dtype"] == "float16"
    entries = content["training"]
    assert entries and all("teacher_logits" in e for e in entries)
    assert not any("teacher_logits" in e for e in content["validation"]), "only the training split by default"
    with np.load(entries[0]["teacher_logits"]) as z:
        assert z["logits"].dtype == np.float16 and z["logits"].shape == (3, 32, 32, 32)
    # a second run reuses every file (same checkpoint digest)
    cache_teacher_logits(teacher_ckpt, full_fov, output=cached.parent, overrides={"roi_size": ROI})
    assert f"0 case(s) cached, {len(entries)} reused" in capsys.readouterr().out


def _student_parser(tiny_phantom, cached) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(STUDENT / "train.json"), str(STUDENT / "cached_teacher.json")])
    parser.update(
        {"dataset_dir": str(tiny_phantom), "data_list_file_path": str(cached), "roi_size": ROI, "device": "cpu"}
    )
    parser.resolve_macro_and_relative_ids()
    return parser


@pytest.mark.slow
def test_cached_and_online_kd_agree_on_unaugmented_crops(cached, full_fov, teacher_ckpt):
    parser = _student_parser(full_fov, cached)
    deterministic = parser.get_parsed_content("train#teacher_logit_transforms") + parser.get_parsed_content(
        "train#preprocessing_transforms"
    )
    random = parser.get_parsed_content("train#random_transforms")
    loss = parser.get_parsed_content("loss")
    teacher = parser.get_parsed_content("teacher_def")
    datalist = parser.get_parsed_content("train_datalist")
    # unaugmented crop: the bundle's own loading, cropping to the brain, normalising, padding and crop of roi_size
    # (no flips, no intensity augmentation)
    spatial = [t for t in random if isinstance(t, (SpatialPadd, RandCropByPosNegLabeld))]
    assert len(spatial) == 2
    pipeline = Compose([*deterministic, *spatial])
    teacher.load_state_dict(torch.load(teacher_ckpt, weights_only=True))
    teacher.eval()
    pred = torch.randn(1, 3, *ROI, generator=torch.Generator().manual_seed(0))
    for item in datalist:
        sample = pipeline(item)
        sample = sample[0] if isinstance(sample, list) else sample
        image, label, cached_logits = sample["image"][None], sample["label"][None], sample["teacher_logits"][None]
        assert cached_logits.shape == (1, 3, *ROI)
        with torch.no_grad():
            online = teacher(image.as_tensor())
        scale = float(online.abs().max())
        diff = float((online - cached_logits.as_tensor()).abs().max())
        assert diff <= 2e-3 * scale + 1e-3, f"{item['case']}: cached logits differ by {diff} (scale {scale})"
        values = [
            float(loss(pred, label.as_tensor(), logits)["loss_kd"])
            for logits in (online, fill_padded_logits(cached_logits.as_tensor()))
        ]
        assert values[0] == pytest.approx(values[1], rel=1e-2, abs=1e-4)


@pytest.mark.slow
def test_student_trains_from_cached_logits(cached, full_fov, tmp_path):
    wf = run_workflow(
        [STUDENT / "train.json", STUDENT / "cached_teacher.json"],
        bundle_root=str(tmp_path / "student"),
        dataset_dir=str(full_fov),
        data_list_file_path=str(cached),
        teacher_ckpt=str(tmp_path / "never_read.pt"),
        roi_size=ROI,
        epochs=1,
        learning_rate=1e-3,
    )
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert trainer.teacher is None and trainer.cached_logits_key == "teacher_logits"
    metrics = wf.parser.get_parsed_content("train#trainer").state.metrics
    assert metrics["train_loss_kd"] > 0 and metrics["train_loss_feat"] == 0
    assert (tmp_path / "student" / "models" / "model.pt").is_file()


@pytest.mark.slow
def test_ill_cached_teacher_with_feature_term(cached, full_fov, tmp_path):
    with pytest.raises(InputError, match="cached teacher outputs carry logits only, but feature_weight is 0.1"):
        run_workflow(
            [STUDENT / "train.json", STUDENT / "cached_teacher.json"],
            bundle_root=str(tmp_path / "student"),
            dataset_dir=str(full_fov),
            data_list_file_path=str(cached),
            feature_weight=0.1,
            epochs=1,
        )
    assert not (tmp_path / "student" / "models").exists()


def test_ill_cache_unwritable_or_missing(tiny_phantom, tmp_path):
    with pytest.raises(InputError, match="--teacher-ckpt .* does not exist"):
        cache_teacher_logits(tmp_path / "nope.pt", tiny_phantom, output=tmp_path)
    with pytest.raises(InputError, match="datalist .* does not exist"):
        cache_teacher_logits(tmp_path / "nope.pt", tmp_path, output=tmp_path)
