"""Synthetic BraTS-like phantom: the project's embedded default dataset.

Each case is a skull-stripped brain in a 240 x 240 x 155 mm field of view (1 mm voxels at full size, coarser
voxels at smaller shapes) with white matter, cortical and deep grey matter, ventricles and sulcal CSF, and one
or two irregular gliomas made of a necrotic core, an enhancing rim and surrounding edema that spreads along
white matter. Four co-registered modalities are rendered with the contrasts of real scans:

===========  =====  =====  =====  =====
tissue        T1    T1ce    T2   FLAIR
===========  =====  =====  =====  =====
CSF          dark   dark   bright dark (suppressed)
grey matter  mid    mid    mid    mid
white matter bright bright dark   mid-dark
edema        mid    faint  bright bright
enhancing    mid    bright mid    bright-ish
necrosis     dark   dark   bright mid
===========  =====  =====  =====  =====

so that no single modality shows all three BraTS regions: T1 barely separates enhancing tumour from edema,
FLAIR shows the whole tumour but hardly its core, T1ce shows the core but confuses edema with grey matter.
Tumour intensities vary per case and per voxel (texture), images get partial-volume blur, Rician noise, a
smooth bias field and a per-case intensity scale, and the label boundaries differ slightly from the image
boundaries (annotator variability). Everything is a deterministic function of ``(seed, case index, shape)``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kd_components.brats import ET_LABEL
from kd_components.files import atomic_path, atomic_write_text

__all__ = ["FOV_MM", "PhantomCase", "make_phantom_case", "phantom_affine", "write_phantom"]

#: bumped whenever the rendering changes, so that a folder written by an older version is regenerated.
PHANTOM_VERSION = 1

#: modality names in the BraTS 2018-2021 file layout, in the order they are rendered.
#: modality of each column of the tissue intensity table below (the phantom writes the 2018-2021 layout).
_COLUMNS = ("t1", "t1ce", "t2", "flair")
#: physical field of view of a BraTS volume (mm), kept for every output shape.
FOV_MM = (240.0, 240.0, 155.0)
#: largest shape accepted (a BraTS volume at 1 mm).
MAX_SHAPE = (240, 240, 155)

# tissue classes of the anatomy map
BG, CSF, GM, WM, EDEMA, ENH, NCR = range(7)
# mean intensity of each class per modality (columns: t1, t1ce, t2, flair), white matter T1 ~ 0.9
_MEANS = np.array(
    [
        [0.00, 0.00, 0.00, 0.00],  # background (skull-stripped)
        [0.25, 0.27, 1.00, 0.12],  # CSF
        [0.62, 0.64, 0.55, 0.62],  # grey matter
        [0.90, 0.88, 0.38, 0.48],  # white matter
        [0.56, 0.62, 0.84, 0.92],  # edema
        [0.58, 1.35, 0.70, 0.82],  # enhancing tumour
        [0.32, 0.30, 0.95, 0.58],  # necrosis / non-enhancing core
    ],
    dtype=np.float32,
)
# BraTS 2018-2021 labels of the tumour classes
_LABEL_OF = {EDEMA: 2, ENH: ET_LABEL["brats2021"], NCR: 1}


@dataclass
class PhantomCase:
    """One rendered case.

    Attributes:
        images: modality name -> int16 array of ``shape`` (HWD).
        label: uint8 array of ``shape`` with BraTS 2018-2021 labels (0, 1 NCR, 2 ED, 4 ET).
        affine: 4x4 voxel-to-world matrix (RAS, mm).
    """

    images: dict[str, np.ndarray]
    label: np.ndarray
    affine: np.ndarray


def phantom_affine(shape: tuple[int, int, int]) -> np.ndarray:
    """Voxel-to-world matrix that keeps the BraTS field of view for any ``shape``."""
    spacing = [f / s for f, s in zip(FOV_MM, shape)]
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    affine[:3, 3] = [spacing[0] * (shape[0] - 1) / 2, spacing[1] * (shape[1] - 1) / 2, -spacing[2] * (shape[2] - 1) / 2]
    return affine


class _Grid:
    """Physical voxel coordinates (mm, centred) and smooth random fields sampled on them."""

    def __init__(self, shape: tuple[int, int, int]):
        self.shape = shape
        self.axes = [(np.arange(n) - (n - 1) / 2) * (f / n) for n, f in zip(shape, FOV_MM)]
        self.x, self.y, self.z = np.meshgrid(*[a.astype(np.float32) for a in self.axes], indexing="ij", sparse=True)

    def smooth(self, rng: np.random.Generator, scale_mm: float) -> np.ndarray:
        """Zero-mean, unit-variance random field with correlation length ``scale_mm``.

        White noise on a lattice of spacing ``scale_mm`` is interpolated with separable Gaussian weights, so the
        same field is obtained (up to sampling) at every output resolution.
        """
        weights = []
        lattice_shape = []
        for axis, fov in zip(self.axes, FOV_MM):
            nodes = np.arange(-fov / 2 - 2 * scale_mm, fov / 2 + 2 * scale_mm + 1e-3, scale_mm)
            w = np.exp(-0.5 * ((axis[:, None] - nodes[None, :]) / (0.6 * scale_mm)) ** 2)
            weights.append((w / w.sum(1, keepdims=True)).astype(np.float32))
            lattice_shape.append(len(nodes))
        lattice = rng.standard_normal(lattice_shape).astype(np.float32)
        field = np.einsum("ia,jb,kc,abc->ijk", *weights, lattice, optimize=True)
        return (field - field.mean()) / (field.std() + 1e-6)

    def ellipsoid_radius(self, centre, semi_axes, rotation: np.ndarray | None = None) -> np.ndarray:
        """Normalised ellipsoidal radius (1 on the surface) around ``centre`` (mm)."""
        d = [self.x - centre[0], self.y - centre[1], self.z - centre[2]]
        if rotation is not None:
            d = [rotation[i, 0] * d[0] + rotation[i, 1] * d[1] + rotation[i, 2] * d[2] for i in range(3)]
        return np.sqrt(sum((di / a) ** 2 for di, a in zip(d, semi_axes)))


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


def _anatomy(grid: _Grid, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Healthy tissue map and the brain's normalised radius."""
    semi = np.array([68.0, 84.0, 62.0]) * rng.uniform(0.92, 1.06, 3)
    centre = np.array([0.0, rng.uniform(-6, 6), rng.uniform(-10, 2)])
    r = grid.ellipsoid_radius(centre, semi) + 0.035 * grid.smooth(rng, 30.0)
    tissue = np.full(grid.shape, BG, np.uint8)
    brain = r < 1.0
    # cortex band with gyral folding, sulci filled with CSF, CSF rim at the surface
    folding = grid.smooth(rng, 9.0)
    cortex_inner = 0.86 + 0.04 * folding
    tissue[brain] = WM
    tissue[brain & (r > cortex_inner)] = GM
    sulci = brain & (r > cortex_inner) & (grid.smooth(rng, 6.0) > 1.3)
    tissue[sulci | (brain & (r > 0.97))] = CSF
    # deep grey matter (thalami / basal ganglia) and lateral ventricles
    for side in (-1.0, 1.0):
        deep = grid.ellipsoid_radius(centre + [side * 14.0, 2.0, -2.0], [9.0, 14.0, 10.0])
        tissue[brain & (deep < 1.0)] = GM
        vsize = rng.uniform(0.8, 1.4)
        vent = grid.ellipsoid_radius(centre + [side * 8.0, 4.0, 10.0], np.array([5.0, 24.0, 9.0]) * vsize)
        tissue[brain & (vent + 0.15 * folding < 1.0)] = CSF
    return tissue, r


