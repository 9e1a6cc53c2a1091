"""The student_kd bundle end to end through ConfigWorkflow: KD and baseline for every modality, architectures,
inference from a DICOM series, and its refusals."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import REPO, refused, run_workflow

STUDENT = REPO / "bundles" / "student_kd" / "configs"
TEACHER = REPO / "bundles" / "teacher" / "configs"


def _run(files, run_id, tmp_path, data_dir, **override):
    return run_workflow(
        files,
        run_id,
        meta_file=STUDENT / "metadata.json",
        bundle_root=str(tmp_path / "student"),
        dataset_dir=str(data_dir),
        **{"learning_rate": 1e-3, **override},
    )


def _train_kd(tmp_path, data_dir, teacher_ckpt, *overlays, **override):
    """One epoch of KD training with the student bundle (plus config ``overlays``)."""
    files = [STUDENT / "train.json", *overlays]
    return _run(files, "training", tmp_path, data_dir, epochs=1, teacher_ckpt=str(teacher_ckpt), **override)


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
# the default; which channels every other name and combination selects is checked without training (fast), and a
# combination given by 2023 names trains in test_a_combination_student_trains_distils_and_segments_from_its_images
@pytest.mark.parametrize("modality", ["t1ce"])
def test_kd_and_baseline_train(modality, tiny_phantom, teacher_ckpt, tmp_path):
    teacher_files = {p: _digest(p) for p in teacher_ckpt.parent.iterdir()}
    kd = _train_kd(tmp_path, tiny_phantom, teacher_ckpt, student_modality=modality)
    state = kd.parser.get_parsed_content("train#trainer").state
    assert state.iteration == 3
    assert state.metrics["train_loss_kd"] > 0 and state.metrics["train_loss_feat"] > 0
    assert {"val_dice_tc", "val_dice_wt", "val_dice_et"} <= set(
        kd.parser.get_parsed_content("validate#evaluator").state.metrics
    )
    model = torch.load(tmp_path / "student" / "models" / "model.pt", weights_only=True)
    assert model["convInit.conv.weight"].shape[1] == 1, "the student takes one channel"
    assert {p: _digest(p) for p in teacher_ckpt.parent.iterdir()} == teacher_files, "teacher folder untouched"

    base = _run(
        [STUDENT / "train.json", STUDENT / "baseline.json"],
        "training",
        tmp_path,
        tiny_phantom,
        epochs=1,
        teacher_ckpt=str(tmp_path / "no_teacher_here.pt"),
        student_modality=modality,
    )
    bstate = base.parser.get_parsed_content("train#trainer").state
    assert bstate.metrics["train_loss_kd"] == 0 and bstate.metrics["train_loss_feat"] == 0
    assert (tmp_path / "student" / "baseline" / "models" / "model.pt").is_file()
    assert base.parser.get_parsed_content("train#trainer").teacher is None, "no teacher in the baseline"


@pytest.mark.slow
def test_smaller_student_with_feature_adapter(tiny_phantom, teacher_ckpt, tmp_path):
    wf = _train_kd(tmp_path, tiny_phantom, teacher_ckpt, init_filters=8, feature_channels=64)
    adapter = wf.parser.get_parsed_content("feature_adapter")
    assert adapter.trainable and adapter.conv.in_channels == 64 and adapter.conv.out_channels == 128
    resume = torch.load(tmp_path / "student" / "models" / "last_checkpoint_epoch=1.pt", weights_only=True)
    assert torch.equal(resume["feature_adapter"]["conv.weight"], adapter.conv.weight.detach()), "resumable adapter"
    model = torch.load(tmp_path / "student" / "models" / "model.pt", weights_only=True)
    assert model["convInit.conv.weight"].shape[0] == 8 and not any("adapter" in k for k in model)


@pytest.mark.slow
def test_unet_student_from_segresnet_teacher(tiny_phantom, teacher_ckpt, tmp_path):
    wf = _train_kd(tmp_path, tiny_phantom, teacher_ckpt, STUDENT / "unet.json")
    assert type(wf.parser.get_parsed_content("network")).__name__ == "UNet"
    assert wf.parser.get_parsed_content("train#trainer").state.metrics["train_loss_feat"] > 0


@pytest.mark.slow
def test_dynunet_teacher_distils_into_segresnet(tiny_phantom, tmp_path):
    run_workflow(
        [TEACHER / "train.json", TEACHER / "dynunet.json"],
        bundle_root=str(tmp_path / "dyn_teacher"),
        dataset_dir=str(tiny_phantom),
        epochs=1,
        learning_rate=1e-3,
    )
    dyn_ckpt = tmp_path / "dyn_teacher" / "models" / "model.pt"
    wf = _train_kd(tmp_path, tiny_phantom, dyn_ckpt, STUDENT / "teacher_dynunet.json")
    assert type(wf.parser.get_parsed_content("train#trainer").teacher).__name__ == "DynUNet"
    assert wf.parser.get_parsed_content("train#trainer").state.metrics["train_loss_kd"] > 0


def _write_dicom_series(nifti, folder) -> None:
    import itk

    arr = np.asarray(nib.load(nifti).dataobj).astype(np.int16)
    image = itk.image_from_array(np.ascontiguousarray(arr.transpose(2, 1, 0)))
    image.SetSpacing([2.0, 2.0, 2.0])
    folder.mkdir()
    writer = itk.ImageSeriesWriter[itk.Image[itk.SS, 3], itk.Image[itk.SS, 2]].New()
    writer.SetInput(image)
    writer.SetImageIO(itk.GDCMImageIO.New())
    writer.SetFileNames([str(folder / f"IM{i:04d}.dcm") for i in range(arr.shape[2])])
    writer.Update()


@pytest.mark.slow
def test_inference_reads_dicom(tiny_phantom, teacher_ckpt, tmp_path):
    _train_kd(tmp_path, tiny_phantom, teacher_ckpt)
    case = json.loads((tiny_phantom / "datalist.json").read_text())["test"][0]
    dicom = tmp_path / "dicom_series"
    _write_dicom_series(tiny_phantom / case["image"][0], dicom)
    original = {p.name: _digest(p) for p in dicom.iterdir()}
    _run(
        [STUDENT / "inference.json"],
        "run",
        tmp_path,
        tiny_phantom,
        input_image=str(dicom),
        output_dir=str(tmp_path / "pred"),
    )
    pred = nib.load(tmp_path / "pred" / "dicom_series_t1ce_seg_brats2021.nii.gz")
    from monai.transforms import LoadImage

    ref = LoadImage(image_only=True)(str(dicom))
    assert pred.shape == tuple(ref.shape)
    assert np.allclose(pred.affine, ref.affine.numpy(), atol=1e-4), "label map keeps the input's geometry"
    assert set(np.unique(np.asarray(pred.dataobj)).tolist()) <= {0, 1, 2, 4}
    assert {p.name: _digest(p) for p in dicom.iterdir()} == original, "inputs untouched"


@pytest.mark.slow
def test_a_combination_student_trains_distils_and_segments_from_its_images(tiny_phantom, teacher_ckpt, tmp_path):
    """``--student_modality flair+t1c``: a two-channel student (T1c, FLAIR in the teacher's order) distils (loss_kd >
    0), records its combination, and inference from the case's two images (given in any order, or found by the
    default search) writes one label map on their grid."""
    kd = _train_kd(tmp_path, tiny_phantom, teacher_ckpt, student_modality="flair+t1c")
    state = kd.parser.get_parsed_content("train#trainer").state
    assert state.metrics["train_loss_kd"] > 0 and state.metrics["train_loss_feat"] > 0
    assert kd.parser.get_parsed_content("train#trainer").student_channels == [0, 3]
    model = torch.load(tmp_path / "student" / "models" / "model.pt", weights_only=True)
    assert model["convInit.conv.weight"].shape[1] == 2, "the student takes two channels"
    settings = json.loads((tmp_path / "student" / "models" / "model_settings.json").read_text())
    assert settings["modality"] == "t1ce+flair" and settings["channels"] == ["T1c", "FLAIR"]
    assert settings["in_channels"] == 2
    case = json.loads((tiny_phantom / "datalist.json").read_text())["test"][0]
    t1ce, flair = (tiny_phantom / case["image"][i] for i in (0, 3))
    _run(
        [STUDENT / "inference.json"],
        "run",
        tmp_path,
        tiny_phantom,
        input_image=[str(flair), str(t1ce)],  # the names say the sequences: put in the teacher's order
        output_dir=str(tmp_path / "pred"),
    )
    (written,) = (tmp_path / "pred").glob("*.nii.gz")
    assert written.name == f"{case['case']}_t1ce+flair_seg_brats2021.nii.gz"
    pred, ref = nib.load(written), nib.load(t1ce)
    assert pred.shape == ref.shape and np.allclose(pred.affine, ref.affine, atol=1e-4)
    assert set(np.unique(np.asarray(pred.dataobj)).tolist()) <= {0, 1, 2, 4}
    # the default search: every case folder's T1c and FLAIR, one map per case, the same map for this case
    _run([STUDENT / "inference.json"], "run", tmp_path, tiny_phantom, output_dir=str(tmp_path / "all"))
    maps = sorted((tmp_path / "all").glob("*.nii.gz"))
    assert len(maps) == len(json.loads((tiny_phantom / "datalist.json").read_text())["test"]) + sum(
        len(json.loads((tiny_phantom / "datalist.json").read_text())[k]) for k in ("training", "validation")
    )
    np.testing.assert_array_equal(
        np.asarray(nib.load(tmp_path / "all" / written.name).dataobj), np.asarray(pred.dataobj)
    )


# ------------------------------------------------------------------------------------------------- bad input
def _cli(*args, cwd=REPO):
    cmd = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", str(STUDENT / "train.json"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=600)


def _refused_training(*args) -> str:
    return refused("run", "training", "--config_file", STUDENT / "train.json", *args)


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--student_modality", "t3"],
            "error: --student_modality: unknown modality 't3': use one of t1, t1ce, t2, flair",
        ),
        (["--student_modality", "t1ce+t1c"], "error: --student_modality: modality 't1ce+t1c' names t1ce twice"),
        (["--kd_weight", "-1"], "error: --kd_weight -1: a loss weight must be a number >= 0"),
        (["--kd_temperature", "0"], "error: --kd_temperature 0: the temperature must be a number > 0"),
        (
            ["--kd_channel_weights", "[1, 0.5]"],
            "error: --kd_channel_weights [1, 0.5]: give one weight >= 0 per region (TC, WT, ET), not all zero",
        ),
        (["--kd_agreement", "sometimes"], "error: --kd_agreement is 'sometimes': give true or false."),
    ],
)
def test_ill_settings_one_line(tiny_phantom, tmp_path, args, message):
    assert _refused_training("--dataset_dir", tiny_phantom, "--bundle_root", tmp_path / "s", *args).startswith(message)
    assert not (tmp_path / "s").exists()


def test_ill_missing_teacher_one_line(tiny_phantom, tmp_path):
    line = _refused_training(
        "--dataset_dir", tiny_phantom, "--bundle_root", tmp_path / "s", "--teacher_ckpt", tmp_path / "missing.pt"
    )
    assert line == (
        f"error: teacher checkpoint '{tmp_path / 'missing.pt'}' does not "
        f"exist: pass --teacher_ckpt with the teacher's models/model.pt (train it with bundles/teacher, or use "
        f"model-zoo brats_mri_segmentation's)."
    )
    assert not (tmp_path / "s" / "models").exists() and not (tmp_path / "s" / "eval").exists(), "no run record"


def test_ill_teacher_inside_student_output(tiny_phantom, tmp_path):
    ckpt_dir = tmp_path / "student" / "models"
    ckpt_dir.mkdir(parents=True)
    inside = ckpt_dir / "teacher.pt"
    inside.write_bytes(b"refused by its place, before it is read")
    from kd_components.errors import InputError

    with pytest.raises(InputError, match="lies in the student's output folder"):
        _train_kd(tmp_path, tiny_phantom, inside)
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["teacher.pt"], "nothing written beside the teacher"


@pytest.mark.slow
def test_ill_student_checkpoint_as_teacher(tiny_phantom, teacher_ckpt, tmp_path):
    _run([STUDENT / "train.json", STUDENT / "baseline.json"], "training", tmp_path, tiny_phantom, epochs=1)
    student_ckpt = tmp_path / "student" / "baseline" / "models" / "model.pt"
    from kd_components.errors import InputError

    with pytest.raises(
        InputError,
        match=r"does not fit SegResNet: 1 shape mismatch.*convInit.conv.weight: file "
        r"\(16, 1, 3, 3, 3\) vs network \(16, 4, 3, 3, 3\)",
    ):
        _train_kd(tmp_path / "other", tiny_phantom, student_ckpt)


def test_ill_inference_without_any_input_image(tmp_path):
    (tmp_path / "empty").mkdir()
    line = refused(
        "run",
        "--config_file",
        STUDENT / "inference.json",
        "--dataset_dir",
        tmp_path / "empty",
        "--bundle_root",
        tmp_path / "s",
    )
    assert line == (
        f"error: no image to segment: no --input_image given, and no case folder under --dataset_dir "
        f"'{tmp_path / 'empty'}' holds a T1c image (CASE/CASE_t1ce.nii[.gz] or CASE/CASE-t1c.nii[.gz]); pass "
        f"--input_image with a NIfTI/NRRD/MHA file, a DICOM folder or a list of files."
    )
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_ill_every_missing_input_at_once(tmp_path):
    """A run missing its datalist and its teacher says both in one line, and writes nothing (no run record): the one
    refusal run as a real command line (exit status 1, no traceback); the others run in process (``refused``)."""
    (tmp_path / "data").mkdir()
    res = _cli(
        "--dataset_dir",
        str(tmp_path / "data"),
        "--bundle_root",
        str(tmp_path / "s"),
        "--teacher_ckpt",
        str(tmp_path / "t.pt"),
    )
    assert res.returncode == 1 and "Traceback" not in res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: datalist '{tmp_path / 'data' / 'datalist.json'}' does not exist")
    assert f"; teacher checkpoint '{tmp_path / 't.pt'}' does not exist" in last
    assert not (tmp_path / "s").exists(), "a refused run writes nothing, not even its run record"


@pytest.mark.slow
@pytest.mark.parametrize("config", ["inference.json", "train.json"])
def test_sliding_window_keeps_the_student_first_convolution_on_onednn(config):
    """PyTorch runs a CPU convolution on oneDNN only above batch x channels x depth x height = 20480: with one window
    per forward the student's first convolution (1 channel) took the slow native path (the student's sliding
    window was slower than the teacher's). The configs' ``sw_batch_size`` 2 keeps it on oneDNN, same output."""
    from monai.bundle import ConfigParser
    from torch.profiler import ProfilerActivity, profile

    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles" / "student_kd" / "configs" / config))
    parser.update({"roi_size": [32, 32, 32], "device": "cpu", "init_filters": 8})
    inferer = parser.get_parsed_content("inferer" if config == "inference.json" else "validate#inferer")
    net = parser.get_parsed_content("network_def").eval().to(memory_format=torch.channels_last_3d)
    x = torch.randn(1, 1, 64, 64, 48)  # 3 x 3 x 2 windows: an even number, no lone window at the end
    with torch.no_grad():
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            out = inferer(x, net)
        one = type(inferer)(roi_size=[32, 32, 32], sw_batch_size=1, overlap=inferer.overlap)(x, net)
    ops = {e.key for e in prof.key_averages()}
    assert "aten::mkldnn_convolution" in ops and "aten::slow_conv3d_forward" not in ops
    torch.testing.assert_close(out, one, rtol=1e-3, atol=1e-3)


def test_ill_inference_input_image_missing_one_line(tmp_path):
    last = refused(
        "run",
        "--config_file",
        STUDENT / "inference.json",
        "--input_image",
        tmp_path / "typo_t1ce.nii.gz",
        "--bundle_root",
        tmp_path / "s",
    )
    assert last.startswith(f"error: --input_image '{tmp_path / 'typo_t1ce.nii.gz'}' does not exist: pass an existing")
    assert not (tmp_path / "s").exists()


def test_follow_margin_sets_the_kd_region_weights_of_the_bundle_loss(tmp_path):
    """``--kd_follow_margin true`` reaches the loss the trainer uses: KD off (weight 0) on the regions where the
    teacher's validation record is not above the baseline's by 0.02 (here ET), the configured weights elsewhere."""
    import json

    from monai.bundle import ConfigParser

    for name, (tc, wt, et) in {"teacher": (0.8, 0.9, 0.70), "baseline": (0.6, 0.7, 0.71)}.items():
        (tmp_path / name).mkdir()
        best = {"epoch": 4, "val_dice_tc": tc, "val_dice_wt": wt, "val_dice_et": et}
        (tmp_path / name / "validation.json").write_text(json.dumps({"best": best, "last": best}))
    parser = ConfigParser()
    parser.read_config(str(STUDENT / "train.json"))
    parser.update(
        {
            "teacher_ckpt": str(tmp_path / "teacher" / "model.pt"),
            "baseline_validation": str(tmp_path / "baseline"),
            "kd_channel_weights": [1.0, 0.5, 1.0],
            "kd_follow_margin": True,
        }
    )
    assert parser.get_parsed_content("loss").kd_loss.channel_weights == [1.0, 0.5, 0.0]
    parser.update({"kd_follow_margin": False})
    parser.parse()
    assert parser.get_parsed_content("loss").kd_loss.channel_weights == [1.0, 0.5, 1.0]


def test_kd_agreement_reaches_the_bundle_loss():
    """``--kd_agreement true`` (a string from the command line) switches the KD term's agreement mask on."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(STUDENT / "train.json"))
    assert parser.get_parsed_content("loss").kd_loss.agreement is False
    parser.update({"kd_agreement": "true"})
    parser.parse()
    assert parser.get_parsed_content("loss").kd_loss.agreement is True


