"""Ignite handlers referenced by the bundles: the frozen teacher's inference, loss terms, a progress bar."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from ignite.engine import Engine, Events
from ignite.handlers import DiskSaver, ProgressBar
from ignite.metrics import Metric
from ignite.metrics.metric import reinit__is_reduced, sync_all_reduce
from monai.handlers import CheckpointLoader, CheckpointSaver
from torch import nn

from kd_components.checkpoints import load_network
from kd_components.engines import four_channel_message
from kd_components.errors import InputError
from kd_components.losses import DistillationLoss, FeatureHook

__all__ = [
    "TeacherInferenceHandler",
    "CachedTeacherHandler",
    "AtomicCheckpointSaver",
    "ResumeFromCheckpoint",
    "BestMetricState",
    "LossTermAverage",
    "EpochProgressBar",
]


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
        self.seconds: list[float] = []
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
        if isinstance(self.teacher, nn.Module) and not isinstance(self.teacher, torch.jit.ScriptModule):
            # channels-last 3D convolutions: about 1.8x faster teacher forwards on CPU (docs/benchmarks.md)
            self.teacher.to(memory_format=torch.channels_last_3d)
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
        start = time.perf_counter()
        with torch.no_grad(), torch.autocast("cuda", enabled=self.amp and self.device.type == "cuda"):
            logits = _first(self.teacher(image))
        features = self.hook.pop() if self.hook is not None else None
        self.loss.set_teacher_outputs(logits.float(), None if features is None else features.float())
        self.seconds.append(time.perf_counter() - start)  # the teacher's cost per iteration (the benchmark reads it)


class CachedTeacherHandler:
    """Hands the teacher logits cached in each batch (key ``teacher_logits``) to the loss: no teacher forward.

    The logits were written once per case by ``python -m kd_components.cache`` (the teacher's sliding window over
    the whole brain, float16) and went through the same spatial transforms as image and label (the key is in
    ``spatial_keys``), so they are aligned with the crop the student sees. Intensity augmentation is the
    difference from the online teacher: the cached logits saw the unaugmented image. Voxels that ``SpatialPadd``
    added (all channels exactly 0) get each channel's lowest logit, as the cache gives the background. Features
    are not cached, so
    the loss must have ``feature_weight`` 0. Attach it first, like ``TeacherInferenceHandler``.

    Args:
        loss: the ``DistillationLoss`` that receives the logits.
        key: batch key of the cached logits.
        out_channels: channels the logits must have (the student's outputs).

    Raises:
        InputError: a loss with a feature term (at construction); a batch without the key or with logits of
            another shape than the image (at each iteration).
    """

    def __init__(self, loss: DistillationLoss, key: str = "teacher_logits", out_channels: int = 3):
        if loss.needs_teacher_features:
            raise InputError(
                f"cached teacher outputs carry logits only, but feature_weight is {loss.feature_weight}: set "
                f"--feature_weight 0 with configs/cached_teacher.json, or distil online for the feature term."
            )
        self.loss, self.key, self.out_channels = loss, key, int(out_channels)
        self.device = torch.device("cpu")
        self.logger = logging.getLogger(self.__class__.__name__)

    def attach(self, engine: Engine) -> None:
        self.device = torch.device(getattr(engine.state, "device", None) or "cpu")
        engine.add_event_handler(Events.ITERATION_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        batch = engine.state.batch
        if self.key not in batch or isinstance(batch[self.key], (str, list)):
            raise InputError(
                f"the batch has no '{self.key}' tensor: the datalist must come from 'python -m kd_components.cache' "
                f"(pass its datalist as --data_list_file_path) and the transforms must load '{self.key}'."
            )
        logits = batch.pop(self.key)
        image = batch["image"]
        if logits.shape[1] != self.out_channels or logits.shape[2:] != image.shape[2:]:
            raise InputError(
                f"cached teacher logits have shape {tuple(logits.shape)}, the image {tuple(image.shape)}: "
                f"{self.out_channels} channels on the image's grid are needed; rewrite them with "
                f"'python -m kd_components.cache' for this datalist."
            )
        logits = logits.to(self.device, non_blocking=True).float()
        # SpatialPadd pads every key with 0, and a logit of 0 means p = 0.5: padded voxels (all channels exactly 0,
        # which a float16 logit of a real voxel practically never is) get each channel's lowest logit (background)
        padded = (logits == 0).all(dim=1, keepdim=True)
        if padded.any():
            floor = logits.flatten(2).min(dim=2).values[..., None, None, None]
            logits = torch.where(padded, floor, logits)
        self.loss.set_teacher_outputs(logits, None)


def _first(out):
    """Networks with deep supervision return a list or stacked heads; distillation uses the main output."""
    if isinstance(out, (list, tuple)):
        return out[0]
    return out


class _AtomicDiskSaver(DiskSaver):
    """Ignite's ``DiskSaver`` with ``atomic=True`` (temporary file, then rename) and readable permissions."""

    def __init__(self, dirname: str, filename: str | None = None):
        super().__init__(dirname=dirname, require_empty=False, atomic=True)
        self.filename = filename

    def __call__(self, checkpoint, filename: str, metadata=None) -> None:
        filename = self.filename or filename
        super().__call__(checkpoint=checkpoint, filename=filename, metadata=metadata)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(os.path.join(self.dirname, filename), 0o666 & ~umask)  # the temporary file was 0600

    def remove(self, filename: str) -> None:
        super().remove(filename=self.filename or filename)


class AtomicCheckpointSaver(CheckpointSaver):
    """MONAI's ``CheckpointSaver`` writing every file atomically: to a temporary file, then renamed.

    MONAI saves with ``atomic=False``, so a run killed while writing leaves a truncated ``model.pt``; here the old
    file stays whole until the new one is complete.

    Args:
        save_dir: folder of the checkpoints.
        save_dict: objects to save by name.
        save_engine_as: also save the engine it is attached to under this name (e.g. ``"trainer"`` for resuming:
            epoch and iteration), which a config cannot reference from inside the trainer's own handlers.
        kwargs: the other arguments of ``monai.handlers.CheckpointSaver``.
    """

    def __init__(self, save_dir: str, save_dict: dict, save_engine_as: str | None = None, **kwargs):
        self.save_engine_as = save_engine_as
        super().__init__(save_dir, save_dict, **kwargs)
        names = {
            "_final_checkpoint": kwargs.get("final_filename"),
            "_key_metric_checkpoint": kwargs.get("key_metric_filename"),
            "_interval_checkpoint": None,
        }
        for attr, filename in names.items():
            checkpoint = getattr(self, attr)
            if checkpoint is not None:
                checkpoint.save_handler = _AtomicDiskSaver(self.save_dir, filename)

    def attach(self, engine: Engine) -> None:
        if self.save_engine_as:
            self.save_dict[self.save_engine_as] = engine  # the Checkpoint objects hold this very dict
        super().attach(engine)


class ResumeFromCheckpoint:
    """Load the last interval checkpoint into the trainer's objects when ``checkpoint`` is given, else nothing.

    Wraps MONAI's ``CheckpointLoader`` (``weights_only=True``) at the trainer's ``STARTED`` event: network, optimizer,
    scheduler, the trainer's epoch and iteration, and the validator's best metric continue where they were.

    Args:
        checkpoint: the checkpoint file, or ``None`` (no resume).
        load_dict: the objects to restore, by the names they were saved under.
        map_location: device for the loaded tensors.
    """

    def __init__(self, checkpoint: str | os.PathLike | None, load_dict: dict, map_location=None):
        self.checkpoint = None if checkpoint in (None, "") else str(checkpoint)
        self.load_dict, self.map_location = load_dict, map_location
        self.logger = logging.getLogger(self.__class__.__name__)

    def attach(self, engine: Engine) -> None:
        if self.checkpoint is None:
            return
        load_dict = {**self.load_dict, "trainer": engine}
        CheckpointLoader(self.checkpoint, load_dict, map_location=self.map_location).attach(engine)
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        self.logger.info(f"resumed from '{self.checkpoint}' at epoch {engine.state.epoch}")


class BestMetricState:
    """The validator's best metric and its epoch as a state dict, so that a resumed run keeps its best model.

    Args:
        evaluator: the validation engine (``state.best_metric``, ``state.best_metric_epoch``).
    """

    def __init__(self, evaluator: Engine):
        self.evaluator = evaluator

    def state_dict(self) -> dict:
        state = self.evaluator.state
        return {"best_metric": float(state.best_metric), "best_metric_epoch": int(state.best_metric_epoch)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.evaluator.state.best_metric = float(state_dict["best_metric"])
        self.evaluator.state.best_metric_epoch = int(state_dict["best_metric_epoch"])


class LossTermAverage(Metric):
    """Epoch mean of one term of a ``DistillationLoss`` (``loss_seg``, ``loss_kd``, ``loss_feat``).

    Reads the term from the loss object after each iteration, so it logs per-epoch statistics next to the
    trainer's other metrics without changing the engine's output. Under torchrun the sums and counts of all ranks
    are added before the mean (Ignite's ``sync_all_reduce``), so every rank reports the same value.

    Args:
        loss: the loss whose ``last_terms`` are read.
        term: the term's name.
    """

    def __init__(self, loss: DistillationLoss, term: str, device: str | torch.device = "cpu"):
        self.loss, self.term = loss, term
        super().__init__(output_transform=lambda output: output, device=device)

    @reinit__is_reduced
    def reset(self) -> None:
        self._sum, self._count = 0.0, 0

    @reinit__is_reduced
    def update(self, output) -> None:
        if self.term in self.loss.last_terms:
            self._sum += self.loss.last_terms[self.term]
            self._count += 1

    @sync_all_reduce("_sum", "_count")
    def compute(self) -> float:
        return float(self._sum) / float(self._count) if self._count else float("nan")


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
