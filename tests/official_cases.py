"""Hand-made BraTS 2023 label maps (1 NETC, 2 SNFH, 3 ET) for checking metrics against the official tool.

Used by ``scripts/record_official_metrics.py`` (run with the official ``brats-evaluation`` package installed) and by
``tests/test_evaluation.py``; needs numpy only.
"""

from __future__ import annotations

import numpy as np

SHAPE = (32, 30, 28)


def _tumour(center=(14, 14, 12), edema=7, core=4, enhancing=2) -> np.ndarray:
    """Nested boxes: edema (2) around a core (1) holding an enhancing part (3)."""
    seg = np.zeros(SHAPE, np.uint8)
    c = np.array(center)

    def box(r, value):
        lo, hi = np.maximum(c - r, 0), np.minimum(c + r + 1, SHAPE)
        seg[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = value

    box(edema, 2)
    box(core, 1)
    if enhancing:
        seg[c[0] - enhancing : c[0] + 1, c[1] - enhancing : c[1] + enhancing + 1, c[2] : c[2] + enhancing + 1] = 3
    return seg


def cases() -> dict[str, tuple[np.ndarray, np.ndarray, tuple[float, float, float]]]:
    """name -> (reference, prediction, voxel spacing in mm)."""
    ref = _tumour()
    out = {
        "overlap": (ref, np.roll(ref, (2, -1, 1), axis=(0, 1, 2)), (1.0, 1.0, 1.0)),
        "one_voxel_shift": (ref, np.roll(ref, 1, axis=0), (1.0, 1.0, 1.0)),
        "eroded": (ref, _tumour(edema=5, core=3, enhancing=1), (1.0, 1.0, 1.0)),
        "dilated": (ref, _tumour(edema=9, core=5, enhancing=3), (1.0, 1.0, 1.0)),
        "disjoint": (
            _tumour(center=(8, 8, 8), edema=3, core=2, enhancing=1),
            _tumour(center=(24, 22, 20), edema=3, core=2, enhancing=1),
            (1.0, 1.0, 1.0),
        ),
        "et_empty_in_prediction": (ref, np.where(ref == 3, 1, ref).astype(np.uint8), (1.0, 1.0, 1.0)),
        "both_et_empty": (_tumour(enhancing=0), np.roll(_tumour(enhancing=0), 1, axis=2), (1.0, 1.0, 1.0)),
        "prediction_empty": (ref, np.zeros_like(ref), (1.0, 1.0, 1.0)),
        "anisotropic_spacing": (ref, np.roll(ref, 1, axis=2), (1.0, 1.0, 3.0)),
    }
    return out
