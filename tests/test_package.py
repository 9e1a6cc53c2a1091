"""Deployment: bundle metadata against the shipped schema, verify_net_in_out, TorchScript export, the packaging
command and its refusals, and MONAI Label's training overrides on the student bundle."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, run_workflow
from monai.bundle import ConfigParser
from monai.networks.nets import SegResNet

from kd_components.errors import InputError
from kd_components.tools.package import SCHEMA_PATH, package_bundle, verify_bundle_metadata

#: the cheap tests (package_bundle and the schema in process, untrained weights) run in the fast tier; the ones that
#: train, start processes or run the zoo's tools are marked slow one by one.

BUNDLES = {"teacher": REPO / "bundles" / "teacher", "student_kd": REPO / "bundles" / "student_kd"}


def _segresnet(in_channels: int, init_filters: int = 8) -> SegResNet:
    return SegResNet(
        blocks_down=[1, 2, 2, 4],
        blocks_up=[1, 1, 1],
        init_filters=init_filters,
        in_channels=in_channels,
        out_channels=3,
        dropout_prob=0.2,
    )


def _bundle_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "monai.bundle", *args], capture_output=True, text=True, cwd=REPO, timeout=timeout
    )


def _verify_net_in_out(configs: Path) -> subprocess.CompletedProcess:
    """MONAI's ``verify_net_in_out`` on a bundle's inference network (CPU, 4 batch items, init 8 for speed)."""
    return _bundle_cli(
        "verify_net_in_out",
        "network_def",
        "--meta_file",
        str(configs / "metadata.json"),
        "--config_file",
        str(configs / "inference.json"),
        "--device",
        "cpu",
        "--n",
        "4",
        "--init_filters",
        "8",
    )


@pytest.fixture(scope="module")
def student_ckpt(tmp_path_factory):
    """An (untrained) init-8 student saved as MONAI's CheckpointSaver does: ``{"model": state_dict}``."""
    path = tmp_path_factory.mktemp("student_ckpt") / "model.pt"
    torch.manual_seed(0)
    torch.save({"model": _segresnet(1).state_dict()}, path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("bundle", ["teacher", "student_kd"])
def test_verify_metadata_offline_with_shipped_schema(bundle, tmp_path):
    schema = tmp_path / "schema.json"
    shutil.copyfile(SCHEMA_PATH, schema)
    res = _bundle_cli(
        "verify_metadata", "--meta_file", str(BUNDLES[bundle] / "configs" / "metadata.json"), "--filepath", str(schema)
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "metadata is verified with no error" in res.stdout + res.stderr


@pytest.mark.parametrize("field", ["monai_version", "network_data_format#outputs#pred#channel_def"])
def test_ill_metadata_missing_field_fails_schema(field, tmp_path):
    meta = json.loads((BUNDLES["teacher"] / "configs" / "metadata.json").read_text())
    node = meta
    *parents, last = field.split("#")
    for p in parents:
        node = node[p]
    del node[last]
    bad = tmp_path / "metadata.json"
    bad.write_text(json.dumps(meta))
    with pytest.raises(InputError, match=f"'{last}' is a required property"):
        verify_bundle_metadata(bad)


@pytest.mark.slow
@pytest.mark.parametrize("bundle,in_channels", [("teacher", 4), ("student_kd", 1)])
def test_verify_net_in_out(bundle, in_channels):
    res = _verify_net_in_out(BUNDLES[bundle] / "configs")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "data shape of network is verified with no error" in res.stdout + res.stderr


@pytest.mark.slow
def test_ckpt_export_torchscript_matches_eager(teacher_ckpt, tmp_path):
    configs = BUNDLES["teacher"] / "configs"
    ts = tmp_path / "model.ts"
    res = _bundle_cli(
        "ckpt_export",
        "network_def",
        "--filepath",
        str(ts),
        "--ckpt_file",
        str(teacher_ckpt),
        "--meta_file",
        str(configs / "metadata.json"),
        "--config_file",
        str(configs / "inference.json"),
    )
    assert res.returncode == 0, res.stderr[-2000:]
    eager = _segresnet(4, init_filters=16)
    eager.load_state_dict(torch.load(teacher_ckpt, weights_only=True))
    eager.eval()
    scripted = torch.jit.load(str(ts)).eval()
    x = torch.randn(1, 4, 32, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), eager(x), rtol=1e-4, atol=1e-5)
    extra = {"metadata.json": ""}
    torch.jit.load(str(ts), _extra_files=extra)
    assert json.loads(extra["metadata.json"])["network_data_format"]["inputs"]["image"]["num_channels"] == 4


@pytest.mark.slow
def test_package_teacher_zip_is_self_contained(teacher_ckpt, tmp_path):
    out = package_bundle(BUNDLES["teacher"], tmp_path, ckpt=teacher_ckpt)
    assert out == tmp_path / "brats_kdnet_teacher.zip"
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        z.extractall(tmp_path / "unzipped")
    root = tmp_path / "unzipped" / "brats_kdnet_teacher"
    for rel in ("configs/metadata.json", "configs/inference.json", "configs/train.json", "models/model.pt"):
        assert f"brats_kdnet_teacher/{rel}" in names
    assert {"brats_kdnet_teacher/models/model.ts", "brats_kdnet_teacher/large_files.yml"} <= names
    for cfg in (root / "configs").glob("*.json"):
        assert '"%' not in cfg.read_text(), f"{cfg.name} still holds a % macro"
    assert json.loads((root / "configs" / "inference.json").read_text())["bundle_root"] == "."
    shipped = torch.load(root / "models" / "model.pt", weights_only=True)
    original = torch.load(teacher_ckpt, weights_only=True)
    assert shipped.keys() == original.keys() and all(torch.equal(shipped[k], original[k]) for k in shipped)
    large = (root / "large_files.yml").read_text()
    assert 'path: "models/model.pt"' in large and 'hash_type: "md5"' in large
    verify_bundle_metadata(root / "configs" / "metadata.json")


#: ``python -c HIDE_KD MODULE ARGS...`` runs ``python -m MODULE ARGS...`` (or ``python SCRIPT.py ARGS...``) as in an
#: environment where kd_components was never installed: the editable install's finder (or path entry) is removed, so
#: only a ``kd_components`` in the current folder (as for every model-zoo bundle with code) can be imported.
HIDE_KD = (
    "import os, runpy, sys\n"
    "sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, '__module__', '').startswith('__editable__')]\n"
    "sys.path[:] = [p for p in sys.path if not p.startswith('__editable__')]\n"
    # an editable install that puts the checkout itself on the path instead of a finder
    "sys.path[:] = [p for p in sys.path if p == '' or not os.path.isfile(os.path.join(p, 'kd_components', "
    "'__init__.py'))]\n"
    "sys.argv = sys.argv[1:]\n"
    "if sys.argv[0].endswith('.py'):\n"
    "    sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))\n"
    "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
    "else:\n"
    "    runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
)


def _without_kd(cwd: Path, module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", HIDE_KD, module, *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def _unzip_both(teacher_ckpt: Path, student_ckpt: Path, dist: Path, models: Path) -> None:
    """Package the teacher and an init-8 T1c student (no TorchScript) and unzip both side by side into ``models``."""
    for zipped in (
        package_bundle(BUNDLES["teacher"], dist, ckpt=teacher_ckpt, torchscript=False),
        package_bundle(
            BUNDLES["student_kd"], dist, ckpt=student_ckpt, torchscript=False, overrides={"init_filters": 8}
        ),
    ):
        with zipfile.ZipFile(zipped) as z:
            z.extractall(models)


@pytest.mark.slow
def test_packaged_student_trains_evaluates_and_infers_without_kd_components(
    teacher_ckpt, student_ckpt, tiny_phantom, tmp_path
):
    """The zips carry the runtime code: unzipped into an empty folder, the student trains with distillation from
    the packaged teacher beside it, evaluates and infers, with ``import kd_components`` failing outside it."""
    models = tmp_path / "models"
    models.mkdir()
    _unzip_both(teacher_ckpt, student_ckpt, tmp_path / "dist", models)
    student = models / "brats_kdnet_student_t1ce"
    assert not (student / "kd_components" / "tools").exists()

    probe = (tmp_path / "probe.py", "import kd_components; print(kd_components.__file__)")
    probe[0].write_text(probe[1])
    outside = _without_kd(tmp_path, "probe")
    assert outside.returncode != 0 and "No module named 'kd_components'" in outside.stderr
    shutil.copyfile(probe[0], student / "probe.py")
    inside = _without_kd(student, "probe")
    assert inside.returncode == 0 and Path(inside.stdout.strip()).is_relative_to(student), inside.stderr[-2000:]
    (student / "probe.py").unlink()

    tiny = ["--roi_size", "[32,32,32]", "--num_workers", "0", "--device", "cpu", "--dataset_dir", str(tiny_phantom)]
    res = _without_kd(
        student, "monai.bundle", "run", "training", "--config_file", "configs/train.json", "--epochs", "1", *tiny
    )
    assert res.returncode == 0, res.stderr[-3000:]
    loaded = [line for line in (res.stderr + res.stdout).splitlines() if "teacher loaded from" in line]
    assert loaded and "../brats_kdnet_teacher/models/model.pt" in loaded[0]  # the packaged teacher beside it
    kd = [line for line in (res.stderr + res.stdout).splitlines() if "train_loss_kd:" in line]
    assert kd and float(kd[-1].split("train_loss_kd:")[1].split()[0]) > 0
    assert (student / "models" / "last_checkpoint_epoch=1.pt").is_file()

    configs = "['configs/train.json','configs/evaluate.json']"
    res = _without_kd(student, "monai.bundle", "run", "evaluating", "--config_file", configs, *tiny)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((student / "eval" / "metrics_summary.json").read_text())
    assert summary, "no evaluation summary written"

    image = sorted(tiny_phantom.glob("*/*_t1ce.nii.gz"))[-1]
    res = _without_kd(
        student,
        "monai.bundle",
        "run",
        "--config_file",
        "configs/inference.json",
        "--input_image",
        str(image),
        "--output_dir",
        str(tmp_path / "pred"),
        "--device",
        "cpu",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    pred = next((tmp_path / "pred").glob("*.nii.gz"))
    import nibabel as nib

    assert set(np.unique(np.asarray(nib.load(pred).dataobj)).tolist()) <= {0, 1, 2, 4}


@pytest.mark.slow
def test_zoo_unit_tests_pass_on_the_packaged_bundles(teacher_ckpt, student_ckpt, tmp_path):
    """``zoo/ci/unit_tests`` (the bundles' tests in the model zoo's form) run as the zoo runs its own, from a zoo
    root holding the unzipped bundles in ``models/``, without kd_components installed."""
    root = tmp_path / "zoo"
    shutil.copytree(REPO / "zoo" / "ci", root / "ci", ignore=shutil.ignore_patterns("__pycache__"))
    _unzip_both(teacher_ckpt, student_ckpt, tmp_path / "dist", root / "models")
    shipped = (root / "models" / "brats_kdnet_teacher" / "models" / "model.pt").read_bytes()
    for name in ("teacher", "student_t1ce"):
        res = _without_kd(root, f"ci/unit_tests/test_brats_kdnet_{name}.py")
        assert res.returncode == 0 and "OK" in res.stderr.splitlines()[-1], res.stderr[-3000:]
        assert "Ran 2 tests" in res.stderr or "Ran 3 tests" in res.stderr
    # training in the tests wrote into temporary folders, never over the shipped weights
    assert (root / "models" / "brats_kdnet_teacher" / "models" / "model.pt").read_bytes() == shipped


@pytest.mark.slow
def test_zoo_form_fetches_its_weights_as_the_zoo_verifies(teacher_ckpt, tmp_path):
    """--weights-url: no weights in the zip; monai.bundle download_large_files fetches them from the URL (served
    here from a local folder) and checks their md5, as the model zoo's ci/verify_bundle.py does."""
    import functools
    import http.server
    import threading

    from monai.apps.utils import HashCheckError
    from monai.bundle import download_large_files

    out = package_bundle(BUNDLES["teacher"], tmp_path / "dist", ckpt=teacher_ckpt, weights_url="http://127.0.0.1:0/w")
    with zipfile.ZipFile(out) as z:
        assert not any(n.endswith((".pt", ".ts")) for n in z.namelist()), "a zoo pull request commits no weights"
        z.extractall(tmp_path / "pr")
    upload = tmp_path / "dist" / "brats_mri_kd_teacher_segmentation_weights"
    assert sorted(p.name for p in upload.iterdir()) == ["model.pt", "model.ts"]
    (tmp_path / "site" / "w").mkdir(parents=True)
    for f in upload.iterdir():
        shutil.copyfile(f, tmp_path / "site" / "w" / f.name)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "site"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    root = tmp_path / "pr" / "brats_mri_kd_teacher_segmentation"
    try:
        yml = root / "large_files.yml"
        yml.write_text(yml.read_text().replace("127.0.0.1:0", f"127.0.0.1:{server.server_port}"))
        download_large_files(bundle_path=str(root))
        shipped = torch.load(root / "models" / "model.pt", weights_only=True)
        original = torch.load(teacher_ckpt, weights_only=True)
        assert all(torch.equal(shipped[k], original[k]) for k in original)
        # a corrupted upload is caught by the md5 in large_files.yml
        (root / "models" / "model.pt").unlink()
        (tmp_path / "site" / "w" / "model.pt").write_bytes(b"not the weights")
        with pytest.raises(HashCheckError, match="md5 hash check of downloaded file failed"):
            download_large_files(bundle_path=str(root))
    finally:
        server.shutdown()
    res = _verify_net_in_out(root / "configs")
    assert res.returncode == 0, res.stderr[-2000:]


def test_package_student_writes_trained_modality(student_ckpt, tmp_path):
    out = package_bundle(
        BUNDLES["student_kd"],
        tmp_path,
        ckpt=student_ckpt,
        student_modality="t2f",
        overrides={"init_filters": 8},
        torchscript=False,
    )
    assert out.name == "brats_kdnet_student_flair.zip"
    with zipfile.ZipFile(out) as z:
        z.extractall(tmp_path)
        assert not any(n.endswith("model.ts") for n in z.namelist())
    root = tmp_path / "brats_kdnet_student_flair" / "configs"
    meta = json.loads((root / "metadata.json").read_text())
    assert meta["network_data_format"]["inputs"]["image"]["channel_def"] == {"0": "FLAIR"}
    for name in ("inference.json", "train.json"):
        cfg = json.loads((root / name).read_text())
        assert cfg["student_modality"] == "flair" and cfg["init_filters"] == 8
    # the packaged training config parses on its own; its teacher is the packaged teacher beside it
    parser = ConfigParser()
    parser.read_config(str(root / "train.json"))
    assert parser.get_parsed_content("student_channel") == [3]
    assert parser.get_parsed_content("teacher_ckpt") == "./../brats_kdnet_teacher/models/model.pt"


@pytest.mark.parametrize(
    "modality, weights_url, name, teacher",
    [
        ("t1ce", "", "brats_kdnet_student_t1ce", "brats_kdnet_teacher"),
        ("t1ce", "https://example.org/w", "brats_mri_t1ce_kd_segmentation", "brats_mri_segmentation"),
        ("flair+t1c", "https://example.org/w", "brats_mri_t1ce_flair_kd_segmentation", "brats_mri_segmentation"),
    ],
)
def test_pull_request_form_names_in_the_zoos_form_with_the_zoos_teacher(
    student_ckpt, tmp_path, modality, weights_url, name, teacher
):
    """The pull-request form (``weights_url``) names the bundle data_modality_task as the zoo does, and its student
    distils from the zoo's own BraTS model beside it; the local form keeps the project's names and teacher."""
    ckpt = student_ckpt
    if "+" in modality:
        ckpt = tmp_path / "two.pt"
        torch.save({"model": _segresnet(2).state_dict()}, ckpt)
    out = package_bundle(
        BUNDLES["student_kd"],
        tmp_path / "dist",
        ckpt=ckpt,
        student_modality=modality,
        overrides={"init_filters": 8},
        torchscript=False,
        weights_url=weights_url,
    )
    assert out.name == f"{name}.zip"
    with zipfile.ZipFile(out) as z:
        z.extractall(tmp_path / "x")
    parser = ConfigParser()
    parser.read_config(str(tmp_path / "x" / name / "configs" / "train.json"))
    assert parser.get_parsed_content("teacher_ckpt") == f"./../{teacher}/models/model.pt"


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"teacher_name": "my_teacher"}, "./../my_teacher/models/model.pt"),
        ({"overrides": {"init_filters": 8, "teacher_ckpt": "/weights/t.pt"}}, "/weights/t.pt"),
    ],
)
def test_package_student_teacher_beside_or_as_given(student_ckpt, tmp_path, kwargs, expected):
    kwargs = {"overrides": {"init_filters": 8}, **kwargs}
    out = package_bundle(BUNDLES["student_kd"], tmp_path, ckpt=student_ckpt, torchscript=False, **kwargs)
    with zipfile.ZipFile(out) as z:
        z.extractall(tmp_path)
    parser = ConfigParser()
    parser.read_config(str(tmp_path / "brats_kdnet_student_t1ce" / "configs" / "train.json"))
    assert parser.get_parsed_content("teacher_ckpt") == expected


