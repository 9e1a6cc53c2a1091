from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from kd_components.data import make_phantom_case, write_phantom
from kd_components.errors import InputError

SHAPE = (48, 48, 40)


@pytest.fixture(scope="module")
def cases():
    return [make_phantom_case(seed=1, index=i, shape=SHAPE) for i in range(6)]


def _dprime(a: np.ndarray, b: np.ndarray) -> float:
    """Separability of two intensity samples (difference of means over pooled std)."""
    return float((a.mean() - b.mean()) / np.sqrt(0.5 * (a.var() + b.var()) + 1e-12))


def test_deterministic_by_seed():
    a, b = make_phantom_case(7, 2, (32, 32, 32)), make_phantom_case(7, 2, (32, 32, 32))
    c = make_phantom_case(8, 2, (32, 32, 32))
    assert all(np.array_equal(a.images[m], b.images[m]) for m in a.images)
    assert np.array_equal(a.label, b.label)
    assert not np.array_equal(a.label, c.label)
    assert not np.array_equal(a.images["t1"], make_phantom_case(7, 3, (32, 32, 32)).images["t1"])


def test_layout_types_and_geometry(cases):
    for case in cases:
        assert set(case.images) == {"t1", "t1ce", "t2", "flair"}
        assert all(img.shape == SHAPE and img.dtype == np.int16 for img in case.images.values())
        assert case.label.shape == SHAPE and case.label.dtype == np.uint8
        assert set(np.unique(case.label)) <= {0, 1, 2, 4}
        brain = case.images["t1"] > 0
        assert not np.any(case.label[~brain]), "labels only inside the skull-stripped brain"
        assert 0.1 < brain.mean() < 0.4  # a brain of ~1.5 l in the 8.9 l BraTS field of view
    # voxel size keeps the 240 x 240 x 155 mm field of view
    assert np.allclose(np.abs(np.diag(cases[0].affine))[:3], [240 / 48, 240 / 48, 155 / 40])


def test_label_nesting_and_variety(cases):
    volumes = []
    for case in cases:
        wt = case.label > 0
        tc = np.isin(case.label, (1, 4))
        assert tc.any(), "every case has a tumour core"
        # the core sits inside the whole tumour: its one-voxel shell is mostly edema or core, not healthy tissue
        shell = ndimage.binary_dilation(tc) & ~tc
        assert (wt[shell]).mean() > 0.8
        assert (case.label == 2).sum() > 0
        volumes.append(wt.sum())
    assert np.std(volumes) / np.mean(volumes) > 0.15, "tumour sizes vary between cases"
    centres = [np.argwhere(c.label > 0).mean(0) for c in cases]
    assert np.ptp(np.array(centres), axis=0).max() > 8, "tumour positions vary between cases"


def test_contrasts_per_modality(cases):
    """Each region is bright or dark where it is in real scans, and each single modality misses something."""
    d = {m: {k: [] for k in ("et_ed", "ed_wm", "ncr_wm", "ed_gm")} for m in ("t1", "t1ce", "t2", "flair")}
    csf_t2, csf_flair = [], []
    for case in cases:
        et, ed, ncr = case.label == 4, case.label == 2, case.label == 1
        healthy = (case.images["t1"] > 0) & (case.label == 0)
        for m, img in case.images.items():
            v = img.astype(np.float64)
            wm_level = np.percentile(v[healthy], 85)
            wm = (
                healthy & (v > wm_level)
                if m in ("t1", "t1ce")
                else healthy & (case.images["t1"] > np.percentile(case.images["t1"][healthy], 85))
            )
            if et.sum() > 5:
                d[m]["et_ed"].append(_dprime(v[et], v[ed]))
            d[m]["ed_wm"].append(_dprime(v[ed], v[wm]))
            if ncr.sum() > 5:
                d[m]["ncr_wm"].append(_dprime(v[ncr], v[wm]))
        csf = (case.images["t2"] > np.percentile(case.images["t2"][healthy], 97)) & healthy
        csf_t2.append(case.images["t2"][csf].mean() / case.images["t2"][healthy].mean())
        csf_flair.append(case.images["flair"][csf].mean() / case.images["flair"][healthy].mean())
    mean = {m: {k: float(np.mean(v)) for k, v in d[m].items() if v} for m in d}
    assert mean["t1ce"]["et_ed"] > 2.0, "ET bright in T1ce"
    assert abs(mean["t1"]["et_ed"]) < 1.0, "ET hardly separable from edema in T1"
    assert mean["t2"]["ed_wm"] > 2.0 and mean["flair"]["ed_wm"] > 2.0, "edema bright in T2 and FLAIR"
    assert mean["t1ce"]["ed_wm"] < 0, "edema only faint (darker than white matter) in T1ce"
    assert mean["t1"]["ncr_wm"] < -2.0 and mean["t1ce"]["ncr_wm"] < -2.0, "necrotic core dark in T1 and T1ce"
    assert np.mean(csf_t2) > 1.3 and np.mean(csf_flair) < 1.0, "FLAIR suppresses the fluid that is bright in T2"


def test_write_phantom_layout_and_reuse(tmp_path):
    out = tmp_path / "ph"
    datalist = write_phantom(out, num_cases=4, shape=(32, 32, 24), seed=5)
    content = json.loads(datalist.read_text())
    assert len(content["training"]) + len(content["validation"]) + len(content["test"]) == 4
    assert len(content["validation"]) == 1 and len(content["test"]) == 1
    files = sorted(p.name for p in (out / "Phantom_00000").iterdir())
    assert files == [f"Phantom_00000_{m}.nii.gz" for m in ("flair", "seg", "t1", "t1ce", "t2")]
    img = nib.load(out / "Phantom_00000" / "Phantom_00000_t1ce.nii.gz")
    assert img.shape == (32, 32, 24)
    stamp = (out / "Phantom_00000" / "Phantom_00000_t1.nii.gz").stat().st_mtime_ns
    write_phantom(out, num_cases=4, shape=(32, 32, 24), seed=5)  # same parameters: reused, not rewritten
    assert (out / "Phantom_00000" / "Phantom_00000_t1.nii.gz").stat().st_mtime_ns == stamp
    write_phantom(out, num_cases=3, shape=(32, 32, 24), seed=6)  # other parameters: regenerated in place
    assert not (out / "Phantom_00003").exists()


def test_ill_output_folder_with_other_data(tmp_path):
    (tmp_path / "notes.txt").write_text("my data")
    with pytest.raises(InputError, match="not empty and holds no phantom"):
        write_phantom(tmp_path, num_cases=2, shape=(32, 32, 32))
    assert (tmp_path / "notes.txt").read_text() == "my data"


@pytest.mark.parametrize("shape", [(8, 32, 32), (241, 32, 32), (32, 32)])
def test_ill_shape(tmp_path, shape):
    with pytest.raises(InputError, match="shape"):
        write_phantom(tmp_path / "x", num_cases=1, shape=shape)


def test_ill_num_cases(tmp_path):
    with pytest.raises(InputError, match="--num-cases"):
        write_phantom(tmp_path / "x", num_cases=0)
