"""The BraTS vocabulary: one source for modality names, channel order, conventions and regions."""

from __future__ import annotations

import re

import pytest

from kd_components import brats
from kd_components.errors import InputError
from kd_components.training.settings import student_channel


@pytest.mark.parametrize(
    "name, index", [("t1ce", 0), ("T1c", 0), ("t1", 1), ("t1n", 1), ("t2", 2), ("t2w", 2), ("FLAIR", 3), ("t2f", 3)]
)
def test_modality_index(name, index):
    assert brats.modality_index(name) == index
    assert student_channel(name) == [index]


def test_vocabulary_is_consistent():
    assert brats.TEACHER_CHANNELS == ("t1ce", "t1", "t2", "flair"), "model-zoo brats_mri_segmentation's order"
    assert [brats.CHANNEL_NAMES[m] for m in brats.TEACHER_CHANNELS] == ["T1c", "T1", "T2", "FLAIR"]
    assert brats.REGIONS == ("TC", "WT", "ET")
    for convention in brats.CONVENTIONS:
        assert brats.ET_LABEL[convention] in brats.LABEL_VALUES[convention]
        roles = set(brats.FILE_SUFFIXES[convention].values())
        assert roles == {*brats.TEACHER_CHANNELS, "seg"}
        for suffix, role in brats.FILE_SUFFIXES[convention].items():
            assert role == "seg" or brats.canonical_modality(suffix) == role


def test_ill_unknown_modality():
    with pytest.raises(ValueError, match="unknown modality 't3'"):
        brats.modality_index("t3")
    with pytest.raises(InputError, match="unknown modality 't3': use one of t1, t1ce, t2, flair"):
        student_channel("t3")


@pytest.mark.parametrize(
    "name, canonical, indices",
    [
        ("t1ce", "t1ce", [0]),
        ("t1ce+flair", "t1ce+flair", [0, 3]),
        ("FLAIR+T1c", "t1ce+flair", [0, 3]),  # any order, any case: the teacher's channel order
        ("t2f+t2w", "t2+flair", [2, 3]),  # 2023 names
        (" t2 + flair ", "t2+flair", [2, 3]),
        (["flair", "t1"], "t1+flair", [1, 3]),
        ("t1+t1ce+t2+flair", "t1ce+t1+t2+flair", [0, 1, 2, 3]),
    ],
)
def test_combinations(name, canonical, indices):
    assert brats.canonical_combination(name) == canonical
    assert brats.combination_indices(name) == indices
    assert student_channel(name) == indices


@pytest.mark.parametrize(
    "name, words",
    [("t1ce+t1c", "names t1ce twice"), ("t1ce+", "joined by '+'"), ("", "joined by '+'"), ("t1ce+t3", "unknown")],
)
def test_ill_combination(name, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        brats.combination_members(name)
    with pytest.raises(InputError, match="--student_modality: "):
        student_channel(name)


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/d/BraTS-GLI-00001-000/BraTS-GLI-00001-000-t1c.nii.gz", ("BraTS-GLI-00001-000", "brats2023", "t1ce")),
        ("/d/A/A_seg.nii", ("A", "brats2021", "seg")),
        ("/d/A/A_flair.mha", ("A", "brats2021", "flair")),
        ("/d/dicom_series", ("dicom_series", None, None)),
        ("/d/t1ce.nii.gz", ("t1ce", None, None)),
    ],
)
def test_split_file_name(path, expected):
    assert brats.split_file_name(path) == expected


@pytest.mark.parametrize(
    "name, expected",
    [
        ("/d/C_t1ce+flair.nii.gz", ("C", "brats2021", "t1ce+flair")),
        ("BraTS-GLI-00001-000-t2f+t1c.nii.gz", ("BraTS-GLI-00001-000", "brats2023", "flair+t1ce")),
        ("C_seg+t1.nii.gz", ("C_seg+t1", None, None)),
        ("a_b+c.nii.gz", ("a_b+c", None, None)),
    ],
)
def test_a_stacked_file_named_by_its_sequences(name, expected):
    """A stacked file named by its sequences, in its channels' order: the case, the layout (BraTS 2023 names give
    the 2023 label convention to its map) and the sequences."""
    assert brats.split_file_name(name) == expected
