"""Voxel-level checks of one datalist entry, run for every case before training, evaluation or inference starts.

What is checked, per case (every problem is reported, with the file and how to fix it):

- each modality and the label exist and can be read, a ``.gz`` file to the end of its stream (the gzip checksum:
  a file corrupted in the middle reads without error, to wrong voxels, when only the bytes the header asks for are
  decompressed);
- modalities and label share one grid: same shape and same affine (within 1e-3 mm); the file that differs from the
  others (the majority's grid) is the one named;
- no NaN or Inf voxel;
- no modality that is zero everywhere, and none whose non-zero voxels all hold one value (no contrast: a brain mask
  or a blank export given as a scan);
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

import gzip
import json
import os
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

from kd_components.brats import LABEL_VALUES
from kd_components.files import atomic_write_text

__all__ = [
    "MIN_ZERO_FRACTION",
    "case_problems",
    "dimension_problem",
    "flush",
    "gzip_problem",
    "image_problems",
    "reset",
]

#: below this fraction of voxels at exactly 0 a scan has no zero background (skull-stripped BraTS: about 0.8).
MIN_ZERO_FRACTION = 0.01
#: the version of the checks, part of the memory's key: a case found clean by older checks is checked again.
CHECKS_VERSION = 3

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
    inside = data[data != 0]
    if inside.min() == inside.max():
        return [
            f"holds one value ({inside.flat[0]:.4g}) in all its {inside.size} non-zero voxels: no contrast, a mask "
            f"or a blank export rather than a scan; give the scan itself"
        ]
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


def gzip_problem(path: str | os.PathLike) -> str | None:
    """What is wrong with a ``.gz`` file's stream (None when whole, or not a ``.gz`` name): read to its end, so that
    the checksum and length in its trailer are checked; NIfTI readers stop after the voxels the header asks for and
    never reach them, so a file corrupted in the middle would give wrong voxels without an error."""
    if not str(path).endswith(".gz"):
        return None
    try:
        with gzip.open(path, "rb") as f:
            while f.read(1 << 24):
                pass
    except (OSError, EOFError, zlib.error) as e:
        reason = " ".join(str(e).split())[:120]
        return (
            f"is a damaged gzip file ({type(e).__name__}: {reason}): its voxels cannot be trusted; copy or re-export it"
        )
    return None


def _grid_problems(name: str, grids: list[tuple[Path, tuple, np.ndarray]]) -> list[str]:
    """The files of a case off its grid: the grid most files share (the first file's on a tie) is the reference, so
    the message names the odd file, not a good one."""
    if len(grids) < 2:
        return []
    keys = [(shape, tuple(np.round(np.asarray(affine, dtype=np.float64), 3).ravel())) for _, shape, affine in grids]
    counts = Counter(keys)
    ref = max(range(len(grids)), key=lambda i: (counts[keys[i]], -i))
    ref_path, ref_shape, ref_affine = grids[ref]
    n_same = counts[keys[ref]] - 1
    also = f" (like {n_same} other file(s) of the case)" if n_same else ""
    problems = []
    for path, shape, affine in grids:
        if shape != ref_shape:
            problems.append(
                f"case '{name}': '{path.name}' has shape {shape} but '{ref_path.name}' {ref_shape}{also}; resample all "
                f"modalities and the label onto one grid (BraTS: 240x240x155, 1 mm)"
            )
        elif not np.allclose(affine, ref_affine, atol=1e-3):
            problems.append(
                f"case '{name}': '{path.name}' has another affine (orientation/origin/spacing) than "
                f"'{ref_path.name}'{also}; co-register the modalities and the label"
            )
    return problems


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
    grids: list[tuple[Path, tuple, np.ndarray]] = []
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
        if (damaged := gzip_problem(path)) is not None:
            problems.append(f"case '{name}': {role} file '{path}' {damaged}")
            continue
        if len(img.shape) != 3:
            problems.append(f"case '{name}': {role} file '{path}' {dimension_problem(tuple(img.shape))}")
            continue
        grids.append((path, tuple(img.shape[:3]), img.affine))
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
    problems += _grid_problems(name, grids)
    if not problems and key is not None and cache is not None:
        _known(cache).add(key)
        _DIRTY.add(cache)
    return problems
