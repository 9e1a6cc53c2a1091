from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from kd_components.data import build_datalist, find_cases, load_datalist, write_datalist
from kd_components.data.__main__ import main as data_cli
from kd_components.errors import InputError

NAMES_2023 = {"t1ce": "t1c", "t1": "t1n", "t2": "t2w", "flair": "t2f", "seg": "seg"}


def _as_2023(src: Path, dst: Path) -> Path:
    """Copy a phantom into the BraTS 2023 layout (CASE-t1c.nii.gz ...), labels 4 -> 3."""
    for case in sorted(src.glob("Phantom_*")):
        name = case.name.replace("Phantom_", "BraTS-PHA-") + "-000"
        (dst / name).mkdir(parents=True)
        for old, new in NAMES_2023.items():
            f = case / f"{case.name}_{old}.nii.gz"
            if old == "seg":
                img = nib.load(f)
                lab = np.asarray(img.dataobj).copy()
                lab[lab == 4] = 3
                nib.save(nib.Nifti1Image(lab, img.affine), dst / name / f"{name}-{new}.nii.gz")
            else:
                shutil.copy(f, dst / name / f"{name}-{new}.nii.gz")
    return dst


def test_2021_layout(tiny_phantom):
    dl = build_datalist(tiny_phantom, val_fraction=0.2, test_fraction=0.2, seed=0)
    assert dl["label_convention"] == "brats2021"
    assert dl["channel_order"] == ["T1c", "T1", "T2", "FLAIR"]
    assert [len(dl[k]) for k in ("training", "validation", "test")] == [3, 1, 1]
    entry = dl["training"][0]
    case = entry["case"]
    assert entry["image"] == [f"{case}/{case}_{m}.nii.gz" for m in ("t1ce", "t1", "t2", "flair")]
    assert entry["label"] == f"{case}/{case}_seg.nii.gz" and entry["label_convention"] == "brats2021"
    all_cases = sorted(e["case"] for k in ("training", "validation", "test") for e in dl[k])
    assert all_cases == [f"Phantom_{i:05d}" for i in range(5)]


def test_2023_layout(tiny_phantom, tmp_path):
    root = _as_2023(tiny_phantom, tmp_path / "b23")
    dl = build_datalist(root, seed=0)
    assert dl["label_convention"] == "brats2023"
    entry = dl["training"][0]
    case = entry["case"]
    assert entry["image"] == [f"{case}/{case}-{m}.nii.gz" for m in ("t1c", "t1n", "t2w", "t2f")]
    assert entry["label"] == f"{case}/{case}-seg.nii.gz"


def test_split_deterministic_and_disjoint(tiny_phantom):
    a, b = build_datalist(tiny_phantom, seed=4), build_datalist(tiny_phantom, seed=4)
    assert a == b
    sets = [{e["case"] for e in a[k]} for k in ("training", "validation", "test")]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])


def test_load_datalist_joins_paths(tiny_phantom):
    items = load_datalist(tiny_phantom / "datalist.json", "training", tiny_phantom)
    assert len(items) == 3
    assert all(Path(p).is_file() for it in items for p in it["image"] + [it["label"]])


def test_cli_datalist(tiny_phantom, tmp_path, capsys):
    out = tmp_path / "dl.json"
    assert data_cli(["datalist", "--data-dir", str(tiny_phantom), "--output", str(out), "--test-fraction", "0"]) == 0
    content = json.loads(out.read_text())
    assert content["test"] == [] and len(content["training"]) == 4
    assert "training 4" in capsys.readouterr().out


def test_real_brats2023_case(real_case_dir, tmp_path):
    dl = build_datalist(real_case_dir, val_fraction=0, test_fraction=0)
    assert dl["label_convention"] == "brats2023" and len(dl["training"]) == 1
    assert dl["training"][0]["image"][0].endswith("-t1c.nii.gz")
    write_datalist(dl, tmp_path / "real.json")  # the data folder itself is read-only
    items = load_datalist(tmp_path / "real.json", "training", real_case_dir)
    assert nib.load(items[0]["image"][0]).shape == (240, 240, 155)


