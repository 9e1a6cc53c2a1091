"""Batch preparation for the student's evaluators: its sequences sliced from the 4-channel batch
(``SelectChannelsBatch``), or, for the ``any`` student, one subset of them with the presence maps
(``SubsetInputBatch``)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from monai.engines.utils import default_prepare_batch

from kd_components import brats, subsets
from kd_components.data.datalist import PRESENT_KEY
from kd_components.errors import InputError

__all__ = ["SelectChannelsBatch", "SubsetInputBatch", "check_modalities", "four_channel_message"]


def four_channel_message(key: str, shape: Sequence[int], expected: int = 4) -> str:
    """The one-line explanation when a student's or teacher's batch lacks the four modalities."""
    return (
        f"the batch's '{key}' has {shape[1]} channel(s) (shape {tuple(shape)}), {expected} are needed (T1c, T1, T2, "
        f"FLAIR: the teacher sees all four and the student's channel is sliced from them): list the four modality "
        f"files per case in the datalist, or give one stacked 4-channel NIfTI per case ('python -m "
        f"kd_components.data stack'). MONAI Label's trainer hands the one image of each datastore entry, so its "
        f"datastore must hold stacked 4-channel images."
    )


def check_modalities(image, expected: int = 4, key: str = "image") -> None:
    """Refuse a batch image (BCHWD) without ``expected`` channels, with the one-line explanation.

    Raises:
        InputError: ``image.shape[1] != expected``.
    """
    if image.shape[1] != expected:
        raise InputError(four_channel_message(key, image.shape, expected))


class SelectChannelsBatch:
    """``prepare_batch`` for MONAI engines that feeds the network some channels of ``image``.

    The dataset keeps all four modalities (T1c, T1, T2, FLAIR), so the teacher and the student see the very
    same crop, flips and intensity augmentation; this callable hands the student its channel(s) only.

    Args:
        channels: channel index or indices kept (e.g. ``kd_components.brats.modality_index("flair")``).
        expected_channels: channels every batch must have (4: the teacher's input); ``None`` skips the check.

    Raises:
        ValueError: a negative channel index, or one not below ``expected_channels``.
        InputError: at call, a batch without ``expected_channels`` channels (e.g. MONAI Label's one-image entries).
    """

    def __init__(self, channels: int | Sequence[int], expected_channels: int | None = 4):
        self.channels = [int(channels)] if isinstance(channels, int) else [int(c) for c in channels]
        self.expected_channels = None if expected_channels is None else int(expected_channels)
        if not self.channels or min(self.channels) < 0:
            raise ValueError(f"channels must be non-negative indices, got {self.channels}.")
        if self.expected_channels is not None and max(self.channels) >= self.expected_channels:
            raise ValueError(f"channels {self.channels} do not exist in a {self.expected_channels}-channel image.")

    def __call__(self, batchdata, device=None, non_blocking: bool = False, **kwargs):
        image, label = default_prepare_batch(batchdata, device, non_blocking, **kwargs)
        if self.expected_channels is not None:
            check_modalities(image, self.expected_channels)
        if max(self.channels) >= image.shape[1]:
            raise InputError(four_channel_message("image", image.shape, max(self.channels) + 1))
        return image[:, self.channels], label


class SubsetInputBatch:
    """``prepare_batch`` for the ``any`` student's evaluators: the 4-channel batch as the ``any`` student's 8-channel
    input (``kd_components.subsets.presence_input``) with one subset of the sequences.

    Args:
        subset: the sequences given for every case (``"flair"``, ``"t1ce+flair"``); None: each case's fixed
            validation subset (``kd_components.subsets.case_subset`` of its image file name), so that a
            validation covers the subsets across cases and repeats the same inputs at every epoch.
        num_modalities: channels every batch must have (the teacher's input).

    Raises:
        ValueError: an unknown or empty subset name.
        InputError: at call, a batch without ``num_modalities`` channels.
    """

    def __init__(self, subset: str | Sequence[str] | None = None, num_modalities: int = 4):
        self.present = None if subset is None else subsets.subset_present(subset)
        self.num_modalities = int(num_modalities)

    @staticmethod
    def _names(batchdata, n: int) -> list[str]:
        image = batchdata.get("image") if isinstance(batchdata, dict) else None
        names = getattr(image, "meta", {}).get("filename_or_obj") if image is not None else None
        if isinstance(names, str):
            names = [names]
        if not names or len(names) != n:
            return [str(i) for i in range(n)]
        # the file's name, not its path: the same subset whatever folder the data sit in
        return [os.path.basename(str(x[0] if isinstance(x, (list, tuple)) else x)) for x in names]

    def __call__(self, batchdata, device=None, non_blocking: bool = False, **kwargs):
        image, label = default_prepare_batch(batchdata, device, non_blocking, **kwargs)
        check_modalities(image, self.num_modalities)
        has = batchdata.get(PRESENT_KEY) if isinstance(batchdata, dict) else None  # FillAbsentd's flags
        has = [[True] * image.shape[1]] * image.shape[0] if has is None else torch.as_tensor(has).bool().tolist()
        names = self._names(batchdata, image.shape[0])
        if self.present is not None:
            for n, h in zip(names, has):
                absent = [
                    brats.CHANNEL_NAMES[m] for m, p, c in zip(brats.TEACHER_CHANNELS, self.present, h) if p and not c
                ]
                if absent:
                    raise InputError(
                        f"case '{n}' lacks {', '.join(absent)}, a sequence of the subset asked for "
                        f"({subsets.subset_name([m for m, p in zip(brats.TEACHER_CHANNELS, self.present) if p])}): "
                        "score a subset on cases that have it."
                    )
            flags = [self.present] * image.shape[0]
        else:
            flags = [subsets.case_subset(n, h) for n, h in zip(names, has)]
        return subsets.presence_input(image, torch.tensor(flags, device=image.device)), label


def missing_cache_message(key: str) -> str:
    """The one line for a batch without its cached teacher logits (``DistillationBatch`` and the trainer)."""
    return (
        f"the batch has no '{key}' tensor: the datalist must come from 'python -m kd_components.tools.cache' (pass its "
        f"datalist as --data_list_file_path) and the transforms must load '{key}'."
    )


#: the keyword under which ``DistillationBatch`` hands the distillation step its per-case extras.
EXTRAS = "distillation_inputs"


class DistillationBatch:
    """``prepare_batch`` of ``DistillationTrainer``: the image and label as MONAI's ``default_prepare_batch`` gives
    them, and the per-case inputs the distillation step reads beside them, MONAI's ``PrepareBatchExtraInput`` way
    (a 4-tuple ``image, label, args, kwargs``): ``kwargs[EXTRAS]`` holds

    - ``teacher_logits``: cached teacher logits (``BNHWD``, ``python -m kd_components.tools.cache``), taken out of the
      batch so that the engine does not decollate them (and their transform history) every iteration; only with
      ``cached_logits_key``;
    - ``labelled``: which cases' labels may be used (``WithheldLabeld``'s flag; absent: all);
    - ``present``: which sequences each case has (``FillAbsentd``'s flags, ``B x 4``; absent: all).

    Args:
        cached_logits_key: the batch key of cached teacher logits; None: no cache.

    Raises:
        InputError: at call, ``cached_logits_key`` set and the batch without that tensor.
    """

    def __init__(self, cached_logits_key: str | None = None):
        self.cached_logits_key = cached_logits_key

    def __call__(self, batchdata, device=None, non_blocking: bool = False, **kwargs):
        from kd_components.data.datalist import LABELLED_KEY

        image, label = default_prepare_batch(batchdata, device, non_blocking, **kwargs)
        extras: dict = {}
        if isinstance(batchdata, dict):
            extras["labelled"] = batchdata.get(LABELLED_KEY)
            present = batchdata.get(PRESENT_KEY)
            extras["present"] = None if present is None else torch.as_tensor(present).bool().to(image.device)
            if self.cached_logits_key is not None:
                logits = batchdata.pop(self.cached_logits_key, None)
                if not isinstance(logits, torch.Tensor):
                    raise InputError(missing_cache_message(self.cached_logits_key))
                extras["teacher_logits"] = torch.as_tensor(logits).to(device=device, non_blocking=non_blocking)
        return image, label, (), {EXTRAS: extras}
