"""The teacher bundle end to end through ConfigWorkflow on a tiny phantom, and its model-zoo compatibility."""

from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import REPO, refused, run_workflow
from monai.bundle import ConfigParser
from monai.networks.nets import SegResNet

CONFIGS = REPO / "bundles" / "teacher" / "configs"


def _workflow(config_files, run_id, tmp_path, data_dir, **override):
    """The bundle's ``config_files`` initialised (not run) with its own logging.conf, as ``monai.bundle run`` does."""
    return run_workflow(
        [CONFIGS / f for f in config_files],
        run_id,
        logging_file=CONFIGS / "logging.conf",
        run=False,
        bundle_root=str(tmp_path / "bundle"),
        dataset_dir=str(data_dir),
        **{"learning_rate": 1e-3, **override},
    )


@pytest.fixture(scope="module")
def trained(tiny_phantom, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("teacher")
    wf = _workflow(["train.json"], "training", tmp, tiny_phantom, epochs=2)
    assert wf.check_properties() == []
    wf.run()
    state = wf.parser.get_parsed_content("train#trainer").state
    wf.finalize()
    return tmp, state


@pytest.mark.slow
def test_training_writes_one_checkpoint_per_purpose(trained):
    tmp, state = trained
    models = tmp / "bundle" / "models"
    # the best weights, the last epoch's state for --resume, the validation record: no third copy
    assert sorted(p.name for p in models.iterdir()) == [
        "last_checkpoint_epoch=2.pt",
        "model.pt",
        "model_settings.json",
        "validation.json",
    ]
    best = torch.load(models / "model.pt", weights_only=True)
    last = torch.load(models / "last_checkpoint_epoch=2.pt", weights_only=True)
    assert "convInit.conv.weight" in best, "best checkpoint is a plain state dict, as model-zoo model.pt"
    assert {"model", "optimizer", "lr_scheduler", "trainer", "best"} <= set(last)
    assert state.epoch == 2 and np.isfinite(float(state.output[0]["loss"]))
    assert "train_epoch_loss" in state.metrics and "train_mean_dice" in state.metrics
    assert any((tmp / "bundle" / "eval").glob("events.out.tfevents*")), "TensorBoard logs written"


@pytest.mark.slow
def test_validation_reports_each_region(trained, tiny_phantom, tmp_path):
    tmp, _ = trained
    wf = _workflow(["train.json", "evaluate.json"], "evaluating", tmp, tiny_phantom)
    wf.run()
    metrics = wf.parser.get_parsed_content("validate#evaluator").state.metrics
    assert {"val_mean_dice", "val_dice_tc", "val_dice_wt", "val_dice_et"} <= set(metrics)
    per_case = (tmp / "bundle" / "eval" / "metrics_per_case.csv").read_text().splitlines()
    assert per_case[0] == "case,dice_tc,hd95_tc,dice_wt,hd95_wt,dice_et,hd95_et" and len(per_case) == 2
    summary = json.loads((tmp / "bundle" / "eval" / "metrics_summary.json").read_text())
    assert summary["tags"]["model"] == "teacher" and summary["num_cases"] == 1


@pytest.mark.slow
def test_inference_writes_label_map_in_input_geometry(trained, tiny_phantom):
    tmp, _ = trained
    wf = _workflow(["inference.json"], "run", tmp, tiny_phantom, output_dir=str(tmp / "pred"))
    wf.run()
    case = json.loads((tiny_phantom / "datalist.json").read_text())["test"][0]
    pred = nib.load(tmp / "pred" / f"{case['case']}_teacher_seg_brats2021.nii.gz")
    ref = nib.load(tiny_phantom / case["image"][0])
    assert pred.shape == ref.shape and np.allclose(pred.affine, ref.affine)
    assert set(np.unique(np.asarray(pred.dataobj)).tolist()) <= {0, 1, 2, 4}


def test_network_loads_model_zoo_state_dict():
    """A state dict of model-zoo brats_mri_segmentation's network (written out here) loads as is, both ways."""
    zoo = SegResNet(
        blocks_down=[1, 2, 2, 4], blocks_up=[1, 1, 1], init_filters=16, in_channels=4, out_channels=3, dropout_prob=0.2
    )
    for name in ("train.json", "inference.json"):
        parser = ConfigParser()
        parser.read_config(str(CONFIGS / name))
        ours = parser.get_parsed_content("network_def")
        ours.load_state_dict(zoo.state_dict(), strict=True)
        zoo.load_state_dict(ours.state_dict(), strict=True)
        x = torch.randn(1, 4, 32, 32, 32)
        ours.eval(), zoo.eval()
        assert torch.allclose(ours(x), zoo(x))
    meta = json.loads((CONFIGS / "metadata.json").read_text())["network_data_format"]
    assert meta["inputs"]["image"]["channel_def"] == {"0": "T1c", "1": "T1", "2": "T2", "3": "FLAIR"}
    assert meta["outputs"]["pred"]["channel_def"] == {"0": "Tumor core", "1": "Whole tumor", "2": "Enhancing tumor"}


@pytest.mark.slow
def test_ill_dataset_dir_is_one_line_before_training(tmp_path):
    """The documented command with a missing dataset_dir stops with one line and exit status 1."""
    cmd = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "training",
        "--config_file",
        str(CONFIGS / "train.json"),
        "--dataset_dir",
        str(tmp_path / "nope"),
        "--bundle_root",
        str(tmp_path / "b"),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert res.returncode == 1
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: dataset_dir '{tmp_path / 'nope'}' does not exist") and "Traceback" not in res.stderr
    assert not (tmp_path / "b" / "models").exists(), "nothing written before the check"


@pytest.mark.slow
def test_trains_on_real_brats2023_case(real_case_dir, tmp_path):
    """The real 2023 case (labels 1/2/3, 240x240x155) goes through the same training config."""
    import shutil

    from kd_components.data import build_datalist, write_datalist

    # one real case: it trains, and a renamed copy of it validates (the same case in two splits is refused as a leak)
    data = tmp_path / "data"
    for src in sorted(p for p in real_case_dir.iterdir() if p.is_dir())[:1]:
        shutil.copytree(src, data / src.name)
        twin = data / f"{src.name}-copy"
        twin.mkdir()
        for f in src.iterdir():
            shutil.copyfile(f, twin / f.name.replace(src.name, twin.name))
    real_case_dir = data
    dl = build_datalist(data, val_fraction=0, test_fraction=0)
    dl["validation"] = [e for e in dl["training"] if e["case"].endswith("-copy")]
    dl["training"] = [e for e in dl["training"] if not e["case"].endswith("-copy")]
    write_datalist(dl, tmp_path / "real.json", data)
    wf = _workflow(
        ["train.json"],
        "training",
        tmp_path,
        real_case_dir,
        epochs=1,
        val_interval=2,
        data_list_file_path=str(tmp_path / "real.json"),
    )
    wf.run()
    state = wf.parser.get_parsed_content("train#trainer").state
    assert state.iteration == 1 and np.isfinite(float(state.output[0]["loss"]))
    assert (tmp_path / "bundle" / "models" / "last_checkpoint_epoch=1.pt").is_file()
    # 2023 labels (ET = 3) become TC/WT/ET regions in the bundle's own preprocessing
    item = wf.parser.get_parsed_content("train_datalist")[0]
    regions = wf.parser.get_parsed_content("validate#preprocessing")(item)["label"]
    seg = np.asarray(nib.load(item["label"]).dataobj)
    assert regions.shape[0] == 3
    assert [int(regions[c].sum()) for c in range(3)] == [
        int(np.isin(seg, (1, 3)).sum()),
        int((seg > 0).sum()),
        int((seg == 3).sum()),
    ]
    assert (tmp_path / "bundle" / "models" / "last_checkpoint_epoch=1.pt").is_file()


def test_cached_batches_keep_four_channels(tiny_phantom):
    """Regression: CacheDataset filled by several threads plus worker processes (monai 1.6.1) handed out
    1-channel images after a few epochs; the bundle caches with one thread and loads cached data in a thread."""
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    parser.update({"dataset_dir": str(tiny_phantom), "roi_size": [32, 32, 32], "cache_rate": 1.0, "num_workers": 2})
    loader = parser.get_parsed_content("train#dataloader")
    shapes = {tuple(batch["image"].shape) for _ in range(15) for batch in loader}
    assert shapes == {(1, 4, 32, 32, 32)}


@pytest.mark.slow
def test_evaluation_equals_score_of_the_files_inference_writes(trained, tiny_phantom, tmp_path):
    """The number a user reads is the number of the file a user gets: per-case Dice and HD95 of evaluate.json equal
    `python -m kd_components.tools.score` on the label maps inference.json wrote for the same cases."""
    import math

    from kd_components.evaluation import read_per_case, score_files

    tmp, _ = trained
    out = tmp_path / "eval"
    _workflow(
        ["train.json", "evaluate.json"],
        "evaluating",
        tmp,
        tiny_phantom,
        output_dir=str(out),
        metric_convention="brats2023",
        inference_roi_size=[32, 32, 32],  # what TINY_RUN's roi_size gives inference.json's window
    ).run()
    _workflow(["inference.json"], "run", tmp, tiny_phantom, output_dir=str(tmp_path / "pred")).run()
    test = {c["case"]: c for c in json.loads((tiny_phantom / "datalist.json").read_text())["test"]}
    rows = read_per_case(out / "metrics_per_case.csv")
    assert rows and {r["case"] for r in rows} == set(test)
    for row in rows:
        pred = tmp_path / "pred" / f"{row['case']}_teacher_seg_brats2021.nii.gz"
        scored = score_files(tiny_phantom / test[row["case"]]["label"], pred, "brats2023", "2021")
        for region, values in scored.items():
            for metric, value in values.items():
                ours = row[f"{metric}_{region.lower()}"]
                assert (math.isnan(ours) and math.isnan(value)) or ours == pytest.approx(value, rel=1e-5, abs=1e-6), (
                    row["case"],
                    region,
                    metric,
                    ours,
                    value,
                )
    summary = json.loads((out / "metrics_summary.json").read_text())
    assert summary["convention"] == "brats2023" and "pooled" in summary["conventions"]["hd95"]


def _inference_error(tmp_path, *args: str) -> str:
    """The one line the teacher's inference prints for ``args`` (run in process); it must write nothing."""
    last = refused(
        "run",
        "--config_file",
        CONFIGS / "inference.json",
        "--bundle_root",
        tmp_path / "b",
        "--output_dir",
        tmp_path / "out",
        *args,
    )
    assert not (tmp_path / "out").exists()
    return last


def test_ill_inference_missing_datalist_one_line(tmp_path):
    last = _inference_error(tmp_path, "--dataset_dir", str(tmp_path / "data"))
    assert last.startswith(f"error: datalist '{tmp_path / 'data' / 'datalist.json'}' does not exist: write it with")


def test_ill_inference_datalist_naming_a_missing_image_one_line(tiny_phantom, tmp_path):
    """A datalist whose image is gone (moved data, wrong --dataset_dir) is named, not a loader traceback."""
    content = json.loads((tiny_phantom / "datalist.json").read_text())
    content["test"][0]["image"][2] = "gone/gone_t2.nii.gz"
    (tmp_path / "datalist.json").write_text(json.dumps(content))
    last = _inference_error(
        tmp_path, "--dataset_dir", str(tiny_phantom), "--data_list_file_path", str(tmp_path / "datalist.json")
    )
    assert last.startswith(f"error: image '{tiny_phantom / 'gone' / 'gone_t2.nii.gz'}' of datalist")