def _add_tumour(
    grid: _Grid,
    rng: np.random.Generator,
    healthy: np.ndarray,
    tissue: np.ndarray,
    label: np.ndarray,
    brain_r: np.ndarray,
    scale: float,
) -> None:
    """Grow one glioma into ``tissue`` (image classes) and ``label`` (annotation, slightly different edges).

    Edema spreads further along white matter and never fills the CSF spaces of the ``healthy`` map.
    """
    candidates = np.argwhere((brain_r < 0.65) & (healthy == WM))
    centre_vox = candidates[rng.integers(len(candidates))]
    centre = [grid.axes[i][centre_vox[i]] for i in range(3)]
    rotation = _random_rotation(rng)
    semi = rng.uniform(0.75, 1.3, 3) * rng.uniform(10.0, 24.0) * scale
    d = grid.ellipsoid_radius(centre, semi, rotation)
    shape_noise = grid.smooth(rng, 12.0)
    d = d * (1.0 + 0.22 * shape_noise)  # lobulated core
    wm = (healthy == WM).astype(np.float32)
    edema_reach = rng.uniform(1.4, 2.3) * (1.0 + 0.3 * wm + 0.12 * grid.smooth(rng, 8.0))  # fingers along WM
    ncr_frac = rng.uniform(0.0, 0.75) if rng.random() > 0.15 else 0.0
    rim_noise = 0.12 * grid.smooth(rng, 5.0)
    enhancing = rng.random() > 0.1  # some tumours have a non-enhancing core
    parenchyma = (healthy != BG) & (healthy != CSF)
    for target, jitter in ((tissue, 0.0), (label, 1.0)):
        # the annotation is drawn a little differently from what the image shows
        dj = d + jitter * 0.05 * grid.smooth(rng, 4.0) if jitter else d
        tc = (healthy != BG) & (dj < 1.0)
        wt = tc | (parenchyma & (dj < edema_reach))
        ncr = tc & (dj < ncr_frac + rim_noise)
        if target is tissue:
            tissue[wt] = EDEMA
            tissue[tc] = ENH if enhancing else NCR
            tissue[ncr] = NCR
        else:
            label[wt] = _LABEL_OF[EDEMA]
            label[tc] = _LABEL_OF[ENH] if enhancing else _LABEL_OF[NCR]
            label[ncr] = _LABEL_OF[NCR]


