"""The BraTS vocabulary in one place: modalities, channel order, label conventions, regions and file names.

Every other module (data, transforms, evaluation, the tools) takes these facts from here.

==============  ==========================================  ================================
convention       files of case ``CASE``                       labels
==============  ==========================================  ================================
``brats2021``    ``CASE_{t1,t1ce,t2,flair,seg}.nii.gz``        1 NCR/NET, 2 ED, 4 ET (2018-2021)
``brats2023``    ``CASE-{t1n,t1c,t2w,t2f,seg}.nii.gz``         1 NETC, 2 SNFH, 3 ET (2023 on)
==============  ==========================================  ================================

Regions, the network outputs (sigmoid, overlapping), in the channel order of MONAI model-zoo
``brats_mri_segmentation``: TC = {1, ET}, WT = {1, 2, ET}, ET = {ET}. Training and evaluation always use regions,
never raw labels.

A student sees one modality or a combination of them: ``t1ce``, ``t1ce+flair``, ``t2w+t2f`` (any names above, any
order, joined by ``+``), always normalised to the teacher's channel order (``canonical_combination``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

__all__ = [
    "CHANNEL_NAMES",
    "CONVENTIONS",
    "DEFAULT_CONVENTION",
    "ET_LABEL",
    "FILE_SEPARATOR",
    "FILE_SUFFIXES",
    "LABEL_VALUES",
    "MODALITY_ALIASES",
    "REGIONS",
    "TEACHER_CHANNELS",
    "COMBINATION_SEPARATOR",
    "canonical_combination",
    "canonical_modality",
    "channel_order_problem",
    "combination_indices",
    "combination_members",
    "modality_index",
    "name_convention",
    "named_channels",
    "split_file_name",
]

#: canonical modality names in the teacher's channel order (model-zoo ``brats_mri_segmentation``: T1c, T1, T2, FLAIR).
TEACHER_CHANNELS = ("t1ce", "t1", "t2", "flair")
#: display names of the teacher's channels, as in the model zoo's metadata ``channel_def``.
CHANNEL_NAMES = {"t1ce": "T1c", "t1": "T1", "t2": "T2", "flair": "FLAIR"}
#: every accepted modality name (2018-2021 and 2023 names) -> canonical name.
MODALITY_ALIASES = {
    "t1": "t1",
    "t1ce": "t1ce",
    "t2": "t2",
    "flair": "flair",
    "t1n": "t1",
    "t1c": "t1ce",
    "t2w": "t2",
    "t2f": "flair",
}
#: the two label conventions, by release.
CONVENTIONS = ("brats2021", "brats2023")
#: label value of enhancing tumour per convention.
ET_LABEL = {"brats2021": 4, "brats2023": 3}
#: allowed label values per convention.
LABEL_VALUES = {"brats2021": frozenset({0, 1, 2, 4}), "brats2023": frozenset({0, 1, 2, 3})}
#: file-name separator between case name and suffix per convention.
FILE_SEPARATOR = {"brats2021": "_", "brats2023": "-"}
#: file suffix -> role (canonical modality or ``seg``) per convention.
FILE_SUFFIXES = {
    "brats2021": {"t1": "t1", "t1ce": "t1ce", "t2": "t2", "flair": "flair", "seg": "seg"},
    "brats2023": {"t1n": "t1", "t1c": "t1ce", "t2w": "t2", "t2f": "flair", "seg": "seg"},
}
#: region channels in output order.
REGIONS = ("TC", "WT", "ET")


def canonical_modality(name: str) -> str:
    """The canonical name (t1, t1ce, t2, flair) of any 2018-2021 or 2023 modality name, any case.

    Raises:
        ValueError: a name that is not a BraTS modality.
    """
    key = str(name).strip().lower()
    if key not in MODALITY_ALIASES:
        raise ValueError(
            f"unknown modality '{name}': use one of t1, t1ce, t2, flair "
            f"(BraTS 2023 names t1n, t1c, t2w, t2f also work)."
        )
    return MODALITY_ALIASES[key]


def modality_index(name: str) -> int:
    """Channel index of modality ``name`` in the teacher's input (T1c 0, T1 1, T2 2, FLAIR 3).

    Raises:
        ValueError: a name that is not a BraTS modality.
    """
    return TEACHER_CHANNELS.index(canonical_modality(name))


#: the separator of a combination of modalities (``t1ce+flair``).
COMBINATION_SEPARATOR = "+"


def combination_members(name: str | list[str] | tuple[str, ...]) -> list[str]:
    """The canonical modalities of ``name`` (``t1ce+flair``, ``t2f+t2w``, ``["flair", "t1c"]``), in the teacher's
    channel order, each once.

    Raises:
        ValueError: an empty combination, an unknown name, or a modality named twice (``t1ce+t1c``).
    """
    parts = list(name) if isinstance(name, (list, tuple)) else str(name).split(COMBINATION_SEPARATOR)
    parts = [p.strip() for p in parts]
    if not parts or any(not p for p in parts):
        raise ValueError(
            f"modality '{name}': give one name or several joined by '+' (e.g. t1ce, t1ce+flair, t2+flair)."
        )
    canonical = [canonical_modality(p) for p in parts]
    twice = sorted({c for c in canonical if canonical.count(c) > 1})
    if twice:
        raise ValueError(f"modality '{name}' names {', '.join(twice)} twice: give each sequence once.")
    return [m for m in TEACHER_CHANNELS if m in canonical]


def canonical_combination(name: str | list[str] | tuple[str, ...]) -> str:
    """The canonical name of a modality or combination: ``"T2F+t1c"`` -> ``"t1ce+flair"``; ``"t1c"`` -> ``"t1ce"``.

    Raises:
        ValueError: as ``combination_members``.
    """
    return COMBINATION_SEPARATOR.join(combination_members(name))


def combination_indices(name: str | list[str] | tuple[str, ...]) -> list[int]:
    """The teacher-input channels of a modality or combination: ``t1ce+flair`` -> ``[0, 3]``.

    Raises:
        ValueError: as ``combination_members``.
    """
    return [TEACHER_CHANNELS.index(m) for m in combination_members(name)]


#: image file extensions a BraTS file name may end in (NIfTI, and the ITK formats inference reads).
IMAGE_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


def split_file_name(path: str) -> tuple[str, str | None, str | None]:
    """A file's name read as BraTS names it: ``(case, convention, role)``.

    ``CASE-t1c.nii.gz`` -> ``("CASE", "brats2023", "t1ce")``, ``CASE_seg.nii`` -> ``("CASE", "brats2021", "seg")``;
    a stacked file named by its sequences, in its channels' order (``CASE_t1ce+flair.nii.gz``, ``CASE-t2f+t1c.nii.gz``)
    -> the role ``"t1ce+flair"`` / ``"flair+t1ce"`` (canonical names joined by ``+``, in the name's order); a name
    without a BraTS suffix (``scan.nrrd``, a DICOM folder) -> ``("scan", None, None)``.
    """
    name = os.path.basename(os.path.normpath(str(path)))
    for ext in IMAGE_EXTENSIONS:
        if name.endswith(ext):
            name = name[: -len(ext)]
            break
    for convention, suffixes in FILE_SUFFIXES.items():
        for suffix, role in suffixes.items():
            tail = FILE_SEPARATOR[convention] + suffix
            if name.endswith(tail) and len(name) > len(tail):
                return name[: -len(tail)], convention, role
        sep = FILE_SEPARATOR[convention]
        if COMBINATION_SEPARATOR in name and sep in name:
            case, _, tail = name.rpartition(sep)
            parts = tail.split(COMBINATION_SEPARATOR)
            if case and len(parts) > 1 and all(p in suffixes and suffixes[p] != "seg" for p in parts):
                return case, convention, COMBINATION_SEPARATOR.join(suffixes[p] for p in parts)
    return name, None, None


def named_channels(path: str | os.PathLike) -> list[str] | None:
    """The sequences a file's BraTS name says, in its channels' order: ``CASE_flair.nii.gz`` -> ``["flair"]``,
    ``CASE-t2f+t1c.nii.gz`` -> ``["flair", "t1ce"]``, ``CASE_seg.nii.gz`` -> ``["seg"]``; None for a name that says
    none (``scan.nii.gz``, a DICOM folder)."""
    role = split_file_name(str(path))[2]
    return None if role is None else role.split(COMBINATION_SEPARATOR)


def _said(names: Sequence[str]) -> str:
    return "+".join("a label map" if m == "seg" else CHANNEL_NAMES.get(m, m) for m in names)


def channel_order_problem(
    images: str | os.PathLike | Sequence[str | os.PathLike | None], channels: Sequence[str] = TEACHER_CHANNELS
) -> str | None:
    """What the names of ``images`` say against the ``channels`` they will be read as, or None when every name that
    says its sequence(s) says the right ones in the right place (a name that says none is taken as given).

    Args:
        images: one file per channel (``None`` for an absent sequence), or one file holding them all (stacked).
        channels: the canonical sequences the reader takes them as, in order (default: the teacher's four).

    Returns:
        a phrase naming the file: ``'C_flair.nii.gz' is named FLAIR but is read as channel 0 (T1c)``,
        ``'C_flair+t1ce.nii.gz' is named FLAIR+T1c but is read as T1c+FLAIR`` (a stacked file in another order),
        ``'C_seg.nii.gz' is named a label map but is read as T1c``; or None.
    """
    files = [images] if isinstance(images, (str, os.PathLike)) else list(images)
    if len(files) == 1 and files[0] is not None:
        said = named_channels(files[0])
        if said is not None and said != list(channels):
            return f"'{os.path.basename(str(files[0]))}' is named {_said(said)} but is read as {_said(channels)}"
        return None
    for i, p in enumerate(files[: len(channels)]):
        said = None if p is None else named_channels(p)
        if said is not None and said != [channels[i]]:
            return (
                f"'{os.path.basename(str(p))}' is named {_said(said)} but is read as channel {i} "
                f"({_said([channels[i]])})"
            )
    return None


#: the convention a label map is written in when its input's name says no BraTS layout (a DICOM folder, an MSD file)
DEFAULT_CONVENTION = "brats2021"


def name_convention(path: str | os.PathLike | None, default: str = DEFAULT_CONVENTION) -> str:
    """The label convention a file's name implies: ``brats2023`` for ``CASE-t1c.nii.gz``, ``brats2021`` for
    ``CASE_t1ce.nii.gz``, ``default`` for a name without a BraTS suffix (or no name)."""
    return (split_file_name(str(path))[1] if path else None) or default
