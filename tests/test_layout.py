"""The house: each bundle stands alone (no reference to another bundle's files, runs from any folder), the student
repeats the teacher's recipe exactly where it shares it, and the package's wings import one way only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

import kd_components
from kd_components.tools import configs
from kd_components.tools.package import imported_modules

BUNDLES = REPO / "bundles"
PACKAGE = REPO / "kd_components"


def _load(bundle: str, name: str) -> dict:
    return json.loads((BUNDLES / bundle / "configs" / name).read_text())


# ------------------------------------------------------------------------------------------- self-contained
@pytest.mark.parametrize(
    "config", sorted(BUNDLES.glob("*/configs/*.json")), ids=lambda p: f"{p.parent.parent.name}/{p.name}"
)
def test_no_macro_reaches_outside_its_bundle(config):
    """`%` macros name ids of the bundle's own files only; none points at a path (resolved against the cwd)."""
    text = config.read_text()
    assert "%bundles/" not in text and "bundles/teacher" not in text.replace('"bundle_root": "bundles/teacher"', "")
    for value in _strings(json.loads(text)):
        if value.startswith("%"):
            path = value[1:].split("#")[0]
            assert not path or (config.parent / Path(path).name).is_file(), f"{value} names a file outside the bundle"


def _strings(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)
    elif isinstance(node, str):
        yield node


@pytest.mark.slow
def test_bundles_train_from_an_empty_folder_outside_the_repository(tiny_phantom, tmp_path):
    """`python -m monai.bundle run training --config_file <repo>/bundles/X/configs/train.json --bundle_root ...` from
    an empty folder: the teacher trains, then the student distils from it."""
    cwd = tmp_path / "empty"
    cwd.mkdir()
    small = ["--roi_size", "[32, 32, 32]", "--num_workers", "0", "--epochs", "1", "--device", "cpu"]
    for bundle, extra in (
        ("teacher", []),
        ("student_kd", ["--teacher_ckpt", str(tmp_path / "teacher" / "models" / "model.pt")]),
    ):
        cmd = [sys.executable, "-m", "monai.bundle", "run", "training"]
        cmd += ["--config_file", str(BUNDLES / bundle / "configs" / "train.json")]
        cmd += ["--meta_file", str(BUNDLES / bundle / "configs" / "metadata.json")]
        cmd += ["--logging_file", str(BUNDLES / bundle / "configs" / "logging.conf")]
        cmd += ["--bundle_root", str(tmp_path / bundle), "--dataset_dir", str(tiny_phantom), *small, *extra]
        res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, env=_env_without_repo())
        assert res.returncode == 0, res.stderr[-3000:]
        assert (tmp_path / bundle / "models" / "model.pt").is_file()
    assert sorted(os.listdir(cwd)) == [], "nothing written into the working directory"


def _env_without_repo() -> dict:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


# ------------------------------------------------------------------------------------------- shared recipe
def test_student_configs_are_the_teachers_plus_their_overlays():
    """The committed student configs are what ``python -m kd_components.tools.configs`` generates (the teacher's
    configs with ``bundles/student_kd/overlays/*.json`` merged in): the recipe is written once."""
    assert configs.check() == [], "run `python -m kd_components.tools.configs`"
    assert configs.main(["--check"]) == 0


@pytest.mark.parametrize("name", sorted(p.name for p in (BUNDLES / "student_kd" / "overlays").glob("*.json")))
def test_every_overlay_id_changes_something(name):
    """An overlay restates nothing of the teacher's: each id adds, extends, removes or changes a value."""
    teacher, overlay = _load("teacher", name), json.loads((BUNDLES / "student_kd" / "overlays" / name).read_text())
    for key, value in overlay.items():
        if key[0] in "+~":
            continue
        try:
            parent, last = configs._locate(teacher, key.split("#"), key)
        except ValueError:
            continue  # reaches below a key the overlay adds
        present = last in parent if isinstance(parent, dict) else True
        if present:
            current = parent[last] if isinstance(parent, dict) else parent[int(last)]
            assert current != value, f"overlays/{name}: '{key}' restates the teacher's value"


def test_the_students_recipe_shares_what_it_should():
    """What the generation guarantees, read as a user would: the student's supervised term, network shape, data and
    schedule are the teacher's; only the input channels and the distillation differ."""
    teacher, student = _load("teacher", "train.json"), _load("student_kd", "train.json")
    for key in ("seg_loss", "network_def", "optimizer", "lr_scheduler", "roi_size", "epochs", "val_datalist"):
        assert student[key] == teacher[key], key
    assert {**student["teacher_def"], "in_channels": "@in_channels", "init_filters": "@init_filters"} == teacher[
        "network_def"
    ], "teacher_def is the teacher's network"
    assert teacher["loss"] == "@seg_loss" and student["loss"]["seg_loss"] == "@seg_loss"
    assert student["initialize"] == teacher["initialize"] == ["@checks"], "the checks every run makes: one id"
    t_multi, s_multi = _load("teacher", "multi_gpu_train.json"), _load("student_kd", "multi_gpu_train.json")
    assert s_multi["initialize"][:-1] == t_multi["initialize"] and "@checks" in t_multi["initialize"]


def test_teacher_configs_know_nothing_of_the_student():
    for config in (BUNDLES / "teacher" / "configs").glob("*.json"):
        if config.name == "metadata.json":
            continue  # its description may say what the teacher is for
        text = config.read_text()
        for word in ("student", "kd_handlers", "feature_layer", "teacher_logit", "WithheldLabeld"):
            assert word not in text, f"{config.name} mentions '{word}'"


