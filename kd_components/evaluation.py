"""Per-case, per-region evaluation (Dice and HD95) under the BraTS 2021 or the official BraTS 2023+ rules.

Two conventions, chosen by one setting (``convention``) and stated in every summary:

==============================  ======================================  ===========================================
                                ``brats2021`` (the 2021 scripts)         ``brats2023`` (official ``brats-evaluation``)
==============================  ======================================  ===========================================
region empty in both            Dice 1, HD95 0                           Dice NaN, HD95 NaN (left out of means)
empty in exactly one            Dice 0, HD95 373.13                      Dice 0, HD95 inf
both non-empty, no overlap      Dice 0, HD95 as measured                 Dice 0, HD95 inf
HD95                            MONAI: the larger of the two directed    the 95th percentile of both directions'
                                95th percentiles, in mm                  surface distances pooled, in voxels (the
                                                                         official tool ignores the spacing; BraTS
                                                                         is 1 mm)
summaries                       mean over cases                          inf -> 373 (as its metrics parser), NaN
                                                                         left out
==============================  ======================================  ===========================================

``score_files`` scores two label map files; ``python -m kd_components.tools.score`` is its command and
``kd_components.training.RegionMetricsWriter`` the evaluator handler that writes per-case tables with these rules.
Library code: bad arguments raise ``ValueError`` (the command turns them into its one line).
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance

from kd_components.brats import REGIONS
from kd_components.transforms import labels_to_regions

__all__ = [
    "CONVENTIONS",
    "check_convention",
    "HD95_EMPTY_PENALTY",
    "official_hd95",
    "read_per_case",
    "region_metrics",
    "score_files",
    "summarize",
]

#: HD95 (mm) when a region is empty in exactly one of prediction and ground truth (BraTS 2021 scripts).
HD95_EMPTY_PENALTY = 373.13
#: what the official BraTS 2023+ metrics parser puts in summaries in place of an infinite HD95.
HD95_INF_SUMMARY = 373.0
#: the rules of each convention, as stated in every summary.
CONVENTIONS = {
    "brats2021": {
        "both_empty": "Dice 1, HD95 0",
        "one_empty": f"Dice 0, HD95 {HD95_EMPTY_PENALTY}",
        "hd95": "MONAI compute_hausdorff_distance(percentile=95): the larger directed 95th percentile, mm",
        "summary": "mean over all cases",
    },
    "brats2023": {
        "both_empty": "Dice NaN, HD95 NaN (left out of means)",
        "one_empty": "Dice 0, HD95 inf",
        "no_overlap": "Dice 0, HD95 inf",
        "hd95": "95th percentile of both directions' surface distances pooled, voxel units (official brats-evaluation)",
        "summary": f"inf HD95 counted as {HD95_INF_SUMMARY:g}, NaN left out (official metrics parser)",
    },
}


def official_hd95(pred: np.ndarray, label: np.ndarray) -> float:
    """HD95 as the official BraTS 2023+ tool computes it (panoptica): borders by one erosion with a 6-connected
    structure, Euclidean distances in voxel units, the 95th percentile of both directions pooled. Both masks must
    be non-empty."""
    from scipy.ndimage import binary_erosion, distance_transform_edt, generate_binary_structure

    pred, label = np.asarray(pred, bool), np.asarray(label, bool)
    footprint = generate_binary_structure(pred.ndim, 1)
    pred_border = pred ^ binary_erosion(pred, structure=footprint, iterations=1)
    label_border = label ^ binary_erosion(label, structure=footprint, iterations=1)
    to_pred = distance_transform_edt(~pred_border)[label_border]
    to_label = distance_transform_edt(~label_border)[pred_border]
    return float(np.percentile(np.hstack((to_pred, to_label)), 95))


def check_convention(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise ValueError(f"metric convention must be one of {sorted(CONVENTIONS)}, got '{convention}'.")
    return convention


def region_metrics(
    pred: torch.Tensor,
    label: torch.Tensor,
    spacing: Sequence[float] | None = None,
    regions: Sequence[str] = REGIONS,
    convention: str = "brats2021",
) -> dict[str, float]:
    """Dice and HD95 per region of one case.

    Args:
        pred: binary regions, (C, H, W, D) with C = len(regions) (TC, WT, ET).
        label: binary regions, same shape.
        spacing: voxel size in mm (``brats2021`` HD95 in mm); None for voxel units.
        regions: names of the channels.
        convention: ``brats2021`` or ``brats2023`` (see the module docstring).

    Returns:
        ``{"dice_tc": ..., "hd95_tc": ..., ...}`` (NaN and inf as floats under ``brats2023``).

    Raises:
        ValueError: shapes differ (both printed), or an unknown convention.
    """
    check_convention(convention)
    if pred.shape != label.shape or pred.shape[0] != len(regions):
        raise ValueError(
            f"pred {tuple(pred.shape)} and label {tuple(label.shape)} must both be ({len(regions)}, H, W, D)."
        )
    out: dict[str, float] = {}
    p, y = (torch.as_tensor(pred) > 0.5), (torch.as_tensor(label) > 0.5)
    for c, name in enumerate(regions):
        pc, yc = p[c], y[c]
        p_empty, y_empty = not bool(pc.any()), not bool(yc.any())
        overlap = int((pc & yc).sum())
        if convention == "brats2023":
            if p_empty and y_empty:
                dice, hd = math.nan, math.nan
            elif p_empty or y_empty or overlap == 0:
                dice, hd = 0.0, math.inf
            else:
                dice = 2.0 * overlap / float(pc.sum() + yc.sum())
                hd = official_hd95(pc.numpy(), yc.numpy())
        elif p_empty and y_empty:
            dice, hd = 1.0, 0.0
        elif p_empty or y_empty:
            dice, hd = 0.0, HD95_EMPTY_PENALTY
        else:
            pf, yf = pc[None, None].float(), yc[None, None].float()
            dice = float(compute_dice(pf, yf, include_background=True)[0, 0])
            with warnings.catch_warnings():  # MONAI's own deprecation notice inside HD95, nothing a caller can change
                warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*")
                hd = float(
                    compute_hausdorff_distance(pf, yf, include_background=True, percentile=95, spacing=spacing)[0, 0]
                )
        out[f"dice_{name.lower()}"], out[f"hd95_{name.lower()}"] = dice, hd
    return out


def summarize(
    rows: Sequence[Mapping[str, float]], keys: Sequence[str], convention: str = "brats2021"
) -> dict[str, dict[str, float]]:
    """Mean, standard deviation, median and count of each metric over cases, by the convention's rules
    (``brats2023``: an infinite HD95 counts as 373, NaN cases are left out and not counted)."""
    check_convention(convention)
    summary = {}
    for k in keys:
        v = np.array([float(r[k]) for r in rows], dtype=np.float64)
        if convention == "brats2023":
            v = np.where(np.isinf(v), HD95_INF_SUMMARY, v)
            v = v[~np.isnan(v)]
        summary[k] = {
            "mean": float(v.mean()) if len(v) else float("nan"),
            "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "median": float(np.median(v)) if len(v) else float("nan"),
            "n": len(v),
        }
    return summary


def read_per_case(path: str | os.PathLike) -> list[dict]:
    """Rows of a ``metrics_per_case.csv`` with floats for the metrics."""
    with open(path, newline="") as f:
        return [{k: (v if k == "case" else float(v)) for k, v in row.items()} for row in csv.DictReader(f)]


_LABELS = {"2021": "brats2021", "2023": "brats2023", "auto": "auto"}


#: how far the two maps' affines may differ (mm for the origin, mm per voxel for spacing and direction).
AFFINE_TOLERANCE = 1e-3


def score_files(
    reference: str | os.PathLike, prediction: str | os.PathLike, convention: str = "brats2021", labels: str = "auto"
) -> dict[str, dict[str, float]]:
    """Dice and HD95 per region of two BraTS label maps: ``{"ET": {"dice", "hd95"}, "TC": ..., "WT": ...}``.

    Args:
        reference: the ground-truth label map (NIfTI).
        prediction: the predicted label map, on the same grid (shape, and affine within ``AFFINE_TOLERANCE``).
        convention: metric rules, ``brats2021`` (default, as the bundles' ``metric_convention``) or ``brats2023``
            (the official 2023+ tool).
        labels: label convention of both maps, ``2021`` (ET = 4), ``2023`` (ET = 3) or ``auto`` (from the
            reference's values; from the prediction's when the reference has no ET).

    Raises:
        ValueError: a missing or unreadable file, maps of different shapes or affines (origin, spacing or
            direction: the official BraTS tool refuses them too), labels outside the convention, an unknown
            convention.
    """
    import nibabel as nib

    if convention not in CONVENTIONS:
        raise ValueError(f"--convention {convention!r}: use brats2023 or brats2021.")
    if labels not in _LABELS:
        raise ValueError(f"--labels {labels!r}: use 2021, 2023 or auto.")
    maps = {}
    for role, path in (("reference", reference), ("prediction", prediction)):
        try:
            img = nib.load(str(path))
            maps[role] = (np.asarray(img.dataobj), img)
        except (OSError, ValueError, nib.filebasedimages.ImageFileError) as e:
            raise ValueError(f"--{role} '{path}' cannot be read ({' '.join(str(e).split())[:160]}).") from None
    (ref, ref_img), (pred, pred_img) = maps["reference"], maps["prediction"]
    if ref.shape != pred.shape:
        raise ValueError(
            f"--prediction '{prediction}' has shape {pred.shape} but --reference '{reference}' {ref.shape}: score "
            f"label maps on the same grid."
        )
    if not np.allclose(pred_img.affine, ref_img.affine, atol=AFFINE_TOLERANCE):
        diff = np.abs(pred_img.affine - ref_img.affine)
        what = [n for n, part in (("origin", diff[:3, 3]), ("spacing/direction", diff[:3, :3])) if part.max() > 1e-3]
        raise ValueError(
            f"--prediction '{prediction}' has another affine than --reference '{reference}' ({' and '.join(what)} "
            f"differ by up to {diff.max():.4g}): the maps are not on the same grid; resample the prediction onto the "
            f"reference (or write it with the reference's header) before scoring."
        )
    label_convention = _LABELS[labels]
    if label_convention == "auto":
        values = set(np.unique(ref).tolist()) or set()
        values = values if values & {3, 4} else set(np.unique(pred).tolist())
        label_convention = "brats2023" if 3 in values else "brats2021"
    try:
        y = labels_to_regions(torch.as_tensor(ref), label_convention, str(reference))
        p = labels_to_regions(torch.as_tensor(pred), label_convention, str(prediction))
    except ValueError:
        raise
    spacing = [float(v) for v in np.linalg.norm(ref_img.affine[:3, :3], axis=0)]
    metrics = region_metrics(p, y, spacing, convention=convention)
    return {r: {"dice": metrics[f"dice_{r.lower()}"], "hd95": metrics[f"hd95_{r.lower()}"]} for r in ("ET", "TC", "WT")}