def test_ill_package_missing_model_pt(tmp_path, capsys):
    bundle = tmp_path / "teacher"
    shutil.copytree(BUNDLES["teacher"], bundle, ignore=shutil.ignore_patterns("*.pt", "*.ts", "eval", "logs"))
    from kd_components.tools.package import main

    assert main(["--bundle", str(bundle), "--output", str(tmp_path / "dist")]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: '{bundle / 'models' / 'model.pt'}' does not exist: train the bundle first (python -m monai.bundle "
        f"run training --config_file {bundle / 'configs' / 'train.json'}) or pass --ckpt with the trained weights."
    )
    assert not (tmp_path / "dist").exists()


def test_ill_package_checkpoint_not_matching_network_def(tmp_path):
    wrong = tmp_path / "student_as_teacher.pt"
    torch.save(_segresnet(1).state_dict(), wrong)
    with pytest.raises(InputError, match=r"does not fit SegResNet: .*convInit\.conv\.weight: file \(8, 1, 3, 3, 3\)"):
        package_bundle(BUNDLES["teacher"], tmp_path / "dist", ckpt=wrong)
    assert not (tmp_path / "dist").exists() or not any((tmp_path / "dist").iterdir()), "no zip, no partial zip"


def test_ill_package_student_modality_other_than_trained(tmp_path):
    """The refusal names the package tool's flag and the user's --ckpt (not the bundle's --student_modality and the
    package's temporary folder)."""
    from kd_components.deploy.weights import write_model_settings

    ckpt = tmp_path / "models" / "model.pt"
    ckpt.parent.mkdir()
    torch.save(_segresnet(1).state_dict(), ckpt)
    write_model_settings(ckpt.parent, [32, 32, 32], 1, "flair")
    with pytest.raises(InputError) as err:
        package_bundle(BUNDLES["student_kd"], tmp_path / "dist", ckpt=ckpt, student_modality="t1ce")
    assert str(err.value).startswith(f"--student-modality t1ce but the weights --ckpt '{ckpt}' were trained on flair")
    assert not (tmp_path / "dist").exists()


def _monailabel_overrides(bundle_root, images, labels):
    """What MONAI Label's BundleTrainTask passes to ``monai.bundle.run`` (monailabel 0.8.5, tasks/train/bundle.py)."""
    items = [{"image": str(i), "label": str(lab)} for i, lab in zip(images, labels)]
    raw = ConfigParser.load_config_file(bundle_root / "configs" / "train.json")
    return {
        "bundle_root": str(bundle_root),
        "train#trainer#max_epochs": 1,
        "train#dataset#data": items[:-1],
        "device": "cpu",
        "train#handlers": raw["train"]["handlers"],
        "validate#dataset#data": items[-1:],
    }


@pytest.fixture(scope="module")
def packaged_student(teacher_ckpt, student_ckpt, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ml_student")
    overrides = {"init_filters": 8, "teacher_ckpt": str(teacher_ckpt)}
    zipped = package_bundle(BUNDLES["student_kd"], tmp, ckpt=student_ckpt, torchscript=False, overrides=overrides)
    with zipfile.ZipFile(zipped) as z:
        z.extractall(tmp)
    return tmp / "brats_kdnet_student_t1ce"


def _monailabel_train(bundle_src, tmp_path, images, labels):
    """Train a copy of ``bundle_src`` the way MONAI Label does: its overrides, run id ``run``, no initialize id."""
    bundle = tmp_path / "bundle"
    shutil.copytree(bundle_src, bundle)
    wf = run_workflow(
        bundle / "configs" / "train.json",
        "run",
        tiny=False,
        workflow_kwargs={"init_id": None, "final_id": None, "workflow_type": "train"},
        roi_size=[32, 32, 32],
        num_workers=0,
        learning_rate=1e-3,
        **_monailabel_overrides(bundle, images, labels),
    )
    return wf, bundle


@pytest.mark.slow
def test_monailabel_training_of_kd_student_with_stacked_images(packaged_student, tiny_phantom, tmp_path):
    from kd_components.data import find_cases, stack_case

    cases = find_cases(tiny_phantom)[:3]
    stacked = [stack_case(c.folder, tmp_path / f"{c.name}.nii.gz") for c in cases]
    wf, bundle = _monailabel_train(packaged_student, tmp_path, stacked, [c.files["seg"] for c in cases])
    metrics = wf.parser.get_parsed_content("train#trainer").state.metrics
    assert metrics["train_loss_kd"] > 0 and metrics["train_loss_feat"] > 0, "the teacher handler survived"
    assert next((bundle / "models").glob("last_checkpoint_epoch=*.pt"), None) is not None


@pytest.mark.slow
def test_ill_monailabel_training_with_one_modality_images(packaged_student, tiny_phantom, tmp_path):
    from kd_components.data import find_cases

    cases = find_cases(tiny_phantom)[:3]
    with pytest.raises(InputError, match=r"'image' has 1 channel\(s\).*MONAI Label's trainer hands the one image"):
        _monailabel_train(packaged_student, tmp_path, [c.files["t1ce"] for c in cases], [c.files["seg"] for c in cases])


def test_package_carries_what_the_weights_were_trained_with(student_ckpt, tmp_path):
    """model_settings.json beside the weights: its modality names the bundle, its window goes into the packaged
    configs and the file into the zip's models/, so the packaged inference slides the trained window."""
    from kd_components.deploy.weights import write_model_settings

    models = tmp_path / "trained" / "models"
    models.mkdir(parents=True)
    shutil.copyfile(student_ckpt, models / "model.pt")
    write_model_settings(models, [48, 48, 48], 1, "t2w")
    out = package_bundle(
        BUNDLES["student_kd"],
        tmp_path / "dist",
        ckpt=models / "model.pt",
        overrides={"init_filters": 8},
        torchscript=False,
    )
    assert out.name == "brats_kdnet_student_t2.zip"
    with zipfile.ZipFile(out) as z:
        z.extractall(tmp_path / "x")
    root = tmp_path / "x" / "brats_kdnet_student_t2"
    assert json.loads((root / "models" / "model_settings.json").read_text())["roi_size"] == [48, 48, 48]
    for name in ("inference.json", "train.json"):
        assert json.loads((root / "configs" / name).read_text())["roi_size"] == [48, 48, 48]


def test_runtime_code_is_what_the_configs_import():
    """The packaged ``kd_components`` is the closure of what the configs and scripts import: every module a config
    names is in it (with its imports and packages), and no command, phantom generator or converter is."""
    from kd_components.tools.package import RUNTIME_SOURCE, runtime_files

    for bundle in ("teacher", "student_kd"):
        root = REPO / "bundles" / bundle
        texts = [p.read_text() for p in (root / "configs").glob("*.json")]
        files = {str(p.relative_to(RUNTIME_SOURCE)) for p in runtime_files(texts, sorted(root.glob("scripts/*.py")))}
        assert {"__init__.py", "training/__init__.py", "training/trainer.py", "transforms.py"} <= files
        assert "deploy/inference.py" in files and "deploy/weights.py" in files, "inference's checks"
        assert not [f for f in files if f.startswith("tools/")], "no command ships"
        assert not {"data/phantom.py", "data/msd.py", "data/__main__.py", "data/stack.py"} & files
    # a module named only inside a `$` expression, and a name below a module, both resolve to the module's file
    got = runtime_files(["$kd_components.data.load_training_items(@x)"])
    assert RUNTIME_SOURCE / "data" / "datalist.py" in got and RUNTIME_SOURCE / "data" / "__init__.py" in got


@pytest.mark.slow
def test_a_combination_student_packages_under_its_combination(tmp_path):
    """``--student-modality flair+t1c``: the zip is ``..._student_t1ce_flair``, ``channel_def`` names both channels
    in the teacher's order, and the packaged configs select them."""
    import zipfile

    from monai.networks.nets import SegResNet

    from kd_components.tools.package import package_bundle

    net = SegResNet(blocks_down=[1, 2, 2, 4], blocks_up=[1, 1, 1], init_filters=16, in_channels=2, out_channels=3)
    torch.save(net.state_dict(), tmp_path / "student.pt")
    target = package_bundle(
        REPO / "bundles" / "student_kd", tmp_path / "dist", ckpt=tmp_path / "student.pt", student_modality="flair+t1c"
    )
    assert target.name == "brats_kdnet_student_t1ce_flair.zip"
    with zipfile.ZipFile(target) as z:
        z.extractall(tmp_path / "out")
    root = tmp_path / "out" / "brats_kdnet_student_t1ce_flair" / "configs"
    meta = json.loads((root / "metadata.json").read_text())
    image = meta["network_data_format"]["inputs"]["image"]
    assert image["channel_def"] == {"0": "T1c", "1": "FLAIR"} and image["num_channels"] == 2
    parser = ConfigParser()
    parser.read_config(str(root / "train.json"))
    assert parser.get_parsed_content("student_channel") == [0, 3] and parser.get_parsed_content("in_channels") == 2


@pytest.mark.slow
def test_the_any_student_packages_as_one_zip_for_every_subset(tmp_path):
    """``--student-modality any``: one zip, ``..._student_any``; ``channel_def`` names the eight input channels and
    the metadata lists the 15 subsets it takes."""
    import zipfile

    from monai.networks.nets import SegResNet

    from kd_components.tools.package import package_bundle

    net = SegResNet(blocks_down=[1, 2, 2, 4], blocks_up=[1, 1, 1], init_filters=16, in_channels=8, out_channels=3)
    torch.save(net.state_dict(), tmp_path / "student.pt")
    target = package_bundle(
        REPO / "bundles" / "student_kd", tmp_path / "dist", ckpt=tmp_path / "student.pt", student_modality="ANY"
    )
    assert target.name == "brats_kdnet_student_any.zip"
    with zipfile.ZipFile(target) as z:
        z.extractall(tmp_path / "out")
    meta = json.loads((tmp_path / "out" / "brats_kdnet_student_any" / "configs" / "metadata.json").read_text())
    image = meta["network_data_format"]["inputs"]["image"]
    assert image["num_channels"] == 8 and image["channel_def"]["3"] == "FLAIR (0 if absent)"
    assert image["channel_def"]["7"] == "FLAIR present (1/0)"
    assert len(image["subsets"]) == 15 and "t1ce+flair" in image["subsets"] and meta["student_modality"] == "any"


def _image(path: Path, channels: int) -> Path:
    """A small scan with a zero background (a ball of noise), ``channels`` on the last axis as NIfTI stacks them."""
    import nibabel as nib

    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*[np.arange(24)] * 3, indexing="ij"))
    ball = ((grid - 11.5) ** 2).sum(0) < 10**2
    data = np.where(ball[..., None], rng.normal(100, 20, (24, 24, 24, channels)), 0).astype(np.float32)
    nib.save(nib.Nifti1Image(data.squeeze(-1) if channels == 1 else data, np.diag([1.0, 1.0, 1.0, 1.0])), path)
    return path


