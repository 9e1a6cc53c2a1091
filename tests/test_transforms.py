from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from kd_components.transforms import BratsLabelToRegionsd, RegionsToBratsLabeld, labels_to_regions, regions_to_labels

# one voxel per label value; expected (TC, WT, ET) per voxel, worked out by hand from the BraTS definitions
CASES_2021 = [
    ([0, 1, 2, 4], [[0, 1, 0, 1], [0, 1, 1, 1], [0, 0, 0, 1]]),
    ([2, 2, 0, 0], [[0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]]),
]
CASES_2023 = [
    ([0, 1, 2, 3], [[0, 1, 0, 1], [0, 1, 1, 1], [0, 0, 0, 1]]),
    ([3, 3, 1, 0], [[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 0, 0]]),
]


def _lab(values):
    return torch.tensor(values, dtype=torch.uint8).reshape(1, 4, 1, 1)


@pytest.mark.parametrize("values, expected", CASES_2021)
@pytest.mark.parametrize("convention", ["brats2021", "auto"])
def test_regions_2021(values, expected, convention):
    out = labels_to_regions(_lab(values), convention)
    assert out.dtype == torch.float32 and out.shape == (3, 4, 1, 1)
    assert out[:, :, 0, 0].tolist() == expected


@pytest.mark.parametrize("values, expected", CASES_2023)
@pytest.mark.parametrize("convention", ["brats2023", "auto"])
def test_regions_2023(values, expected, convention):
    assert labels_to_regions(_lab(values), convention)[:, :, 0, 0].tolist() == expected


@pytest.mark.parametrize("convention, et", [("brats2021", 4), ("brats2023", 3)])
def test_round_trip(convention, et):
    rng = np.random.default_rng(0)
    lab = torch.as_tensor(rng.choice([0, 1, 2, et], size=(1, 6, 5, 4)).astype(np.uint8))
    back = regions_to_labels(labels_to_regions(lab, convention), convention)
    assert back.dtype == torch.uint8 and torch.equal(back, lab)


def test_non_nested_prediction_gives_one_label_per_voxel():
    # ET alone, TC without WT, WT alone: ET wins over TC, TC over WT
    reg = torch.tensor([[0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=torch.float32).reshape(3, 3, 1, 1)
    assert regions_to_labels(reg, "brats2021").flatten().tolist() == [4, 1, 2]


def test_dict_transforms_keep_meta_and_read_convention_key():
    lab = MetaTensor(_lab([0, 1, 2, 3]), meta={"filename_or_obj": "x-seg.nii.gz"})
    d = BratsLabelToRegionsd("label")({"label": lab, "label_convention": "brats2023"})
    assert isinstance(d["label"], MetaTensor) and d["label"].meta["filename_or_obj"] == "x-seg.nii.gz"
    assert d["label"][2].flatten().tolist() == [0, 0, 0, 1]
    out = RegionsToBratsLabeld("label", convention="brats2021")(d)
    assert out["label"].flatten().tolist() == [0, 1, 2, 4]


def test_ill_values_outside_convention():
    lab = MetaTensor(_lab([0, 1, 2, 3]), meta={"filename_or_obj": "case_seg.nii.gz"})
    with pytest.raises(ValueError, match=r"label 'case_seg.nii.gz' holds values \[0, 1, 2, 3\]"):
        BratsLabelToRegionsd("label", convention="brats2021", convention_key=None)({"label": lab})


@pytest.mark.parametrize(
    "values, named",
    [
        ([0, 3, 4, 0], "[0, 3, 4]"),
        ([0, 5, 0, 0], "[0, 5]"),
        ([0, -1, 2, 0], "[-1, 0, 2]"),  # outside uint8: the values are still read and named
        ([0, 300, 1, 0], "[0, 1, 300]"),
    ],
)
def test_ill_auto_ambiguous_or_unknown(values, named):
    with pytest.raises(ValueError, match=rf"holds values {re.escape(named)}; expected 0, 1, 2, 4"):
        labels_to_regions(torch.tensor(values, dtype=torch.float32).reshape(1, 1, 1, 4), "auto")


def test_ill_arguments():
    with pytest.raises(ValueError, match="label convention must be one of"):
        BratsLabelToRegionsd("label", convention="brats2019")
    with pytest.raises(ValueError, match="output label convention"):
        RegionsToBratsLabeld("pred", convention="auto")
    with pytest.raises(ValueError, match=r"shape \(3, H, W, D\).*got \(2, 4, 1, 1\)"):
        regions_to_labels(torch.zeros(2, 4, 1, 1))
    with pytest.raises(ValueError, match="must have one channel"):
        labels_to_regions(torch.zeros(2, 4, 1, 1))


@pytest.mark.parametrize(
    "et_voxels, min_voxels, et_kept",
    [(3, 0, True), (3, 4, False), (4, 4, True), (0, 4, True)],  # off; below: relabelled; at the threshold: kept
)
def test_small_enhancing_tumour_becomes_core(et_voxels, min_voxels, et_kept):
    from kd_components.transforms import SmallEnhancingToCored

    regions = torch.zeros(3, 4, 4, 4)
    regions[1, :2] = 1  # whole tumour: 32 voxels
    regions[2].view(-1)[:et_voxels] = 1  # ET voxels (not marked as TC: the rule puts them into TC)
    out = SmallEnhancingToCored("pred", min_voxels)({"pred": regions})["pred"]
    if et_kept:
        assert torch.equal(out, regions)
    else:
        assert out[2].sum() == 0 and out[0].sum() == et_voxels and out[1].sum() == regions[1].sum()


def test_ill_small_enhancing_threshold():
    from kd_components.transforms import SmallEnhancingToCored, small_enhancing_to_core

    with pytest.raises(ValueError, match="et_min_voxels must be >= 0"):
        SmallEnhancingToCored("pred", -1)
    with pytest.raises(ValueError, match=r"needs TC, WT, ET channels, got shape \(2, 4, 4, 4\)"):
        small_enhancing_to_core(torch.zeros(2, 4, 4, 4), 5)
