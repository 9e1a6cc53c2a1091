from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: the real BraTS 2023 case lent to developers; absent in a user's clone, where its tests skip.
REAL_CASE_DIR = Path(os.environ.get("KD_BRATS_SAMPLE", REPO.parent / "shared" / "data" / "brats2023_sample"))


#: overrides that make a bundle run small: 32^3 crops, no worker processes, CPU
TINY_RUN = {"roi_size": [32, 32, 32], "num_workers": 0, "device": "cpu"}


def run_workflow(config_file, run_id: str = "training", meta_file=None, **overrides):
    """Initialise and run a bundle through ``ConfigWorkflow`` with ``TINY_RUN`` and ``overrides``; the workflow.

    ``config_file`` is one path or a list; ``meta_file`` defaults to the ``metadata.json`` beside the first one.
    """
    from monai.bundle import ConfigWorkflow

    files = [str(f) for f in (config_file if isinstance(config_file, (list, tuple)) else [config_file])]
    wf = ConfigWorkflow(
        config_file=files,
        meta_file=str(meta_file or Path(files[0]).parent / "metadata.json"),
        logging_file=False,
        workflow_type="train" if run_id == "training" else "infer",
        run_id=run_id,
        **{**TINY_RUN, **overrides},
    )
    wf.initialize()
    wf.run()
    return wf


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
    root = tmp_path_factory.mktemp("teacher_bundle")
    wf = run_workflow(
        REPO / "bundles" / "teacher" / "configs" / "train.json",
        bundle_root=str(root),
        dataset_dir=str(tiny_phantom),
        epochs=1,
        learning_rate=1e-3,
    )
    wf.finalize()
    return root / "models" / "model.pt"