@pytest.mark.parametrize(
    "bundle, channels, pixdim", [("teacher", 4, None), ("student_kd", 1, None), ("student_kd", 1, [2.0, 2.0, 2.0])]
)
def test_packaged_inference_builds_as_monailabel_builds_it(
    bundle, channels, pixdim, student_ckpt, tmp_path, monkeypatch
):
    """MONAI Label's BundleInferTask (monailabel 0.8.5, tasks/infer/bundle.py) reads inference.json with only
    ``bundle_root`` set and parses ``network_def``, ``preprocessing``, ``inferer`` and ``postprocessing`` on their
    own: no datalist, no data folder, no input image. Each must build so, and the served label map must be BraTS
    labels on the input's grid (SaveImaged is dropped by the server; the convention follows the image's name). Weights
    trained at a voxel size (``model_settings.json``) are packaged with it: the 1-mm 24^3 request is resampled to
    2 mm for the network and answered on its own 24^3 grid."""
    from monai.transforms import Compose, SaveImaged

    from kd_components.deploy.weights import write_model_settings

    ckpt = student_ckpt
    if channels == 4:
        ckpt = tmp_path / "teacher.pt"
        torch.save(_segresnet(4).state_dict(), ckpt)
    if pixdim is not None:
        ckpt = tmp_path / "trained" / "model.pt"
        ckpt.parent.mkdir()
        shutil.copyfile(student_ckpt, ckpt)
        write_model_settings(ckpt.parent, [16, 16, 16], 1, "t2", pixdim=pixdim)
    zipped = package_bundle(
        BUNDLES[bundle], tmp_path / "dist", ckpt=ckpt, overrides={"init_filters": 8}, torchscript=False
    )
    with zipfile.ZipFile(zipped) as z:
        z.extractall(tmp_path / "app")
    root = tmp_path / "app" / zipped.stem
    monkeypatch.chdir(tmp_path)  # no data/synthetic here: nothing may look for images
    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "inference.json"))
    assert parser["pixdim"] == pixdim
    assert (root / "models" / "model_settings.json").is_file() == (pixdim is not None)
    parser.config.update({"bundle_root": str(root), "device": "cpu"})
    network = parser.get_parsed_content("network_def", instantiate=True)
    state = torch.load(root / "models" / "model.pt", map_location="cpu", weights_only=True)
    network.load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
    network.eval()
    pre = parser.get_parsed_content("preprocessing", instantiate=True)
    inferer = parser.get_parsed_content("inferer", instantiate=True)
    post = parser.get_parsed_content("postprocessing", instantiate=True)
    post = Compose([t for t in post.transforms if not isinstance(t, SaveImaged)])
    item = pre({"image": str(_image(tmp_path / "case-t2w.nii.gz", channels))})
    assert tuple(item["image"].shape[1:]) == ((12, 12, 12) if pixdim else (24, 24, 24))
    with torch.no_grad():
        item["pred"] = inferer(item["image"][None], network)[0]
    labels = post(item)["pred"]
    assert tuple(labels.shape) == (1, 24, 24, 24)
    assert set(torch.unique(labels).tolist()) <= {0, 1, 2, 3}, "a 2023 name (case-t2w) writes ET as 3"
