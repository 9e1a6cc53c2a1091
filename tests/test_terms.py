"""Distillation terms that plug in: hand-computed values of the literature's terms, the trainer handing both
networks' named outputs to them, and a term defined in this file training a student through the bundle's command
with a config overlay only."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO

from kd_components.losses import DistillationLoss
from kd_components.terms import (
    ChannelWiseDistillation,
    DistillationTerm,
    FeatureMatching,
    PairwiseAffinity,
    PrototypeDistillation,
)

STUDENT = REPO / "bundles" / "student_kd" / "configs"


class LogitL1(DistillationTerm):
    """A term that lives outside kd_components: mean absolute difference of the logits (the overlay's test)."""

    def __init__(self, weight: float = 1.0, name: str = "l1"):
        super().__init__(weight, name)

    def forward(self, student, teacher, target, labelled=None):
        return (student["logits"] - teacher["logits"]).abs().mean()


class Recorder(DistillationTerm):
    """Keeps what it was handed (the trainer's test)."""

    def __init__(self, weight=1.0, student_layers=(), teacher_layers=()):
        super().__init__(weight, "rec", student_layers, teacher_layers)
        self.seen = []

    def forward(self, student, teacher, target, labelled=None):
        self.seen.append((student, teacher))
        return student["logits"].sum() * 0


def _outs(logits, **features):
    return {"logits": torch.as_tensor(logits, dtype=torch.float32), "features": features}


@pytest.mark.parametrize(
    "student, teacher, temperature, expected",
    [
        # one channel, two voxels: teacher softmax (1/4, 3/4), student (1/2, 1/2):
        # KL = 1/4 ln(1/2) + 3/4 ln(3/2) = 0.130812
        ([[[0.0, 0.0]]], [[[0.0, math.log(3)]]], 1.0, 0.25 * math.log(0.5) + 0.75 * math.log(1.5)),
        # at T = 2 the teacher's logits (0, 2 ln 3) give the same (1/4, 3/4); times T^2 = 4
        ([[[0.0, 0.0]]], [[[0.0, 2 * math.log(3)]]], 2.0, 4 * (0.25 * math.log(0.5) + 0.75 * math.log(1.5))),
        # equal maps: 0; a constant shift of a channel changes no spatial distribution: 0
        ([[[1.0, 2.0, 3.0]]], [[[1.0, 2.0, 3.0]]], 1.0, 0.0),
        ([[[1.0, 2.0, 3.0]]], [[[6.0, 7.0, 8.0]]], 1.0, 0.0),
        # two channels: the mean over channels (0.130812 and 0)
        ([[[0.0, 0.0], [5.0, 5.0]]], [[[0.0, math.log(3)], [1.0, 1.0]]], 1.0, 0.130812 / 2),
    ],
)
def test_channel_wise_distillation(student, teacher, temperature, expected):
    term = ChannelWiseDistillation(temperature=temperature)
    value = term(_outs(student), _outs(teacher), None)
    assert float(value) == pytest.approx(expected, abs=1e-5)


def test_channel_wise_on_2d_and_3d_maps_alike():
    torch.manual_seed(0)
    s, t = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    term = ChannelWiseDistillation()
    flat = term(_outs(s.reshape(2, 3, 20)), _outs(t.reshape(2, 3, 20)), None)
    assert float(term(_outs(s), _outs(t), None)) == pytest.approx(float(flat))
    assert float(term(_outs(s[..., None]), _outs(t[..., None]), None)) == pytest.approx(float(flat))


def test_feature_matching_at_several_layers():
    """Layer a: cosine of (1, 0) and (0, 1) per voxel: 1 - 0 = 1; layer b: equal maps, 0; the mean is 0.5."""
    a_s, a_t = torch.tensor([[[1.0], [0.0]]]), torch.tensor([[[0.0], [1.0]]])
    b = torch.randn(1, 4, 3)
    term = FeatureMatching(layers=["a", "b"])
    assert term.student_layers == term.teacher_layers == ("a", "b")
    value = term(_outs(0, a=a_s, b=b), _outs(0, a=a_t, b=b.clone()), None)
    assert float(value) == pytest.approx(0.5, abs=1e-6)
    l2 = FeatureMatching(layers={"s.x": "t.y"}, distance="l2")
    assert (l2.student_layers, l2.teacher_layers) == (("s.x",), ("t.y",))
    assert float(l2(_outs(0, **{"s.x": torch.ones(1, 2, 2)}), _outs(0, **{"t.y": torch.zeros(1, 2, 2)}), None)) == 1.0


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: ChannelWiseDistillation(temperature=0), "temperature must be a number > 0"),
        (lambda: ChannelWiseDistillation(weight=-1), "weight must be a number >= 0"),
        (lambda: FeatureMatching(layers=[]), "give at least one layer"),
        (lambda: FeatureMatching(distance="cos"), "cos"),
        (lambda: LogitL1(name="kd"), "name must be letters"),
        (lambda: DistillationLoss(lambda p, t: p.mean(), terms=[torch.nn.L1Loss()]), "DistillationTerm objects"),
        (lambda: DistillationLoss(lambda p, t: p.mean(), terms=[LogitL1(), LogitL1()]), "distinct names"),
    ],
)
def test_ill_terms(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_ill_feature_matching_shapes_printed():
    term = FeatureMatching(layers=["a"])
    with pytest.raises(
        ValueError, match=r"student .a. \(1, 2, 3\) and teacher .a. \(1, 4, 3\) maps must have the same shape"
    ):
        term(_outs(0, a=torch.zeros(1, 2, 3)), _outs(0, a=torch.zeros(1, 4, 3)), None)


def test_loss_adds_each_weighted_term_and_logs_it():
    pred, target = torch.zeros(1, 1, 2), torch.zeros(1, 1, 2)
    teacher = _outs([[[0.0, math.log(3)]]])
    loss = DistillationLoss(
        lambda p, t: torch.tensor(0.5),
        terms=[ChannelWiseDistillation(weight=2.0, temperature=1.0), LogitL1(weight=0.0)],
    )
    assert loss.needs_teacher and loss.student_layers == () and [t.name for t in loss.active_terms] == ["cwd"]
    out = loss(pred, target, teacher_outputs=teacher)
    assert float(out["loss_cwd"]) == pytest.approx(0.130812, abs=1e-5) and float(out["loss_l1"]) == 0.0
    assert float(out["loss"]) == pytest.approx(0.5 + 2 * 0.130812, abs=1e-5)
    with pytest.raises(ValueError, match="term 'cwd' needs the teacher's outputs"):
        loss(pred, target)


def test_trainer_hands_named_outputs_of_both_networks(tiny_phantom):
    """The trainer hooks the layers a term names on each network and hands ``logits`` and ``features`` by path; the
    teacher's come detached."""
    from monai.data import DataLoader, Dataset
    from monai.networks.nets import SegResNet

    from kd_components.training import DistillationTrainer, loss_terms

    def net(channels):
        return SegResNet(blocks_down=[1, 1], blocks_up=[1], init_filters=8, in_channels=channels, out_channels=3)

    torch.manual_seed(0)
    student, teacher = net(1), net(4).eval().requires_grad_(False)
    rec = Recorder(student_layers=["down_layers.1"], teacher_layers=["down_layers.0", "down_layers.1"])
    loss = DistillationLoss(lambda p, t: p.mean() * 0 + 1.0, terms=[rec])
    data = [{"image": torch.randn(4, 16, 16, 16), "label": torch.zeros(3, 16, 16, 16)}]
    trainer = DistillationTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=DataLoader(Dataset(data), batch_size=1),
        network=student,
        optimizer=torch.optim.SGD(student.parameters(), lr=0.0),
        loss_function=loss,
        teacher=teacher,
        student_channels=0,
        probe_size=[16, 16, 16],
    )
    trainer.run()
    s, t = rec.seen[-1]  # the probe's call came first, then the iteration's
    assert len(rec.seen) == 2
    assert set(s["features"]) == {"down_layers.1"} and set(t["features"]) == {"down_layers.0", "down_layers.1"}
    assert s["logits"].shape == t["logits"].shape == (1, 3, 16, 16, 16)
    assert s["features"]["down_layers.1"].requires_grad and not t["features"]["down_layers.1"].requires_grad
    assert set(loss_terms(trainer.state.output)) == {"loss", "loss_seg", "loss_kd", "loss_feat", "loss_rec"}