# ---------------------------------------------------------------------------------------- bad input
def _copy(src: Path, dst: Path, n: int = 3) -> Path:
    for case in sorted(src.glob("Phantom_*"))[:n]:
        shutil.copytree(case, dst / case.name)
    return dst


def test_ill_missing_modality(tiny_phantom, tmp_path):
    root = _copy(tiny_phantom, tmp_path / "d")
    (root / "Phantom_00001" / "Phantom_00001_flair.nii.gz").unlink()
    with pytest.raises(InputError, match=r"Phantom_00001' lacks Phantom_00001_flair\.nii\.gz"):
        find_cases(root)


def test_ill_missing_segmentation(tiny_phantom, tmp_path):
    root = _copy(tiny_phantom, tmp_path / "d")
    (root / "Phantom_00002" / "Phantom_00002_seg.nii.gz").unlink()
    with pytest.raises(InputError, match=r"lacks Phantom_00002_seg\.nii\.gz.*add the files or move the case"):
        build_datalist(root)


def test_ill_shapes_differ(tiny_phantom, tmp_path):
    root = _copy(tiny_phantom, tmp_path / "d")
    f = root / "Phantom_00000" / "Phantom_00000_t2.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((32, 32, 30), np.int16), np.eye(4)), f)
    with pytest.raises(InputError, match=r"Phantom_00000_t2.nii.gz. has shape \(32, 32, 30\)"):
        build_datalist(root)