@pytest.mark.parametrize(
    "modality, channel",
    [("t1", [1]), ("t1ce", [0]), ("t2", [2]), ("flair", [3]), ("t2f", [3]), ("T1c", [0]), ("flair+t1ce", [0, 3])],
)
def test_every_modality_selects_its_teacher_channel(modality, channel):
    """The bundle's ``student_channel`` (the batch channel the student sees) for every accepted name, no training."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(STUDENT / "train.json"))
    parser.update({"student_modality": modality})
    assert parser.get_parsed_content("student_channel") == channel


@pytest.mark.slow
def test_inference_defaults_to_the_training_window(tiny_phantom, teacher_ckpt, tmp_path):
    """Trained on 32^3 crops, the student's inference.json run with its defaults slides the 32^3 window (read from
    ``models/model_settings.json``) and writes the label map of an explicit ``--roi_size [32,32,32]``; the modality
    comes from the same file."""
    _train_kd(tmp_path, tiny_phantom, teacher_ckpt)  # TINY_RUN: roi_size 32^3
    settings = json.loads((tmp_path / "student" / "models" / "model_settings.json").read_text())
    assert settings["roi_size"] == [32, 32, 32] and settings["modality"] == "t1ce" and settings["in_channels"] == 1
    image = sorted(tiny_phantom.glob("*/*_t1ce.nii.gz"))[-1]
    maps = {}
    for name, extra in {"defaults": {}, "explicit": {"roi_size": [32, 32, 32]}}.items():
        wf = run_workflow(
            STUDENT / "inference.json",
            "run",
            meta_file=STUDENT / "metadata.json",
            tiny=False,
            bundle_root=str(tmp_path / "student"),
            input_image=str(image),
            output_dir=str(tmp_path / name),
            device="cpu",
            num_workers=0,
            **extra,
        )
        assert wf.parser.get_parsed_content("window") == [32, 32, 32]
        maps[name] = np.asarray(nib.load(next((tmp_path / name).glob("*.nii.gz"))).dataobj)
    assert np.array_equal(maps["defaults"], maps["explicit"])


@pytest.mark.slow
def test_any_student_distils_then_segments_from_one_image_or_two(tiny_phantom, teacher_ckpt, tmp_path, caplog):
    """``--student_modality any``: one student, 8 input channels (the four sequences, absent ones zero, and their
    presence maps), trained with a random subset per case and distilled from the four-sequence teacher; the
    inference command segments a case from its FLAIR alone and from its T1c and FLAIR, says which it used, and
    writes each map on the input's grid; evaluation scores it from a named subset."""
    import logging

    kd = _train_kd(tmp_path, tiny_phantom, teacher_ckpt, student_modality="any")
    trainer = kd.parser.get_parsed_content("train#trainer")
    assert trainer.state.metrics["train_loss_kd"] > 0 and trainer.state.metrics["train_loss_feat"] > 0
    model = torch.load(tmp_path / "student" / "models" / "model.pt", weights_only=True)
    assert model["convInit.conv.weight"].shape[1] == 8
    settings = json.loads((tmp_path / "student" / "models" / "model_settings.json").read_text())
    assert settings["modality"] == "any" and settings["in_channels"] == 8 and len(settings["channels"]) == 8
    case = json.loads((tiny_phantom / "datalist.json").read_text())["test"][0]
    t1ce, flair = (tiny_phantom / case["image"][i] for i in (0, 3))
    ref = nib.load(flair)
    for name, given, said in [
        ("flair", str(flair), "FLAIR (absent: T1c, T1, T2)"),
        ("two", [str(flair), str(t1ce)], "T1c+FLAIR (absent: T1, T2)"),
    ]:
        with caplog.at_level(logging.INFO, logger="kd_components.inference"):
            _run(
                [STUDENT / "inference.json"],
                "run",
                tmp_path,
                tiny_phantom,
                input_image=given,
                output_dir=str(tmp_path / name),
            )
        assert f"segmenting from {said}" in caplog.text
        (written,) = (tmp_path / name).glob("*.nii.gz")
        assert written.name == f"{case['case']}_any_seg_brats2021.nii.gz"
        pred = nib.load(written)
        assert pred.shape == ref.shape and np.allclose(pred.affine, ref.affine, atol=1e-4)
        assert set(np.unique(np.asarray(pred.dataobj)).tolist()) <= {0, 1, 2, 4}
    _run(
        [STUDENT / "train.json", STUDENT / "evaluate.json"],
        "evaluating",
        tmp_path,
        tiny_phantom,
        student_modality="any",
        teacher_ckpt=str(teacher_ckpt),
        input_modalities="t2f",
        output_dir=str(tmp_path / "eval_flair"),
    )
    summary = json.loads((tmp_path / "eval_flair" / "metrics_summary.json").read_text())
    assert summary["tags"]["input_modalities"] == "t2f" and summary["tags"]["modality"] == "any"


