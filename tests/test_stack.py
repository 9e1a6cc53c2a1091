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
