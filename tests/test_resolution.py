"""Resolution as a setting: ``pixdim`` resamples inputs for training, travels with the weights in
``model_settings.json``, and inference writes every label map back on its input's own grid and affine."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import REPO, refused, run_workflow
from monai.data import MetaTensor
from monai.transforms import Compose, Invertd

from kd_components.deploy.weights import trained_pixdim, write_model_settings
from kd_components.errors import InputError
from kd_components.transforms import ResampleToPixdimd, pixdim_setting

TEACHER = REPO / "bundles" / "teacher" / "configs"
STUDENT = REPO / "bundles" / "student_kd" / "configs"


@pytest.mark.parametrize(
    "value, expected",
    [(None, None), (3, [3.0, 3.0, 3.0]), (2.5, [2.5, 2.5, 2.5]), ([1, 2, 3], [1.0, 2.0, 3.0]), ([3.0], [3.0] * 3)],
)
def test_pixdim_setting(value, expected):
    assert pixdim_setting(value) == expected


@pytest.mark.parametrize("value", ["3", [3, 3], [3, 3, 3, 3], [3, 0, 3], [-1.0], True, [float("nan")] * 3, {"a": 1}])
def test_ill_pixdim_setting(value):
    with pytest.raises(ValueError, match="pixdim must be null"):
        pixdim_setting(value)


def _case(shape=(30, 31, 17), spacing=(1.0, 1.0, 1.0)):
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    affine[:3, 3] = [10.0, 20.0, -5.0]
    image = MetaTensor(torch.arange(np.prod(shape), dtype=torch.float32).reshape(1, *shape), affine=affine)
    label = MetaTensor(torch.zeros(1, *shape), affine=affine)
    label[0, 10:20, 10:20, 5:12] = 1.0
    return {"image": image, "label": label}


def test_none_changes_nothing_and_inverts_to_nothing():
    case = _case()
    pre = Compose([ResampleToPixdimd(["image", "label"], None, label_keys="label")])
    d = pre(dict(case))
    assert d["image"] is case["image"] and not d["image"].applied_operations
    d["pred"] = MetaTensor(torch.ones(3, 30, 31, 17), affine=case["image"].affine)
    out = Invertd("pred", transform=pre, orig_keys="image")(d)
    assert tuple(out["pred"].shape) == (3, 30, 31, 17) and bool((out["pred"] == 1).all())


def test_resampled_labels_stay_labels_and_prediction_goes_back_to_the_input_grid():
    """3 mm from 1 mm: the extent 29 x 30 x 16 mm becomes 10 x 10 x 6 voxels of 3 mm (MONAI keeps the corner voxel
    centres: round(extent / 3) + 1); the image is interpolated (new values), the label is not (0 and 1 only);
    ``Invertd`` puts a prediction back on the 30 x 31 x 17 grid with the input's affine."""
    case = _case()
    pre = Compose([ResampleToPixdimd(["image", "label"], 3.0, label_keys="label")])
    d = pre(case)
    assert tuple(d["image"].shape[1:]) == tuple(d["label"].shape[1:]) and d["image"].shape[1] in (10, 11)
    assert np.allclose(np.abs(np.diag(d["image"].affine.numpy())[:3]), 3.0)
    assert set(torch.unique(d["label"]).tolist()) == {0.0, 1.0}
    assert not set(torch.unique(d["image"]).tolist()) <= set(case["image"].flatten().tolist())
    d["pred"] = d["label"].repeat(3, 1, 1, 1)
    # as the bundles invert a prediction: linear, before thresholding
    out = Invertd("pred", transform=pre, orig_keys="image", nearest_interp=False)(d)
    assert tuple(out["pred"].shape) == (3, 30, 31, 17)
    assert np.allclose(out["pred"].affine.numpy(), case["image"].affine.numpy())
    # the inverted box covers the original one up to a 3-mm voxel
    back = out["pred"][0] > 0.5
    assert bool(back[12:18, 12:18, 7:10].all()) and not bool(back[:5].any())
    dice = 2 * (back & (case["label"][0] > 0)).sum() / (back.sum() + (case["label"][0] > 0).sum())
    assert dice > 0.7


def test_trained_pixdim(tmp_path):
    write_model_settings(tmp_path, [32, 32, 32], 4, pixdim=[3.0, 3.0, 3.0])
    assert json.loads((tmp_path / "model_settings.json").read_text())["pixdim"] == [3.0, 3.0, 3.0]
    assert trained_pixdim(tmp_path) == [3.0, 3.0, 3.0]
    assert trained_pixdim(tmp_path, 3) == [3.0, 3.0, 3.0]
    assert trained_pixdim(tmp_path / "no_settings", [2, 2, 2]) == [2.0, 2.0, 2.0]
    assert trained_pixdim(tmp_path / "no_settings") is None
    write_model_settings(tmp_path / "native", [32, 32, 32], 4)
    assert trained_pixdim(tmp_path / "native") is None