@pytest.mark.slow
def test_any_student_and_asked_teacher_train_on_cases_with_absent_sequences(tiny_phantom, teacher_ckpt, tmp_path):
    """A datalist whose training cases lack sequences (written with --allow-absent-sequences): the teacher trains on
    it when asked (--allow_absent_sequences true), the any student distils on it; a dedicated student, and the
    teacher not asked, are refused by case name before any work."""
    import shutil

    from kd_components.data.datalist import build_datalist, write_datalist

    data = tmp_path / "data"
    shutil.copytree(tiny_phantom, data)
    (data / "Phantom_00000" / "Phantom_00000_t2.nii.gz").unlink()
    for m in ("t1ce", "t1"):
        (data / "Phantom_00001" / f"Phantom_00001_{m}.nii.gz").unlink()
    write_datalist(build_datalist(data, 0.2, 0.2, 0, allow_absent=True), data / "datalist.json", data)
    lacking = r"case 'Phantom_0000[01]' lacks .* \(null in 'image'\)"
    with pytest.raises(SystemExit, match=lacking):
        run_workflow(TEACHER / "train.json", bundle_root=str(tmp_path / "t0"), dataset_dir=str(data), run=False)
    teacher = tmp_path / "teacher"
    run_workflow(
        TEACHER / "train.json", bundle_root=str(teacher), dataset_dir=str(data), epochs=1, allow_absent_sequences=True
    ).finalize()
    kd = _train_kd(tmp_path, data, teacher / "models" / "model.pt", student_modality="any")
    assert json.loads((teacher / "models" / "model_settings.json").read_text())["absent_sequences"] is True
    assert kd.parser.get_parsed_content("train#trainer").state.metrics["train_loss_kd"] > 0
    with pytest.raises(SystemExit, match=lacking):
        _train_kd(tmp_path / "t1ce", data, teacher / "models" / "model.pt", student_modality="t1ce")
    # a teacher trained on complete cases only is not distilled from zero-filled inputs it never saw
    with pytest.raises(SystemExit, match=r"lack sequences .* but the teacher .* was trained on complete cases only"):
        _train_kd(tmp_path / "other", data, teacher_ckpt, student_modality="any")


def test_student_evaluation_needs_no_teacher(tmp_path):
    """Scoring a student's weights needs the weights and the data, not the teacher it was distilled from (a model-zoo
    user may hold the student alone), nor the voxel size (it travels with the weights): with neither teacher nor data
    the one line names the data only (training names both)."""
    configs = f"['{STUDENT / 'train.json'}','{STUDENT / 'evaluate.json'}']"
    common = ["--bundle_root", tmp_path / "s", "--dataset_dir", tmp_path / "nope"]
    line = refused("run", "evaluating", "--config_file", configs, "--teacher_ckpt", tmp_path / "gone.pt", *common)
    assert line.startswith("error: ") and "nope" in line and "teacher" not in line, line
    trained = _refused_training("--teacher_ckpt", tmp_path / "gone.pt", *common)
    assert "nope" in trained and "teacher checkpoint" in trained, trained
