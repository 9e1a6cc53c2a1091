"""Voxel-level checks of one datalist entry, run for every case before training, evaluation or inference starts.

What is checked, per case (every problem is reported, with the file and how to fix it):

- each modality and the label exist and can be read;
- modalities and label share one grid: same shape and same affine (within 1e-3 mm);
- no NaN or Inf voxel;
- no modality that is zero everywhere;
- label values within the case's convention: {0, 1, 2, 4} (BraTS 2018-2021) or {0, 1, 2, 3} (2023 on).

Reading every voxel costs about a second per BraTS case, so cases found clean are remembered in
``$XDG_CACHE_HOME/kd_components/validated.json`` (``~/.cache`` by default) by path, size and modification time;
a changed file is checked again. ``KD_VALIDATION_CACHE=0`` turns the memory off.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

__all__ = ["LABEL_VALUES", "case_problems"]

#: allowed label values per convention ("auto": either, never both 3 and 4)
LABEL_VALUES = {"brats2021": {0, 1, 2, 4}, "brats2023": {0, 1, 2, 3}}
_CONVENTION_FIX = {
    "brats2021": "2018-2021 labels are 1 NCR/NET, 2 ED, 4 ET",
    "brats2023": "2023 labels are 1 NETC, 2 SNFH, 3 ET",
}


def _cache_file() -> Path | None:
    if os.environ.get("KD_VALIDATION_CACHE", "1") == "0":
        return None
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return root / "kd_components" / "validated.json"


def _fingerprint(paths: list[Path]) -> str | None:
    try:
        return "|".join(f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in paths)
    except OSError:
        return None


def _load_cache(path: Path | None) -> set[str]:
    if path is None or not path.is_file():
        return set()
    try:
        return set(json.loads(path.read_text()))
    except (OSError, ValueError):
        return set()


def _remember(path: Path | None, key: str) -> None:
    if path is None:
        return
    try:
        known = _load_cache(path)
        known.add(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(sorted(known)))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home only costs the re-check next time


def case_problems(name: str, images: list[Path], label: Path | None, convention: str | None = None) -> list[str]:
    """Problems of one case (empty when usable); each names the file, what is wrong and how to fix it.

    Args:
        name: the case's name, for the messages.
        images: the modality files, in the teacher's channel order.
        label: the segmentation file, or ``None`` (inference).
        convention: ``brats2021``, ``brats2023`` or ``None`` (either).
    """
    import nibabel as nib

    files = [("image", p) for p in images] + ([("label", label)] if label is not None else [])
    problems = [f"case '{name}': {role} file '{p}' does not exist" for role, p in files if not p.is_file()]
    files = [(role, p) for role, p in files if p.is_file()]
    cache = _cache_file()
    key = None if problems else _fingerprint([p for _, p in files])
    if key is not None and key in _load_cache(cache):
        return []
    ref_shape = ref_affine = ref_name = None
    for role, path in files:
        try:
            img = nib.load(str(path))
            data = np.asanyarray(img.dataobj)
        except Exception as e:  # noqa: BLE001 - any reader failure means the same to the user
            reason = " ".join(str(e).split())[:160]
            problems.append(
                f"case '{name}': {role} file '{path}' cannot be read ({type(e).__name__}: {reason}); re-export it"
            )
            continue
        shape, affine = tuple(img.shape[:3]), img.affine
        if ref_shape is None:
            ref_shape, ref_affine, ref_name = shape, affine, path.name
        elif shape != ref_shape:
            problems.append(
                f"case '{name}': '{path.name}' has shape {shape} but '{ref_name}' {ref_shape}; resample all "
                f"modalities and the label onto one grid (BraTS: 240x240x155, 1 mm)"
            )
        elif not np.allclose(affine, ref_affine, atol=1e-3):
            problems.append(
                f"case '{name}': '{path.name}' has another affine (orientation/origin/spacing) than '{ref_name}'; "
                f"co-register the modalities and the label"
            )
        if role == "image":
            if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
                bad = int((~np.isfinite(data)).sum())
                problems.append(
                    f"case '{name}': '{path}' has {bad} NaN/Inf voxel(s); replace them (e.g. with 0) or re-export"
                )
            elif not np.any(data):
                problems.append(f"case '{name}': '{path}' is zero everywhere; the modality is empty, re-export it")
        else:
            values = set(np.unique(data).astype(np.int64).tolist()) if np.issubdtype(data.dtype, np.number) else set()
            if np.issubdtype(data.dtype, np.floating) and not np.array_equal(data, np.round(data)):
                problems.append(f"case '{name}': label '{path}' has non-integer values; it must be a label map")
                continue
            allowed = LABEL_VALUES.get(convention or "", LABEL_VALUES["brats2021"] | LABEL_VALUES["brats2023"])
            extra = sorted(values - allowed)
            if convention is None and {3, 4} <= values:
                extra = extra or [3, 4]
            if extra:
                hint = _CONVENTION_FIX.get(convention or "", "labels are 1/2/4 (2018-2021) or 1/2/3 (2023)")
                problems.append(
                    f"case '{name}': label '{path}' has value(s) {extra} outside "
                    f"{sorted(allowed) if convention else 'the BraTS conventions'} ({hint}); fix the label map"
                )
    if not problems and key is not None:
        _remember(cache, key)
    return problems