def test_ill_unreadable_file(tiny_phantom, tmp_path):
    root = _copy(tiny_phantom, tmp_path / "d")
    (root / "Phantom_00000" / "Phantom_00000_t1.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(InputError, match=r"Phantom_00000_t1.nii.gz' cannot be read"):
        build_datalist(root)


def test_ill_no_cases(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(InputError, match="no BraTS case found"):
        find_cases(tmp_path)


def test_ill_missing_data_dir(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        find_cases(tmp_path / "nope")


@pytest.mark.parametrize("val, test", [(1.2, 0.1), (-0.1, 0.2), (0.6, 0.5)])
def test_ill_fractions(tiny_phantom, val, test):
    with pytest.raises(InputError, match="fraction"):
        build_datalist(tiny_phantom, val, test)


def test_ill_empty_split(tiny_phantom, tmp_path):
    dl = tmp_path / "dl.json"
    dl.write_text(json.dumps({"training": [], "validation": []}))
    with pytest.raises(InputError, match="has no 'training' cases"):
        load_datalist(dl, "training", tiny_phantom)


def test_ill_datalist_not_json(tiny_phantom, tmp_path):
    dl = tmp_path / "dl.json"
    dl.write_text("{training: oops")
    with pytest.raises(InputError, match="is not valid JSON"):
        load_datalist(dl, "training", tiny_phantom)


def test_ill_datalist_missing_file(tiny_phantom, tmp_path):
    with pytest.raises(InputError, match="datalist .* does not exist: write it with"):
        load_datalist(tmp_path / "none.json", "training", tiny_phantom)


def test_ill_datalist_entry_file_gone(tiny_phantom, tmp_path):
    entry = {"image": ["a_t1ce.nii.gz", "a_t1.nii.gz", "a_t2.nii.gz", "a_flair.nii.gz"], "label": "a_seg.nii.gz"}
    dl = tmp_path / "dl.json"
    dl.write_text(json.dumps({"training": [entry]}))
    with pytest.raises(InputError, match=r"image file '.*a_t1ce.nii.gz' does not exist"):
        load_datalist(dl, "training", tiny_phantom)


def test_ill_too_few_cases_for_the_splits(tiny_phantom, tmp_path):
    for case in sorted(tiny_phantom.glob("Phantom_*"))[:2]:
        shutil.copytree(case, tmp_path / case.name)
    with pytest.raises(InputError, match=r"2 case\(s\) under .* cannot fill training, validation and test .* leave 0 "):
        build_datalist(tmp_path)
    dl = build_datalist(tmp_path, val_fraction=0.0, test_fraction=0.0)
    assert len(dl["training"]) == 2 and not dl["validation"]


def test_input_error_is_one_clean_line():
    err = InputError(
        "teacher checkpoint 'x.pt' is not a plain state dict (\x1b[1mWeightsUnpickler error\x1b[0m:\n bad)"
    )
    assert str(err) == "teacher checkpoint 'x.pt' is not a plain state dict (WeightsUnpickler error: bad)"


# ------------------------------------------------------------------------------------------- published splits
def test_split_file_reproduces_a_published_protocol(tiny_phantom, tmp_path):
    names = sorted(p.name for p in tiny_phantom.glob("Phantom_*"))
    split = {"training": names[:3], "validation": [], "test": [f"./Training/HGG/{names[3]}"], "source": "hand-made"}
    (tmp_path / "split.json").write_text(json.dumps(split))
    out = tmp_path / "dl.json"
    assert (
        data_cli(
            [
                "datalist",
                "--data-dir",
                str(tiny_phantom),
                "--output",
                str(out),
                "--split-file",
                str(tmp_path / "split.json"),
                "--val-fraction",
                "0.34",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    dl = json.loads(out.read_text())
    cases = {k: [e["case"] for e in dl[k]] for k in ("training", "validation", "test")}
    assert cases["test"] == [names[3]], "the test list is taken as published (paths reduced to case names)"
    assert len(cases["validation"]) == 1 and sorted(cases["training"] + cases["validation"]) == names[:3]
    assert dl["left_out"] == len(names) - 4, "cases the split does not name are left out"


def test_shipped_split_is_brats2018(tmp_path):
    from kd_components.data import read_split_file

    split = read_split_file("brats2018_mmformer_fold0")
    assert (len(split["training"]), len(split["validation"]), len(split["test"])) == (190, 0, 95)
    everything = split["training"] + split["test"]
    assert len(set(everything)) == 285 and all(c.startswith("Brats18_") for c in everything)


def test_ill_split_file_naming_absent_cases(tiny_phantom, tmp_path):
    from kd_components.data import build_datalist_from_split

    (tmp_path / "split.json").write_text(
        json.dumps({"training": ["Phantom_00000", "Brats18_2013_0_1"], "validation": [], "test": []})
    )
    with pytest.raises(InputError, match=r"1 case\(s\) of --split-file .* are not under .*: Brats18_2013_0_1; give"):
        build_datalist_from_split(tiny_phantom, tmp_path / "split.json")
    (tmp_path / "bad.json").write_text(json.dumps({"training": []}))
    with pytest.raises(InputError, match=r"is not a split \(KeyError"):
        build_datalist_from_split(tiny_phantom, tmp_path / "bad.json")
    with pytest.raises(
        InputError, match=r"does not exist: .* or a shipped split \(brats2018_mmformer_fold0, brats2018_public42\)"
    ):
        build_datalist_from_split(tiny_phantom, "nope")


def _prepare_datalist(bundle: str, *args: str):
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "bundles" / bundle / "scripts" / "prepare_datalist.py"
    # -I: isolated, the standard library only (no kd_components, no site-packages)
    return subprocess.run([sys.executable, "-I", str(script), *args], capture_output=True, text=True, timeout=60)


def test_bundle_prepare_datalist_script_needs_nothing_but_python(tiny_phantom, tmp_path):
    """The zoo-form script in each bundle writes a datalist the bundles' loader accepts, with every case once."""
    data = tmp_path / "data"
    shutil.copytree(tiny_phantom, data, ignore=shutil.ignore_patterns("datalist*.json"))
    teacher = (
        Path(__file__).resolve().parents[1] / "bundles" / "teacher" / "scripts" / "prepare_datalist.py"
    ).read_text()
    student = (
        Path(__file__).resolve().parents[1] / "bundles" / "student_kd" / "scripts" / "prepare_datalist.py"
    ).read_text()
    assert teacher == student, "each bundle carries the same script"
    res = _prepare_datalist("student_kd", "--path", str(data), "--val-fraction", "0.2", "--test-fraction", "0.2")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"wrote {data / 'datalist.json'}: 3 training, 1 validation, 1 test"
    content = json.loads((data / "datalist.json").read_text())
    labels = [e["label"] for split in content.values() for e in split]
    assert sorted(labels) == sorted(str(c.files["seg"].relative_to(data)) for c in find_cases(data))
    entry = load_datalist(data / "datalist.json", "training", data)[0]
    assert [Path(p).name.rsplit("_", 1)[1] for p in entry["image"]] == [
        "t1ce.nii.gz",
        "t1.nii.gz",
        "t2.nii.gz",
        "flair.nii.gz",
    ]


def test_ill_bundle_prepare_datalist_incomplete_case(tiny_phantom, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_phantom, data)
    victim = sorted(data.glob("*/*_t2.nii.gz"))[0]
    victim.unlink()
    before = (data / "datalist.json").read_text()
    res = _prepare_datalist("teacher", "--path", str(data))
    assert res.returncode == 1
    assert res.stderr.strip().startswith(f"error: incomplete BraTS cases under '{data}': {victim.parent.name} lacks t2")
    assert (data / "datalist.json").read_text() == before  # nothing written over


def test_missing_ok_gives_an_empty_split_and_check_inputs_names_it(tmp_path):
    """The bundles' training datalist is loaded with ``missing_ok``: nothing on disk gives ``[]``, and
    ``check_inputs`` then reports the missing folder (with the run's other missing inputs) in one line."""
    from kd_components.training.settings import check_inputs

    assert load_datalist(tmp_path / "nope" / "datalist.json", "training", tmp_path / "nope", missing_ok=True) == []
    with pytest.raises(InputError, match=r"^dataset_dir '.*nope' does not exist: pass --dataset_dir"):
        check_inputs(tmp_path / "nope", tmp_path / "nope" / "datalist.json", data=[])


def test_check_inputs_accepts_items_given_directly(tmp_path):
    """MONAI Label hands the run its datastore's items (``train#dataset#data``): no data folder is needed then."""
    from kd_components.losses import DistillationLoss, SigmoidKLDivLoss
    from kd_components.training.settings import check_inputs

    items = [{"image": str(tmp_path / "a.nii.gz"), "label": str(tmp_path / "a_seg.nii.gz")}]
    check_inputs(tmp_path / "nope", tmp_path / "nope" / "datalist.json", data=items)
    loss = DistillationLoss(seg_loss=torch.nn.MSELoss(), kd_loss=SigmoidKLDivLoss(), kd_weight=1.0)
    with pytest.raises(InputError, match=r"teacher checkpoint '.*t\.pt' does not exist"):
        check_inputs(tmp_path / "nope", tmp_path / "x.json", teacher_ckpt=tmp_path / "t.pt", loss=loss, data=items)


def _leaky(tiny_phantom, change):
    content = json.loads((tiny_phantom / "datalist.json").read_text())
    change(content)
    return content


@pytest.mark.parametrize(
    "change, phrase",
    [
        (lambda c: c["training"].append(c["training"][0]), "twice in 'training'"),
        (lambda c: c["test"].append(c["training"][0]), "in 'training' and 'test'"),
        (
            lambda c: c["validation"].append({**c["training"][1], "case": "renamed"}),
            "in 'training' and 'validation' (the same file",
        ),
    ],
)
def test_ill_datalist_that_leaks_is_refused_when_loaded_and_written(tiny_phantom, tmp_path, change, phrase):
    content = _leaky(tiny_phantom, change)
    (tmp_path / "leaky.json").write_text(json.dumps(content))
    with pytest.raises(InputError, match=re.escape(phrase)) as e:
        load_datalist(tmp_path / "leaky.json", "validation", tiny_phantom)
    assert "every case must be in one split, once" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(InputError, match=re.escape(phrase)):
        write_datalist(content, tmp_path / "out.json", tiny_phantom)
    assert not (tmp_path / "out.json").exists(), "a leaking datalist is not written"


def test_ill_two_cases_sharing_files_through_symlinks(tiny_phantom, tmp_path):
    data = tmp_path / "data"
    src = sorted(p for p in tiny_phantom.iterdir() if p.is_dir())[:3]
    for case in src:
        shutil.copytree(case, data / case.name)
    twin = data / "Twin_00001"  # another name, every file a link to a case already there
    twin.mkdir()
    for f in (data / src[0].name).iterdir():
        (twin / f.name.replace(src[0].name, "Twin_00001")).symlink_to(f)
    content = build_datalist(data, 0.34, 0.34, seed=0, check_images=False)
    with pytest.raises(InputError, match=r"cases '.*' and '.*' .*\(the same file"):
        write_datalist(content, tmp_path / "dl.json", data)


def test_symlinked_case_folders_are_found(tiny_phantom, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    cases = sorted(p for p in tiny_phantom.iterdir() if p.is_dir())
    for case in cases:
        (data / case.name).symlink_to(case, target_is_directory=True)
    (data / "loop").symlink_to(data, target_is_directory=True)  # a link back up the tree is walked once
    assert [c.name for c in find_cases(data)] == [c.name for c in cases]


def test_absent_sequences_kept_for_the_any_student_in_training(tiny_phantom, tmp_path):
    """``--allow-absent-sequences``: a case lacking T2, one lacking T1c and T1, both kept in training with null at
    their channels; loading them with ``allow_absent`` gives the files they have and their presence flags."""
    root = _copy(tiny_phantom, tmp_path / "d", n=5)
    (root / "Phantom_00000" / "Phantom_00000_t2.nii.gz").unlink()
    for m in ("t1ce", "t1"):
        (root / "Phantom_00001" / f"Phantom_00001_{m}.nii.gz").unlink()
    with pytest.raises(
        InputError, match="for a --student_modality any student, write the datalist with --allow-absent"
    ):
        find_cases(root)
    dl = build_datalist(root, 0.2, 0.2, 0, allow_absent=True)
    by_case = {e["case"]: e for e in dl["training"]}
    assert by_case["Phantom_00000"]["image"][2] is None and None not in by_case["Phantom_00000"]["image"][:2]
    assert by_case["Phantom_00001"]["image"][:2] == [None, None]
    assert all(None not in e["image"] for s in ("validation", "test") for e in dl[s]), "only complete cases scored"
    path = write_datalist(dl, root / "datalist.json", root)
    items = {i["case"]: i for i in load_datalist(path, "training", root, allow_absent=True)}
    assert items["Phantom_00001"]["present"] == [False, False, True, True]
    assert [Path(p).name for p in items["Phantom_00001"]["image"]] == [
        "Phantom_00001_t2.nii.gz",
        "Phantom_00001_flair.nii.gz",
    ]
    with pytest.raises(InputError, match=r"case 'Phantom_00001' lacks T1c, T1 \(null in 'image'\): cases with absent"):
        load_datalist(path, "training", root)


def test_ill_case_with_no_sequence(tiny_phantom, tmp_path):
    root = _copy(tiny_phantom, tmp_path / "d")
    for m in ("t1ce", "t1", "t2", "flair"):
        (root / "Phantom_00002" / f"Phantom_00002_{m}.nii.gz").unlink()
    with pytest.raises(InputError, match="Every case needs its segmentation and at least one sequence"):
        find_cases(root, allow_absent=True)
