from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: the real BraTS 2023 case lent to developers; absent in a user's clone, where its tests skip.
REAL_CASE_DIR = Path(os.environ.get("KD_BRATS_SAMPLE", REPO.parent / "shared" / "data" / "brats2023_sample"))


@pytest.fixture(scope="session")
def tiny_phantom(tmp_path_factory) -> Path:
    """Five 32^3 phantom cases (3 training, 1 validation, 1 test) with datalist.json."""
    from kd_components.data import write_phantom

    out = tmp_path_factory.mktemp("phantom")
    write_phantom(out, num_cases=5, shape=(32, 32, 32), seed=3)
    return out


@pytest.fixture()
def real_case_dir() -> Path:
    if not any(REAL_CASE_DIR.glob("*/*-seg.nii.gz")):
        pytest.skip(f"real BraTS sample not present at {REAL_CASE_DIR}")
    return REAL_CASE_DIR


@pytest.fixture(scope="session")
def teacher_ckpt(tiny_phantom, tmp_path_factory) -> Path:
    """A teacher trained by the teacher bundle for one epoch on the tiny phantom (its best model.pt)."""
    from monai.bundle import ConfigWorkflow

    root = tmp_path_factory.mktemp("teacher_bundle")
    configs = REPO / "bundles" / "teacher" / "configs"
    wf = ConfigWorkflow(
        config_file=str(configs / "train.json"),
        meta_file=str(configs / "metadata.json"),
        logging_file=False,
        workflow_type="train",
        run_id="training",
        bundle_root=str(root),
        dataset_dir=str(tiny_phantom),
        roi_size=[32, 32, 32],
        num_workers=0,
        device="cpu",
        epochs=1,
        learning_rate=1e-3,
    )
    wf.initialize()
    wf.run()
    wf.finalize()
    return root / "models" / "model.pt"
