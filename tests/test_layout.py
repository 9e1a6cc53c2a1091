"""The house: each bundle stands alone (no reference to another bundle's files, runs from any folder), the student
repeats the teacher's recipe exactly where it shares it, and the package's wings import one way only."""

from __future__ import annotations

import ast
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

import kd_components

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
#: ids the student copies from the teacher's train.json unchanged
SHARED_TRAIN_IDS = [
    "imports",
    "ckpt_dir",
    "output_dir",
    "log_dir",
    "dataset_dir",
    "data_list_file_path",
    "val_datalist",
    "device",
    "amp",
    "is_not_rank0",
    "seed",
    "epochs",
    "val_interval",
    "learning_rate",
    "roi_size",
    "batch_size",
    "num_workers",
    "cache_rate",
    "loader_workers",
    "init_filters",
    "network_def",
    "network",
    "optimizer",
    "lr_scheduler",
    "train_sampler",
    "val_sampler",
    "resume",
    "resume_ckpt",
    "best_metric_state",
    "val_handlers",
    "validate",
    "training",
    "run",
]
SHARED_TRAIN_SECTIONS = ["dataset", "dataloader", "inferer", "postprocessing", "key_metric"]


def _teacher_keys(node):
    """The student's transforms with the keys cached logits add (``@spatial_keys``) written as the teacher's, and
    without what cases of the unlabelled split need (a label the loader may miss, ``WithheldLabeld``)."""
    node = [t for t in copy.deepcopy(node) if t.get("_target_") != "kd_components.transforms.WithheldLabeld"]
    for t in node:
        if t.get("_target_") == "LoadImaged":
            t.pop("allow_missing_keys", None)
        if t.get("keys") == "@spatial_keys":
            t["keys"] = ["image", "label"]
            t.pop("allow_missing_keys", None)
    return node


def test_student_repeats_the_teachers_recipe():
    teacher, student = _load("teacher", "train.json"), _load("student_kd", "train.json")
    for key in SHARED_TRAIN_IDS:
        assert student[key] == teacher[key], f"'{key}' differs between the teacher's and the student's train.json"
    for key in SHARED_TRAIN_SECTIONS:
        assert student["train"][key] == teacher["train"][key], f"'train#{key}' differs"
    for key in ("preprocessing_transforms", "random_transforms"):
        assert _teacher_keys(student["train"][key]) == teacher["train"][key], f"'train#{key}' differs"
    assert student["seg_loss"] == teacher["loss"], "the student's supervised term is the teacher's loss"
    # the student's training items add the unlabelled split (None: the teacher's items)
    assert teacher["train_datalist"].startswith("$kd_components.data.load_datalist(@data_list_file_path, 'training'")
    assert student["train_datalist"] == (
        "$kd_components.data.load_training_items(@data_list_file_path, @dataset_dir, @unlabelled_split)"
    )
    assert student["unlabelled_split"] is None
    assert {**student["teacher_def"], "in_channels": "@in_channels", "init_filters": "@init_filters"} == teacher[
        "network_def"
    ], "teacher_def is the teacher's network"
    # the student's handlers are the teacher's plus one TensorBoard handler for every loss term; its resume and
    # interval checkpoint also hold the feature adapter
    s_handlers = [
        h for h in student["train"]["handlers"] if h.get("output_transform") != "$kd_components.training.loss_terms"
    ]
    for h in s_handlers:
        h.get("load_dict", {}).pop("feature_adapter", None)
        h.get("save_dict", {}).pop("feature_adapter", None)
    assert s_handlers == teacher["train"]["handlers"]
    assert (
        student["train"]["additional_metrics"]["train_epoch_loss"]
        == teacher["train"]["additional_metrics"]["train_epoch_loss"]
    )
    shared = {k: v for k, v in teacher["train"]["trainer"].items() if k not in ("_target_", "prepare_batch")}
    assert {k: student["train"]["trainer"][k] for k in shared} == shared


