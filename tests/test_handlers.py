"""TeacherInferenceHandler inside a real SupervisedTrainer, checkpoint formats, and its refusals."""

from __future__ import annotations

import copy

import pytest
import torch
from monai.engines import SupervisedTrainer
from monai.losses import DiceLoss
from monai.networks.nets import SegResNet

from kd_components.engines import SelectChannelsBatch
from kd_components.errors import InputError
from kd_components.handlers import LossTermAverage, TeacherInferenceHandler
from kd_components.losses import DistillationLoss, FeatureDistillationLoss, SigmoidKLDivLoss


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


def _batches(n=2, size=16):
    g = torch.Generator().manual_seed(0)
    return [
        {
            "image": torch.randn(1, 4, size, size, size, generator=g),
            "label": (torch.rand(1, 3, size, size, size, generator=g) > 0.6).float(),
        }
        for _ in range(n)
    ]


def _trainer(student, loss, handler, n_batches=1) -> SupervisedTrainer:
    """A CPU SupervisedTrainer feeding the student channel 0 of 4-channel batches; attaches ``handler``."""
    return SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=_batches(n_batches),
        network=student,
        optimizer=torch.optim.Adam(student.parameters()),
        loss_function=loss,
        prepare_batch=SelectChannelsBatch(0),
        train_handlers=[handler],
        amp=False,
    )


def _setup(tmp_path, student_init=4, teacher_init=4, ckpt=None, **handler_kw):
    torch.manual_seed(0)
    teacher_trained = _net(4, teacher_init)
    path = tmp_path / "teacher.pt" if ckpt is None else ckpt
    if ckpt is None:
        torch.save(teacher_trained.state_dict(), path)
    student = _net(1, student_init)
    loss = DistillationLoss(
        DiceLoss(sigmoid=True),
        SigmoidKLDivLoss(2.0),
        FeatureDistillationLoss("cosine", student_init * 8, teacher_init * 8),
        kd_weight=0.25,
        feature_weight=0.1,
        student=student,
        student_layer="down_layers.3",
    )
    handler = TeacherInferenceHandler(
        _net(4, teacher_init),
        path,
        loss,
        feature_layer="down_layers.3",
        student=student,
        probe_size=(16, 16, 16),
        **handler_kw,
    )
    params = list(student.parameters()) + list(loss.parameters())
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=_batches(),
        network=student,
        optimizer=torch.optim.Adam(params, 1e-2),
        loss_function=loss,
        prepare_batch=SelectChannelsBatch(0),
        train_handlers=[handler],
        key_train_metric={"kd": LossTermAverage(loss, "loss_kd")},
        amp=False,
    )
    return trainer, handler, teacher_trained, student, loss


def test_teacher_frozen_in_eval_and_unchanged(tmp_path):
    trainer, handler, teacher_trained, student, loss = _setup(tmp_path)
    before_student = copy.deepcopy(student.state_dict())
    modes = []

    @trainer.on(__import__("ignite").engine.Events.ITERATION_COMPLETED)
    def _record(engine):
        modes.append(handler.teacher.training)
        handler.teacher.train()  # even if something flips it, the handler puts it back in eval mode

    trainer.run()
    assert trainer.state.iteration == 2 and modes == [False, False]
    assert all(not p.requires_grad and p.grad is None for p in handler.teacher.parameters())
    for k, v in teacher_trained.state_dict().items():
        assert torch.equal(handler.teacher.state_dict()[k], v), f"teacher weight {k} changed"
    assert any(not torch.equal(before_student[k], v) for k, v in student.state_dict().items()), "student trained"
    assert loss.terms()["loss_kd"] > 0 and loss.terms()["loss_feat"] > 0
    assert trainer.state.metrics["kd"] > 0


def test_student_sees_its_channel_teacher_sees_four(tmp_path):
    trainer, handler, *_ = _setup(tmp_path)
    seen = {}

    def spy(name, forward):
        def wrapped(x):
            seen.setdefault(name, tuple(x.shape))
            return forward(x)

        return wrapped

    handler.teacher.forward = spy("teacher", handler.teacher.forward)
    trainer.network.forward = spy("student", trainer.network.forward)
    trainer.run()
    assert seen["teacher"][1] == 4 and seen["student"][1] == 1


