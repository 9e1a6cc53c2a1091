"""The fast training pipeline's dataset: deterministic preprocessing cached once per case, in memory when it fits
the budget, else on disk uncompressed (MONAI's fast-training recipe; ``configs/fast_train.json``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from monai.data import CacheDataset, PersistentDataset
from monai.data.utils import json_hashing
from monai.transforms import Compose

from kd_components.errors import InputError

__all__ = ["cached_dataset", "estimate_case_bytes"]

logger = logging.getLogger("kd_components.data")

#: bytes cached per voxel of one case, on top of 4 bytes per image channel: 3 float32 label regions and the
#: int64 foreground and background indices of the crop sampler (every voxel is in one of them)
_EXTRA_BYTES_PER_VOXEL = 3 * 4 + 8


def estimate_case_bytes(item: dict, image_key: str = "image") -> int:
    """Upper bound of the bytes one case takes in the cache, from its image headers (no voxel is read).

    The brain crop makes the real size smaller; the bound is what the budget is checked against.
    """
    import nibabel as nib

    paths = item[image_key] if isinstance(item[image_key], (list, tuple)) else [item[image_key]]
    channels, voxels = 0, 0
    for p in paths:
        shape = nib.load(str(p)).shape
        voxels = max(voxels, int(np.prod(shape[:3])))
        channels += int(np.prod(shape[3:])) if len(shape) > 3 else 1
    return voxels * (4 * channels + _EXTRA_BYTES_PER_VOXEL)


def cached_dataset(
    data: Sequence[dict],
    transform: Compose,
    cache_dir: str | os.PathLike,
    memory_gib: float = 8.0,
    image_key: str = "image",
):
    """A dataset that runs ``transform``'s deterministic head once per case and keeps the result.

    In memory (``CacheDataset``, one caching thread, no copy per access: the transforms after the cache create new
    tensors) when the estimated size of all cases fits ``memory_gib``, else on disk in ``cache_dir``
    (``PersistentDataset``: uncompressed ``torch.save`` files keyed by the case and the transforms, so changed
    transforms never reuse stale files).

    Args:
        data: the datalist items.
        transform: the whole training transform; the cache ends at its first random transform (or
            ``ToDeviceUncachedd``).
        cache_dir: where the disk cache goes when memory does not suffice.
        memory_gib: the memory budget of the cache.
        image_key: key of the image paths, for the size estimate.

    Raises:
        InputError: a budget that is not a positive number.
    """
    try:
        budget = float(memory_gib) * 2**30
    except (TypeError, ValueError):
        budget = -1.0
    if not budget > 0:
        raise InputError(f"--cache_memory_gib {memory_gib!r}: give the memory budget of the cache in GiB (> 0).")
    data = list(data)
    need = estimate_case_bytes(data[0], image_key) * len(data) if data else 0
    if need <= budget:
        logger.info(f"caching {len(data)} case(s) in memory (at most {need / 2**30:.1f} GiB of {budget / 2**30:.1f})")
        return CacheDataset(data, transform, cache_rate=1.0, num_workers=1, copy_cache=False)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    logger.info(
        f"caching {len(data)} case(s) on disk in '{cache_dir}' (about {need / 2**30:.1f} GiB > the memory budget "
        f"{budget / 2**30:.1f} GiB; --cache_memory_gib raises it)"
    )
    return PersistentDataset(data, transform, cache_dir=cache_dir, hash_transform=json_hashing)
