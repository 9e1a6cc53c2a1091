"""Voxel-level checks of one datalist entry, run for every case before training, evaluation or inference starts.

What is checked, per case (every problem is reported, with the file and how to fix it):

- each modality and the label exist and can be read;
- modalities and label share one grid: same shape and same affine (within 1e-3 mm);
- no NaN or Inf voxel;
- no modality that is zero everywhere;
- a zero background: the bundles normalise each scan over its non-zero voxels (the brain of a skull-stripped
  BraTS scan), so a scan whose background is another value (a z-scored export: -3.6) would count the whole volume
  as brain; fewer than ``MIN_ZERO_FRACTION`` of its voxels at 0 is refused;
- label values within the case's convention: {0, 1, 2, 4} (BraTS 2018-2021) or {0, 1, 2, 3} (2023 on).

Reading every voxel costs about a second per BraTS case, so cases found clean are remembered in
``$XDG_CACHE_HOME/kd_components/validated.json`` (``~/.cache`` by default) by path, size and modification time;
a changed file is checked again, and so is a case checked under another label convention or by an older version
of these checks (the key holds both). The memory is read once per process and written once per datalist split
(:func:`flush`). ``KD_VALIDATION_CACHE=0`` turns it off.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from kd_components.brats import LABEL_VALUES
from kd_components.files import atomic_write_text

__all__ = ["MIN_ZERO_FRACTION", "case_problems", "dimension_problem", "flush", "image_problems", "reset"]

#: below this fraction of voxels at exactly 0 a scan has no zero background (skull-stripped BraTS: about 0.8).
MIN_ZERO_FRACTION = 0.01
#: the version of the checks, part of the memory's key: a case found clean by older checks is checked again.
CHECKS_VERSION = 2

_CONVENTION_FIX = {
    "brats2021": "2018-2021 labels are 1 NCR/NET, 2 ED, 4 ET",
    "brats2023": "2023 labels are 1 NETC, 2 SNFH, 3 ET",
}


def _cache_file() -> Path | None:
    if os.environ.get("KD_VALIDATION_CACHE", "1") == "0":
        return None
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return root / "kd_components" / "validated.json"


def _fingerprint(paths: list[Path], convention: str | None = None) -> str | None:
    """The memory's key of a case: the checks' version, the label convention checked, each file's resolved path,
    size and modification time."""
    try:
        files = "|".join(f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in paths)
    except OSError:
        return None
    return f"v{CHECKS_VERSION}|{convention or 'any'}|{files}"


#: clean-case fingerprints per memory file, read once per process; written by :func:`flush`
_KNOWN: dict[Path, set[str]] = {}
_DIRTY: set[Path] = set()


def _known(path: Path | None) -> set[str]:
    if path is None:
        return set()
    if path not in _KNOWN:
        try:
            _KNOWN[path] = set(json.loads(path.read_text())) if path.is_file() else set()
        except (OSError, ValueError):
            _KNOWN[path] = set()
    return _KNOWN[path]


def reset() -> None:
    """Forget what this process read of the memory files (the next check reads them anew)."""
    _KNOWN.clear()
    _DIRTY.clear()


def flush() -> None:
    """Write the clean cases found since the last call to the memory file (once per split, not per case)."""
    for path in list(_DIRTY):
        try:
            on_disk = set(json.loads(path.read_text())) if path.is_file() else set()
        except (OSError, ValueError):
            on_disk = set()
        try:
            atomic_write_text(path, json.dumps(sorted(on_disk | _KNOWN[path])))
        except OSError:
            pass  # a read-only home only costs the re-check next time
        _DIRTY.discard(path)


def dimension_problem(shape: tuple[int, ...]) -> str:
    """What is wrong with an image that is not a 3-D volume, and how to fix it."""
    if len(shape) > 3 and all(s == 1 for s in shape[3:]):
        return (
            f"has shape {shape}: a 3-D volume is needed and trailing dimensions of size 1 are refused, not guessed "
            f"away; drop them once with nibabel (nib.save(nib.squeeze_image(nib.load(f)), f)) or re-export"
        )
    if len(shape) > 3:
        return (
            f"has shape {shape}: a 3-D volume per file is needed (one modality, one time point); give each modality "
            f"as its own 3-D file"
        )
    return f"has shape {shape}: a 3-D volume is needed (a 2-D slice or a 1-D file is not a BraTS scan); re-export it"


def image_problems(data: np.ndarray) -> list[str]:
    """What is wrong with the voxels of one scan (empty when usable): NaN/Inf, zero everywhere, no zero background.

    Each problem is a phrase that follows the file's name (``'<file>' has 3 NaN/Inf voxel(s); ...``).
    """
    data = np.asarray(data)
    if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        return [f"has {bad} NaN/Inf voxel(s); replace them (e.g. with 0) or re-export"]
    if not np.any(data):
        return ["is zero everywhere; the modality is empty, re-export it"]
    zero = float(np.mean(data == 0))
    if zero < MIN_ZERO_FRACTION:
        low = data.min()
        return [
            f"has no zero background ({100 * zero:.1f}% of voxels at 0; its lowest value {low:.4g} fills "
            f"{100 * float(np.mean(data == low)):.1f}%): the bundles normalise over non-zero voxels (the brain of a "
            f"skull-stripped scan), so the background would count as brain; set the background to 0 as in BraTS "
            f"(e.g. data[data == data.min()] = 0 for a z-scored export)"
        ]
    return []


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
    key = None if problems else _fingerprint([p for _, p in files], convention)
    if key is not None and key in _known(cache):
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
        if len(img.shape) != 3:
            problems.append(f"case '{name}': {role} file '{path}' {dimension_problem(tuple(img.shape))}")
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
            problems += [f"case '{name}': '{path}' {p}" for p in image_problems(data)]
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
    if not problems and key is not None and cache is not None:
        _known(cache).add(key)
        _DIRTY.add(cache)
    return problems