# ------------------------------------------------------------------------------------------- package wings
def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path, module: str) -> set[str]:
    """kd_components modules that ``path`` imports, at any depth (function-level imports count too): the reading
    the packager uses for the code a bundle carries."""
    found = imported_modules(path)
    modules = _modules()
    return {m for m in found if m in modules and m != module}


def _wing(module: str) -> int:
    parts = module.split(".")
    return {"tools": 2, "training": 1}.get(parts[1], 0) if len(parts) > 1 else 0


def test_import_graph_has_no_circle_and_points_one_way():
    modules = _modules()
    graph = {m: {i for i in _imports(p, m) if i != "kd_components"} for m, p in modules.items()}
    for module, deps in graph.items():
        for dep in deps:
            assert _wing(dep) <= _wing(module), f"{module} (wing {_wing(module)}) imports {dep} (wing {_wing(dep)})"
    # no circle: a topological order exists (a package imports its own modules; that is not a circle)
    edges = {
        m: {d for d in deps if not m.startswith(d + ".") and not d.startswith(m + ".")} for m, deps in graph.items()
    }
    done, visiting = set(), []

    def visit(m):
        if m in done:
            return
        assert m not in visiting, f"import circle: {' -> '.join([*visiting[visiting.index(m) :], m])}"
        visiting.append(m)
        for d in edges[m]:
            visit(d)
        visiting.pop()
        done.add(m)

    for m in edges:
        visit(m)


def test_module_map_names_every_module():
    doc = kd_components.__doc__
    shorts = [m.removeprefix("kd_components.") for m in _modules() if m != "kd_components" and "__main__" not in m]
    missing = [short for short in shorts if f"``{short}``" not in doc]
    assert not missing, f"kd_components/__init__.py's module map does not name {missing}"
    named = {w.strip("`") for w in doc.split() if w.startswith("``") and w.rstrip(",.:;)").endswith("``")}
    stale = [n.rstrip(",.:;)").strip("`") for n in named if n.split(".")[0] in {"tools", "training", "data"}]
    assert not [n for n in stale if n not in shorts], "the map names modules that do not exist"


@pytest.mark.parametrize("bundle", ["teacher", "student_kd"])
def test_evaluation_scores_what_inference_writes(bundle):
    """evaluate.json uses the inference config's loading, normalisation, sliding window and label-map step."""
    evaluate, inference = _load(bundle, "evaluate.json"), _load(bundle, "inference.json")
    transforms = evaluate["validate#preprocessing"]["transforms"]
    shared = inference["preprocessing"]["transforms"]
    if bundle == "student_kd":
        # the any student's input from the images a case has is the last step of inference; evaluation loads the
        # four sequences and builds that input from the subset asked for in its prepare_batch (SubsetInputBatch)
        assert shared[-1] == {
            "_target_": "kd_components.transforms.PresenceInputd",
            "keys": "image",
            "modality": "@modality",
        }
        assert (
            _load(bundle, "train.json")["prepare_batch"]["_target_"] == "kd_components.training.settings.student_batch"
        )
        shared = shared[:-1]
    assert {**transforms[0], "keys": "image"} == shared[0]
    assert transforms[-2:] == shared[1:]
    # both resample the image (never the label) to the voxel size the weights were trained at, and put the
    # prediction back on the input's grid before thresholding
    assert (
        transforms[-1]["_target_"] == "kd_components.transforms.ResampleToPixdimd" and transforms[-1]["keys"] == "image"
    )
    pixdim = {"_target_": "kd_components.deploy.weights.trained_pixdim", "ckpt_dir": "@ckpt_dir", "pixdim": "@pixdim"}
    assert evaluate["resample_pixdim"] == inference["resample_pixdim"] == pixdim
    invert = {"_target_": "Invertd", "keys": "pred", "orig_keys": "image", "nearest_interp": False}
    assert evaluate["validate#postprocessing"]["transforms"][1] == {**invert, "transform": "@validate#preprocessing"}
    assert inference["postprocessing"]["transforms"][1] == {**invert, "transform": "@preprocessing"}
    assert {**evaluate["validate#inferer"], "roi_size": "@window"} == inference["inferer"]
    # both slide the window the weights were trained with (models/model_settings.json; a larger window pads small
    # images with zeros and shifts the normalisation statistics: Dice fell from 0.61 to 0.23 on the 64^3 phantom),
    # unless a window is given (evaluation: --inference_roi_size, inference: --roi_size)
    window = {"_target_": "kd_components.deploy.weights.trained_window", "ckpt_dir": "@ckpt_dir"}
    assert evaluate["validate#inferer"]["roi_size"] == {**window, "roi_size": "@inference_roi_size"}
    assert inference["window"] == {**window, "roi_size": "@roi_size"}
    assert evaluate["inference_roi_size"] is None and inference["roi_size"] is None
    # the same steps to the label map, one named transform for the regions -> labels step
    step = {"_target_": "kd_components.transforms.RegionsToBratsLabeld", "keys": "pred"}
    post_eval, post_infer = evaluate["validate#postprocessing"]["transforms"], inference["postprocessing"]["transforms"]
    assert post_eval[:1] + post_eval[2:4] == post_infer[:1] + post_infer[2:4]
    assert post_eval[4] == {**step, "convention": "@output_label_convention"}
    assert post_infer[4] == {**step, "convention": "@label_convention"}
    # evaluation scores in the bundles' convention; inference writes the input's unless told
    assert evaluate["output_label_convention"] == "brats2021" and inference["output_label_convention"] is None
