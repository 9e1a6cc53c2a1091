from __future__ import annotations

import json

import pytest
import torch
from monai.data import MetaTensor

from kd_components.evaluation import HD95_EMPTY_PENALTY, RegionMetricsWriter, region_metrics, summarize


def _cube(lo, hi, shape=(10, 10, 10)):
    m = torch.zeros(shape)
    m[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = 1
    return m


def _regions(tc, wt, et):
    return torch.stack([tc, wt, et])


EMPTY = torch.zeros(10, 10, 10)
CUBE = _cube((2, 2, 2), (6, 6, 6))
SHIFTED = _cube((3, 2, 2), (7, 6, 6))  # the same 4^3 cube moved by one voxel along x


def test_identical_masks():
    m = region_metrics(_regions(CUBE, CUBE, CUBE), _regions(CUBE, CUBE, CUBE))
    assert all(m[f"dice_{r}"] == 1.0 and m[f"hd95_{r}"] == 0.0 for r in ("tc", "wt", "et"))


def test_empty_region_conventions():
    # TC: empty in both; WT: predicted but absent; ET: present but missed
    m = region_metrics(_regions(EMPTY, CUBE, EMPTY), _regions(EMPTY, EMPTY, CUBE))
    assert (m["dice_tc"], m["hd95_tc"]) == (1.0, 0.0)
    assert (m["dice_wt"], m["hd95_wt"]) == (0.0, HD95_EMPTY_PENALTY)
    assert (m["dice_et"], m["hd95_et"]) == (0.0, HD95_EMPTY_PENALTY)


def test_shifted_cube_hand_computed():
    # overlap 3x4x4 = 48 of 64 + 64 voxels: Dice = 2 * 48 / 128 = 0.75; every surface voxel lies within one voxel
    # of the other surface and 20 of 56 at exactly one: HD95 = 1 voxel = 2 mm at 2 mm spacing
    m = region_metrics(_regions(SHIFTED, SHIFTED, SHIFTED), _regions(CUBE, CUBE, CUBE), spacing=[2.0, 2.0, 2.0])
    assert m["dice_wt"] == pytest.approx(0.75)
    assert m["hd95_wt"] == pytest.approx(2.0)


def test_summarize_hand_computed():
    s = summarize([{"d": 0.2}, {"d": 0.4}, {"d": 0.9}], ["d"])["d"]
    assert s["mean"] == pytest.approx(0.5) and s["median"] == pytest.approx(0.4) and s["n"] == 3
    assert s["std"] == pytest.approx(((0.09 + 0.01 + 0.16) / 2) ** 0.5)


def test_writer_files(tmp_path):
    from ignite.engine import Engine

    label = MetaTensor(_regions(CUBE, CUBE, EMPTY), affine=torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))
    image = torch.randn(4, 10, 10, 10)
    batches = [[{"case": "A", "image": image}], [{"case": "B", "image": image}]]
    outputs = [
        [{"pred": _regions(CUBE, CUBE, EMPTY), "label": label}],
        [{"pred": _regions(SHIFTED, EMPTY, EMPTY), "label": label}],
    ]

    def step(engine, batch):
        engine.state.batch = batch
        return outputs[engine.state.iteration - 1]

    engine = Engine(step)
    RegionMetricsWriter(tmp_path, tags={"model": "kd", "modality": "t1ce", "seed": 1}, save_cases=1).attach(engine)
    engine.run(batches, max_epochs=1)
    rows = (tmp_path / "metrics_per_case.csv").read_text().splitlines()
    assert rows[0] == "case,dice_tc,hd95_tc,dice_wt,hd95_wt,dice_et,hd95_et"
    assert rows[1] == "A,1,0,1,0,1,0"
    assert rows[2].startswith("B,0.75,2,0,373.13,1,0")
    summary = json.loads((tmp_path / "metrics_summary.json").read_text())
    assert summary["tags"] == {"model": "kd", "modality": "t1ce", "seed": 1} and summary["num_cases"] == 2
    assert summary["metrics"]["dice_tc"]["mean"] == pytest.approx(0.875)
    assert sorted(p.name for p in (tmp_path / "cases").iterdir()) == ["A.npz"]


def test_ill_shapes():
    with pytest.raises(ValueError, match=r"pred \(3, 10, 10, 10\) and label \(2, 10, 10, 10\)"):
        region_metrics(_regions(CUBE, CUBE, CUBE), torch.stack([CUBE, CUBE]))
