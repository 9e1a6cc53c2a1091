"""Stack one case's four modalities into a single 4-channel NIfTI (the teacher's input for MONAI Label).

MONAI Label hands a served bundle one image per request. The teacher sees four modalities, so it is served
with one file whose last axis holds T1c, T1, T2 and FLAIR, in the teacher's channel order; MONAI's
``LoadImaged(ensure_channel_first=True)`` turns that axis into the channel axis.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kd_components.brats import TEACHER_CHANNELS, combination_members, split_file_name
from kd_components.data.datalist import find_cases
from kd_components.errors import InputError
from kd_components.files import atomic_path

__all__ = ["stack_case"]


def stack_case(case_dir: str | os.PathLike, output: str | os.PathLike, modality: str | None = None) -> Path:
    """Write the case in ``case_dir`` (2018-2021 or 2023 layout) as one multi-channel float32 NIfTI ``output``.

    The output keeps the first modality's affine and header; shape ``(X, Y, Z, C)``: the four sequences for the
    teacher (C = 4), or those of a student's combination (``t1ce+flair``: C = 2), in the teacher's channel order.

    Args:
        case_dir: folder of one BraTS case.
        output: file to write (``.nii.gz``); never one of the case's own files, never an existing file.
        modality: a student's modality or combination; None: all four (the teacher's input).

    Raises:
        InputError: missing or several cases in ``case_dir``, modalities that differ in shape or affine, an
            output that exists already or is not a NIfTI name.
    """
    import nibabel as nib

    out = Path(output)
    if not out.name.endswith((".nii", ".nii.gz")):
        raise InputError(f"--output '{out}' is not a NIfTI file name: end it with .nii.gz.")
    if out.exists():
        raise InputError(
            f"--output '{out}' exists already: remove it or choose another path (inputs are never overwritten)."
        )
    cases = find_cases(case_dir)
    if len(cases) != 1:
        raise InputError(f"'{case_dir}' holds {len(cases)} cases: give the folder of exactly one case.")
    case = cases[0]
    try:
        members = list(TEACHER_CHANNELS) if modality is None else combination_members(modality)
    except ValueError as e:
        raise InputError(f"--modality: {e}") from None
    said = split_file_name(out.name)[2]
    if said is not None and "+" in said and said.split("+") != members:
        raise InputError(
            f"--output '{out.name}' names the sequences {said}, but the channels are written in the order "
            f"{'+'.join(members)} (T1c, T1, T2, FLAIR): name the file CASE_{'+'.join(members)}.nii.gz, as the any "
            "student reads a stacked file's channels in the order its name gives."
        )
    images = [nib.load(str(case.files[m])) for m in members]
    ref = images[0]
    for m, img in zip(members[1:], images[1:]):
        if img.shape != ref.shape or not np.allclose(img.affine, ref.affine, atol=1e-3):
            raise InputError(
                f"'{case.files[m]}' has shape {img.shape} and another affine than '{case.files[members[0]]}' "
                f"{ref.shape}: co-register the modalities first."
            )
    data = np.stack([np.asarray(img.dataobj, dtype=np.float32) for img in images], axis=-1)
    header = ref.header.copy()
    header.set_data_dtype(np.float32)
    with atomic_path(out) as tmp:
        nib.save(nib.Nifti1Image(data, ref.affine, header), str(tmp))
    return out
