"""Ignite handlers referenced by the bundles: the frozen teacher's inference, loss terms, a progress bar."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from ignite.engine import Engine, Events
from ignite.handlers import ProgressBar
from ignite.metrics import Metric
from torch import nn

from kd_components.checkpoints import load_network
from kd_components.engines import four_channel_message
from kd_components.errors import InputError
from kd_components.losses import DistillationLoss, FeatureHook

__all__ = ["TeacherInferenceHandler", "LossTermAverage", "EpochProgressBar"]


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


class TeacherInferenceHandler:
    """Runs the frozen teacher on each training batch and hands its logits and features to the loss.

    When built (as the bundle config is parsed, before anything else is built or written) it loads the teacher
    checkpoint (plain state dict, ``{"model": ...}``, a MONAI ``CheckpointSaver`` file, or TorchScript). At
    ``attach`` it freezes the teacher (``requires_grad_(False)``), moves it to the trainer's device and checks it
    against the data and the student with a probe forward pass: the teacher takes the four modalities, teacher
    and student give the same output channels, and their feature maps fit the feature loss. Then, at every
    ``ITERATION_STARTED``, it puts the teacher in eval mode, moves the batch's 4-channel image to the device (the
    student's ``prepare_batch`` then slices its channel from it) and runs the teacher under ``torch.no_grad()``
    (autocast on CUDA). It must come first in the trainer's handlers so that the loss has the teacher's outputs
    when the trainer calls it. The teacher is never wrapped in DDP.

    Args:
        teacher: the teacher network (its architecture; weights come from ``checkpoint``).
        checkpoint: path of the teacher's weights.
        loss: the ``DistillationLoss`` that receives the teacher outputs.
        feature_layer: name of the teacher module whose output is the feature map (used when the loss has a
            feature term), e.g. ``down_layers.3`` for SegResNet's bottleneck.
        student: the student network, for the probe checks.
        student_in_channels: channels the student receives (1 for one modality).
        num_modalities: channels of the dataset's image (4).
        probe_size: spatial size of the probe input (the training ``roi_size``).
        image_key: key of the image in the batch.
        amp: use autocast for the teacher on CUDA.
        protected_dirs: the student's output folders; a teacher checkpoint inside one is refused (student training
            would write next to or over it).

    Raises:
        InputError: at attach, for a missing or unfitting checkpoint, a checkpoint inside the student's output
            folders, or a teacher that does not fit the data or the student.
    """

    def __init__(
        self,
        teacher: nn.Module,
        checkpoint: str | os.PathLike,
        loss: DistillationLoss,
        feature_layer: str | None = "down_layers.3",
        student: nn.Module | None = None,
        student_in_channels: int = 1,
        num_modalities: int = 4,
        probe_size: Sequence[int] = (64, 64, 64),
        image_key: str = "image",
        amp: bool = True,
        protected_dirs: Sequence[str | os.PathLike] = (),
    ):
        self.teacher = teacher
        self.checkpoint = Path(checkpoint)
        self.loss = loss
        self.feature_layer = feature_layer
        self.student = student
        self.student_in_channels = int(student_in_channels)
        self.num_modalities = int(num_modalities)
        self.probe_size = tuple(int(s) for s in probe_size)
        self.image_key = image_key
        self.amp = amp
        self.protected_dirs = [Path(d) for d in protected_dirs]
        self.hook: FeatureHook | None = None
        self.device = torch.device("cpu")
        self.logger = logging.getLogger(self.__class__.__name__)
        if not self.checkpoint.is_file():
            raise InputError(
                f"teacher checkpoint '{self.checkpoint}' does not exist: pass --teacher_ckpt with the teacher's "
                f"models/model.pt (train it with bundles/teacher, or use model-zoo brats_mri_segmentation's)."
            )
        self._check_paths()
        # checked and loaded here, when the config is parsed, so that nothing else is built or written first
        self.teacher = load_network(self.teacher, self.checkpoint, "teacher checkpoint")
        if self.loss.needs_teacher_features and isinstance(self.teacher, torch.jit.ScriptModule):
            raise InputError(
                f"teacher checkpoint '{self.checkpoint}' is TorchScript, which gives logits only: set "
                f"--feature_weight 0, or use the teacher's state dict (models/model.pt) for the feature term."
            )

    # ------------------------------------------------------------------------------------------------ attach
    def attach(self, engine: Engine) -> None:
        self.device = torch.device(getattr(engine.state, "device", None) or "cpu")
        self.teacher.to(self.device).eval()
        for param in self.teacher.parameters():  # (TorchScript modules have no requires_grad_())
            param.requires_grad_(False)
        if self.loss.needs_teacher_features:
            try:
                self.hook = FeatureHook(self.teacher, self.feature_layer or "")
            except ValueError as e:
                raise InputError(f"teacher_feature_layer: {e}") from None
        self._probe()
        engine.add_event_handler(Events.ITERATION_STARTED, self)
        self.logger.info(f"teacher loaded from {self.checkpoint}, frozen, on {self.device}")

    def _check_paths(self) -> None:
        ckpt = self.checkpoint.resolve()
        for folder in self.protected_dirs:
            folder = folder.resolve()
            if _inside(ckpt, folder) or folder == ckpt.parent:
                raise InputError(
                    f"teacher checkpoint '{self.checkpoint}' lies in the student's output folder '{folder}': student "
                    f"training would write beside or over the teacher; copy the teacher elsewhere or change the "
                    f"student's --ckpt_dir / --output_dir."
                )

    def _probe(self) -> None:
        """One forward of teacher and student on zeros, to check channels before training starts."""
        x = torch.zeros(1, self.num_modalities, *self.probe_size, device=self.device)
        with torch.no_grad():
            try:
                t_out = self.teacher(x)
            except RuntimeError as e:
                raise InputError(
                    f"the teacher does not take the {self.num_modalities} modalities (T1c, T1, T2, FLAIR) as input "
                    f"({str(e).splitlines()[0][:200]}): check teacher_def and --teacher_ckpt."
                ) from None
            t_feat = self.hook.pop() if self.hook is not None else None
            if self.student is None:
                return
            was_training = self.student.training
            self.student.eval()
            try:
                s_out = self.student(x[:, : self.student_in_channels])
            finally:
                self.student.train(was_training)
            s_feat = self.loss.student_hook.pop() if self.loss.student_hook is not None else None
        t_out, s_out = _first(t_out), _first(s_out)
        if t_out.shape[1] != s_out.shape[1]:
            raise InputError(
                f"teacher '{self.checkpoint}' gives {t_out.shape[1]} output channels but the student gives "
                f"{s_out.shape[1]}: both must predict the same regions (TC, WT, ET)."
            )
        if t_feat is not None and s_feat is not None:
            try:
                with torch.no_grad():
                    self.loss.feature_loss.to(self.device)(s_feat, t_feat)
            except ValueError as e:
                raise InputError(f"feature distillation: {e}") from None

    # ------------------------------------------------------------------------------------------------ call
    def __call__(self, engine: Engine) -> None:
        batch = engine.state.batch
        image = batch[self.image_key]
        if image.shape[1] != self.num_modalities:
            raise InputError(four_channel_message(self.image_key, image.shape, self.num_modalities))
        image = image.to(self.device, non_blocking=True)
        batch[self.image_key] = image  # the student's prepare_batch slices its channel from the same tensor
        self.teacher.eval()
        with torch.no_grad(), torch.autocast("cuda", enabled=self.amp and self.device.type == "cuda"):
            logits = _first(self.teacher(image))
        features = self.hook.pop() if self.hook is not None else None
        self.loss.set_teacher_outputs(logits.float(), None if features is None else features.float())


def _first(out):
    """Networks with deep supervision return a list or stacked heads; distillation uses the main output."""
    if isinstance(out, (list, tuple)):
        return out[0]
    return out


class LossTermAverage(Metric):
    """Epoch mean of one term of a ``DistillationLoss`` (``loss_seg``, ``loss_kd``, ``loss_feat``).

    Reads the term from the loss object after each iteration, so it logs per-epoch statistics next to the
    trainer's other metrics without changing the engine's output.

    Args:
        loss: the loss whose ``last_terms`` are read.
        term: the term's name.
    """

    def __init__(self, loss: DistillationLoss, term: str, device: str | torch.device = "cpu"):
        self.loss, self.term = loss, term
        super().__init__(output_transform=lambda output: output, device=device)

    def reset(self) -> None:
        self._sum, self._count = 0.0, 0

    def update(self, output) -> None:
        if self.term in self.loss.last_terms:
            self._sum += self.loss.last_terms[self.term]
            self._count += 1

    def compute(self) -> float:
        return self._sum / self._count if self._count else float("nan")


class EpochProgressBar:
    """tqdm progress bar over the iterations of each epoch, showing the running loss.

    Ignite's ``ProgressBar`` takes its ``output_transform`` in ``attach``, which MONAI engines call with the
    engine only; this wrapper takes it in ``__init__`` so that a bundle config can set it.

    Args:
        output_transform: maps ``engine.state.output`` to the values shown (default: the ``loss`` of the batch).
        persist: keep the bar on screen after each epoch.
    """

    def __init__(self, output_transform: Callable | None = None, persist: bool = False):
        self.output_transform = output_transform or _loss_of
        self.persist = persist

    def attach(self, engine: Engine) -> None:
        bar = ProgressBar(persist=self.persist)
        bar.attach(engine, output_transform=self.output_transform, event_name=Events.ITERATION_COMPLETED)


def _loss_of(output) -> dict:
    out = output[0] if isinstance(output, list) else output
    return {"loss": float(out["loss"])} if isinstance(out, dict) and "loss" in out else {}
