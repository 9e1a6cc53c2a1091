"""DistillationTrainer and load_teacher: the data flow of one iteration, the frozen teacher, checkpoint formats,
agreement with MONAI's SupervisedTrainer, and the refusals."""

from __future__ import annotations

import copy

import pytest
import torch
from ignite.engine import Events
from ignite.metrics import Average
from monai.engines import SupervisedTrainer
from monai.handlers import from_engine
from monai.losses import DiceLoss
from monai.networks.nets import SegResNet

from kd_components.brats import TEACHER_CHANNELS, modality_index
from kd_components.errors import InputError
from kd_components.losses import DistillationLoss, FeatureDistillationLoss, SigmoidKLDivLoss
from kd_components.networks import FeatureAdapter
from kd_components.training import DistillationTrainer, SelectChannelsBatch, load_teacher, loss_terms


def _net(in_channels: int, init: int = 4, out_channels: int = 3) -> SegResNet:
    """A SegResNet of the teacher's shape, narrow enough for CPU tests."""
    return SegResNet(
        blocks_down=[1, 2, 2, 4],
        blocks_up=[1, 1, 1],
        init_filters=init,
        in_channels=in_channels,
        out_channels=out_channels,
        norm=("group", {"num_groups": 2}),
    )


def _batches(n=2, size=16, channels=4):
    g = torch.Generator().manual_seed(0)
    return [
        {
            "image": torch.randn(1, channels, size, size, size, generator=g),
            "label": (torch.rand(1, 3, size, size, size, generator=g) > 0.6).float(),
        }
        for _ in range(n)
    ]


def _kd_loss(kd_weight=0.25, feature_weight=0.1, distance="cosine") -> DistillationLoss:
    return DistillationLoss(
        DiceLoss(sigmoid=True),
        SigmoidKLDivLoss(2.0),
        FeatureDistillationLoss(distance),
        kd_weight=kd_weight,
        feature_weight=feature_weight,
    )


def _trainer(student, loss, teacher=None, channel=0, adapter=None, loader=None, **kwargs) -> DistillationTrainer:
    params = list(student.parameters()) + (list(adapter.parameters()) if adapter is not None else [])
    return DistillationTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=loader if loader is not None else _batches(),
        network=student,
        optimizer=torch.optim.Adam(params, 1e-2),
        loss_function=loss,
        teacher=teacher,
        student_channels=channel,
        student_feature_layer="down_layers.3",
        teacher_feature_layer="down_layers.3",
        feature_adapter=adapter,
        probe_size=(16, 16, 16),
        key_train_metric={"train_loss_kd": Average(output_transform=from_engine(["loss_kd"], first=True))},
        additional_metrics={"train_loss_feat": Average(output_transform=from_engine(["loss_feat"], first=True))},
        amp=False,
        **kwargs,
    )


def _saved_teacher(tmp_path, init=4, out_channels=3):
    torch.manual_seed(0)
    trained = _net(4, init, out_channels)
    torch.save(trained.state_dict(), tmp_path / "teacher.pt")
    return trained, tmp_path / "teacher.pt"


def test_teacher_frozen_in_eval_and_unchanged(tmp_path):
    trained, path = _saved_teacher(tmp_path)
    teacher = load_teacher(_net(4), path)
    student = _net(1)
    trainer = _trainer(student, _kd_loss(), teacher)
    before_student = copy.deepcopy(student.state_dict())
    modes = []
    forward = teacher.forward

    def spy(x):
        modes.append((teacher.training, torch.is_grad_enabled()))
        return forward(x)

    teacher.forward = spy
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: teacher.train())  # flipped after every step
    trainer.run()
    assert trainer.state.iteration == 2 and modes == [(False, False), (False, False)], "eval mode, no autograd"
    assert all(not p.requires_grad and p.grad is None for p in teacher.parameters())
    for k, v in trained.state_dict().items():
        assert torch.equal(teacher.state_dict()[k], v), f"teacher weight {k} changed"
    assert any(not torch.equal(before_student[k], v) for k, v in student.state_dict().items()), "student trained"
    terms = loss_terms(trainer.state.output)
    assert set(terms) == {"loss", "loss_seg", "loss_kd", "loss_feat"} and terms["loss_kd"] > 0 < terms["loss_feat"]
    assert terms["loss"] == pytest.approx(terms["loss_seg"] + 0.25 * terms["loss_kd"] + 0.1 * terms["loss_feat"])
    assert trainer.state.metrics["train_loss_kd"] > 0 and trainer.state.metrics["train_loss_feat"] > 0
    assert len(trainer.teacher_seconds) == 2


