"""Data loading for the bundles: loaders whose failures stop the run with one line naming the case, and the fast
training pipeline's cache (deterministic preprocessing once per case, in memory when it fits the budget, else on
disk uncompressed: MONAI's fast-training recipe, ``configs/fast_train.json``)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.data import CacheDataset, DataLoader, PersistentDataset, ThreadDataLoader
from monai.data.thread_buffer import buffer_iterator
from monai.transforms import Compose
from torch.utils.data import Dataset as TorchDataset

from kd_components.errors import InputError

__all__ = [
    "CaseLoadError",
    "CheckedThreadDataLoader",
    "cached_dataset",
    "estimate_case_bytes",
    "one_line",
    "transform_settings_hash",
]

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
    return PersistentDataset(data, transform, cache_dir=cache_dir, hash_transform=transform_settings_hash)


def _settings(value: Any) -> Any:
    """``value`` if it is made of JSON scalars, lists and tuples (and dicts of them), else None."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        items = [_settings(v) for v in value]
        return items if all(i is not None or v is None for i, v in zip(items, value)) else None
    if isinstance(value, dict):
        items = {str(k): _settings(v) for k, v in value.items()}
        return items if all(items[str(k)] is not None or v is None for k, v in value.items()) else None
    return None


def transform_settings_hash(transforms: Sequence[Any]) -> bytes:
    """A key of the transforms' settings for ``PersistentDataset``: each transform's class and its plain attributes
    (numbers, strings, lists: ``keys``, ``pixdim``, ``spatial_size``, ...), so that a changed setting never reuses a
    cached file made with the old one (MONAI's ``json_hashing`` cannot encode transform objects and falls back to
    their class names, which miss a changed ``--pixdim``)."""
    described = []
    for t in transforms:
        attributes = {k: _settings(v) for k, v in sorted(vars(t).items()) if not k.startswith("_")}
        described.append([type(t).__qualname__, {k: v for k, v in attributes.items() if v is not None}])
    return hashlib.md5(json.dumps(described, sort_keys=True).encode()).hexdigest().encode()


class CaseLoadError(RuntimeError):
    """A case of a dataset could not be loaded; the message names it, its files and the cause, on one line."""


def one_line(text: str, limit: int = 240) -> str:
    """``text`` on one line, without terminal colour codes, at most ``limit`` characters."""
    text = InputError(text).message
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _root_cause(error: BaseException) -> BaseException:
    while error.__cause__ is not None or (error.__context__ is not None and not error.__suppress_context__):
        error = error.__cause__ or error.__context__
    return error


def _files(item) -> list[str]:
    if not isinstance(item, dict):
        return []
    out = []
    for key in ("image", "label", "teacher_logits"):
        value = item.get(key)
        if isinstance(value, (list, tuple)):
            out += [str(v) for v in value]
        elif isinstance(value, (str, os.PathLike)):
            out.append(str(value))
    return out


def _describe(files: list[str]) -> str:
    """`` (folder 'DIR': a.nii.gz, b.nii.gz)`` for files in one folder, else their paths."""
    if not files:
        return ""
    parents = {str(Path(f).parent) for f in files}
    if len(parents) == 1:
        return f" (folder '{parents.pop()}': {', '.join(Path(f).name for f in files)})"
    return f" (files: {', '.join(files)})"


class _CheckedDataset(TorchDataset):
    """``dataset`` whose failures name the case and its files (as ``CaseLoadError``)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        try:
            return self.dataset[index]
        except Exception as e:  # noqa: BLE001 - any failure while loading means the same to the user
            data = getattr(self.dataset, "data", None)
            item = data[index] if data is not None and isinstance(index, int) and index < len(data) else None
            case = item.get("case") if isinstance(item, dict) else None
            cause = _root_cause(e)
            raise CaseLoadError(
                f"case '{case or index}' could not be loaded{_describe(_files(item))}: "
                f"{one_line(f'{type(cause).__name__}: {cause}', limit=300)}; check these files (re-export a broken "
                f"one) or remove the case from the datalist"
            ) from e


class CheckedThreadDataLoader(ThreadDataLoader):
    """MONAI's ``ThreadDataLoader`` whose loading failures stop the run with one line naming the case and its files.

    MONAI's thread buffer ends the iteration quietly when its thread fails, so a broken case would shrink an epoch
    (or an evaluation would score the other cases and stop). Here any failure, in the buffer thread or in a worker
    process, reaches the engine as ``InputError``; the run stops before the epoch or the evaluation completes, and
    ``AtomicCheckpointSaver`` / ``RegionMetricsWriter`` write nothing for it.

    Args:
        dataset: the dataset (``CacheDataset``, ``Dataset`` ...).
        kwargs: the arguments of ``ThreadDataLoader`` (``batch_size``, ``num_workers``, ``sampler`` ...).
    """

    def __init__(self, dataset, **kwargs):
        super().__init__(_CheckedDataset(dataset), **kwargs)

    def __iter__(self):
        errors: list[BaseException] = []

        def source():
            try:
                yield from DataLoader.__iter__(self)
            except BaseException as e:  # noqa: BLE001, B036 - handed to the main thread below
                errors.append(e)

        yield from buffer_iterator(source(), self.buffer_size, self.buffer_timeout, self.repeats)
        if errors:
            error = errors[0]
            if isinstance(error, CaseLoadError):
                # from a worker process, torch re-raises the type with the worker's traceback in the message
                lines = [ln for ln in str(error).splitlines() if ln.strip()]
                text = lines[-1].split("CaseLoadError: ", 1)[-1] if lines else str(error)
                raise InputError(text) from None
            if isinstance(error, InputError):
                raise error
            raise InputError(f"loading data failed: {one_line(f'{type(error).__name__}: {error}')}") from None