def test_smaller_student_with_adapter(tmp_path):
    trainer, _, _, student, loss = _setup(tmp_path, student_init=2, teacher_init=4)
    assert loss.feature_loss.adapter is not None
    w0 = loss.feature_loss.adapter.weight.detach().clone()
    trainer.run()
    assert not torch.equal(w0, loss.feature_loss.adapter.weight), "the adapter trains with the student"
    assert not any(k.startswith("adapter") for k in student.state_dict()), "the adapter is not part of the student"


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
    student = _net(1)
    loss = DistillationLoss(DiceLoss(sigmoid=True), SigmoidKLDivLoss(), kd_weight=0.5)
    h = TeacherInferenceHandler(_net(4), path, loss, student=student, probe_size=(16, 16, 16))
    trainer = _trainer(student, loss, h)
    x = torch.randn(1, 4, 16, 16, 16)
    assert torch.allclose(h.teacher(x), teacher.eval()(x), atol=1e-5)
    trainer.run()
    assert loss.terms()["loss_kd"] > 0


# ------------------------------------------------------------------------------------------------- bad input
def test_ill_missing_checkpoint(tmp_path):
    with pytest.raises(InputError, match=r"teacher checkpoint '.*nope.pt' does not exist"):
        _setup(tmp_path, ckpt=tmp_path / "nope.pt")


def test_ill_checkpoint_of_other_architecture(tmp_path):
    torch.save(_net(1).state_dict(), tmp_path / "one_channel.pt")  # a 1-modality network, not a teacher
    with pytest.raises(
        InputError,
        match=r"does not fit SegResNet: 1 shape mismatch\(es\), first convInit.conv.weight: "
        r"file \(4, 1, 3, 3, 3\) vs network \(4, 4, 3, 3, 3\)",
    ):
        _setup(tmp_path, ckpt=tmp_path / "one_channel.pt")


def test_ill_checkpoint_inside_student_output(tmp_path):
    with pytest.raises(InputError, match="lies in the student's output folder"):
        _setup(tmp_path, protected_dirs=[tmp_path])


def test_ill_teacher_out_channels(tmp_path):
    teacher = _net(4, out_channels=2)
    torch.save(teacher.state_dict(), tmp_path / "t2.pt")
    student = _net(1)
    loss = DistillationLoss(DiceLoss(sigmoid=True), SigmoidKLDivLoss(), kd_weight=0.5)
    h = TeacherInferenceHandler(
        _net(4, out_channels=2),
        tmp_path / "t2.pt",
        loss,
        student=student,
        probe_size=(16, 16, 16),
    )
    with pytest.raises(InputError, match="gives 2 output channels but the student gives 3"):
        _trainer(student, loss, h)


def test_ill_pickled_module_refused(tmp_path):
    torch.save(_net(4), tmp_path / "whole.pt")  # a pickled module: loading it would run code from the file
    with pytest.raises(InputError, match=r"is not a plain state dict .*convert it once"):
        _setup(tmp_path, ckpt=tmp_path / "whole.pt")


def test_ill_feature_channels_without_adapter(tmp_path):
    torch.save(_net(4, 4).state_dict(), tmp_path / "t.pt")
    student = _net(1, 2)
    loss = DistillationLoss(
        DiceLoss(sigmoid=True),
        SigmoidKLDivLoss(),
        FeatureDistillationLoss("l2"),
        kd_weight=0.1,
        feature_weight=0.1,
        student=student,
        student_layer="down_layers.3",
    )
    h = TeacherInferenceHandler(_net(4, 4), tmp_path / "t.pt", loss, student=student, probe_size=(16, 16, 16))
    with pytest.raises(
        InputError,
        match=r"student features \(1, 16, 2, 2, 2\) do not match teacher features "
        r"\(1, 32, 2, 2, 2\)",
    ):
        _trainer(student, loss, h)
