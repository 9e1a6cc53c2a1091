"""The distillation trainer: MONAI's ``SupervisedTrainer`` with the frozen teacher inside the iteration.

MONAI's own answer to several networks in one step is a trainer subclass (``GanTrainer``, ``AdversarialTrainer``);
this is one. Per iteration::

    prepare_batch (DistillationBatch) ──> image, label, and the per-case extras: cached teacher logits, labelled
          │                                and presence flags (MONAI's PrepareBatchExtraInput 4-tuple)
    4-channel batch ──> teacher (eval, no_grad)  ──> teacher logits, teacher features
          │                                                       │
          └─> the student's channel(s), or the any student's ──> student ──> logits, features ──> FeatureAdapter
              random subset with presence maps (student_input)
                                                          │
    loss_function(pred, label, teacher_logits, teacher_features, student_features)
       -> {"loss", "loss_seg", "loss_kd", "loss_feat"}  ──> engine.state.output

No handler order, no state shared between objects: the teacher's outputs reach the loss as arguments and the terms
come back in ``engine.state.output``, where stock metrics (``ignite.metrics.Average``) and handlers
(``TensorBoardStatsHandler`` with :func:`loss_terms`) read them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents, default_prepare_batch
from monai.utils import CommonKeys as Keys
from torch import nn

from kd_components.errors import InputError
from kd_components.networks import FeatureHook, main_output
from kd_components.training.batch import EXTRAS, DistillationBatch, check_modalities, missing_cache_message
from kd_components.training.settings import cached_features_message

__all__ = ["TERMS", "DistillationTrainer", "fill_padded_logits", "loss_terms"]

#: the loss terms each iteration puts into ``engine.state.output`` beside ``loss``.
TERMS = ("loss_seg", "loss_kd", "loss_feat")


def _cache_mismatch(logits_shape, other_shape, other: str) -> str:
    return (
        f"cached teacher logits have shape {tuple(logits_shape)}, {other} {tuple(other_shape)}: the student's output "
        f"channels on the image's grid are needed; rewrite them with 'python -m kd_components.tools.cache' for this "
        f"datalist."
    )


def fill_padded_logits(logits: torch.Tensor) -> torch.Tensor:
    """Cached teacher logits (BNHWD) as float32, padded voxels set to each channel's lowest logit (background).

    ``SpatialPadd`` pads every key with 0, and a logit of 0 means p = 0.5; padded voxels are those whose channels
    are all exactly 0, which a float16 logit of a real voxel practically never is.
    """
    logits = logits.float()
    padded = (logits == 0).all(dim=1, keepdim=True)
    if padded.any():
        floor = logits.flatten(2).min(dim=2).values[..., None, None, None]
        logits = torch.where(padded, floor, logits)
    return logits


def loss_terms(output) -> dict[str, float]:
    """``{"loss", "loss_seg", "loss_kd", "loss_feat", "loss_<term>"...}`` of an iteration's output (decollated or
    not), as floats: every ``loss`` entry, plugged-in terms included.

    Usable as the ``output_transform`` of ``TensorBoardStatsHandler`` / ``StatsHandler`` to log every term.
    """
    out = output[0] if isinstance(output, list) else output
    return {
        k: float(v)
        for k, v in out.items()
        if isinstance(k, str) and (k == Keys.LOSS or k.startswith("loss_")) and isinstance(v, (torch.Tensor, float))
    }


class _LossNeeds:
    """What a loss asks of the trainer, read from its attributes (absent: nothing): no check of its class, so any
    loss with ``DistillationLoss``'s call signature plugs in."""

    def __init__(self, loss: Any):
        import inspect

        signature = inspect.signature(getattr(loss, "forward", loss))
        # whether the loss takes both networks' named outputs (a DistillationLoss subclass written before the
        # plugged-in terms takes the six positional inputs only, and keeps working without them)
        self.takes_outputs = True
        try:
            signature.bind(*range(6), student_outputs=None, teacher_outputs=None)
        except TypeError:
            self.takes_outputs = False
        try:
            signature.bind(*range(6))
        except TypeError:
            raise ValueError(
                f"loss_function {type(loss).__name__} does not take DistillationLoss's arguments (pred, target, "
                f"teacher_logits, teacher_features, student_features, labelled[, student_outputs=, teacher_outputs=]): "
                f"wrap the supervised loss in kd_components.losses.DistillationLoss(seg_loss=...)."
            ) from None
        self.needs_teacher = bool(getattr(loss, "needs_teacher", False))
        self.needs_teacher_features = bool(getattr(loss, "needs_teacher_features", False))
        self.feature_weight = getattr(loss, "feature_weight", 0.0)
        self.student_layers = tuple(getattr(loss, "student_layers", ()))
        self.teacher_layers = tuple(getattr(loss, "teacher_layers", ()))


