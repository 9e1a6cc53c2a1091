"""Batch preparation for the student: its one modality is sliced from the teacher's 4-channel batch."""

from __future__ import annotations

from collections.abc import Sequence

from monai.engines.utils import default_prepare_batch

__all__ = ["SelectChannelsBatch"]


class SelectChannelsBatch:
    """``prepare_batch`` for MONAI engines that feeds the network some channels of ``image``.

    The dataset keeps all four modalities (T1c, T1, T2, FLAIR), so the teacher and the student see the very
    same crop, flips and intensity augmentation; this callable hands the student its channel(s) only.

    Args:
        channels: channel index or indices kept (e.g. ``kd_components.data.modality_index("flair")``).

    Raises:
        ValueError: at call, a channel index outside the batch's channels.
    """

    def __init__(self, channels: int | Sequence[int]):
        self.channels = [int(channels)] if isinstance(channels, int) else [int(c) for c in channels]

    def __call__(self, batchdata, device=None, non_blocking: bool = False, **kwargs):
        image, label = default_prepare_batch(batchdata, device, non_blocking, **kwargs)
        if max(self.channels) >= image.shape[1]:
            raise ValueError(
                f"the batch's image has {image.shape[1]} channel(s) (shape {tuple(image.shape)}) but channel(s) "
                f"{self.channels} were asked for: the datalist must list the four modalities T1c, T1, T2, FLAIR."
            )
        return image[:, self.channels], label