def test_ill_trained_pixdim(tmp_path):
    write_model_settings(tmp_path, [32, 32, 32], 4, pixdim=[3.0, 3.0, 3.0])
    with pytest.raises(InputError, match=r"--pixdim \[1.0, 1.0, 1.0\] but the weights .* trained at 3x3x3 mm"):
        trained_pixdim(tmp_path, 1.0)
    write_model_settings(tmp_path / "native", [32, 32, 32], 4)
    with pytest.raises(InputError, match="trained at each image's own spacing"):
        trained_pixdim(tmp_path / "native", 3.0)
    with pytest.raises(InputError, match="^--pixdim: pixdim must be"):
        trained_pixdim(tmp_path, [3, 3])


def test_ill_pixdim_refused_in_one_line_before_training(tiny_phantom, tmp_path):
    line = refused(
        "run", "training", "--config_file", TEACHER / "train.json", "--bundle_root", tmp_path,
        "--dataset_dir", tiny_phantom, "--pixdim", "[3, 3]",
    )  # fmt: skip
    assert line.startswith("error: --pixdim: pixdim must be null") and "\n" not in line


def _evaluation_scores_the_written_map_on_the_labels_grid(data, tmp_path):
    """The teacher's evaluation (no resolution given: the trained one) scores each test case on its label's own
    grid, and its numbers equal ``score`` of the map the teacher's inference writes for that case."""
    from kd_components.evaluation import read_per_case, score_files

    common = {"tiny": False, "bundle_root": str(tmp_path / "teacher"), "dataset_dir": str(data), "device": "cpu"}
    run_workflow(
        [TEACHER / "train.json", TEACHER / "evaluate.json"], "evaluating", output_dir=str(tmp_path / "eval"),
        num_workers=0, **common,
    )  # fmt: skip
    run_workflow(TEACHER / "inference.json", "run", output_dir=str(tmp_path / "pred"), num_workers=0, **common)
    test = {c["case"]: c for c in json.loads((data / "datalist.json").read_text())["test"]}
    rows = read_per_case(tmp_path / "eval" / "metrics_per_case.csv")
    assert rows and {r["case"] for r in rows} == set(test)
    for row in rows:
        label = data / test[row["case"]]["label"]
        pred = tmp_path / "pred" / f"{row['case']}_teacher_seg_brats2021.nii.gz"
        assert nib.load(pred).shape == nib.load(label).shape
        for region, values in score_files(label, pred, "brats2021", "2021").items():
            assert row[f"dice_{region.lower()}"] == pytest.approx(values["dice"], abs=1e-4), region


@pytest.fixture(scope="module")
def two_spacings(tmp_path_factory):
    """The tiny phantom (32^3 over 240 x 240 x 155 mm: 7.5 x 7.5 x 4.84 mm) and a case of another grid (24 x 28 x 20:
    10 x 8.57 x 7.75 mm)."""
    from kd_components.data import write_phantom

    root = tmp_path_factory.mktemp("spacings")
    write_phantom(root / "a", num_cases=5, shape=(32, 32, 32), seed=3)
    write_phantom(root / "b", num_cases=3, shape=(24, 28, 20), seed=4)
    return root


def test_teacher_and_student_at_a_pixdim_write_maps_on_each_inputs_grid(two_spacings, tmp_path):
    """Teacher and KD student trained with ``--pixdim [12, 12, 8]`` (the 32^3 phantom resampled to 20 x 20 x 20)
    record it; the student's inference, no resolution given, segments cases of two grids and writes each label map
    with its input's shape and affine, in the case's label values; another ``--pixdim`` is refused in one line."""
    data = two_spacings / "a"
    small = {"roi_size": [16, 16, 16], "pixdim": [12.0, 12.0, 8.0], "epochs": 1, "learning_rate": 1e-3}
    run_workflow(
        TEACHER / "train.json", bundle_root=str(tmp_path / "teacher"), dataset_dir=str(data), **small
    ).finalize()
    teacher_settings = json.loads((tmp_path / "teacher" / "models" / "model_settings.json").read_text())
    assert teacher_settings["pixdim"] == [12.0, 12.0, 8.0]
    _evaluation_scores_the_written_map_on_the_labels_grid(data, tmp_path)
    run_workflow(
        STUDENT / "train.json",
        meta_file=STUDENT / "metadata.json",
        bundle_root=str(tmp_path / "student"),
        dataset_dir=str(data),
        teacher_ckpt=str(tmp_path / "teacher" / "models" / "model.pt"),
        **small,
    ).finalize()
    settings = json.loads((tmp_path / "student" / "models" / "model_settings.json").read_text())
    assert settings["pixdim"] == [12.0, 12.0, 8.0] and settings["roi_size"] == [16, 16, 16]
    images = [sorted(data.glob("*/*_t1ce.nii.gz"))[-1], sorted((two_spacings / "b").glob("*/*_t1ce.nii.gz"))[-1]]
    for image in images:
        out = tmp_path / "maps" / image.parent.name
        wf = run_workflow(
            STUDENT / "inference.json",
            "run",
            meta_file=STUDENT / "metadata.json",
            tiny=False,
            bundle_root=str(tmp_path / "student"),
            input_image=str(image),
            output_dir=str(out),
            device="cpu",
            num_workers=0,
        )
        assert wf.parser.get_parsed_content("resample_pixdim") == [12.0, 12.0, 8.0]
        written = nib.load(next(out.glob("*.nii.gz")))
        source = nib.load(image)
        assert written.shape == source.shape, (written.shape, source.shape)
        assert np.allclose(written.affine, source.affine, atol=1e-4)
        assert set(np.unique(np.asarray(written.dataobj)).tolist()) <= {0, 1, 2, 4}
    line = refused(
        "run", "--config_file", STUDENT / "inference.json", "--bundle_root", tmp_path / "student",
        "--input_image", images[0], "--output_dir", tmp_path / "refused", "--pixdim", "[1.0, 1.0, 1.0]",
    )  # fmt: skip
    assert "--pixdim [1.0, 1.0, 1.0] but the weights" in line and "12x12x8 mm" in line
    assert not (tmp_path / "refused").exists()


