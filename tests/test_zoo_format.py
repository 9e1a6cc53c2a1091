"""The model zoo's format checks, offline, on the pull-request form of both bundles (``package --weights-url``):
``runtests.sh --isort``, ``--black`` and ``--flake8`` with the zoo's own ``setup.cfg`` / ``pyproject.toml``
(``tests/data/zoo_ci``, with their source and version), and the rules of the pre-commit hooks it runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest
import torch
from conftest import REPO
from monai.networks.nets import SegResNet

from kd_components.tools.package import package_bundle

ZOO_CI = REPO / "tests" / "data" / "zoo_ci"
ZOO_TEACHER, ZOO_STUDENT = "brats_mri_kd_teacher_segmentation", "brats_mri_t1ce_kd_segmentation"


@pytest.fixture(scope="module")
def zoo_root(tmp_path_factory):
    """A model-zoo checkout in miniature: its configuration files, and ``models/`` with both packaged bundles."""
    root = tmp_path_factory.mktemp("model-zoo")
    for name in ("setup.cfg", "pyproject.toml"):
        shutil.copyfile(ZOO_CI / name, root / name)
    (root / "models").mkdir()
    dist = tmp_path_factory.mktemp("dist")
    for bundle, channels in (("teacher", 4), ("student_kd", 1)):
        torch.manual_seed(0)
        net = SegResNet(
            blocks_down=[1, 2, 2, 4], blocks_up=[1, 1, 1], init_filters=16, in_channels=channels, out_channels=3
        )
        ckpt = dist / f"{bundle}.pt"
        torch.save(net.state_dict(), ckpt)
        target = package_bundle(REPO / "bundles" / bundle, dist, ckpt=ckpt, weights_url="https://example.org/weights")
        with zipfile.ZipFile(target) as z:
            z.extractall(root / "models")
    return root


@pytest.mark.slow  # each test here reads the two packaged bundles: packaging, the zoo's tools as subprocesses
@pytest.mark.parametrize(
    "tool",
    [
        ["isort", "--check"],  # runtests.sh --isort
        ["black", "--skip-magic-trailing-comma", "--check"],  # runtests.sh --black
        ["flake8", "--count", "--statistics"],  # runtests.sh --flake8
    ],
    ids=["isort", "black", "flake8"],
)
def test_zoo_code_format_checks_pass(zoo_root, tool):
    res = subprocess.run(
        [sys.executable, "-m", *tool, str(zoo_root / "models")], cwd=zoo_root, capture_output=True, text=True
    )
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]


def _files(root):
    return [p for p in (root / "models").rglob("*") if p.is_file()]


@pytest.mark.slow
def test_zoo_pre_commit_hooks_rules_hold(zoo_root):
    """end-of-file-fixer, trailing-whitespace, pretty-format-json (--no-sort-keys --indent=4), mixed-line-ending,
    check-executables-have-shebangs and check-added-large-files (--maxkb=1024), as the zoo's pre-commit config
    runs them (rules restated: the hooks' package needs a YAML library this machine's registry lacks)."""
    hooks = (ZOO_CI / "pre-commit-config.yaml").read_text()
    for hook in ("end-of-file-fixer", "trailing-whitespace", "pretty-format-json", "check-added-large-files"):
        assert f"id: {hook}" in hooks, "the rules restated here are the hooks the zoo runs"
    assert "--no-sort-keys" in hooks and "--indent=4" in hooks and "--maxkb=1024" in hooks
    problems = []
    for path in _files(zoo_root):
        rel = path.relative_to(zoo_root)
        data = path.read_bytes()
        if path.stat().st_size > 1024 * 1024:
            problems.append(f"{rel}: over 1024 KB")
        if os.access(path, os.X_OK) and not data.startswith(b"#!"):
            problems.append(f"{rel}: executable without a shebang")
        if path.suffix in (".pt", ".ts", ".zip"):
            continue
        text = data.decode()
        if text and (not text.endswith("\n") or text.endswith("\n\n")):
            problems.append(f"{rel}: does not end in exactly one newline")
        if any(line != line.rstrip() for line in text.split("\n")):
            problems.append(f"{rel}: trailing whitespace")
        if "\r\n" in text:
            problems.append(f"{rel}: CRLF line endings")
        if path.suffix == ".json" and text != json.dumps(json.loads(text), indent=4) + "\n":
            problems.append(f"{rel}: not as pretty-format-json --no-sort-keys --indent=4 writes it")
    assert not problems, problems


@pytest.mark.slow
def test_pull_request_form_carries_no_weights_and_only_runtime_code(zoo_root):
    # the zoo's data_modality_task names
    assert {p.name for p in (zoo_root / "models").iterdir()} == {ZOO_TEACHER, ZOO_STUDENT}
    for bundle in (ZOO_TEACHER, ZOO_STUDENT):
        root = zoo_root / "models" / bundle
        assert not (root / "models" / "model.pt").exists(), "weights are uploaded, not committed"
        large = (root / "large_files.yml").read_text()
        assert "url:" in large and large.startswith("# Weights published at url (the pull-request form")
        meta = json.loads((root / "configs" / "metadata.json").read_text())
        assert "itk" in meta["required_packages_version"], "NRRD/MHA/DICOM input is promised: itk reads it"
        assert "contributors" not in meta["authors"]
        assert not (root / "kd_components" / "tools").exists()
        assert not (root / "kd_components" / "data" / "phantom.py").exists()


@pytest.mark.slow
def test_metadata_names_the_schema_of_the_keys_it_carries(zoo_root):
    """Bundles with ``required_packages_version`` only are on ``meta_schema_20240725.json`` in the zoo (those with
    ``optional_packages_version`` on the 2022 schemas)."""
    for meta in (zoo_root / "models").glob("*/configs/metadata.json"):
        content = json.loads(meta.read_text())
        assert "optional_packages_version" not in content and "required_packages_version" in content
        assert content["schema"].endswith("/meta_schema_20240725.json"), meta


@pytest.mark.slow
def test_packaged_readme_is_written_for_the_bundle(zoo_root):
    """The packaged ``docs/README.md``: the zoo template's sections in its order, commands relative to the bundle
    folder, no repository paths, commands or links out of the bundle; phantom metrics said to be phantom metrics."""
    order = ["Model Overview", "Data", "Performance", "System Configuration", "Limitations", "Citation", "References"]
    for bundle in (ZOO_TEACHER, ZOO_STUDENT):
        text = (zoo_root / "models" / bundle / "docs" / "README.md").read_text()
        headings = [line[3:].strip() for line in text.splitlines() if line.startswith("## ")]
        assert [h for h in headings if h in order] == order, headings
        for word in ("bundles/", "kd_components.tools", "](../", "<!-- repository", "tests/", "zoo/ci"):
            assert word not in text, f"{bundle}: '{word}' in its README"
        assert "--config_file configs/train.json" in text
        assert "phantom metrics, not BraTS metrics" in " ".join(text.split())
    student = (zoo_root / "models" / ZOO_STUDENT / "docs" / "README.md").read_text()
    assert "../brats_mri_segmentation/models/model.pt" in student, "a student PR's teacher is the zoo's BraTS model"