@pytest.mark.parametrize("modality", ["t1ce", "t1", "t2", "flair", "t2f"])
def test_student_gets_the_values_of_its_modality(tmp_path, modality):
    """The student's input is the *values* of its channel of the very batch the teacher sees, for every modality."""
    _, path = _saved_teacher(tmp_path)
    teacher = load_teacher(_net(4), path)
    student = _net(1)
    channel = modality_index(modality)
    batches = _batches(1)
    for c in range(4):  # every channel distinguishable by its value
        batches[0]["image"][:, c] = float(c + 1) * 10
    seen = {}
    t_forward, s_forward = teacher.forward, student.forward
    teacher.forward = lambda x: seen.setdefault("teacher", x.clone()) is not None and t_forward(x)
    student.forward = lambda x: seen.setdefault("student", x.clone()) is not None and s_forward(x)
    trainer = _trainer(student, _kd_loss(), teacher, channel=channel, loader=batches)
    seen.clear()  # the probe's zeros
    trainer.run()
    assert seen["teacher"].shape[1] == 4 and torch.equal(seen["teacher"], batches[0]["image"])
    assert seen["student"].shape[1] == 1
    expected = float(TEACHER_CHANNELS.index({"t2f": "flair"}.get(modality, modality)) + 1) * 10
    assert torch.all(seen["student"] == expected), f"{modality}: the student got another channel's values"


def test_baseline_equals_supervised_trainer():
    """Without a teacher the iteration is MONAI's: same batches, same seed -> the same weights as SupervisedTrainer
    with the student's channel selected (a change of the pinned MONAI's iteration shows up here)."""
    nets = []
    for kind in ("distillation", "supervised"):
        torch.manual_seed(0)
        net = _net(1)
        kwargs = dict(
            device=torch.device("cpu"),
            max_epochs=2,
            train_data_loader=_batches(3),
            network=net,
            optimizer=torch.optim.SGD(net.parameters(), 0.1),
            amp=False,
            accumulation_steps=2,
        )
        if kind == "distillation":
            DistillationTrainer(
                loss_function=DistillationLoss(DiceLoss(sigmoid=True)), student_channels=2, **kwargs
            ).run()
        else:
            SupervisedTrainer(
                loss_function=DiceLoss(sigmoid=True), prepare_batch=SelectChannelsBatch(2), **kwargs
            ).run()
        nets.append(net.state_dict())
    for k in nets[0]:
        assert torch.allclose(nets[0][k], nets[1][k], atol=1e-6), k


def test_no_teacher_term_no_teacher(tmp_path):
    """kd_weight = feature_weight = 0: the teacher is neither loaded nor run, even when one is configured."""
    assert load_teacher(_net(4), tmp_path / "not_there.pt", required=False) is None
    _, path = _saved_teacher(tmp_path)
    teacher = load_teacher(_net(4), path)
    calls = []
    teacher.register_forward_hook(lambda *a: calls.append(1))
    trainer = _trainer(_net(1), _kd_loss(0.0, 0.0), teacher)
    assert trainer.teacher is None
    trainer.run()
    assert not calls and loss_terms(trainer.state.output)["loss_kd"] == 0.0


def test_smaller_student_with_adapter(tmp_path):
    _, path = _saved_teacher(tmp_path, init=4)
    student, adapter = _net(1, 2), FeatureAdapter(16, 32)
    w0 = adapter.conv.weight.detach().clone()
    _trainer(student, _kd_loss(), load_teacher(_net(4), path), adapter=adapter).run()
    assert not torch.equal(w0, adapter.conv.weight), "the adapter trains with the student"
    assert not any("adapter" in k or k.startswith("conv.") for k in student.state_dict()), "not part of the student"


def test_cached_logits_replace_the_teacher():
    batches = _batches(2)
    for b in batches:
        b["teacher_logits"] = torch.randn(1, 3, 16, 16, 16)
        b["teacher_logits"][..., :2] = 0.0  # voxels SpatialPadd added: all channels exactly 0
    originals = [b["teacher_logits"].clone() for b in batches]
    trainer = _trainer(_net(1), _kd_loss(feature_weight=0.0), None, loader=batches, cached_logits_key="teacher_logits")
    seen = []
    kd_forward = trainer.loss_function.kd_loss.forward
    trainer.loss_function.kd_loss.forward = lambda s, t, y=None: seen.append(t.clone()) or kd_forward(s, t, y)
    trainer.run()
    assert len(seen) == 2 and trainer.state.metrics["train_loss_kd"] > 0
    assert not any("teacher_logits" in b for b in batches), "taken out of the batch, never decollated"
    padded = seen[1][..., :2]
    floor = originals[1][..., 2:].flatten(2).min(2).values[..., None, None, None]
    assert torch.equal(padded, floor.expand_as(padded)), "padded voxels get each channel's lowest logit"


@pytest.mark.parametrize("fmt", ["plain", "model_key", "checkpoint_saver", "torchscript"])
def test_checkpoint_formats(tmp_path, fmt):
    torch.manual_seed(1)
    teacher = _net(4)
    path = tmp_path / f"t_{fmt}.pt"
    if fmt == "plain":
        torch.save(teacher.state_dict(), path)
    elif fmt == "model_key":
        torch.save({"model": teacher.state_dict()}, path)
    elif fmt == "checkpoint_saver":
        opt = torch.optim.Adam(teacher.parameters())
        torch.save({"model": teacher.state_dict(), "optimizer": opt.state_dict(), "trainer": {"epoch": 3}}, path)
    else:
        torch.jit.script(teacher.eval()).save(str(path))
    loaded = load_teacher(_net(4), path)
    x = torch.randn(1, 4, 16, 16, 16)
    assert torch.allclose(loaded(x), teacher.eval()(x), atol=1e-5)
    trainer = _trainer(_net(1), _kd_loss(feature_weight=0.0), loaded)
    trainer.run()
    assert trainer.state.metrics["train_loss_kd"] > 0


