"""The Medical Segmentation Decathlon's Task01_BrainTumour, converted to the BraTS 2018-2021 layout.

MSD Task01 (what MONAI's ``brats_segmentation_3d`` tutorial and ``monai.apps.DecathlonDataset`` load) keeps each
case as one 4-D image ``imagesTr/BRATS_NNN.nii.gz`` (240x240x155x4) whose channels ``dataset.json`` names
(``"modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}``) and one label map
``labelsTr/BRATS_NNN.nii.gz`` whose values it names (``"labels": {"1": "edema", "2": "non-enhancing tumor",
"3": "enhancing tumour"}``; MONAI tutorials issue 1355: the tutorial's docstring swaps 2 and 3, ``dataset.json`` and
nnU-Net's conversion agree on the above). Regions: ET = {3}, TC = {2, 3}, WT = {1, 2, 3}.

``convert_msd`` writes every labelled case as ``CASE/CASE_{t1ce,t1,t2,flair,seg}.nii.gz`` with the labels in the
BraTS 2021 convention (edema -> 2, non-enhancing / necrotic core -> 1, enhancing -> 4), which gives exactly the same
regions, plus ``datalist.json`` and ``msd_conversion.json`` (the mapping used and the source's name, reference and
licence). Chosen over reading 4-D MSD images in place because then every path that follows (the checks, the
crops, the student's one-file inference, the cached teacher logits, MONAI Label) is the one BraTS data takes, with
nothing special-cased; a 4-D image in a BraTS layout stays refused. The mapping is read from ``dataset.json``, by
name, never assumed from channel positions; a name it does not know is refused.

Command: ``python -m kd_components.data msd --data-dir .../Task01_BrainTumour --output data/msd_brats``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from kd_components.brats import TEACHER_CHANNELS
from kd_components.errors import InputError
from kd_components.files import atomic_path

__all__ = ["MSD_TO_BRATS2021", "channel_map", "convert_msd", "is_msd_task", "label_map"]

#: MSD Task01 label names (lower case, as ``dataset.json`` spells them) -> BraTS 2021 label.
MSD_TO_BRATS2021 = {"background": 0, "edema": 2, "non-enhancing tumor": 1, "enhancing tumour": 4}
_CHANNEL_NAMES = {"flair": "flair", "t1w": "t1", "t1": "t1", "t1gd": "t1ce", "t1ce": "t1ce", "t1c": "t1ce"}
_CHANNEL_NAMES.update({"t2w": "t2", "t2": "t2"})


def is_msd_task(data_dir: str | os.PathLike) -> bool:
    """Whether ``data_dir`` is an MSD task folder (``dataset.json`` with ``modality`` and ``training``)."""
    path = Path(data_dir) / "dataset.json"
    if not path.is_file():
        return False
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and "modality" in meta and "training" in meta


def _meta(data_dir: Path) -> dict:
    path = data_dir / "dataset.json"
    if not path.is_file():
        raise InputError(f"'{data_dir}' has no dataset.json: give the MSD Task01_BrainTumour folder.")
    try:
        meta = json.loads(path.read_text())
    except ValueError as e:
        raise InputError(f"'{path}' is not valid JSON ({e}): download the task again.") from None
    for key in ("modality", "labels", "training"):
        if key not in meta:
            raise InputError(f"'{path}' has no '{key}': it is not an MSD task's dataset.json.")
    return meta


def channel_map(modality: dict) -> dict[str, int]:
    """The teacher's channel (``t1ce``, ``t1``, ``t2``, ``flair``) -> its index in the MSD image.

    Raises:
        ValueError: a channel name it does not know, or not the four BraTS sequences once each.
    """
    out: dict[str, int] = {}
    for index, name in modality.items():
        canonical = _CHANNEL_NAMES.get(re.sub(r"[\s_-]", "", str(name)).lower())
        if canonical is None:
            raise ValueError(f"unknown MSD channel name '{name}' (index {index}); known: FLAIR, T1w, t1gd, T2w.")
        if canonical in out:
            raise ValueError(f"MSD channels {out[canonical]} and {index} both name {canonical}.")
        out[canonical] = int(index)
    if sorted(out) != sorted(TEACHER_CHANNELS):
        raise ValueError(f"MSD channels {modality} are not the four BraTS sequences (T1c, T1, T2, FLAIR).")
    return {m: out[m] for m in TEACHER_CHANNELS}


def label_map(labels: dict) -> dict[int, int]:
    """MSD label value -> BraTS 2021 label value, by the names ``dataset.json`` gives.

    Raises:
        ValueError: a label name it does not know (British or American spelling of tumour/tumor both work).
    """
    out = {}
    for value, name in labels.items():
        key = str(name).strip().lower().replace("tumor", "tumour").replace("non enhancing", "non-enhancing")
        key = key.replace("non-enhancing tumour", "non-enhancing tumor")
        if key not in MSD_TO_BRATS2021:
            raise ValueError(
                f"unknown MSD label name '{name}' (value {value}); known: {sorted(MSD_TO_BRATS2021)}: this "
                "converter is for Task01_BrainTumour."
            )
        out[int(value)] = MSD_TO_BRATS2021[key]
    if sorted(out.values()) != [0, 1, 2, 4]:
        raise ValueError(f"MSD labels {labels} do not name background, edema, non-enhancing and enhancing tumour.")
    return out


def _save(array: np.ndarray, ref, path: Path, dtype) -> None:
    import nibabel as nib

    header = ref.header.copy()
    header.set_data_shape(array.shape)
    header.set_data_dtype(dtype)
    img = nib.Nifti1Image(array.astype(dtype, copy=False), ref.affine, header)
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))


def convert_msd(
    data_dir: str | os.PathLike,
    output: str | os.PathLike,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    max_cases: int | None = None,
) -> Path:
    """Write MSD Task01's labelled cases in the BraTS 2018-2021 layout under ``output``, with ``datalist.json``.

    Args:
        data_dir: the MSD task folder (``dataset.json``, ``imagesTr/``, ``labelsTr/``); only read.
        output: a new or empty folder (never inside ``data_dir``).
        val_fraction, test_fraction, seed: the random split of ``datalist.json``.
        max_cases: convert the first N cases of ``dataset.json`` only (a quick look).

    Returns:
        The path of the written ``datalist.json``.

    Raises:
        InputError: not an MSD task, unknown channel or label names, an image that is not 4-D with one volume
            per channel, a label on another grid, label values ``dataset.json`` does not name, or an output
            that is not empty or lies inside the input.
    """
    import nibabel as nib

    from kd_components.data.datalist import build_datalist, write_datalist

    src, out = Path(data_dir), Path(output)
    meta = _meta(src)
    try:
        channels, labels = channel_map(meta["modality"]), label_map(meta["labels"])
    except ValueError as e:
        raise InputError(f"'{src / 'dataset.json'}': {e}") from None
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise InputError(f"--output '{out}' lies inside --data-dir '{src}': write the conversion elsewhere.")
    if out.exists() and any(out.iterdir()):
        raise InputError(f"--output '{out}' is not empty: give a new or empty folder (nothing is overwritten).")
    items = meta["training"][:max_cases] if max_cases else meta["training"]
    if not items:
        raise InputError(f"'{src / 'dataset.json'}' lists no training case.")
    lut = np.zeros(max(labels) + 1, dtype=np.uint8)
    for k, v in labels.items():
        lut[k] = v
    out.mkdir(parents=True, exist_ok=True)
    for item in items:
        image_path, label_path = src / item["image"], src / item["label"]
        for p in (image_path, label_path):
            if not p.is_file():
                raise InputError(f"'{p}' (named by dataset.json) does not exist: download the task again.")
        name = re.sub(r"\.nii(\.gz)?$", "", image_path.name)
        try:
            img, lab = nib.load(str(image_path)), nib.load(str(label_path))
            data = np.asarray(img.dataobj)
            seg = np.asarray(lab.dataobj)
        except Exception as e:  # noqa: BLE001 - any unreadable file is one line naming it
            raise InputError(f"'{image_path}' or its label cannot be read ({type(e).__name__}: {e}).") from None
        if data.ndim != 4 or data.shape[-1] != len(meta["modality"]):
            raise InputError(
                f"'{image_path}' has shape {data.shape}: an MSD Task01 image is 4-D with one volume per channel "
                f"of dataset.json ({len(meta['modality'])})."
            )
        if seg.shape != data.shape[:3] or not np.allclose(lab.affine, img.affine, atol=1e-3):
            raise InputError(f"'{label_path}' {seg.shape} is not on the grid of '{image_path}' {data.shape[:3]}.")
        values = np.unique(seg)
        if not np.allclose(values, np.round(values)) or not set(values.astype(int).tolist()) <= set(labels):
            raise InputError(
                f"'{label_path}' holds values {sorted(values.tolist())}; dataset.json names {sorted(labels)}."
            )
        case = out / name
        case.mkdir()
        for modality, index in channels.items():
            _save(data[..., index], img, case / f"{name}_{modality}.nii.gz", data.dtype)
        _save(lut[seg.astype(np.int64)], lab, case / f"{name}_seg.nii.gz", np.uint8)
    provenance = {
        "source": str(src.resolve()),
        "name": meta.get("name"),
        "reference": meta.get("reference"),
        "licence": meta.get("licence", meta.get("license")),
        "channels": {m: {"index": i, "msd_name": meta["modality"][str(i)]} for m, i in channels.items()},
        "labels": {"msd": meta["labels"], "to_brats2021": {str(k): v for k, v in labels.items()}},
        "regions": "ET = {ET}, TC = {1, ET}, WT = {1, 2, ET} (BraTS 2021 labels; MSD: ET {3}, TC {2, 3}, WT {1, 2, 3})",
        "cases": len(items),
    }
    (out / "msd_conversion.json").write_text(json.dumps(provenance, indent=4) + "\n")
    return write_datalist(build_datalist(out, val_fraction, test_fraction, seed), out / "datalist.json", out)