class DistillationTrainer(SupervisedTrainer):
    """``SupervisedTrainer`` that trains a student on some channels of the batch, distilled from a frozen teacher.

    The data loader yields the teacher's input (all ``num_modalities`` channels); teacher and student therefore see
    the very same crop, flips and intensity augmentation, and the student gets ``student_channels`` of it. With
    ``teacher=None`` and no cached logits the same trainer trains the baseline (same recipe, no teacher).

    Example (bundle config)::

        "trainer": {
            "_target_": "kd_components.training.DistillationTrainer",
            "teacher": "@teacher",
            "student_channels": "@student_channel",
            "student_feature_layer": "@feature_layer",
            "teacher_feature_layer": "@teacher_feature_layer",
            "feature_adapter": "@feature_adapter",
            "probe_size": "@roi_size",
            "loss_function": "@loss",
            ...  # every argument of SupervisedTrainer
        }

    Args:
        device, max_epochs, train_data_loader, network, optimizer: as ``SupervisedTrainer``; ``network`` is the
            student.
        loss_function: a loss like ``DistillationLoss``: called with the student's prediction, the targets, the
            teacher's logits and features, the labelled flags and both networks' outputs as dictionaries
            (``student_outputs``, ``teacher_outputs``: ``logits`` and the ``features`` of the modules named by its
            ``student_layers`` / ``teacher_layers``); returns a dict with ``loss`` and its terms. Its
            ``needs_teacher`` / ``needs_teacher_features`` say whether the teacher runs (absent: it does not).
        teacher: the frozen teacher (``kd_components.training.load_teacher``), or None (baseline, or cached logits).
            It is moved to ``device`` and never trained; it does not run when no teacher term has weight.
        student_channels: channel index or indices of the batch image the student sees.
        student_input: instead of ``student_channels``, a callable that makes the student's input from the
            ``num_modalities``-channel batch image (``BNHWD``), e.g. ``kd_components.subsets.ModalityDropout`` for
            the ``any`` student (a random subset per case, zeroed, plus presence maps); None: the channels sliced.
        num_modalities: channels every batch image must have (the teacher's input).
        student_feature_layer: student module whose output is its feature map (for ``feature_weight > 0``).
        teacher_feature_layer: the teacher's (idem).
        feature_adapter: maps the student's feature map to the teacher's width (``FeatureAdapter``); None for
            identity. Its parameters belong in the optimizer.
        cached_logits_key: batch key of cached teacher logits (``python -m kd_components.tools.cache``), used
            instead of a teacher forward; None for none.
        probe_size: spatial size of a zero probe that checks teacher and student before training (the training
            ``roi_size``); None skips the probe.
        kwargs: the other arguments of ``SupervisedTrainer`` (``amp``, ``inferer``, ``train_handlers``, ...).

    Raises:
        ValueError: a loss that does not take ``DistillationLoss``'s arguments, bad channel indices.
        InputError: a teacher term with weight but no teacher, a teacher and student that do not fit each other
            (output channels, feature maps: both shapes printed), the feature term with cached logits or a
            TorchScript teacher; at each iteration, a batch without ``num_modalities`` channels or without the
            cached logits.
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Any,
        network: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_function: Callable[..., dict[str, torch.Tensor]],
        teacher: nn.Module | None = None,
        student_channels: int | Sequence[int] = 0,
        num_modalities: int = 4,
        student_feature_layer: str | None = None,
        teacher_feature_layer: str | None = None,
        feature_adapter: nn.Module | None = None,
        cached_logits_key: str | None = None,
        probe_size: Sequence[int] | None = None,
        student_input: Callable[[torch.Tensor], torch.Tensor] | None = None,
        **kwargs: Any,
    ):
        channels = [int(student_channels)] if isinstance(student_channels, int) else [int(c) for c in student_channels]
        if not channels or min(channels) < 0 or max(channels) >= int(num_modalities):
            raise ValueError(f"student_channels {channels} must index a {num_modalities}-channel image.")
        # kept here, not passed on: only ``_step`` accumulates (MONAI 1.6's parent uses it only in the ``_iteration``
        # this class replaces, and MONAI 1.5's, MONAI Label's, takes no such argument)
        accumulation_steps = kwargs.pop("accumulation_steps", 1)
        if not isinstance(accumulation_steps, int) or accumulation_steps < 1:
            raise ValueError(f"accumulation_steps must be a positive integer, got {accumulation_steps!r}.")
        # the extras of each step (cached logits, labelled and presence flags) arrive through prepare_batch
        if kwargs.get("prepare_batch", default_prepare_batch) is default_prepare_batch:
            kwargs["prepare_batch"] = DistillationBatch(cached_logits_key)
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            train_data_loader=train_data_loader,
            network=network,
            optimizer=optimizer,
            loss_function=loss_function,
            **kwargs,
        )
        self.logger = logging.getLogger(self.__class__.__name__)
        self.accumulation_steps = accumulation_steps
        self.student_channels, self.num_modalities = channels, int(num_modalities)
        if student_input is not None and not callable(student_input):
            raise ValueError(f"student_input must be callable (image -> student input), got {type(student_input)}.")
        self.student_input = student_input
        self.cached_logits_key = cached_logits_key
        self.teacher_seconds: list[float] = []  # the teacher's cost per iteration (the benchmark reads it)
        loss = _LossNeeds(loss_function)
        if loss.needs_teacher_features and cached_logits_key is not None:
            raise InputError(cached_features_message(loss.feature_weight))
        if not loss.needs_teacher and teacher is not None:
            self.logger.info("no teacher term has weight (kd_weight = feature_weight = 0): the teacher does not run")
            teacher = None
        if loss.needs_teacher and teacher is None and cached_logits_key is None:
            raise InputError(
                "kd_weight or feature_weight > 0 but no teacher was given: pass --teacher_ckpt, use cached logits "
                "(configs/cached_teacher.json), or train the baseline (configs/baseline.json)."
            )
        if teacher is not None and loss.needs_teacher_features and isinstance(teacher, torch.jit.ScriptModule):
            raise InputError(
                "the teacher checkpoint is TorchScript, which gives logits only: set --feature_weight 0, or use the "
                "teacher's state dict (models/model.pt) for the feature term."
            )
        self.teacher = None if teacher is None else teacher.to(self.state.device)
        self.feature_adapter = None if feature_adapter is None else feature_adapter.to(self.state.device)
        self.student_hook = self.teacher_hook = None
        if loss.needs_teacher_features:
            try:
                self.student_hook = FeatureHook(network, student_feature_layer or "")
                if self.teacher is not None:
                    self.teacher_hook = FeatureHook(self.teacher, teacher_feature_layer or "")
            except ValueError as e:
                raise InputError(f"feature distillation (feature_layer / teacher_feature_layer): {e}") from None
        # the layers the plugged-in terms read, hooked by module path on each network
        self.loss_takes_outputs = loss.takes_outputs
        teacher_runs = self.teacher is not None and cached_logits_key is None
        if loss.teacher_layers and (not teacher_runs or isinstance(self.teacher, torch.jit.ScriptModule)):
            raise InputError(
                f"distillation terms read teacher layers {list(loss.teacher_layers)}, which cached logits and a "
                f"TorchScript teacher do not give: distil online from the teacher's state dict (models/model.pt)."
            )
        try:
            self.student_hooks = {p: FeatureHook(network, p) for p in loss.student_layers}
            self.teacher_hooks = {p: FeatureHook(self.teacher, p) for p in loss.teacher_layers}
        except ValueError as e:
            raise InputError(f"kd_terms: {e}") from None
        if probe_size is not None and self.teacher is not None:
            self._probe(tuple(int(s) for s in probe_size))

    # ------------------------------------------------------------------------------------------------ checks
    def _probe(self, size: tuple[int, ...]) -> None:
        """One forward of teacher and student on zeros, to check that they fit before training starts."""
        x = torch.zeros(1, self.num_modalities, *size, device=self.state.device)
        with torch.no_grad():
            try:
                t_out = main_output(self.teacher(x))
            except RuntimeError as e:
                raise InputError(
                    f"the teacher does not take the {self.num_modalities} modalities (T1c, T1, T2, FLAIR) as input "
                    f"({str(e).splitlines()[0][:200]}): check teacher_def and --teacher_ckpt."
                ) from None
            t_feat = self.teacher_hook.pop() if self.teacher_hook is not None else None
            t_named = self._named(t_out, self.teacher_hooks)
            was_training = self.network.training
            self.network.eval()
            try:
                s_out = main_output(self.network(self._student_view(x)))
            finally:
                self.network.train(was_training)
            s_feat = self.student_hook.pop() if self.student_hook is not None else None
            s_named = self._named(s_out, self.student_hooks)
            if t_out.shape[1] != s_out.shape[1]:
                raise InputError(
                    f"the teacher gives {t_out.shape[1]} output channels but the student gives {s_out.shape[1]}: both "
                    f"must predict the same regions (TC, WT, ET)."
                )
            if t_feat is not None and s_feat is not None:
                try:
                    self.loss_function.feature_loss(self._adapt(s_feat), t_feat)
                except ValueError as e:
                    raise InputError(f"feature distillation: {e}") from None
            # every plugged-in term once on the probe's outputs: a layer that gives nothing or maps that do not fit
            # stop the run here, in one line, not at the first iteration
            for term in getattr(self.loss_function, "active_terms", []):
                try:
                    term(s_named, t_named, torch.zeros_like(s_out), None)
                except (KeyError, ValueError, RuntimeError) as e:
                    cause = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
                    raise InputError(f"kd_terms: term '{term.name}' ({type(term).__name__}): {cause}") from None

    def _student_view(self, image: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        """The student's input from the teacher's (``BNHWD``): ``student_input`` of it (with the channels each case
        has, ``present``: ``B x N`` flags, for a datalist with absent sequences), or its channels.

        Raises:
            InputError: a case without some of the channels a dedicated student reads.
        """
        if self.student_input is not None:
            return self.student_input(image) if present is None else self.student_input(image, present)
        if present is not None and not bool(present[:, self.student_channels].all()):
            raise InputError(
                f"a training case lacks one of the student's channels {self.student_channels} (null in the datalist's "
                "'image'): only a --student_modality any student trains on cases with absent sequences."
            )
        return image[:, self.student_channels]

    def _adapt(self, features: torch.Tensor | None) -> torch.Tensor | None:
        if features is None or self.feature_adapter is None:
            return features
        return self.feature_adapter(features)

    # ------------------------------------------------------------------------------------------------ teacher
    def _teacher_outputs(
        self, engine: DistillationTrainer, extras: dict, image: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The teacher's logits and features for this batch: cached (from ``prepare_batch``), from a forward, or
        none."""
        if self.cached_logits_key is not None:
            return self._cached_logits(extras, image), None
        if self.teacher is None:
            return None, None
        self.teacher.eval()  # kept in eval mode every iteration, whatever flipped it
        start = time.perf_counter()
        with torch.no_grad(), torch.autocast("cuda", enabled=engine.amp and engine.state.device.type == "cuda"):
            logits = main_output(self.teacher(image))
        features = self.teacher_hook.pop() if self.teacher_hook is not None else None
        self.teacher_seconds.append(time.perf_counter() - start)
        return logits.float(), None if features is None else features.float()

    @staticmethod
    def _named(logits: torch.Tensor | None, hooks: dict[str, FeatureHook], detach: bool = False) -> dict | None:
        """A network's outputs for the plugged-in terms: ``{"logits", "features": {path: map}}``."""
        if logits is None:
            return None
        features = {p: h.pop() for p, h in hooks.items()}
        features = {p: (f.detach().float() if detach else f) for p, f in features.items() if f is not None}
        return {"logits": logits, "features": features}

    def _cached_logits(self, extras: dict, image: torch.Tensor) -> torch.Tensor:
        logits = extras.get("teacher_logits")
        if not isinstance(logits, torch.Tensor):  # a prepare_batch of one's own that hands no cache on
            raise InputError(missing_cache_message(self.cached_logits_key))
        if logits.shape[2:] != image.shape[2:]:
            raise InputError(_cache_mismatch(logits.shape, image.shape, "the image"))
        return fill_padded_logits(logits.to(image.device))

    # ------------------------------------------------------------------------------------------------ iteration
    def _iteration(self, engine: DistillationTrainer, batchdata: dict[str, torch.Tensor]) -> dict:
        """One step: teacher, student, loss with every term, backward and optimizer step (AMP, accumulation).

        The step after the forward mirrors ``SupervisedTrainer._iteration`` of the pinned MONAI (a test compares
        the two on the baseline, so a change upstream shows up as a failing test).

        Raises:
            ValueError: ``batchdata`` is None.
            InputError: a batch without the teacher's ``num_modalities`` channels.
        """
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        batch = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs)
        image, targets = batch[0], batch[1]
        args, kwargs = (batch[2], dict(batch[3])) if len(batch) == 4 else ((), {})
        # DistillationBatch's per-case inputs (a prepare_batch of one's own that gives none: no cache, all labelled,
        # every sequence present)
        extras = kwargs.pop(EXTRAS, None) or {}
        check_modalities(image, self.num_modalities)
        for hook in (*self.student_hooks.values(), *self.teacher_hooks.values()):
            hook.pop()  # maps kept by a forward outside this step (validation's sliding windows) are never handed on
        labelled = extras.get("labelled")
        teacher_logits, teacher_features = self._teacher_outputs(engine, extras, image)
        teacher_outputs = self._named(teacher_logits, self.teacher_hooks, detach=True)
        inputs = self._student_view(image, extras.get("present"))
        engine.state.output = {Keys.IMAGE: inputs, Keys.LABEL: targets}

        def _compute_pred_loss():
            pred = engine.inferer(inputs, engine.network, *args, **kwargs)
            engine.state.output[Keys.PRED] = pred
            engine.fire_event(IterationEvents.FORWARD_COMPLETED)
            if self.cached_logits_key is not None and teacher_logits.shape != main_output(pred).shape:
                raise InputError(_cache_mismatch(teacher_logits.shape, main_output(pred).shape, "the student's output"))
            student_features = self._adapt(self.student_hook.pop()) if self.student_hook is not None else None
            logits = main_output(pred)
            named = (
                {"student_outputs": self._named(logits, self.student_hooks), "teacher_outputs": teacher_outputs}
                if self.loss_takes_outputs
                else {}
            )
            terms = engine.loss_function(
                logits, targets, teacher_logits, teacher_features, student_features, labelled, **named
            )
            engine.state.output.update({k: v for k, v in terms.items() if k != Keys.LOSS})
            engine.state.output[Keys.LOSS] = terms[Keys.LOSS].mean()
            engine.fire_event(IterationEvents.LOSS_COMPLETED)

        self._step(engine, _compute_pred_loss)
        return engine.state.output

    @staticmethod
    def _step(engine: DistillationTrainer, compute: Callable[[], None]) -> None:
        """Forward, backward and optimizer step with gradient accumulation and AMP, as ``SupervisedTrainer``."""
        acc = engine.accumulation_steps
        should_zero_grad = should_step = True
        if acc > 1:
            local_iter = engine.state.iteration - 1
            if engine.state.epoch_length is not None:
                local_iter %= engine.state.epoch_length
                should_step = (local_iter + 1) % acc == 0 or (local_iter + 1) == engine.state.epoch_length
            else:
                should_step = (local_iter + 1) % acc == 0
            should_zero_grad = local_iter % acc == 0
        engine.network.train()
        if should_zero_grad:
            engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        if engine.amp and engine.scaler is not None:
            with torch.autocast("cuda", **engine.amp_kwargs):
                compute()
            loss = engine.state.output[Keys.LOSS]
            engine.scaler.scale(loss / acc if acc > 1 else loss).backward()
            engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
            if should_step:
                engine.scaler.step(engine.optimizer)
                engine.scaler.update()
        else:
            compute()
            loss = engine.state.output[Keys.LOSS]
            (loss / acc if acc > 1 else loss).backward()
            engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
            if should_step:
                engine.optimizer.step()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