# ------------------------------------------------------------------------------------------------- bad input
def test_ill_missing_checkpoint(tmp_path):
    with pytest.raises(InputError, match=r"teacher checkpoint '.*nope.pt' does not exist"):
        load_teacher(_net(4), tmp_path / "nope.pt")


def test_ill_checkpoint_of_other_architecture(tmp_path):
    torch.save(_net(1).state_dict(), tmp_path / "one_channel.pt")  # a 1-modality network, not a teacher
    with pytest.raises(
        InputError,
        match=r"does not fit SegResNet: 1 shape mismatch\(es\), first convInit.conv.weight: "
        r"file \(4, 1, 3, 3, 3\) vs network \(4, 4, 3, 3, 3\)",
    ):
        load_teacher(_net(4), tmp_path / "one_channel.pt")


def test_ill_checkpoint_inside_student_output(tmp_path):
    _, path = _saved_teacher(tmp_path)
    with pytest.raises(InputError, match="lies in the student's output folder"):
        load_teacher(_net(4), path, protected_dirs=[tmp_path])


def test_ill_pickled_module_refused(tmp_path):
    torch.save(_net(4), tmp_path / "whole.pt")  # a pickled module: loading it would run code from the file
    with pytest.raises(InputError, match=r"is not a plain state dict .*convert it once"):
        load_teacher(_net(4), tmp_path / "whole.pt")


def test_ill_teacher_out_channels(tmp_path):
    _, path = _saved_teacher(tmp_path, out_channels=2)
    with pytest.raises(InputError, match="the teacher gives 2 output channels but the student gives 3"):
        _trainer(_net(1), _kd_loss(), load_teacher(_net(4, out_channels=2), path))


def test_ill_feature_channels_without_adapter(tmp_path):
    _, path = _saved_teacher(tmp_path, init=4)
    with pytest.raises(
        InputError,
        match=r"student features \(1, 16, 2, 2, 2\) do not match teacher features \(1, 32, 2, 2, 2\): the widths "
        r"differ, so pass the student's features through a FeatureAdapter",
    ):
        _trainer(_net(1, 2), _kd_loss(distance="l2"), load_teacher(_net(4, 4), path))


def test_ill_teacher_term_without_teacher():
    with pytest.raises(InputError, match="kd_weight or feature_weight > 0 but no teacher was given"):
        _trainer(_net(1), _kd_loss(), None)


def test_ill_cached_logits_with_feature_term():
    with pytest.raises(InputError, match="cached teacher outputs carry logits only, but feature_weight is 0.1"):
        _trainer(_net(1), _kd_loss(), None, cached_logits_key="teacher_logits")


def test_ill_cached_logits_missing_or_misshapen():
    trainer = _trainer(_net(1), _kd_loss(feature_weight=0.0), None, cached_logits_key="teacher_logits")
    with pytest.raises(InputError, match="the batch has no 'teacher_logits' tensor"):
        trainer.run()
    batches = _batches(1)
    batches[0]["teacher_logits"] = torch.randn(1, 2, 16, 16, 16)
    trainer = _trainer(_net(1), _kd_loss(feature_weight=0.0), None, cached_logits_key="teacher_logits", loader=batches)
    with pytest.raises(
        InputError, match=r"cached teacher logits have shape \(1, 2, 16, 16, 16\), the student's output \(1, 3,"
    ):
        trainer.run()


def test_ill_one_modality_batch(tmp_path):
    """MONAI Label hands one image per entry: the first batch stops with the line that says what to do."""
    _, path = _saved_teacher(tmp_path)
    trainer = _trainer(_net(1), _kd_loss(), load_teacher(_net(4), path), loader=_batches(1, channels=1))
    with pytest.raises(InputError, match=r"has 1 channel\(s\) .* MONAI Label's trainer hands the one image"):
        trainer.run()


def test_ill_arguments():
    with pytest.raises(ValueError, match=r"loss_function DiceLoss does not take DistillationLoss's arguments"):
        _trainer(_net(1), DiceLoss(sigmoid=True))
    with pytest.raises(ValueError, match=r"student_channels \[4\] must index a 4-channel image"):
        _trainer(_net(1), _kd_loss(0.0, 0.0), channel=4)


@pytest.mark.parametrize("steps", [0, -1, 1.5])
def test_ill_accumulation_steps(steps):
    """Checked in the trainer itself: MONAI 1.5's SupervisedTrainer (MONAI Label's) takes no accumulation_steps."""
    with pytest.raises(ValueError, match="accumulation_steps must be a positive integer"):
        _trainer(_net(1), _kd_loss(0.0, 0.0), None, accumulation_steps=steps)