@pytest.mark.parametrize(
    "term",
    [
        lambda: ChannelWiseDistillation(),
        lambda: FeatureMatching(layers=["down_layers.0", "down_layers.1"]),
        lambda: PrototypeDistillation(layer="up_layers.0"),
        lambda: PairwiseAffinity(layer="down_layers.1"),
    ],
)
def test_each_literature_term_trains_a_segresnet_student(term):
    """One step of a SegResNet student with each shipped term on its default kind of layer: finite, logged, and
    the student's weights move by the term alone (the supervised term is off)."""
    from monai.data import DataLoader, Dataset
    from monai.networks.nets import SegResNet

    from kd_components.training import DistillationTrainer, loss_terms

    torch.manual_seed(0)
    student = SegResNet(blocks_down=[1, 1], blocks_up=[1], init_filters=8, in_channels=1, out_channels=3)
    teacher = SegResNet(blocks_down=[1, 1], blocks_up=[1], init_filters=8, in_channels=4, out_channels=3).eval()
    target = torch.zeros(3, 16, 16, 16)
    target[:, 4:10, 4:10, 4:10] = 1
    t = term()
    loss = DistillationLoss(lambda p, y: p.sum() * 0, seg_weight=0.0, terms=[t])
    before = [p.detach().clone() for p in student.parameters()]
    trainer = DistillationTrainer(
        device="cpu", max_epochs=1, network=student, loss_function=loss, teacher=teacher, probe_size=[16, 16, 16],
        train_data_loader=DataLoader(Dataset([{"image": torch.randn(4, 16, 16, 16), "label": target}]), batch_size=1),
        optimizer=torch.optim.SGD(student.parameters(), lr=1.0),
    )  # fmt: skip
    trainer.run()
    logged = loss_terms(trainer.state.output)
    assert math.isfinite(logged[f"loss_{t.name}"]) and logged[f"loss_{t.name}"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, student.parameters()))


