"""``kd_components.data.stack``: one case's sequences as one multi-channel NIfTI (the teacher's four, or a
student's combination), in the teacher's channel order."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from kd_components.data import find_cases, stack_case
from kd_components.errors import InputError


@pytest.mark.parametrize(
    "modality, members", [(None, ["t1ce", "t1", "t2", "flair"]), ("flair+t1c", ["t1ce", "flair"]), ("t2", ["t2"])]
)
def test_stack_in_the_teachers_channel_order(tiny_phantom, tmp_path, modality, members):
    case = find_cases(tiny_phantom)[0]
    out = stack_case(case.folder, tmp_path / "s.nii.gz", modality)
    img = nib.load(str(out))
    assert img.shape == (*nib.load(str(case.files["t1ce"])).shape, len(members))
    for i, m in enumerate(members):
        expected = np.asarray(nib.load(str(case.files[m])).dataobj, dtype=np.float32)
        np.testing.assert_array_equal(np.asarray(img.dataobj)[..., i], expected)


def test_ill_stack_modality(tiny_phantom, tmp_path):
    with pytest.raises(InputError, match="--modality: .* names t1ce twice"):
        stack_case(find_cases(tiny_phantom)[0].folder, tmp_path / "s.nii.gz", "t1ce+t1c")
    assert not (tmp_path / "s.nii.gz").exists()


def test_ill_stacked_name_in_another_order_than_the_channels(tiny_phantom, tmp_path):
    """The any student reads a stacked file's channels in the order its name gives: a name that lists them in
    another order than the one written is refused before anything is written."""
    from kd_components.data import find_cases, stack_case

    case = find_cases(tiny_phantom)[0]
    out = tmp_path / "C_flair+t1ce.nii.gz"
    with pytest.raises(InputError, match=r"names the sequences flair\+t1ce, but the channels are written in the order"):
        stack_case(case.folder, out, modality="t1ce+flair")
    assert not out.exists()
    stack_case(case.folder, tmp_path / "C_t1ce+flair.nii.gz", modality="flair+t1ce")