def test_student_overlays_repeat_the_teachers():
    t_multi, s_multi = _load("teacher", "multi_gpu_train.json"), _load("student_kd", "multi_gpu_train.json")
    assert {k: v for k, v in s_multi.items() if k != "initialize"} == {
        k: v for k, v in t_multi.items() if k != "initialize"
    }
    # the overlays' initialize: the process group first, then each bundle's own checks
    t_own, s_own = _load("teacher", "train.json")["initialize"], _load("student_kd", "train.json")["initialize"]
    assert s_multi["initialize"][:3] == t_multi["initialize"][:3]
    assert t_multi["initialize"][3:] == t_own and s_multi["initialize"][3:-1] == s_own
    t_eval, s_eval = _load("teacher", "evaluate.json"), _load("student_kd", "evaluate.json")
    assert {k: v for k, v in s_eval.items() if k != "eval_tags"} == {
        k: v for k, v in t_eval.items() if k != "eval_tags"
    }


def test_teacher_configs_know_nothing_of_the_student():
    for config in (BUNDLES / "teacher" / "configs").glob("*.json"):
        if config.name == "metadata.json":
            continue  # its description may say what the teacher is for
        text = config.read_text()
        for word in ("student", "kd_handlers", "feature_layer", "spatial_keys", "allow_missing_keys"):
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
    """kd_components modules that ``path`` imports, at any depth (function-level imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("kd_components")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kd_components"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
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


@pytest.mark.parametrize("name", ["unet.json", "dynunet.json"])
def test_architecture_overlays_match(name):
    """The student's UNet/DynUNet overlay is the teacher's network plus the feature layer the student distils from."""
    student = _load("student_kd", name)
    assert student["network_def"] == _load("teacher", name)["network_def"]
    assert student["feature_layer"] and student["feature_channels"] > 0


def test_fast_overlays_match():
    """The student's fast pipeline is the teacher's, with the keys cached logits add and their loading first."""
    teacher, student = _load("teacher", "fast_train.json"), _load("student_kd", "fast_train.json")
    for key in ("train#cached_transforms", "train#device_transforms", "train#random_transforms"):
        assert _teacher_keys(student[key]) == teacher[key], key
    assert student["train#preprocessing#transforms"] == teacher["train#preprocessing#transforms"].replace(
        "$@train#", "$@train#teacher_logit_transforms + @train#", 1
    )
    rest = {k for k in teacher if not k.startswith("train#") or k.endswith("dataset")}
    assert {k: student[k] for k in rest} == {k: teacher[k] for k in rest}


@pytest.mark.parametrize("bundle", ["teacher", "student_kd"])
def test_evaluation_scores_what_inference_writes(bundle):
    """evaluate.json uses the inference config's loading, normalisation, sliding window and label-map step."""
    evaluate, inference = _load(bundle, "evaluate.json"), _load(bundle, "inference.json")
    transforms = evaluate["validate#preprocessing"]["transforms"]
    assert {**transforms[0], "keys": "image"} == inference["preprocessing"]["transforms"][0]
    assert transforms[-1] == inference["preprocessing"]["transforms"][1]
    assert {**evaluate["validate#inferer"], "roi_size": "@window"} == inference["inferer"]
    # both slide the window the weights were trained with (models/model_settings.json; a larger window pads small
    # images with zeros and shifts the normalisation statistics: Dice fell from 0.61 to 0.23 on the 64^3 phantom),
    # unless a window is given (evaluation: --inference_roi_size, inference: --roi_size)
    window = {"_target_": "kd_components.training.weights.trained_window", "ckpt_dir": "@ckpt_dir"}
    assert evaluate["validate#inferer"]["roi_size"] == {**window, "roi_size": "@inference_roi_size"}
    assert inference["window"] == {**window, "roi_size": "@roi_size"}
    assert evaluate["inference_roi_size"] is None and inference["roi_size"] is None
    assert evaluate["validate#postprocessing"]["transforms"][:3] == inference["postprocessing"]["transforms"][:3]
    for key in ("output_label_convention", "et_label"):
        assert evaluate[key] == inference[key]
