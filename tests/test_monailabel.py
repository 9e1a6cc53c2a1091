"""A real MONAI Label server (monailabel 0.8.5, its ``monaibundle`` sample app) serves the packaged teacher and
student bundles on 127.0.0.1, and trains the student with distillation from the packaged teacher.

The server's environment has MONAI 1.5.2 and pytorch-ignite 0.4.11 and no ``kd_components``: the student's training
runs on the copy of the runtime code that its zip carries.

MONAI Label runs in its own virtual environment (numpy < 2, torch 2.14.1 + torchvision 0.29.1), made by
``scripts/setup_monailabel.sh`` the first time (about 5 minutes, from package registries) and reused afterwards;
``KD_MONAILABEL_VENV`` points at another one. The server is stopped by its PID at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import REPO, run_workflow
from monai.networks.nets import SegResNet

from kd_components.data import find_cases, stack_case
from kd_components.deploy.weights import write_model_settings
from kd_components.tools.package import package_bundle

VENV = Path(os.environ.get("KD_MONAILABEL_VENV", REPO / ".venv-monailabel"))
BRATS_LABELS = {0, 1, 2, 4}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sample_app(venv: Path) -> Path:
    """The ``monaibundle`` app shipped with the wheel (under the venv prefix or in site-packages)."""
    found = sorted(venv.glob("monailabel/sample-apps/monaibundle")) + sorted(
        venv.glob("lib/python*/site-packages/monailabel/sample-apps/monaibundle")
    )
    assert found, f"monaibundle sample app not found in {venv}"
    return found[0]


@pytest.fixture(scope="module")
def monailabel_venv() -> Path:
    res = subprocess.run(
        ["bash", str(REPO / "scripts" / "setup_monailabel.sh"), str(VENV)], capture_output=True, text=True, timeout=1500
    )
    assert res.returncode == 0, f"MONAI Label venv setup failed:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    return VENV


@pytest.fixture(scope="module")
def served(monailabel_venv, teacher_ckpt, tiny_phantom, tmp_path_factory):
    """Start the server with both packaged bundles; yield (base url, studies folder, app folder); stop it by PID."""
    tmp = tmp_path_factory.mktemp("monailabel")
    app = tmp / "app"
    shutil.copytree(_sample_app(monailabel_venv), app)
    (app / "model").mkdir(exist_ok=True)
    student_ckpt = tmp / "student.pt"
    torch.manual_seed(0)
    net = SegResNet(blocks_down=[1, 2, 2, 4], blocks_up=[1, 1, 1], init_filters=8, in_channels=1, out_channels=3)
    torch.save(net.state_dict(), student_ckpt)
    # the one student for every subset: 8 input channels (four sequences, absent ones zero, and presence maps)
    any_ckpt = tmp / "student_any.pt"
    net = SegResNet(blocks_down=[1, 2, 2, 4], blocks_up=[1, 1, 1], init_filters=8, in_channels=8, out_channels=3)
    torch.save(net.state_dict(), any_ckpt)
    # a student trained at 2 mm (model_settings.json records it): the server resamples each request to 2 mm and
    # answers on the request's own grid
    coarse_ckpt = tmp / "trained_2mm" / "model.pt"
    coarse_ckpt.parent.mkdir()
    shutil.copyfile(student_ckpt, coarse_ckpt)
    write_model_settings(coarse_ckpt.parent, [32, 32, 32], 1, "flair", pixdim=[2.0, 2.0, 2.0])
    zips = [package_bundle(REPO / "bundles" / "teacher", tmp / "dist", ckpt=teacher_ckpt, torchscript=False)]
    zips += [
        package_bundle(
            REPO / "bundles" / "student_kd",
            tmp / "dist",
            ckpt=ckpt,
            overrides={"init_filters": 8, "roi_size": [32, 32, 32], "num_workers": 0},
            student_modality=modality,
            torchscript=False,
        )
        for ckpt, modality in ((student_ckpt, "t2"), (any_ckpt, "any"), (coarse_ckpt, "flair"))
    ]
    for z in zips:
        with zipfile.ZipFile(z) as f:
            f.extractall(app / "model")
    studies = tmp / "studies"
    (studies / "labels" / "final").mkdir(parents=True)
    cases = find_cases(tiny_phantom)
    case = cases[-1]
    stack_case(case.folder, studies / "case_stack.nii.gz")
    shutil.copyfile(case.files["t2"], studies / "case_t2.nii.gz")
    # what the any student is sent: one image named by its sequence, and two sequences stacked in one file named by
    # them (a MONAI Label request names one datastore image)
    shutil.copyfile(case.files["flair"], studies / "case_flair.nii.gz")
    stack_case(case.folder, studies / "case_t1ce+flair.nii.gz", modality="t1ce+flair")
    # the datastore MONAI Label trains on: stacked 4-channel images with their final labels
    for c in cases[:-1]:
        stack_case(c.folder, studies / f"train_{c.name}.nii.gz")
        shutil.copyfile(c.files["seg"], studies / "labels" / "final" / f"train_{c.name}.nii.gz")

    port = _free_port()
    log = (tmp / "server.log").open("w")
    env = {**os.environ, "PATH": f"{monailabel_venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": ""}
    cmd = [
        str(monailabel_venv / "bin" / "monailabel"),
        "start_server",
        "--app",
        str(app),
        "--studies",
        str(studies),
        "--conf",
        "models",
        "brats_kdnet_teacher,brats_kdnet_student_t2,brats_kdnet_student_any,brats_kdnet_student_flair",
        "--conf",
        "zoo_source",
        "local",
        "--conf",
        "sam2",
        "false",
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 300
        while True:
            assert proc.poll() is None, (
                f"server exited ({proc.returncode}):\n{(tmp / 'server.log').read_text()[-3000:]}"
            )
            try:
                with urllib.request.urlopen(f"{url}/info/", timeout=5) as r:
                    info = json.loads(r.read())
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert time.time() < deadline, f"no /info/ after 300 s:\n{(tmp / 'server.log').read_text()[-3000:]}"
                time.sleep(2)
        yield url, studies, app, info, case, tmp / "server.log"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()
    assert proc.poll() is not None, "server still running after its stop"


def _infer(url: str, model: str, image: str, out: Path) -> Path:
    # the image id quoted as any client must (a '+' in a query string reads as a space)
    req = urllib.request.Request(f"{url}/infer/{model}?image={urllib.parse.quote(image)}&output=image", method="POST")
    with urllib.request.urlopen(req, timeout=600) as r:
        assert r.status == 200
        out.write_bytes(r.read())
    return out


def _own_inference(bundle: Path, input_image, tmp_path: Path, **overrides) -> np.ndarray:
    """The label map the served bundle's inference config writes when MONAI itself runs it (this venv)."""
    run_workflow(
        bundle / "configs" / "inference.json",
        "run",
        tiny=False,
        bundle_root=str(bundle),
        output_dir=str(tmp_path / "own"),
        input_image=input_image,
        num_workers=0,
        device="cpu",
        **overrides,
    )
    return np.asarray(nib.load(next((tmp_path / "own").glob("*.nii.gz"))).dataobj)