def _teacher_at(tmp_path, pixdim):
    ckpt = tmp_path / "teacher" / "model.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"weights")
    write_model_settings(ckpt.parent, [32, 32, 32], 4, pixdim=pixdim)
    return ckpt


def test_ill_student_pixdim_other_than_its_teachers(tmp_path):
    """A student distils from a teacher trained at the same voxel size only; weights without the record (the model
    zoo's) and a student without a teacher term are not checked."""
    from kd_components.losses import DistillationLoss
    from kd_components.training.settings import check_pixdim

    kd = DistillationLoss(lambda p, t: p.mean(), kd_loss=torch.nn.Identity(), kd_weight=0.25)
    teacher = _teacher_at(tmp_path, [3.0, 3.0, 3.0])
    check_pixdim([3, 3, 3], teacher_ckpt=teacher, loss=kd)
    check_pixdim(None, teacher_ckpt=teacher, loss=DistillationLoss(lambda p, t: p.mean()))  # baseline
    with pytest.raises(InputError, match=r"^--pixdim None but the teacher '.*model.pt' was trained at \[3.0, 3.0"):
        check_pixdim(None, teacher_ckpt=teacher, loss=kd)
    with pytest.raises(InputError, match=r"give --pixdim \[3.0, 3.0, 3.0\], or a teacher trained at \[2.0"):
        check_pixdim(2, teacher_ckpt=teacher, loss=kd)
    native = _teacher_at(tmp_path / "n", None)
    with pytest.raises(InputError, match="was trained at each image's own spacing"):
        check_pixdim(3, teacher_ckpt=native, loss=kd)
    (tmp_path / "zoo").mkdir()
    check_pixdim(3, teacher_ckpt=tmp_path / "zoo" / "model.pt", loss=kd)


def test_ill_student_bundle_refuses_a_teacher_of_another_pixdim_in_one_line(tiny_phantom, tmp_path):
    teacher = _teacher_at(tmp_path, [3.0, 3.0, 3.0])
    line = refused(
        "run", "training", "--config_file", STUDENT / "train.json", "--bundle_root", tmp_path / "student",
        "--dataset_dir", tiny_phantom, "--teacher_ckpt", teacher,
    )  # fmt: skip
    assert line.startswith("error: --pixdim None but the teacher") and "\n" not in line


def test_ill_cached_logits_of_a_teacher_trained_at_a_pixdim(tiny_phantom, tmp_path):
    from kd_components.tools.cache import cache_teacher_logits

    teacher = _teacher_at(tmp_path, [3.0, 3.0, 3.0])
    with pytest.raises(InputError, match=r"was trained at \[3.0, 3.0, 3.0\] mm .*distil from this teacher online"):
        cache_teacher_logits(teacher, tiny_phantom, output=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_disk_cache_key_follows_the_pixdim():
    """The fast pipeline's disk cache is keyed by the transforms' settings: another --pixdim never reuses a file."""
    from monai.transforms import NormalizeIntensityd

    from kd_components.training.data import transform_settings_hash

    def key(pixdim):
        return transform_settings_hash([NormalizeIntensityd("image"), ResampleToPixdimd("image", pixdim)])

    assert key(3.0) == key([3, 3, 3]) != key(2.0) != key(None)


def test_ill_ablation_output_of_another_recipe(tmp_path):
    from kd_components.tools.ablation import check_run_settings

    check_run_settings(tmp_path, {"pixdim": [3.0, 3.0, 3.0], "roi": [64, 64, 64]})
    check_run_settings(tmp_path, {"pixdim": [3.0, 3.0, 3.0], "roi": [64, 64, 64]})  # the same: continued
    with pytest.raises(InputError, match=r"holds runs made with other settings: pixdim \[2.0, 2.0, 2.0\] \(recorded"):
        check_run_settings(tmp_path, {"pixdim": [2.0, 2.0, 2.0], "roi": [64, 64, 64]})
