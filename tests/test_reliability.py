"""Reliability: resume after a kill mid-epoch, atomic checkpoints, reproducible first iterations, the run record."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO, refused, run_workflow
from probes import with_probe

from kd_components.errors import InputError
from kd_components.training import AtomicCheckpointSaver
from kd_components.training.checkpoints import last_checkpoint

TEACHER = REPO / "bundles" / "teacher" / "configs"
SMALL = ["--roi_size", "[32, 32, 32]", "--num_workers", "0", "--init_filters", "8", "--device", "cpu"]


def _train_cli(tmp_path, data, *extra_configs, args=()):
    cfg = "[" + ",".join(f"'{c}'" for c in [TEACHER / "train.json", *extra_configs]) + "]"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", cfg]
    cmd += ["--dataset_dir", str(data), "--bundle_root", str(tmp_path / "run"), "--epochs", "3", *SMALL, *args]
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'tests'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)


@pytest.mark.slow
def test_resume_after_kill_mid_epoch_reaches_the_same_epochs(tiny_phantom, tmp_path):
    kill = tmp_path / "kill.json"
    kill.write_text(json.dumps(with_probe({"_target_": "probes.KillAt", "epoch": 2, "iteration": 2})))
    first = _train_cli(tmp_path, tiny_phantom, kill)
    assert first.returncode == -9, first.stderr[-2000:]
    models = tmp_path / "run" / "models"
    assert last_checkpoint(models).endswith("last_checkpoint_epoch=1.pt")
    best = torch.load(models / "model.pt", weights_only=True)  # whole, although the run was killed
    assert "convInit.conv.weight" in best
    assert not any(p.name.startswith("tmp") for p in models.iterdir()), "no temporary file left behind"

    record = tmp_path / "record.json"
    record.write_text(json.dumps(with_probe({"_target_": "probes.RecordBatches", "folder": str(tmp_path)})))
    second = _train_cli(tmp_path, tiny_phantom, record, args=["--resume", "true"])
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed from" in second.stdout + second.stderr
    epochs = {json.loads(line)["epoch"] for line in (tmp_path / "rank0.jsonl").read_text().splitlines()}
    assert epochs == {2, 3}, "the resumed run starts at epoch 2 and ends at 3"
    last = torch.load(last_checkpoint(models), weights_only=True)
    trainer = last["trainer"]  # Ignite stores iteration, epoch_length and max_epochs
    assert trainer["iteration"] == 3 * trainer["epoch_length"] and trainer["max_epochs"] == 3
    assert last["best"]["best_metric_epoch"] >= 1
    assert sorted(p.name for p in models.glob("*.pt")) == ["last_checkpoint_epoch=3.pt", "model.pt"]
    run_record = json.loads((tmp_path / "run" / "eval" / "run_record.json").read_text())
    assert run_record["seed"] == 0 and run_record["versions"]["monai"]
    assert run_record["config"]["resume"] in (True, "true") and run_record["config"]["epochs"] == 3


def test_ill_resume_without_checkpoint(tiny_phantom, tmp_path):
    line = refused(
        "run",
        "training",
        "--config_file",
        TEACHER / "train.json",
        "--dataset_dir",
        tiny_phantom,
        "--bundle_root",
        tmp_path / "run",
        "--resume",
        "true",
        *SMALL,
    )
    assert line == (
        f"error: --resume true but '{tmp_path / 'run' / 'models'}' holds no 'last_checkpoint_epoch=N.pt' (one is "
        f"written after every epoch): start without --resume, or point --bundle_root / --ckpt_dir at the "
        f"interrupted run."
    )
    with pytest.raises(InputError):
        last_checkpoint(tmp_path)


def test_atomic_checkpoint_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    net = torch.nn.Linear(2, 2)
    saver = AtomicCheckpointSaver(str(tmp_path), {"model": net}, save_final=True, final_filename="model.pt")
    (tmp_path / "model.pt").write_bytes(b"the previous, complete checkpoint")

    def broken_save(obj, f, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr("ignite.handlers.checkpoint.torch.save", broken_save)
    from ignite.engine import Engine

    engine = Engine(lambda e, b: None)
    saver.attach(engine)
    with pytest.raises(OSError, match="disk full"):
        saver.completed(engine)
    assert (tmp_path / "model.pt").read_bytes() == b"the previous, complete checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def _first_losses(tiny_phantom, tmp_path, name):
    from probes import RecordBatches  # noqa: F401 - imported by the config below

    folder = tmp_path / name
    run_workflow(
        TEACHER / "train.json",
        bundle_root=str(folder),
        dataset_dir=str(tiny_phantom),
        epochs=1,
        init_filters=8,
        seed=7,
        **with_probe({"_target_": "probes.RecordBatches", "folder": str(folder)}),
    )
    return [json.loads(line)["loss"] for line in (folder / "rank0.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_same_seed_same_first_losses_on_cpu(tiny_phantom, tmp_path):
    sys.path.insert(0, str(REPO / "tests"))
    a = _first_losses(tiny_phantom, tmp_path, "a")
    b = _first_losses(tiny_phantom, tmp_path, "b")
    assert len(a) == 3 and a == b