@pytest.mark.slow
def test_info_lists_the_bundles(served):
    _, _, _, info, _, _ = served
    names = {"brats_kdnet_teacher", "brats_kdnet_student_t2", "brats_kdnet_student_any", "brats_kdnet_student_flair"}
    assert names <= set(info["models"])
    assert info["models"]["brats_kdnet_student_t2"]["type"] == "segmentation"


@pytest.mark.slow
def test_served_student_returns_brats_labels_in_input_geometry(served, tmp_path):
    url, studies, app, _, _, _ = served
    out = _infer(url, "brats_kdnet_student_t2", "case_t2", tmp_path / "student.nii.gz")
    pred, ref = nib.load(out), nib.load(studies / "case_t2.nii.gz")
    labels = np.asarray(pred.dataobj)
    assert labels.shape == ref.shape and np.allclose(pred.affine, ref.affine, atol=1e-4)
    assert set(np.unique(labels).tolist()) <= BRATS_LABELS
    # the same bundle run by MONAI itself (this venv, monai 1.6.1) gives the same label map
    assert (
        _own_inference(app / "model" / "brats_kdnet_student_t2", str(studies / "case_t2.nii.gz"), tmp_path) == labels
    ).mean() > 0.999


@pytest.mark.slow
def test_served_student_trained_at_2mm_answers_on_the_request_grid(served, tmp_path):
    """Weights trained with --pixdim 2 (model_settings.json in the zip): the 1-mm request is resampled to 2 mm for
    the network, and the label map comes back on the request's own grid, as MONAI's own run of the bundle gives it."""
    url, studies, app, _, _, _ = served
    bundle = app / "model" / "brats_kdnet_student_flair"
    assert json.loads((bundle / "models" / "model_settings.json").read_text())["pixdim"] == [2.0, 2.0, 2.0]
    out = _infer(url, "brats_kdnet_student_flair", "case_flair", tmp_path / "coarse.nii.gz")
    pred, ref = nib.load(out), nib.load(studies / "case_flair.nii.gz")
    labels = np.asarray(pred.dataobj)
    assert labels.shape == ref.shape and np.allclose(pred.affine, ref.affine, atol=1e-4)
    assert set(np.unique(labels).tolist()) <= BRATS_LABELS
    assert len(np.unique(labels)) > 1, "a map with tumour labels, so that the comparisons below can fail"
    assert (_own_inference(bundle, str(studies / "case_flair.nii.gz"), tmp_path) == labels).mean() > 0.999
    # the same weights without their voxel size (recorded in the zip's settings and config; run at 1 mm) give
    # another map: the server did resample
    one_mm = tmp_path / "one_mm"
    shutil.copytree(bundle, one_mm / "bundle")
    (one_mm / "bundle" / "models" / "model_settings.json").unlink()
    own = _own_inference(one_mm / "bundle", str(studies / "case_flair.nii.gz"), one_mm, pixdim=None)
    assert (own == labels).mean() < 0.99