def _gaussian_blur(vol: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(vol, sigma, mode="nearest") if sigma > 0 else vol


def _check_shape(shape) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or any(s < 16 for s in shape) or any(s > m for s, m in zip(shape, MAX_SHAPE)):
        raise ValueError(f"phantom shape {shape} is invalid: give 3 sizes, each >= 16 and at most {MAX_SHAPE}.")
    return shape


def make_phantom_case(seed: int, index: int, shape: tuple[int, int, int] = (64, 64, 64)) -> PhantomCase:
    """Render case ``index`` of the phantom with master ``seed`` at ``shape``.

    Args:
        seed: master seed of the dataset; cases of different seeds are independent.
        index: case number within the dataset (>= 0).
        shape: output shape (HWD), each side at least 16 and at most 240 x 240 x 155.

    Raises:
        ValueError: when ``shape`` is not three positive sizes within ``MAX_SHAPE`` or ``index`` is negative.
    """
    shape = _check_shape(shape)
    if index < 0:
        raise ValueError(f"case index must be >= 0, got {index}.")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))
    grid = _Grid(shape)
    healthy, brain_r = _anatomy(grid, rng)
    tissue = healthy.copy()
    label = np.zeros(shape, np.uint8)
    n_tumours = 2 if rng.random() < 0.15 else 1
    for t in range(n_tumours):
        _add_tumour(grid, rng, healthy, tissue, label, brain_r, scale=1.0 if t == 0 else 0.6)
    label[tissue == BG] = 0

    # per-case tumour appearance: class means jitter, intra-tumour texture
    means = _MEANS.copy()
    means[EDEMA:] *= rng.normal(1.0, 0.08, (3, 4)).astype(np.float32)
    texture = grid.smooth(rng, 4.0)
    voxel_mm = min(f / s for f, s in zip(FOV_MM, shape))
    images = {}
    for m, name in enumerate(_COLUMNS):
        vol = means[tissue, m]
        tumour = tissue >= EDEMA
        vol = vol * (1.0 + np.where(tumour, 0.10, 0.03) * texture * rng.choice([-1.0, 1.0]))
        vol = _gaussian_blur(vol, 0.6 / voxel_mm)  # partial volume at ~1 mm resolution
        bias = np.exp(0.12 * grid.smooth(rng, 80.0))
        sigma = rng.uniform(0.02, 0.05)
        noisy = np.sqrt(
            (vol * bias + sigma * rng.standard_normal(shape)) ** 2 + (sigma * rng.standard_normal(shape)) ** 2
        )
        noisy[tissue == BG] = 0.0
        scale = rng.uniform(300.0, 3000.0)
        images[name] = np.clip(np.round(noisy * scale), 0, np.iinfo(np.int16).max).astype(np.int16)
    return PhantomCase(images=images, label=label, affine=phantom_affine(shape))