def test_ill_term_layer_that_does_not_exist_one_line(tiny_phantom):
    from monai.networks.nets import SegResNet

    from kd_components.errors import InputError
    from kd_components.training import DistillationTrainer

    student = SegResNet(blocks_down=[1, 1], blocks_up=[1], init_filters=8, in_channels=1, out_channels=3)
    teacher = SegResNet(blocks_down=[1, 1], blocks_up=[1], init_filters=8, in_channels=4, out_channels=3)
    loss = DistillationLoss(lambda p, t: p.mean(), terms=[FeatureMatching(layers=["down_layers.7"])])
    with pytest.raises(InputError, match=r"kd_terms: feature layer 'down_layers.7' is not a module of SegResNet"):
        DistillationTrainer(
            device="cpu", max_epochs=1, train_data_loader=[], network=student,
            optimizer=torch.optim.SGD(student.parameters(), lr=0.0), loss_function=loss, teacher=teacher,
        )  # fmt: skip


@pytest.mark.slow
def test_a_term_defined_outside_the_package_trains_a_student_through_the_bundle(tiny_phantom, teacher_ckpt, tmp_path):
    """``python -m monai.bundle run training`` with the student's train.json and a one-entry overlay whose term is
    ``LogitL1`` of this test file: the student trains and the term's value is logged beside the others."""
    overlay = tmp_path / "l1_term.json"
    overlay.write_text(json.dumps({"kd_terms": [{"_target_": "test_terms.LogitL1", "weight": 0.5}]}))
    cmd = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file"]
    cmd += [str([str(STUDENT / "train.json"), str(overlay)]), "--bundle_root", str(tmp_path / "student")]
    cmd += ["--dataset_dir", str(tiny_phantom), "--teacher_ckpt", str(teacher_ckpt), "--epochs", "1"]
    cmd += ["--roi_size", "[32, 32, 32]", "--num_workers", "0", "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "student" / "models" / "last_checkpoint_epoch=1.pt").is_file()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "student" / "eval")).Reload()
    assert "loss_l1" in events.Tags()["scalars"], events.Tags()["scalars"]
    # and its epoch average, beside the recipe's own terms
    line = next(x for x in (res.stdout + res.stderr).splitlines() if "distillation terms --" in x)
    assert "train_loss_l1:" in line and float(line.split("train_loss_l1:")[1].split()[0]) >= 0, line


def test_pairwise_affinity():
    """Student voxels (1, 0) and (0, 1): affinities [[1, 0], [0, 1]]; teacher voxels both (1, 0): all 1. The mean of
    the squared differences over the 4 pairs is (0 + 1 + 1 + 0) / 4 = 0.5. Pooling 2 voxels into one node: 1 x 1
    affinities, both 1: 0. Widths may differ (each network's own cosine similarities)."""
    s = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    t = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    assert float(PairwiseAffinity(layer="x")(_outs(0, x=s), _outs(0, x=t), None)) == pytest.approx(0.5)
    assert float(PairwiseAffinity(layer="x", pool=2)(_outs(0, x=s), _outs(0, x=t), None)) == pytest.approx(0.0)
    wide = torch.cat([t, torch.zeros(1, 3, 2)], dim=1)  # 5 teacher channels
    assert float(PairwiseAffinity(layer="x")(_outs(0, x=s), _outs(0, x=wide), None)) == pytest.approx(0.5)


def test_prototype_distillation():
    """One region, voxel 0 in it, voxel 1 not (background). Student voxels (1, 0), (0, 1) are their own prototypes:
    cosine similarities [0, 1] and [1, 0] to (background, region); the teacher's voxels are equal, so both of its
    prototypes equal them: uniform (1/2, 1/2). KL(t || s) per voxel = 1/2 ln(1/2 / (1 / (1 + e))) + 1/2 ln(1/2 /
    (e / (1 + e))) = 0.120114, the same for both voxels."""
    s = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    t = torch.ones(1, 2, 2)
    target = torch.tensor([[[1.0, 0.0]]])
    expected = 0.5 * math.log(0.5 * (1 + math.e)) + 0.5 * math.log(0.5 * (1 + math.e) / math.e)
    term = PrototypeDistillation(layer="x")
    assert float(term(_outs(0, x=s), _outs(0, x=t), target)) == pytest.approx(expected, abs=1e-6)
    # teacher and student alike: 0
    assert float(term(_outs(0, x=s), _outs(0, x=s.clone()), target)) == pytest.approx(0.0, abs=1e-6)


def test_prototype_distillation_absent_class_and_withheld_label():
    """A class absent from the item has no prototype (here: no background voxel): the softmax runs over the classes
    present, the value and the gradients stay finite; an item whose label is withheld takes the teacher's thresholded
    logits as its classes."""
    s = torch.randn(1, 2, 2, requires_grad=True)
    t = torch.randn(1, 2, 2)
    everywhere = torch.ones(1, 1, 2)
    value = PrototypeDistillation(layer="x")(_outs(0, x=s), _outs(0, x=t), everywhere)
    value.backward()
    assert float(value.detach()) == pytest.approx(0.0, abs=1e-6)  # one class present: every distribution is (1)
    assert torch.isfinite(s.grad).all()
    term = PrototypeDistillation(layer="x")
    s2, t2 = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]), torch.ones(1, 2, 2)
    teacher = {"logits": torch.tensor([[[3.0, -3.0]]]), "features": {"x": t2}}
    withheld = term(_outs(0, x=s2), teacher, torch.zeros(1, 1, 2), labelled=torch.tensor([False]))
    labelled = term(_outs(0, x=s2), teacher, torch.tensor([[[1.0, 0.0]]]), labelled=torch.tensor([True]))
    assert float(withheld) == pytest.approx(float(labelled), abs=1e-6) and float(withheld) > 0.1


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: PairwiseAffinity(layer=""), "give the feature layer"),
        (lambda: PairwiseAffinity(pool=0), "pool must be an integer >= 1"),
        (lambda: PrototypeDistillation(temperature=-1), "temperature must be a number > 0"),
    ],
)
def test_ill_structure_terms(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_terms_stay_finite_under_float16_autocast():
    """Under AMP a similarity summed over a 64^3 map's voxels overflowed float16 (inf, then NaN); DistillationLoss runs
    its terms in float32 and the prototypes are means with weights summing to 1."""
    torch.manual_seed(0)
    s, t = torch.randn(1, 16, 64, 64, 64) * 30, torch.randn(1, 16, 64, 64, 64) * 30
    target = torch.zeros(1, 3, 64, 64, 64)
    target[:, :, 10:40, 10:40, 10:40] = 1
    term = PrototypeDistillation(layer="x")
    loss = DistillationLoss(lambda p, y: p.float().mean() * 0, terms=[term])
    with torch.autocast("cpu", dtype=torch.float16):
        out = loss(s[:, :3], target, student_outputs=_outs(s[:, :3], x=s), teacher_outputs=_outs(t[:, :3], x=t))
    assert math.isfinite(float(out["loss_prototypes"])) and float(out["loss_prototypes"]) > 0


def test_a_loss_written_before_the_terms_keeps_working():
    """A DistillationLoss subclass with the six positional inputs only is still accepted (no named outputs)."""
    from kd_components.training.trainer import _LossNeeds

    class Old(DistillationLoss):
        def forward(self, pred, target, teacher_logits=None, teacher_features=None, student_features=None, lab=None):
            return super().forward(pred, target, teacher_logits, teacher_features, student_features, lab)

    assert _LossNeeds(Old(lambda p, t: p.mean())).takes_outputs is False
    assert _LossNeeds(DistillationLoss(lambda p, t: p.mean())).takes_outputs is True


def _tiny(channels):
    from monai.networks.nets import SegResNet

    return SegResNet(blocks_down=[1, 1], blocks_up=[1], init_filters=8, in_channels=channels, out_channels=3)


@pytest.mark.parametrize(
    "term, extra, message",
    [
        # teacher layers with cached logits: the teacher does not run, so its layers never come
        (lambda: FeatureMatching(layers=["down_layers.1"]), {"cached_logits_key": "teacher_logits"}, "cached logits"),
        # a term that fails inside torch (a pool larger than the map) is one line before training, not a traceback
        (lambda: PairwiseAffinity(layer="down_layers.1", pool=32), {"probe_size": [16, 16, 16]}, "PairwiseAffinity"),
    ],
)
def test_ill_terms_the_trainer_refuses_in_one_line(term, extra, message):
    from kd_components.errors import InputError
    from kd_components.training import DistillationTrainer

    student = _tiny(1)
    with pytest.raises(InputError, match=message) as err:
        DistillationTrainer(
            device="cpu", max_epochs=1, train_data_loader=[], network=student, teacher=_tiny(4).eval(),
            optimizer=torch.optim.SGD(student.parameters(), lr=0.0),
            loss_function=DistillationLoss(lambda p, t: p.mean(), terms=[term()]), **extra,
        )  # fmt: skip
    assert "\n" not in str(err.value)


def test_epoch_average_of_every_logged_term():
    """``LossTermAverages``: the mean over the epoch's iterations of each ``loss_<name>`` (1, 2, 3 -> 2), as a
    metric; a term a metric already averages is left to it."""
    from ignite.engine import Engine, Events

    from kd_components.training import LossTermAverages

    values = iter([1.0, 2.0, 3.0])
    engine = Engine(lambda e, b: {"loss": torch.tensor(9.0), "loss_cwd": torch.tensor(next(values)), "loss_kd": 5.0})
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.state.metrics.update({"train_loss_kd": -1.0}))
    LossTermAverages().attach(engine)
    engine.run([0, 1, 2], max_epochs=1)
    assert engine.state.metrics["train_loss_cwd"] == pytest.approx(2.0)
    assert engine.state.metrics["train_loss_kd"] == -1.0 and "train_loss" not in engine.state.metrics
