"""The fast training pipeline (``configs/fast_train.json``): deterministic preprocessing cached once, random
transforms after ``ToDeviceUncachedd`` on the training device, the same crops as the default pipeline."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import REPO, run_workflow
from monai.bundle import ConfigParser
from monai.data import CacheDataset, PersistentDataset

from kd_components.errors import InputError
from kd_components.training.data import cached_dataset, estimate_case_bytes

TEACHER = REPO / "bundles" / "teacher" / "configs"
STUDENT = REPO / "bundles" / "student_kd" / "configs"
ROI = [16, 16, 16]


def _parser(configs, files, data_dir, **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(configs / f) for f in files])
    parser.update({"dataset_dir": str(data_dir), "roi_size": ROI, "device": "cpu", "num_workers": 0, **overrides})
    return parser


def _crops(parser: ConfigParser, item: dict, seed: int) -> list[dict]:
    pipeline = parser.get_parsed_content("train#preprocessing")
    pipeline.set_random_state(seed=seed)
    return [pipeline(dict(item)) for _ in range(4)]


@pytest.mark.parametrize("configs", [TEACHER, STUDENT], ids=["teacher", "student"])
def test_fast_pipeline_gives_the_default_pipelines_crops(tiny_phantom, tmp_path, configs):
    """For a fixed seed the fast path (padding and crop-sampler indices cached, the rest after the device transfer)
    yields the very same crops, flips and intensities as the default path, on CPU tensors."""
    default = _parser(configs, ["train.json"], tiny_phantom, bundle_root=str(tmp_path / "a"))
    fast = _parser(configs, ["train.json", "fast_train.json"], tiny_phantom, bundle_root=str(tmp_path / "b"))
    item = default.get_parsed_content("train_datalist")[0]
    for seed in (0, 1):
        for a, b in zip(_crops(default, item, seed), _crops(fast, item, seed)):
            a, b = a[0], b[0]  # RandCropByPosNegLabeld returns num_samples crops
            assert set(b) == set(a), "the crop sampler's indices do not travel on"
            assert a["image"].shape == (4, *ROI) and torch.equal(a["image"], b["image"])
            assert torch.equal(a["label"], b["label"])


def test_fast_pipeline_caches_on_host_and_never_changes_the_cache(tiny_phantom, tmp_path):
    parser = _parser(TEACHER, ["train.json", "fast_train.json"], tiny_phantom, bundle_root=str(tmp_path / "b"))
    dataset = parser.get_parsed_content("train#dataset")
    assert isinstance(dataset, CacheDataset) and not isinstance(dataset, PersistentDataset)
    cached = dataset._cache[0]  # what the cache holds: padded, normalised, with the sampler's indices
    assert {"label_fg_indices", "label_bg_indices"} <= set(cached) and cached["image"].device.type == "cpu"
    before = {k: cached[k].clone() for k in ("image", "label")}
    for _ in range(6):
        sample = dataset[0][0]
        assert sample["image"].shape == (4, *ROI) and "label_fg_indices" not in sample
    for k, v in before.items():
        assert torch.equal(dataset._cache[0][k], v), f"the cached {k} was changed by the random transforms"


def test_cache_goes_to_disk_beyond_the_memory_budget(tiny_phantom, tmp_path):
    parser = _parser(
        TEACHER, ["train.json", "fast_train.json"], tiny_phantom, bundle_root=str(tmp_path / "b"), cache_memory_gib=1e-5
    )
    dataset = parser.get_parsed_content("train#dataset")
    assert isinstance(dataset, PersistentDataset)
    other = _parser(TEACHER, ["train.json", "fast_train.json"], tiny_phantom, bundle_root=str(tmp_path / "m"))
    memory = cached_dataset(
        other.get_parsed_content("train_datalist"), other.get_parsed_content("train#preprocessing"), tmp_path / "m"
    )
    assert isinstance(memory, CacheDataset)
    for ds in (dataset, memory):
        ds.transform.set_random_state(seed=3)
    a, b = dataset[0][0], memory[0][0]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    assert len(list((tmp_path / "b" / "cache" / "train").glob("*.pt"))) == 1, "one uncompressed file per case"


def test_case_size_estimate_from_headers(tiny_phantom):
    item = json.loads((tiny_phantom / "datalist.json").read_text())["training"][0]
    item = {"image": [str(tiny_phantom / p) for p in item["image"]]}
    # 32^3 voxels x (4 modalities x 4 bytes + 3 regions x 4 bytes + 8 bytes of sampler indices)
    assert estimate_case_bytes(item) == 32**3 * (16 + 12 + 8)


@pytest.mark.slow
def test_fast_pipeline_trains_teacher_and_cached_kd_student(tiny_phantom, teacher_ckpt, tmp_path):
    run_workflow(
        [TEACHER / "train.json", TEACHER / "fast_train.json"],
        bundle_root=str(tmp_path / "teacher"),
        dataset_dir=str(tiny_phantom),
        epochs=1,
        num_samples=2,
    )
    assert (tmp_path / "teacher" / "models" / "model.pt").is_file()
    wf = run_workflow(
        [STUDENT / "train.json", STUDENT / "fast_train.json"],
        bundle_root=str(tmp_path / "student"),
        dataset_dir=str(tiny_phantom),
        teacher_ckpt=str(teacher_ckpt),
        epochs=1,
        num_samples=2,
    )
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert trainer.state.metrics["train_loss_kd"] > 0 and trainer.state.metrics["train_loss_feat"] > 0
    assert trainer.state.output[0]["image"].shape[0] == 1 and len(trainer.state.output) == 2, "2 crops per case"


def test_ill_cache_budget(tiny_phantom, tmp_path):
    parser = _parser(TEACHER, ["train.json", "fast_train.json"], tiny_phantom, bundle_root=str(tmp_path / "b"))
    parser["cache_memory_gib"] = 0
    with pytest.raises(InputError, match=r"--cache_memory_gib 0: give the memory budget of the cache in GiB"):
        parser.get_parsed_content("train#dataset")
