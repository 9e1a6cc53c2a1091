"""torchrun + DDP on CPU (gloo): 2 processes train the teacher and then the KD student on the tiny phantom."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO
from probes import with_probe

TEACHER = REPO / "bundles" / "teacher" / "configs"
STUDENT = REPO / "bundles" / "student_kd" / "configs"


def _torchrun(configs, tmp_path, probe, **overrides):
    probe_cfg = tmp_path / f"probe_{probe.name}.json"
    probe_cfg.write_text(json.dumps(with_probe({"_target_": "probes.RecordBatches", "folder": str(probe)})))
    cfg = "[" + ",".join(f"'{c}'" for c in [*configs, probe_cfg]) + "]"
    args = []
    for k, v in overrides.items():
        args += [f"--{k}", json.dumps(v) if not isinstance(v, str) else v]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["-m", "monai.bundle", "run", "training", "--config_file", cfg, *args]
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'tests'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env["OMP_NUM_THREADS"] = "1"
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    return [json.loads(line) for f in sorted(probe.glob("rank*.jsonl")) for line in f.read_text().splitlines()]


def _check_run(records, root: Path, epochs: int):
    ranks = {r["rank"] for r in records}
    assert ranks == {0, 1} and all(r["world"] == 2 for r in records)
    for epoch in range(1, epochs + 1):
        seen = [{c for r in records if r["rank"] == k and r["epoch"] == epoch for c in r["cases"]} for k in (0, 1)]
        assert seen[0] and seen[1] and not seen[0] & seen[1], f"epoch {epoch}: ranks saw {seen}"
    first = [r["loss"] for r in records if r["epoch"] == 1]
    last = [r["loss"] for r in records if r["epoch"] == epochs]
    assert sum(last) / len(last) < sum(first) / len(first), f"loss did not fall: {first} -> {last}"
    names = sorted(p.name for p in (root / "models").iterdir())
    assert names == [f"last_checkpoint_epoch={epochs}.pt", "model.pt", "model_settings.json", "validation.json"]
    events = list((root / "eval").rglob("events.out.tfevents.*"))
    writers = {p.name.split(".")[-2] for p in events}  # events.out.tfevents.<time>.<host>.<pid>.<n>
    assert events and len(writers) == 1, f"TensorBoard files of one process (rank 0) expected, found {events}"


@pytest.fixture(scope="module")
def phantom8(tmp_path_factory):
    """Eight 32^3 cases: 4 for training (2 per rank), 2 for validation, 2 for test."""
    from kd_components.data import write_phantom

    out = tmp_path_factory.mktemp("phantom8")
    write_phantom(out, num_cases=8, shape=(32, 32, 32), seed=5, val_fraction=0.25, test_fraction=0.25)
    return out


@pytest.mark.slow
def test_torchrun_two_processes_gloo_teacher_kd_student_and_cached(phantom8, tmp_path):
    common = {"dataset_dir": str(phantom8), "roi_size": [32, 32, 32], "num_workers": 0, "learning_rate": 3e-3}
    epochs = 4
    teacher_root = tmp_path / "teacher"
    records = _torchrun(
        [TEACHER / "train.json", TEACHER / "multi_gpu_train.json"],
        tmp_path,
        tmp_path / "teacher_probe",
        bundle_root=str(teacher_root),
        epochs=epochs,
        val_interval=epochs,
        **common,
    )
    _check_run(records, teacher_root, epochs)

    student_root = tmp_path / "student"
    records = _torchrun(
        [STUDENT / "train.json", STUDENT / "multi_gpu_train.json"],
        tmp_path,
        tmp_path / "student_probe",
        bundle_root=str(student_root),
        teacher_ckpt=str(teacher_root / "models" / "model.pt"),
        epochs=epochs,
        val_interval=epochs,
        **common,
    )
    _check_run(records, student_root, epochs)

    # cached teacher logits under DDP: the data key follows each rank's cases
    from kd_components.tools.cache import cache_teacher_logits

    cached = cache_teacher_logits(
        teacher_root / "models" / "model.pt", phantom8, output=tmp_path / "cache", overrides={"roi_size": [32] * 3}
    )
    cached_root = tmp_path / "student_cached"
    records = _torchrun(
        [STUDENT / "train.json", STUDENT / "cached_teacher.json", STUDENT / "multi_gpu_train.json"],
        tmp_path,
        tmp_path / "cached_probe",
        bundle_root=str(cached_root),
        data_list_file_path=str(cached),
        epochs=epochs,
        val_interval=epochs,
        **common,
    )
    _check_run(records, cached_root, epochs)


@pytest.mark.parametrize("bundle", ["teacher", "student_kd"])
def test_writers_are_not_built_on_other_ranks(bundle, tiny_phantom, tmp_path, monkeypatch):
    """On a torchrun rank > 0 the bundle builds no writing handler (MONAI's ``_disabled_: @is_not_rank0``): no
    checkpoint saver, stats, TensorBoard, progress bar; the handlers every rank needs stay."""
    from monai.bundle import ConfigParser

    configs = REPO / "bundles" / bundle / "configs"

    def handler_names(rank: int) -> tuple[list[str], list[str]]:
        monkeypatch.setattr(torch.distributed, "is_initialized", lambda: rank > 0)
        monkeypatch.setattr(torch.distributed, "get_rank", lambda group=None: rank)
        parser = ConfigParser()
        parser.read_config([str(configs / "train.json"), str(configs / "evaluate.json")])
        parser.update({"bundle_root": str(tmp_path / f"rank{rank}"), "dataset_dir": str(tiny_phantom)})
        names = [type(h).__name__ for h in parser.get_parsed_content("train#handlers")]
        return names, [type(h).__name__ for h in parser.get_parsed_content("val_handlers")]

    train0, eval0 = handler_names(0)
    train1, eval1 = handler_names(1)
    writers = {"StatsHandler", "TensorBoardStatsHandler", "EpochProgressBar", "AtomicCheckpointSaver"}
    assert writers <= set(train0) and "RegionMetricsWriter" in eval0  # evaluation logs its figures itself
    assert not writers & set(train1) and not {"StatsHandler", "RegionMetricsWriter"} & set(eval1)
    assert {"ResumeFromCheckpoint", "LrScheduleHandler", "ValidationHandler"} <= set(train1)
    assert eval1 == ["StopOnBadInput", "CheckpointLoader"], "every rank loads the weights it evaluates"
    assert not (tmp_path / "rank1").exists(), "rank 1 opened no file (TensorBoard writers open theirs when built)"
