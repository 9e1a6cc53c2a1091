"""The bundles are found in a checkout, in an installed package (shipped inside it) or where ``KD_BUNDLES`` says; a
project installed with ``pip install <checkout>`` (not editable) runs the demo from a folder outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO
from setuptools import find_packages

from kd_components.errors import InputError
from kd_components.resources import bundles_root, checkout_root


def test_in_a_checkout_the_repositorys_bundles(monkeypatch):
    monkeypatch.delenv("KD_BUNDLES", raising=False)
    assert checkout_root() == REPO and bundles_root() == REPO / "bundles"


def test_kd_bundles_names_another_folder(monkeypatch, tmp_path):
    for name in ("teacher", "student_kd"):
        (tmp_path / name / "configs").mkdir(parents=True)
        (tmp_path / name / "configs" / "train.json").write_text("{}")
    monkeypatch.setenv("KD_BUNDLES", str(tmp_path))
    assert bundles_root() == tmp_path.resolve()


def test_ill_kd_bundles_without_the_bundles(monkeypatch, tmp_path):
    monkeypatch.setenv("KD_BUNDLES", str(tmp_path))
    with pytest.raises(InputError, match=r"KD_BUNDLES '.*' does not hold the bundles teacher, student_kd"):
        bundles_root()


def test_the_package_list_is_every_package_plus_the_bundles():
    """pyproject.toml lists the packages by hand (the bundles are mapped in from bundles/): none may be missing."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = set(find_packages(str(REPO), include=["kd_components*"]))
    assert set(config["packages"]) == found | {"kd_components.bundles"}
    assert config["package-dir"] == {"kd_components.bundles": "bundles"}


@pytest.mark.slow
def test_installed_project_runs_the_demo_from_outside_the_checkout(tmp_path):
    """The project built as a wheel and installed (no dependencies: those of this environment), then the quick demo
    from an empty folder: its stages read the bundles shipped inside the installed package."""
    wheels, target, outside = tmp_path / "wheels", tmp_path / "site", tmp_path / "outside"
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(REPO), "-w"]
    subprocess.run([*build, str(wheels)], check=True, capture_output=True, cwd=tmp_path, timeout=600)
    wheel = next(wheels.glob("kd_components-*.whl"))
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=600)
    outside.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("KD_BUNDLES", None)
    res = subprocess.run(
        [sys.executable, "-m", "kd_components.tools.demo", "--quick", "--output", "OUT"],
        cwd=outside, env=env, capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert (outside / "OUT" / "report.md").is_file()
    assert f"{target / 'kd_components' / 'bundles' / 'teacher' / 'configs' / 'train.json'}" in res.stdout
    assert str(REPO / "bundles") not in res.stdout
