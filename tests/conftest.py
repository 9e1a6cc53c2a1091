from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: the real BraTS 2023 case lent to developers; absent in a user's clone, where its tests skip.
REAL_CASE_DIR = Path(os.environ.get("KD_BRATS_SAMPLE", REPO.parent / "shared" / "data" / "brats2023_sample"))
#: the 42 public BraTS 2018 cases (``scripts/get_brats2018_public42.sh data/brats2018_public42``); absent: skipped.
BRATS2018_DIR = Path(os.environ.get("KD_BRATS2018_DIR", REPO / "data" / "brats2018_public42" / "cases"))


#: overrides that make a bundle run small: 32^3 crops, no worker processes, CPU
TINY_RUN = {"roi_size": [32, 32, 32], "num_workers": 0, "device": "cpu"}


def run_workflow(
    config_file,
    run_id: str = "training",
    meta_file=None,
    logging_file=False,
    run=True,
    tiny=True,
    workflow_kwargs: dict | None = None,
    **overrides,
):
    """Initialise (and run, unless ``run`` is False) a bundle through ``ConfigWorkflow``; the workflow.

    The one way the tests run a bundle in process: ``TINY_RUN`` sizes (unless ``tiny`` is False), then
    ``overrides`` (``bundle_root``, ``dataset_dir``, ...). ``config_file`` is one path or a list; ``meta_file``
    defaults to the ``metadata.json`` beside the first one; ``logging_file`` False keeps the test's logging as it is;
    ``workflow_kwargs`` go to ``ConfigWorkflow`` itself (e.g. ``init_id=None`` as MONAI Label runs a bundle).
    """
    from monai.bundle import ConfigWorkflow

    files = [str(f) for f in (config_file if isinstance(config_file, (list, tuple)) else [config_file])]
    wf = ConfigWorkflow(
        config_file=files,
        meta_file=str(meta_file or Path(files[0]).parent / "metadata.json"),
        logging_file=logging_file if logging_file is False else str(logging_file),
        run_id=run_id,
        **{"workflow_type": "train" if run_id == "training" else "infer", **(workflow_kwargs or {})},
        **{**(TINY_RUN if tiny else {}), **overrides},
    )
    wf.initialize()
    if run:
        wf.run()
    return wf


def refused(*argv: str) -> str:
    """``python -m monai.bundle <argv>`` run in this process, with the arguments parsed as the command line parses
    them (python-fire), for a run that must be refused before any work: the one line it prints (``error: ...``).

    ``InputError`` is a ``SystemExit`` whose code is that line: the interpreter prints it to stderr and exits with
    status 1, which ``test_ill_every_missing_input_at_once`` (student) checks once in a real subprocess. In process
    a refusal costs a config parse, not an interpreter start with torch and MONAI (about 15 s on 2 loaded cores).
    """
    import fire
    from monai.bundle import scripts

    from kd_components.errors import InputError

    with pytest.raises(InputError) as e:
        fire.Fire({"run": scripts.run}, command=[*map(str, argv), "--logging_file", "False"], name="monai.bundle")
    return str(e.value.code)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache_home(tmp_path_factory):
    """The validation memory of this test run lives in a temporary folder, never in the user's home; subprocesses
    inherit it through ``XDG_CACHE_HOME``."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache_home"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture(autouse=True)
def _fresh_validation_memory():
    """Each test starts with the validation memory read anew from disk (no state carried over in the process)."""
    from kd_components.data import validate

    validate.reset()
    yield
    validate.reset()


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
def brats2018_dir() -> Path:
    if len(list(BRATS2018_DIR.glob("*/*_seg.nii.gz"))) < 42:
        pytest.skip(f"the 42 public BraTS 2018 cases are not at {BRATS2018_DIR} (scripts/get_brats2018_public42.sh)")
    return BRATS2018_DIR


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