@pytest.mark.slow
@pytest.mark.parametrize("image, sequences", [("case_flair", ["flair"]), ("case_t1ce+flair", ["t1ce", "flair"])])
def test_served_any_student_segments_from_one_image_or_two(served, tmp_path, image, sequences):
    """The one student for every subset, served: a request with the case's FLAIR alone, and one with its T1c and
    FLAIR (stacked, the file named by them), each answered with a BraTS label map on the input's grid, the same map
    MONAI itself writes from the separate files of those sequences."""
    url, studies, app, info, case, log = served
    assert "brats_kdnet_student_any" in info["models"]
    out = _infer(url, "brats_kdnet_student_any", image, tmp_path / "any.nii.gz")
    pred, ref = nib.load(out), nib.load(case.files["flair"])
    labels = np.asarray(pred.dataobj)
    assert labels.shape == ref.shape and np.allclose(pred.affine, ref.affine, atol=1e-4)
    assert set(np.unique(labels).tolist()) <= BRATS_LABELS
    names = "+".join({"t1ce": "T1c", "flair": "FLAIR"}[m] for m in sequences)
    assert f"segmenting from {names} (absent:" in log.read_text()
    own = _own_inference(app / "model" / "brats_kdnet_student_any", [str(case.files[m]) for m in sequences], tmp_path)
    assert (own == labels).mean() > 0.999


@pytest.mark.slow
def test_served_teacher_reads_stacked_four_channel_image(served, tmp_path):
    url, studies, _, _, case, _ = served
    out = _infer(url, "brats_kdnet_teacher", "case_stack", tmp_path / "teacher.nii.gz")
    pred, ref = nib.load(out), nib.load(case.files["t1ce"])
    labels = np.asarray(pred.dataobj)
    assert labels.shape == ref.shape and np.allclose(pred.affine, ref.affine, atol=1e-4)
    assert set(np.unique(labels).tolist()) <= BRATS_LABELS


@pytest.mark.slow
def test_unknown_image_is_an_error_not_a_label(served):
    url, _, _, _, _, _ = served
    with pytest.raises(urllib.error.HTTPError):
        _infer(url, "brats_kdnet_teacher", "no_such_image", Path(os.devnull))


@pytest.mark.slow
def test_server_trains_the_student_with_distillation_then_serves_it(served, tmp_path):
    """MONAI Label's own trainer (``POST /train/NAME``) runs the student bundle for one epoch on the datastore's
    stacked images: the teacher beside it runs inside each iteration (loss_kd > 0 in the server's log), the new
    weights replace the bundle's model.pt, and the served student answers with them."""
    url, _, app, info, _, log = served
    assert "brats_kdnet_student_t2" in info["trainers"]
    weights = app / "model" / "brats_kdnet_student_t2" / "models" / "model.pt"
    before = weights.read_bytes()
    params = {"max_epochs": 1, "val_split": 0.25, "device": "cpu", "multi_gpu": False, "pretrained": True}
    req = urllib.request.Request(
        f"{url}/train/brats_kdnet_student_t2?run_sync=true",
        data=json.dumps(params).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=900) as r:
        assert r.status == 200
    text = log.read_text()
    metrics = [line for line in text.splitlines() if "train_loss_kd:" in line]
    assert metrics, f"no training metrics in the server log:\n{text[-3000:]}"
    loss_kd = float(metrics[-1].split("train_loss_kd:")[1].split()[0])
    assert loss_kd > 0, metrics[-1]
    assert "monai 1.5.2" in text and "pytorch-ignite 0.4" in text  # MONAI Label's own MONAI and Ignite ran it
    assert "teacher loaded from" in text
    # the server's environment has no kd_components: the code that ran is the copy the student's zip carries
    res = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", "import kd_components"], cwd=tmp_path, capture_output=True
    )
    assert res.returncode != 0
    assert weights.read_bytes() != before
    out = _infer(url, "brats_kdnet_student_t2", "case_t2", tmp_path / "trained.nii.gz")
    assert set(np.unique(np.asarray(nib.load(out).dataobj)).tolist()) <= BRATS_LABELS
