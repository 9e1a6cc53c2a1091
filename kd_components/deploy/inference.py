"""What the inference configs run before any work: the images to segment, found and checked.

A label map is written only from a scan that passed the checks training makes (``kd_components.data.validate``):
readable, 3-D, no NaN/Inf voxel, not empty, a zero background, and for the teacher its four images on one grid.
Every problem is refused in one line (``InputError``) naming the file and the fix, before the network is loaded
and before anything is written.

- ``find_images``: the default image search of the student's inference, every case folder's file of one modality
  in both BraTS layouts (2018-2021 ``CASE/CASE_t1ce.nii.gz``, 2023 ``CASE/CASE-t1c.nii.gz``; ``.nii`` or
  ``.nii.gz``), by any name training accepts (``t1ce`` and ``t1c`` find the same files); symlinked case folders
  are followed.
- ``student_datalist``: the items of ``--input_image`` (a file, a DICOM folder or a list), or of the search.
- ``teacher_datalist``: the items of the teacher's datalist split.
- ``check_images``: the voxel checks of every item.
- ``check_outputs``: no two maps under one name, no file where the output folder should be.
- ``output_convention``: the label convention asked for, checked (None: each map follows its input's file names).
- ``output_name`` / ``case_name_formatter``: output names that say the case, which model wrote them and the
  convention (``CASE_teacher_seg_brats2021.nii.gz``, ``CASE_t1ce_seg_brats2023.nii.gz``), not the first input's name.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from kd_components import brats, subsets
from kd_components.data.datalist import CHANNEL_ORDER_FIX
from kd_components.data.validate import case_problems, dimension_problem, gzip_problem, image_problems
from kd_components.errors import InputError
from kd_components.transforms import named_sequences

logger = logging.getLogger("kd_components.inference")

__all__ = [
    "case_name_formatter",
    "check_images",
    "check_outputs",
    "find_images",
    "output_convention",
    "output_name",
    "student_datalist",
    "teacher_datalist",
]

_NIFTI = (".nii.gz", ".nii")


def output_convention(convention: str | None = None) -> str | None:
    """The ``--output_label_convention`` of inference, checked: ``brats2021``, ``brats2023``, or None.

    None (the default) means each label map follows its own input's file names (``RegionsToBratsLabeld`` and
    ``case_name_formatter`` read them per image, so a folder of both layouts gets each map in its own case's
    convention): BraTS 2023 names (``CASE-t1c.nii.gz``) give ``brats2023`` (ET written as 3); 2018-2021 names and any
    other name (a DICOM folder, an MSD or a custom file) give ``brats2021`` (ET 4), the bundles' convention. The
    written name ends in the convention. Nothing here depends on the images to segment, so a server that builds the
    postprocessing without a datalist (MONAI Label) gets the same rule.

    Raises:
        InputError: an unknown convention.
    """
    if convention is not None and convention not in brats.ET_LABEL:
        raise InputError(
            f"--output_label_convention '{convention}' is not one of {sorted(brats.ET_LABEL)} (or null: each map "
            "follows its input's file names)."
        )
    which = "convention of each input's file names (CASE-t1c: brats2023, ET = 3; otherwise brats2021, ET = 4)"
    if convention:
        which = f"{convention} convention (ET = {brats.ET_LABEL[convention]})"
    logger.info("label maps written in the %s; --output_label_convention sets another.", which)
    return convention


def output_name(source: str, model: str, convention: str | None = None) -> str:
    """The written map's name (no folder, no extension): the case, the model that wrote it and the convention.

    ``("/d/BraTS-GLI-00001-000/BraTS-GLI-00001-000-t1c.nii.gz", "teacher")`` -> ``BraTS-GLI-00001-000_teacher_seg_
    brats2023``; the sequence suffix is dropped, so the name says which model wrote the map, not the first input.
    """
    convention = convention or brats.name_convention(source)
    return f"{brats.split_file_name(source)[0]}_{model}_seg_{convention}"


def case_name_formatter(
    metadict: dict | None, saver: object, model: str = "seg", convention: str | None = None
) -> dict:
    """``SaveImaged``'s ``output_name_formatter`` (``"_mode_": "callable"`` with ``model`` and ``convention``): the
    name of :func:`output_name` for the item's input file (its ``filename_or_obj``); use with ``output_postfix: ""``.
    """
    from monai.data.folder_layout import default_name_formatter

    out = default_name_formatter(metadict or {}, saver)
    source = (metadict or {}).get("filename_or_obj") or out["subject"]
    # MONAI's folder layout drops the subject's extension: give it one, so a dot in the name is kept
    out["subject"] = output_name(str(source), model, convention) + ".nii.gz"
    return out


def _patterns(modality: str) -> list[str]:
    """File-name patterns (relative to the data folder) of one modality in both layouts."""
    canonical = brats.canonical_modality(modality)
    out = []
    for convention, suffixes in brats.FILE_SUFFIXES.items():
        sep = brats.FILE_SEPARATOR[convention]
        for suffix, role in suffixes.items():
            if role == canonical:
                out += [f"*/*{sep}{suffix}{ext}" for ext in _NIFTI]
    return out


def find_images(dataset_dir: str | os.PathLike, modality: str) -> list[str]:
    """Every case's image of ``modality`` under ``dataset_dir`` (one folder per case), sorted, in both layouts.

    Raises:
        ValueError: an unknown modality name.
    """
    root = Path(dataset_dir)
    found = {str(p) for pattern in _patterns(modality) for p in root.glob(pattern) if p.is_file()}
    return sorted(found)


def _by_case(found: dict[str, list[str]]) -> dict[str, dict[str, str]]:
    """``{case folder: {modality: file}}`` of the search's files.

    Raises:
        InputError: a case folder with two files of one sequence (``CASE_t1ce.nii`` and ``CASE_t1ce.nii.gz``, or
            both layouts' names): which one is the scan is not guessed.
    """
    by_case: dict[str, dict[str, str]] = {}
    for m, paths in found.items():
        for p in paths:
            files = by_case.setdefault(str(Path(p).parent), {})
            if m in files:
                raise InputError(
                    f"case folder '{Path(p).parent}' holds two {brats.CHANNEL_NAMES[m]} files, '{Path(files[m]).name}' "
                    f"and '{Path(p).name}': keep one, or pass --input_image with the file to segment."
                )
            files[m] = p
    return by_case


def _no_label_map(paths: Sequence[str]) -> None:
    """Refuse a file named as a BraTS label map (``CASE_seg.nii.gz``) among the images to segment: read as a scan it
    gives a wrong map (the per-file checks of the single-sequence student do the same through their names)."""
    for p in paths:
        if brats.split_file_name(str(p))[2] == "seg":
            raise InputError(
                f"--input_image '{p}': its name says it is a label map (segmentation), not a scan; give the images to "
                "segment."
            )


def _modality_of(path: str) -> str | None:
    """The sequence a file's BraTS name says (``CASE_t1ce.nii.gz`` / ``CASE-t2f.nii.gz``), or None."""
    role = brats.split_file_name(path)[2]
    return None if role == "seg" else role


def _one_case(paths: list[str], members: list[str]) -> list[str]:
    """One case's files of a combination, in the teacher's channel order.

    Names that say their sequence are put in that order (and must be the combination's); names that say nothing (a
    DICOM folder, ``scan.nrrd``) are taken in the order given, which the log states.
    """
    combo = brats.COMBINATION_SEPARATOR.join(members)
    _no_label_map(paths)
    if len(paths) != len(members):
        raise InputError(
            f"--input_image {paths}: a {combo} student needs {len(members)} images per case (one per sequence, or one "
            f"stacked {len(members)}-channel file), got {len(paths)}."
        )
    said = [_modality_of(p) for p in paths]
    if all(said):
        if sorted(said) != sorted(members):
            raise InputError(
                f"--input_image {paths}: their names say {'+'.join(said)}, the student's inputs are {combo}: give "
                f"the images of {combo}."
            )
        return [paths[said.index(m)] for m in members]
    logger.warning(f"--input_image {paths}: the names do not say their sequences; taken in the order given as {combo}")
    return paths


def _named_as(path: str, members: list[str]) -> str:
    """``path``, refused when its BraTS name says other sequences than the student reads it as, or the same in
    another channel order (``CASE_flair.nii.gz`` given to a T1c student, ``CASE_flair+t1ce.nii.gz`` to a T1c+FLAIR
    one, ``CASE_seg.nii.gz`` to any): each would be segmented as what it is not, a wrong map without a warning. A
    name that says nothing (``scan.nii.gz``, a DICOM folder) is taken as the student's sequence(s)."""
    problem = brats.channel_order_problem(path, members)
    if problem is not None:
        combo = brats.COMBINATION_SEPARATOR.join(members)
        raise InputError(
            f"--input_image '{path}': {problem}: a scan read as another sequence gives a wrong map; give the {combo} "
            f"image (stacked files: python -m kd_components.data stack writes the teacher's order), or the weights of "
            f"a student of that sequence."
        )
    return path


def student_datalist(
    input_image: str | os.PathLike | Sequence | None,
    dataset_dir: str | os.PathLike,
    modality: str,
    input_modalities: str | None = None,
) -> list[dict]:
    """The student's inference items ``[{"image": path or [paths]}, ...]``.

    One modality: ``input_image`` (one path or a list of images to segment), or, when it is None or empty, every
    case's image of ``modality`` under ``dataset_dir``. A combination (``t1ce+flair``): ``input_image`` is one
    case's images (a list, one per sequence), a list of such lists, or one stacked multi-channel file; by default
    every case folder's images of the combination. Images are always handed in the teacher's channel order.
    ``any`` (the one student for every subset): see ``_any_datalist``; ``input_modalities`` names the sequences of
    files whose names do not say them.

    Raises:
        InputError: an unknown modality, no image at all, a path that does not exist, a case missing one of the
            combination's images, a case folder with two files of one sequence, or images whose names say other
            sequences (or a stacked file's another order).
    """
    if subsets.is_any(modality):
        return _any_datalist(input_image, dataset_dir, input_modalities)
    try:
        members = brats.combination_members(modality)
    except ValueError as e:
        raise InputError(f"--student_modality: {e}") from None
    combo = brats.COMBINATION_SEPARATOR.join(members)
    given = input_image is not None and (isinstance(input_image, (str, os.PathLike)) or len(input_image) > 0)
    items: list[str | list[str]]
    if not given:
        if not Path(dataset_dir).is_dir():
            raise InputError(
                f"--dataset_dir '{dataset_dir}' does not exist: give the folder of the case folders to segment (after "
                "the README's demo: runs/demo/data), or --input_image with the files."
            )
        found = {m: find_images(dataset_dir, m) for m in members}
        by_case = _by_case(found)
        if not by_case:
            layouts = " or ".join(
                f"CASE/CASE{brats.FILE_SEPARATOR[c]}{next(k for k, v in sfx.items() if v == m)}.nii[.gz]"
                for c, sfx in brats.FILE_SUFFIXES.items()
                for m in members[:1]
            )
            names = "+".join(brats.CHANNEL_NAMES[m] for m in members)
            raise InputError(
                f"no image to segment: no --input_image given, and no case folder under --dataset_dir '{dataset_dir}' "
                f"holds a {names} image ({layouts}); pass --input_image with a NIfTI/NRRD/MHA file, a DICOM folder or "
                "a list of files."
            )
        incomplete = sorted(case for case, files in by_case.items() if len(files) != len(members))
        if incomplete:
            raise InputError(
                f"case folder(s) {', '.join(incomplete[:3])}{' ...' if len(incomplete) > 3 else ''} lack one of the "
                f"{combo} images the student needs: add them, or pass --input_image with the cases to segment."
            )
        items = [
            [files[m] for m in members] if len(members) > 1 else files[members[0]]
            for _, files in sorted(by_case.items())
        ]
    elif isinstance(input_image, (str, os.PathLike)):
        items = [_named_as(str(input_image), members)]  # one file: a single sequence, or a stacked image
    elif len(members) == 1:
        items = [_named_as(str(p), members) for p in input_image]
    elif all(isinstance(p, (list, tuple)) for p in input_image):
        items = [_one_case([str(q) for q in p], members) for p in input_image]
    else:
        items = [_one_case([str(p) for p in input_image], members)]
    for item in items:
        for p in [item] if isinstance(item, str) else item:
            if not os.path.exists(p):
                raise InputError(
                    f"--input_image '{p}' does not exist: pass an existing NIfTI/NRRD/MHA file, a DICOM folder or a "
                    "list of them."
                )
    return [{"image": item} for item in items]


def _exists(paths: Sequence[str]) -> None:
    for p in paths:
        if not os.path.exists(p):
            raise InputError(
                f"--input_image '{p}' does not exist: pass an existing NIfTI/NRRD/MHA file, a DICOM folder or a list "
                "of them."
            )


def _any_case(paths: list[str], input_modalities: str | None) -> dict:
    """One case's item for the ``any`` student: its images (one per sequence, or one stacked file) and the
    sequences of their channels (``"t1ce+flair"``), in the teacher's channel order where the names say them."""
    _no_label_map(paths)
    said = [_modality_of(p) for p in paths]
    if input_modalities is not None:
        try:
            named = [brats.canonical_modality(m) for m in str(input_modalities).split(brats.COMBINATION_SEPARATOR)]
        except ValueError as e:
            raise InputError(f"--input_modalities: {e}") from None
        if len(paths) > 1 and len(named) != len(paths):
            raise InputError(
                f"--input_modalities {input_modalities} names {len(named)} sequence(s) for the {len(paths)} images "
                f"{paths}: name one per image, in their order."
            )
        by_name = named_sequences(paths)
        if by_name is not None and by_name != named:
            raise InputError(
                f"--input_modalities {input_modalities} but the names of {paths} say {'+'.join(by_name)}: a scan read "
                "as another sequence gives a wrong map; leave --input_modalities out for files named by their sequence."
            )
        return {"image": paths if len(paths) > 1 else paths[0], "modalities": "+".join(named)}
    if len(paths) == 1:
        # one file: its name says one sequence (CASE_flair.nii.gz) or a stacked file's (CASE_t1ce+flair.nii.gz)
        named = named_sequences(paths[0])
        if named is None:
            raise InputError(
                f"--input_image '{paths[0]}': its name does not say its sequence(s); name it CASE_<sequence>.nii.gz "
                "(t1, t1ce, t2, flair; 2023: t1n, t1c, t2w, t2f; stacked: CASE_t1ce+flair.nii.gz) or pass "
                "--input_modalities."
            )
        try:
            brats.combination_members("+".join(named))
        except ValueError as e:
            raise InputError(f"--input_image '{paths[0]}': its name is read as {e}") from None
        return {"image": paths[0], "modalities": "+".join(named)}
    if not all(said):
        raise InputError(
            f"--input_image {paths}: the names do not say their sequences; name the files CASE_<sequence>.nii.gz "
            "(t1, t1ce, t2, flair; 2023: t1n, t1c, t2w, t2f) or pass --input_modalities (e.g. t1ce+flair, in order)."
        )
    twice = sorted({m for m in said if said.count(m) > 1})
    if twice:
        raise InputError(f"--input_image {paths}: {', '.join(twice)} given twice; give each sequence once.")
    order = sorted(range(len(paths)), key=lambda i: brats.TEACHER_CHANNELS.index(said[i]))
    return {"image": [paths[i] for i in order], "modalities": "+".join(said[i] for i in order)}


def _any_datalist(
    input_image: str | os.PathLike | Sequence | None, dataset_dir: str | os.PathLike, input_modalities: str | None
) -> list[dict]:
    """The ``any`` student's items ``[{"image": path or [paths], "modalities": "t1ce+flair"}, ...]``.

    ``input_image``: one file (its name says its sequence, or a stacked file's: ``CASE_t1ce+flair.nii.gz``), one
    case's images (a list, names saying their sequences), or a list of such lists; by default every case folder
    under ``dataset_dir`` with whatever sequences it holds (one to four; a folder with only a label is skipped).
    """
    given = input_image is not None and (isinstance(input_image, (str, os.PathLike)) or len(input_image) > 0)
    if not given:
        if not Path(dataset_dir).is_dir():
            raise InputError(
                f"--dataset_dir '{dataset_dir}' does not exist: give the folder of the case folders to segment (after "
                "the README's demo: runs/demo/data), or --input_image with the files."
            )
        by_case = _by_case({m: find_images(dataset_dir, m) for m in brats.TEACHER_CHANNELS})
        if not by_case:
            raise InputError(
                f"no image to segment: no --input_image given, and no case folder under --dataset_dir '{dataset_dir}' "
                "holds a BraTS image (CASE/CASE_flair.nii.gz, CASE/CASE-t2f.nii.gz, ...); pass --input_image."
            )
        items = []
        for _, files in sorted(by_case.items()):
            members = [m for m in brats.TEACHER_CHANNELS if m in files]
            items.append({"image": [files[m] for m in members], "modalities": "+".join(members)})
    elif isinstance(input_image, (str, os.PathLike)):
        items = [_any_case([str(input_image)], input_modalities)]
    elif all(isinstance(p, (list, tuple)) for p in input_image):
        items = [_any_case([str(q) for q in p], input_modalities) for p in input_image]
    else:
        items = [_any_case([str(p) for p in input_image], input_modalities)]
    for item in items:
        _exists([item["image"]] if isinstance(item["image"], str) else item["image"])
    return items


def teacher_datalist(data_list_file_path: str | os.PathLike, dataset_dir: str | os.PathLike, key: str) -> list[dict]:
    """The items of split ``key`` of the teacher's datalist, their paths joined to ``dataset_dir``.

    Raises:
        InputError: the datalist or its split is missing, an image it names does not exist, or an item's names say
            its images are not in the teacher's channel order (T1c, T1, T2, FLAIR).
    """
    from monai.data import load_decathlon_datalist

    if not os.path.isfile(data_list_file_path):
        raise InputError(
            f"datalist '{data_list_file_path}' does not exist: write it with python -m kd_components.data datalist "
            f"--data-dir '{dataset_dir}', or pass --data_list_file_path and --dataset_dir."
        )
    try:
        items = load_decathlon_datalist(str(data_list_file_path), True, key, str(dataset_dir))
    except (ValueError, KeyError) as e:
        raise InputError(
            f"datalist '{data_list_file_path}': no usable split '{key}' ({e}); pass --datalist_key."
        ) from None
    for d in items:
        for p in [d["image"]] if isinstance(d["image"], str) else d["image"]:
            if not os.path.exists(p):
                raise InputError(
                    f"image '{p}' of datalist '{data_list_file_path}' does not exist: check --dataset_dir, or rewrite "
                    f"the datalist with python -m kd_components.data datalist."
                )
        if (misplaced := brats.channel_order_problem(d["image"])) is not None:
            raise InputError(f"datalist '{data_list_file_path}': {misplaced}; {CHANNEL_ORDER_FIX}.")
    return items


def check_outputs(
    datalist: Sequence[dict], output_dir: str | os.PathLike, model: str, convention: str | None = None
) -> list[dict]:
    """Refuse, before any work, label maps that would overwrite each other or cannot be written; returns
    ``datalist`` unchanged. A map already in ``output_dir`` (an earlier run's) is replaced, with a warning.

    Args:
        datalist: the inference items ``{"image": path or [paths]}``; each map is named after its first image
            (:func:`output_name`).
        output_dir: the folder the maps are written to.
        model: the writer's name in the map's name (``teacher``, the student's modality).
        convention: ``--output_label_convention`` (None: each input's own).

    Raises:
        InputError: ``output_dir`` is an existing file, or two items would be written under one name (two scans of
            one case name, e.g. ``p1/DICOM`` and ``p2/DICOM``): the second would replace the first.
    """
    folder = Path(output_dir)
    there = next((q for q in (folder, *folder.parents) if q.exists()), None)  # the folder, or where it would go
    if there is not None and not there.is_dir():
        what = f"'{folder}' is" if there == folder else f"'{folder}' lies in '{there}',"
        raise InputError(f"--output_dir {what} a file, not a folder: pass a folder to write the maps into.")
    first: dict[str, str] = {}
    for d in datalist:
        source = str(d["image"] if isinstance(d["image"], (str, os.PathLike)) else d["image"][0])
        name = output_name(source, model, convention) + ".nii.gz"
        if name in first:
            raise InputError(
                f"'{first[name]}' and '{source}' would both be written as '{folder / name}' (one case name): the "
                f"second map would replace the first; segment them into separate --output_dir folders, or rename one."
            )
        first[name] = source
    existing = sorted(n for n in first if (folder / n).exists())
    if existing:
        logger.warning(
            "%d label map(s) in '%s' from an earlier run will be replaced (first: %s); pass another --output_dir to "
            "keep them",
            len(existing),
            folder,
            existing[0],
        )
    return list(datalist)


def _other_image_problems(path: str, channels: int = 1) -> list[str]:
    """The checks of ``case_problems`` for a file read through MONAI: a DICOM folder, NRRD, MHA, or one file that
    stacks all ``channels`` on its last axis (the teacher's 4-channel image, as MONAI Label hands it over), each
    channel checked as its own scan."""
    from monai.transforms import LoadImage

    if (damaged := gzip_problem(path)) is not None:
        return [f"image '{path}' {damaged}"]
    try:
        data = LoadImage(image_only=True)(path)
    except Exception as e:  # noqa: BLE001, B036 - any reader failure means the same to the user
        reason = " ".join(str(e).split())[:160]
        return [f"image '{path}' cannot be read ({type(e).__name__}: {reason}); re-export it"]
    shape = tuple(data.shape)
    if channels > 1 and len(shape) == 4 and shape[-1] == channels:
        array = data.numpy()
        return [f"'{path}' channel {c} {p}" for c in range(channels) for p in image_problems(array[..., c])]
    if len(shape) != 3:
        return [f"image '{path}' {dimension_problem(shape)}"]
    return [f"'{path}' {p}" for p in image_problems(data.numpy())]


def check_images(datalist: Sequence[dict], channels: int = 1) -> list[dict]:
    """Refuse the inference items if any scan fails the training checks; returns ``datalist`` unchanged.

    Args:
        datalist: items ``{"image": path or [paths]}`` (a teacher item: its four images, one per channel).
        channels: the network's input channels; an item must give one image per channel, or one file that holds
            them all (a stacked 4-D image for the teacher is read as it is).

    Raises:
        InputError: one line for the first refused scan, naming its file, with how many others also fail.
    """
    problems: list[str] = []
    for d in datalist:
        images = [d["image"]] if isinstance(d["image"], (str, os.PathLike)) else list(d["image"])
        # the any student's item: as many channels as sequences it lists (a stacked file holds them all)
        n = len(str(d["modalities"]).split(brats.COMBINATION_SEPARATOR)) if d.get("modalities") else channels
        nifti = all(str(p).endswith(_NIFTI) and os.path.isfile(p) for p in images)
        if nifti and not (n > 1 and len(images) == 1):  # a stacked 4-D image is not a 3-D volume
            found = case_problems(Path(images[0]).name, [Path(p) for p in images], None)
            problems += [p.split(": ", 1)[1] for p in found]  # without the "case 'NAME': " of training's messages
        elif len(images) == 1:  # a DICOM folder, NRRD or MHA; or the teacher's channels stacked in one file
            problems += _other_image_problems(str(images[0]), n)
    if problems:
        more = f" ({len(problems) - 1} other problem(s) too)" if len(problems) > 1 else ""
        raise InputError(f"{problems[0]}{more}; no label map written.")
    return list(datalist)