def _save_nifti(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(array, affine)
    img.header.set_xyzt_units("mm", "sec")
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))


def write_phantom(
    output: str | os.PathLike,
    num_cases: int = 24,
    shape: tuple[int, int, int] = (64, 64, 64),
    seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
) -> Path:
    """Write ``num_cases`` phantom cases in the BraTS 2018-2021 layout and ``datalist.json`` beside them.

    ``output`` must be empty, new, or a phantom folder written before (marked by ``phantom.json``); a folder with
    the same parameters is reused as is, so re-running is cheap and never touches other data.

    Returns:
        path of the datalist JSON.

    Raises:
        InputError: ``num_cases`` < 1, a bad ``shape``, or ``output`` holding files that are not a phantom.
    """
    from kd_components.data.datalist import build_datalist, write_datalist
    from kd_components.errors import InputError

    out = Path(output)
    if int(num_cases) < 1:
        raise InputError(f"--num-cases is {num_cases}: give at least 1 (3 or more for validation and test splits).")
    try:
        shape = _check_shape(shape)
    except ValueError as e:
        raise InputError(f"--shape: {e}") from None
    params = {
        "generator": "kd_components.data.phantom",
        "version": PHANTOM_VERSION,
        "num_cases": int(num_cases),
        "shape": list(shape),
        "seed": int(seed),
        "val_fraction": float(val_fraction),
        "test_fraction": float(test_fraction),
    }
    marker, datalist = out / "phantom.json", out / "datalist.json"
    if out.exists() and any(out.iterdir()):
        if not marker.is_file():
            raise InputError(
                f"output folder '{out}' is not empty and holds no phantom: choose a new or empty folder "
                f"(the phantom never writes over other data)."
            )
        if json.loads(marker.read_text()) == params and datalist.is_file():
            return datalist
        # a phantom of other parameters: remove only what the phantom wrote
        for old in out.glob("Phantom_*"):
            shutil.rmtree(old)
        datalist.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    for i in range(int(num_cases)):
        case = make_phantom_case(seed, i, shape)
        name = f"Phantom_{i:05d}"
        folder = out / name
        folder.mkdir(exist_ok=True)
        for m, img in case.images.items():
            _save_nifti(img, case.affine, folder / f"{name}_{m}.nii.gz")
        _save_nifti(case.label, case.affine, folder / f"{name}_seg.nii.gz")
    write_datalist(build_datalist(out, val_fraction, test_fraction, seed, check_images=False), datalist)
    atomic_write_text(marker, json.dumps(params, indent=4) + "\n")
    return datalist
