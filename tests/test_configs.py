"""``kd_components.tools.configs``: the student's configs as the teacher's plus an overlay (merge rules, --check)."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import REPO

from kd_components.errors import InputError
from kd_components.tools import configs

BASE = {"a": 1, "b": {"x": [1, 2], "y": "k"}, "train#handlers": [{"_target_": "H", "n": 1}], "z": 0}


@pytest.mark.parametrize(
    "overlay, expected",
    [
        ({"a": 2}, {**BASE, "a": 2}),
        ({"b#y": "m"}, {**BASE, "b": {"x": [1, 2], "y": "m"}}),
        ({"b#x#1": 5}, {**BASE, "b": {"x": [1, 5], "y": "k"}}),
        ({"+b#x": [3]}, {**BASE, "b": {"x": [1, 2, 3], "y": "k"}}),
        ({"+b": {"w": 1}}, {**BASE, "b": {"x": [1, 2], "y": "k", "w": 1}}),
        ({"~a": None}, {k: v for k, v in BASE.items() if k != "a"}),
        # a key of the base that itself holds '#' (an overlay config such as fast_train.json)
        ({"train#handlers#0#n": 2}, {**BASE, "train#handlers": [{"_target_": "H", "n": 2}]}),
        (
            {"+train#handlers": [{"_target_": "G"}]},
            {**BASE, "train#handlers": [{"_target_": "H", "n": 1}, {"_target_": "G"}]},
        ),
    ],
)
def test_merge(overlay, expected):
    out = configs.merge(BASE, overlay)
    assert out == expected
    assert BASE["b"] == {"x": [1, 2], "y": "k"}, "the base is not changed"


def test_a_new_key_sits_before_the_next_overlay_key_the_base_has():
    out = configs.merge(BASE, {"new": 1, "z": 5, "last": 2})
    assert list(out) == ["a", "b", "train#handlers", "new", "z", "last"]
    assert configs.merge({"a": 1, "b": 2}, {"c": 3, "b": 4}) == {"a": 1, "c": 3, "b": 4}
    assert list(configs.merge({"a": 1, "b": 2}, {"c": 3, "b": 4})) == ["a", "c", "b"]


@pytest.mark.parametrize(
    "overlay, words",
    [
        ({"q#r": 1}, "'q' is not in the teacher's config"),
        ({"b#x#7": 1}, "not an index of a list of 2"),
        ({"a#r": 1}, "reaches into a int"),
        ({"+a": [1]}, "'+' merges a dict into a dict or a list into a list"),
        ({"+b#x": {"k": 1}}, "'+' merges"),
        ({"~nothing": None}, "'~' removes a key the teacher's config has"),
    ],
)
def test_ill_overlay(overlay, words):
    with pytest.raises(ValueError, match="overlay id") as info:
        configs.merge(BASE, overlay)
    assert words in str(info.value)


@pytest.mark.parametrize(
    "a, b, where",
    [
        ({"a": 1}, {"a": 1}, None),
        ({"a": 1}, {"a": 2}, "a"),
        ({"a": {"b": [1, {"c": 1}]}}, {"a": {"b": [1, {"c": 2}]}}, "a#b#1#c"),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}, "<root> (key order)"),
        ({"a": [1]}, {"a": [1, 2]}, "a (a list of 1 items, generation gives 2)"),
        ({"a": 1}, {"a": 1, "n": 0}, "n"),
        ({"a": 1}, {"a": True}, "a"),
    ],
)
def test_first_difference(a, b, where):
    assert configs.first_difference(a, b) == where


@pytest.fixture
def repo_copy(tmp_path):
    """The bundles' configs and overlays in a folder of their own, to change without touching the repository."""
    for sub in ("teacher/configs", "student_kd/configs", "student_kd/overlays"):
        shutil.copytree(REPO / "bundles" / sub, tmp_path / "bundles" / sub)
    return tmp_path


def test_check_names_the_first_differing_id(repo_copy, capsys):
    assert configs.main(["--check", "--repo", str(repo_copy)]) == 0
    teacher = repo_copy / "bundles" / "teacher" / "configs" / "train.json"
    cfg = json.loads(teacher.read_text())
    cfg["learning_rate"] = 0.5  # a recipe change made in the teacher only
    teacher.write_text(configs.dumps(cfg))
    assert configs.main(["--check", "--repo", str(repo_copy)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bundles/student_kd/configs/train.json: id 'learning_rate' differs")
    # generation writes the change into the student, after which the check passes and a rerun writes nothing
    assert configs.main(["--repo", str(repo_copy)]) == 0
    student = json.loads((repo_copy / "bundles" / "student_kd" / "configs" / "train.json").read_text())
    assert student["learning_rate"] == 0.5
    assert configs.main(["--check", "--repo", str(repo_copy)]) == 0
    capsys.readouterr()
    assert configs.main(["--repo", str(repo_copy)]) == 0
    assert capsys.readouterr().out == ""


def test_check_finds_a_hand_edit_of_the_student(repo_copy, capsys):
    student = repo_copy / "bundles" / "student_kd" / "configs" / "evaluate.json"
    cfg = json.loads(student.read_text())
    cfg["eval_tags"]["model"] = "hand-edited"
    student.write_text(configs.dumps(cfg))
    assert configs.main(["--check", "--repo", str(repo_copy)]) == 1
    assert "id 'eval_tags#model' differs" in capsys.readouterr().err


def test_ill_overlay_without_a_teacher_config(repo_copy, capsys):
    (repo_copy / "bundles" / "student_kd" / "overlays" / "nothing.json").write_text("{}\n")
    with pytest.raises(InputError, match="the teacher has no configs/nothing.json"):
        configs.generate(repo_copy)
    assert configs.main(["--repo", str(repo_copy)]) == 1
    assert "nothing.json" in capsys.readouterr().err


def test_ill_overlay_that_does_not_merge(repo_copy):
    (repo_copy / "bundles" / "student_kd" / "overlays" / "unet.json").write_text('{"no#such#id": 1}\n')
    with pytest.raises(InputError, match=r"overlays/unet.json: overlay id 'no#such#id'"):
        configs.generate(repo_copy)
