"""Label transforms for both BraTS label conventions.

MONAI's ``ConvertToMultiChannelBasedOnBratsClassesd`` knows only the 2018-2021 labels (ET = 4) and yields a
bool tensor; these transforms accept 2018-2021 and 2023 labels (ET = 3), return float32 regions ready for
``DiceLoss(squared_pred=True)``, and turn predicted regions back into a label map in the dataset's convention.

Regions, channel order as in model-zoo ``brats_mri_segmentation``: TC = {1, ET}, WT = {1, 2, ET}, ET = {ET}.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, RandomizableTrait, Spacingd, ToDeviced

from kd_components.brats import ET_LABEL, LABEL_VALUES, name_convention
from kd_components.data.datalist import LABELLED_KEY

__all__ = [
    "FillAbsentd",
    "PresenceInputd",
    "listed_sequences",
    "named_sequences",
    "ResampleToPixdimd",
    "pixdim_setting",
    "ToDeviceUncachedd",
    "WithheldLabeld",
    "BratsLabelToRegionsd",
    "RegionsToBratsLabeld",
    "SmallEnhancingToCored",
    "small_enhancing_to_core",
    "labels_to_regions",
    "regions_to_labels",
    "source_name",
]

_ALLOWED = {**LABEL_VALUES, "auto": LABEL_VALUES["brats2021"] | LABEL_VALUES["brats2023"]}


def _check_convention(convention: str) -> str:
    if convention not in _ALLOWED:
        raise ValueError(f"label convention must be one of {sorted(_ALLOWED)}, got '{convention}'.")
    return convention


def labels_to_regions(label: torch.Tensor, convention: str = "auto", source: str = "label") -> torch.Tensor:
    """BraTS label map -> float32 region channels TC, WT, ET.

    Args:
        label: label map of shape (1, H, W, D) or (H, W, D).
        convention: ``brats2021`` (ET = 4), ``brats2023`` (ET = 3) or ``auto`` (ET is whichever of 3 and 4
            occurs; a map holding both is refused).
        source: name of the label's file, for error messages.

    Returns:
        (3, H, W, D) float32 tensor (TC, WT, ET), a ``MetaTensor`` when the input was one.

    Raises:
        ValueError: the map holds values outside the convention, or both 3 and 4 under ``auto``, or has more
            than one channel.
    """
    _check_convention(convention)
    lab = torch.as_tensor(label)
    if lab.ndim == 4:
        if lab.shape[0] != 1:
            raise ValueError(f"label '{source}' must have one channel, got shape {tuple(lab.shape)}.")
        lab = lab[0]
    lab = lab.round() if lab.is_floating_point() else lab
    if lab.numel() and 0 <= float(lab.min()) and float(lab.max()) <= 255:
        # a histogram of uint8 values, not a sort (torch.unique): 5-10x less of the loader's time per 3-D label
        lab = lab.to(torch.uint8)
        values = set(torch.nonzero(torch.bincount(lab.reshape(-1))).flatten().tolist())
    else:
        lab = lab.to(torch.int64)
        values = set(torch.unique(lab).tolist())
    bad = values - _ALLOWED[convention]
    if bad or (convention == "auto" and {3, 4} <= values):
        expect = "0, 1, 2, 4 (2018-2021) or 0, 1, 2, 3 (2023)" if convention == "auto" else sorted(_ALLOWED[convention])
        raise ValueError(
            f"label '{source}' holds values {sorted(values)}; expected {expect}: check that the file is a BraTS "
            f"segmentation in the datalist's label convention."
        )
    et_value = ET_LABEL.get(convention, 4 if 4 in values else 3)
    et = lab == et_value
    tc = (lab == 1) | et
    wt = tc | (lab == 2)
    out = torch.stack([tc, wt, et]).to(torch.float32)
    if isinstance(label, MetaTensor):
        out = MetaTensor(out, meta=label.meta, applied_operations=label.applied_operations)
    return out


def regions_to_labels(regions: torch.Tensor, convention: str = "brats2021") -> torch.Tensor:
    """Binary region channels TC, WT, ET -> BraTS label map in ``convention``.

    ET wins over TC and TC over WT, so predictions that are not nested still give one label per voxel; for
    nested regions the round trip through :func:`labels_to_regions` is exact.

    Args:
        regions: (3, H, W, D) binary (or probabilities thresholded at 0.5).
        convention: ``brats2021`` (ET written as 4) or ``brats2023`` (ET written as 3).

    Returns:
        (1, H, W, D) uint8 label map (a ``MetaTensor`` when the input was one).
    """
    if convention not in ET_LABEL:
        raise ValueError(f"output label convention must be one of {sorted(ET_LABEL)}, got '{convention}'.")
    reg = torch.as_tensor(regions)
    if reg.ndim != 4 or reg.shape[0] != 3:
        raise ValueError(f"regions must have shape (3, H, W, D) (TC, WT, ET), got {tuple(reg.shape)}.")
    reg = reg > 0.5
    lab = torch.zeros(reg.shape[1:], dtype=torch.uint8, device=reg.device)
    lab[reg[1]] = 2
    lab[reg[0]] = 1
    lab[reg[2]] = ET_LABEL[convention]
    out = lab[None]
    if isinstance(regions, MetaTensor):
        out = MetaTensor(out, meta=regions.meta, applied_operations=regions.applied_operations)
    return out


class BratsLabelToRegionsd(MapTransform):
    """Dictionary transform: BraTS label map (either convention) -> float32 TC, WT, ET channels.

    Args:
        keys: keys of the label maps.
        convention: ``auto`` (default), ``brats2021`` or ``brats2023``; see :func:`labels_to_regions`.
        convention_key: item key holding the case's convention (the datalist's ``label_convention``); when the
            item has it, it takes precedence over ``convention``.
        allow_missing_keys: don't raise when a key is absent.
    """

    def __init__(
        self,
        keys: KeysCollection,
        convention: str = "auto",
        convention_key: str | None = "label_convention",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.convention = _check_convention(convention)
        self.convention_key = convention_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        convention = d.get(self.convention_key, self.convention) if self.convention_key else self.convention
        for key in self.key_iterator(d):
            meta = getattr(d[key], "meta", {}) or {}
            d[key] = labels_to_regions(d[key], str(convention), str(meta.get("filename_or_obj", key)))
        return d


class RegionsToBratsLabeld(MapTransform):
    """Dictionary transform: binary TC, WT, ET channels -> BraTS label map (for inference output).

    Args:
        keys: keys of the region predictions, shape (3, H, W, D).
        convention: ``brats2021`` (ET = 4, default) or ``brats2023`` (ET = 3): the convention of the dataset;
            ``None``: each map follows its own input's file name (``CASE-t1c.nii.gz``: brats2023,
            ``CASE_t1ce.nii.gz``: brats2021, any other name: brats2021), read from the prediction's metadata
            (``filename_or_obj``) or, where the prediction has none, from ``source_key``'s.
        source_key: the item's image, whose file name is read when the prediction carries none.
        allow_missing_keys: don't raise when a key is absent.

    Raises:
        ValueError: an unknown convention.
    """

    def __init__(
        self,
        keys: KeysCollection,
        convention: str | None = "brats2021",
        source_key: str = "image",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        if convention is not None and convention not in ET_LABEL:
            raise ValueError(
                f"output label convention must be one of {sorted(ET_LABEL)} or None (follow the input's file name), "
                f"got '{convention}'."
            )
        self.convention = convention
        self.source_key = source_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            convention = self.convention or name_convention(source_name(d, key, self.source_key))
            d[key] = regions_to_labels(d[key], convention)
        return d


def source_name(data: Mapping[Hashable, Any], key: Hashable, source_key: Hashable = "image") -> str | None:
    """The input file an item's ``key`` came from: ``filename_or_obj`` of its metadata, else of ``source_key``'s
    (a list of files gives the first), else None."""
    for k in (key, source_key):
        value = data.get(k)
        meta = getattr(value, "meta", None) or data.get(f"{k}_meta_dict") or {}
        name = meta.get("filename_or_obj") if isinstance(meta, Mapping) else None
        if isinstance(name, (list, tuple)):
            name = name[0] if name else None
        if name:
            return str(name)
    return None


def _min_voxels(value: int) -> int:
    """``et_min_voxels`` checked once for the function and the transform."""
    if int(value) < 0:
        raise ValueError(f"et_min_voxels must be >= 0 voxels (0: no post-processing), got {value}.")
    return int(value)


def small_enhancing_to_core(regions: torch.Tensor, min_voxels: int) -> torch.Tensor:
    """The literature's ET post-processing: a predicted enhancing tumour of fewer than ``min_voxels`` voxels in
    total is relabelled as necrosis (tumour core without ET), as RFNet, mmFormer and DeMoSeg report ET.

    Args:
        regions: binary TC, WT, ET channels, shape (3, H, W, D).
        min_voxels: the threshold (RFNet: 500 at 1 mm^3 on 240x240x155); 0 leaves ``regions`` unchanged.

    Returns:
        the regions, ET emptied and its voxels kept in TC (and WT) when the ET volume is below the threshold.

    Raises:
        ValueError: a negative threshold, or not 3 channels.
    """
    min_voxels = _min_voxels(min_voxels)
    if regions.shape[0] != 3:
        raise ValueError(f"small_enhancing_to_core needs TC, WT, ET channels, got shape {tuple(regions.shape)}.")
    et = regions[2] > 0
    count = int(et.sum())
    if min_voxels == 0 or count == 0 or count >= min_voxels:
        return regions
    out = regions.clone()
    out[0] = torch.where(et, torch.ones_like(out[0]), out[0])  # necrosis is core
    out[1] = torch.where(et, torch.ones_like(out[1]), out[1])
    out[2] = torch.zeros_like(out[2])
    return out


class SmallEnhancingToCored(MapTransform):
    """Dictionary form of :func:`small_enhancing_to_core`, between thresholding and the label map.

    Args:
        keys: keys of the binary region predictions, shape (3, H, W, D).
        min_voxels: ET volumes below this many voxels become necrosis; 0 (the bundles' default) switches it off.
        allow_missing_keys: don't raise when a key is absent.

    Raises:
        ValueError: a negative ``min_voxels``.
    """

    def __init__(self, keys: KeysCollection, min_voxels: int = 0, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.min_voxels = _min_voxels(min_voxels)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = small_enhancing_to_core(d[key], self.min_voxels)
        return d


class WithheldLabeld(MapTransform):
    """Dictionary transform: an item whose label is withheld (``labelled: False``) gets an all-background label.

    Placed right after ``LoadImaged`` (which must allow the missing label), so items with and without labels go
    through the same crops and batches; every item leaves with ``labelled`` set, which the trainer passes to the
    loss so that the supervised term skips the withheld ones (they count through the teacher's outputs only). An
    item without a label that is not marked ``labelled: False`` is refused: a label that went missing by mistake
    never becomes a silent "no tumour".

    The crop sampler finds no foreground in a withheld label and samples its crop centres from the image instead;
    MONAI warns about that on every such crop, so that one warning is silenced.

    Args:
        keys: the label key(s).
        ref_key: the image key whose grid the empty label takes.
        flag_key: the item key that marks a withheld label.

    Raises:
        ValueError: at call, an item without its label that is not marked as withheld.
    """

    def __init__(self, keys: KeysCollection = "label", ref_key: str = "image", flag_key: str = LABELLED_KEY):
        super().__init__(keys, allow_missing_keys=True)
        self.ref_key, self.flag_key = ref_key, flag_key
        warnings.filterwarnings("ignore", message=r"Num foregrounds 0, Num backgrounds", category=UserWarning)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        withheld = d.get(self.flag_key, True) is False or str(d.get(self.flag_key)).lower() in ("false", "0")
        for key in self.keys:
            if withheld:
                ref = d[self.ref_key]
                empty = torch.zeros((1, *ref.shape[1:]), dtype=torch.uint8)
                d[key] = (
                    MetaTensor(empty, meta=dict(getattr(ref, "meta", {}) or {}))
                    if isinstance(ref, MetaTensor)
                    else empty
                )
            elif key not in d:
                raise ValueError(
                    f"case '{d.get('case', '?')}' has no '{key}' and is not marked '{self.flag_key}: false': give its "
                    f"label, or list it under the datalist's unlabelled split."
                )
        d[self.flag_key] = not withheld
        return d


def pixdim_setting(pixdim: Any) -> list[float] | None:
    """A voxel size setting, checked: None (keep each image's own spacing), one number (isotropic) or three, in mm.

    Args:
        pixdim: None, a number > 0, or a sequence of 3 numbers > 0 (``--pixdim "[3.0, 3.0, 3.0]"``).

    Returns:
        None, or the 3 sizes as floats.

    Raises:
        ValueError: anything else (a string, 2 or 4 sizes, a size <= 0), with the value given.
    """
    if pixdim is None:
        return None
    values = [pixdim] if isinstance(pixdim, (int, float)) and not isinstance(pixdim, bool) else pixdim
    try:
        sizes = [float(v) for v in values] if not isinstance(values, (str, bytes)) else []
    except (TypeError, ValueError):
        sizes = []
    if len(sizes) == 1:
        sizes = sizes * 3
    if len(sizes) != 3 or not all(v > 0 and v == v and v != float("inf") for v in sizes):
        raise ValueError(
            f"pixdim must be null (each image's own spacing), one voxel size in mm or three (e.g. [3.0, 3.0, 3.0]), "
            f"all > 0; got {pixdim!r}."
        )
    return sizes


class ResampleToPixdimd(Spacingd):
    """``Spacingd`` that is the identity when ``pixdim`` is None: the bundles' resolution setting in one transform.

    With a voxel size the images are resampled to it (``bilinear``; ``nearest`` for ``label_keys``: labels are never
    interpolated); with None nothing is resampled, nothing is recorded and ``inverse`` (as
    ``Invertd`` calls it to put a prediction back on its input's grid) changes nothing either. Orientation is kept
    (MONAI's ``Spacing`` with ``diagonal=False``).

    Args:
        keys: keys of the (C, H, W, D) tensors to resample.
        pixdim: None, or the output voxel size in mm (see :func:`pixdim_setting`).
        label_keys: the keys among ``keys`` that hold label maps or regions (nearest neighbour).
        allow_missing_keys: don't raise when a key is absent.
        kwargs: passed to ``Spacingd`` (e.g. ``align_corners``).

    Raises:
        ValueError: ``pixdim`` as :func:`pixdim_setting` refuses it.
    """

    def __init__(
        self,
        keys: KeysCollection,
        pixdim: Any = None,
        label_keys: KeysCollection = (),
        allow_missing_keys: bool = False,
        **kwargs: Any,
    ) -> None:
        self.target_pixdim = pixdim_setting(pixdim)
        keys = [keys] if isinstance(keys, (str, int)) else list(keys)
        labels = {label_keys} if isinstance(label_keys, (str, int)) else set(label_keys)
        mode = ["nearest" if k in labels else "bilinear" for k in keys]
        super().__init__(
            keys, pixdim=self.target_pixdim or 0.0, mode=mode, allow_missing_keys=allow_missing_keys, **kwargs
        )

    def __call__(self, data: Mapping[Hashable, Any], lazy: bool | None = None) -> dict[Hashable, Any]:
        if self.target_pixdim is None:
            return dict(data)
        # MONAI's Spacingd updates every item named "<key>_..." as a meta dict; a datalist's "label_convention" is a
        # string: set such items aside while resampling
        d = dict(data)
        aside = {
            k: d.pop(k)
            for k in list(d)
            if isinstance(k, str) and not isinstance(d[k], dict) and any(k.startswith(f"{key}_") for key in self.keys)
        }
        out = super().__call__(d, lazy=lazy)
        out.update(aside)
        return out

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        if self.target_pixdim is None:
            return dict(data)
        return super().inverse(data)


class ToDeviceUncachedd(ToDeviced, RandomizableTrait):
    """``ToDeviced`` that marks where a cache ends: everything before it is cached on the host, it and everything
    after it run per iteration, on ``device``.

    ``CacheDataset`` and ``PersistentDataset`` cache the transforms up to the first one with ``RandomizableTrait``;
    this transform carries the trait (it is not random) so that cached tensors stay in host memory or on disk and
    the random crops, flips and intensity changes after it run on the training device (MONAI's fast-training
    recipe). With ``device`` cpu it changes nothing.

    Args:
        keys: keys of the tensors to move.
        device: the training device.
        allow_missing_keys: don't raise when a key is absent.
        kwargs: passed to ``Tensor.to`` (e.g. ``non_blocking``).
    """


def listed_sequences(value: str | Sequence[str]) -> list[str]:
    """The canonical sequences of a ``modalities`` item, in its order: ``"flair+t1c"`` -> ``["flair", "t1ce"]``.

    Raises:
        ValueError: an unknown sequence name.
    """
    from kd_components.brats import COMBINATION_SEPARATOR, canonical_modality

    parts = [value] if isinstance(value, str) else list(value)
    return [canonical_modality(p) for v in parts for p in str(v).split(COMBINATION_SEPARATOR)]


def named_sequences(value: Any) -> list[str] | None:
    """The canonical sequences, in channel order, that a file name says (``CASE_flair.nii.gz``; a stacked
    ``CASE_t1ce+flair.nii.gz``), or a list of file names says together; None when a name says none."""
    from kd_components.brats import named_channels

    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        names = [named_sequences(v) for v in value]
        return None if not names or any(n is None for n in names) else [m for n in names for m in n]
    said = named_channels(value)
    return None if said == ["seg"] else said


class PresenceInputd(MapTransform):
    """The ``any`` student's input from the images a case has: their channels put at the teacher's channel of their
    sequence, the absent sequences zero, then the four presence maps (``kd_components.subsets.presence_input``);
    the identity for any other student, so one inference preprocessing serves every student.

    The sequences of the loaded channels are read, in channel order, from the item's ``modalities_key``
    (``"t1ce+flair"``, as ``kd_components.deploy.inference.student_datalist`` and a MONAI Label request's params
    give them), else from the image's file names (``CASE_flair.nii.gz``; a stacked file named by its sequences,
    ``CASE_t1ce+flair.nii.gz``, in its channels' order). Metadata and the transform history are kept, so ``Invertd``
    still puts the prediction back on the input's grid.

    Args:
        keys: the image key(s), ``(C, H, W, D)`` with one channel per given sequence.
        modality: the student's ``--student_modality``; anything but ``any`` makes this transform the identity.
        modalities_key: the item key that may list the image's sequences.
        allow_missing_keys: don't raise when a key is absent.

    Raises:
        ValueError: at call, sequences that cannot be told (neither listed nor in the file names), a sequence named
            twice, or a channel count other than the number of sequences (both printed).
    """

    def __init__(
        self,
        keys: KeysCollection,
        modality: str | None = None,
        modalities_key: str = "modalities",
        allow_missing_keys: bool = False,
    ) -> None:
        from kd_components.subsets import is_any

        super().__init__(keys, allow_missing_keys)
        self.active = is_any(modality)
        self.modalities_key = modalities_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        from kd_components.brats import CHANNEL_NAMES, TEACHER_CHANNELS, split_file_name
        from kd_components.subsets import keep_meta, place_channels, presence_input

        d = dict(data)
        if not self.active:
            return d
        for key in self.key_iterator(d):
            image = d[key]
            source = getattr(image, "meta", {}).get("filename_or_obj") if isinstance(image, MetaTensor) else None
            listed = d.get(self.modalities_key)
            by_name = named_sequences(d.get(f"{key}_path", source))
            names = listed_sequences(listed) if listed else by_name
            if listed and by_name is not None and len(by_name) == image.shape[0] and by_name != names:
                raise ValueError(
                    f"image '{source or key}': listed as {'+'.join(names)} but its name says {'+'.join(by_name)}: a "
                    "scan read as another sequence gives a wrong map; list the sequences its name says, or none."
                )
            if names is None:
                raise ValueError(
                    f"image '{source or key}': its sequences cannot be told; name each file by its sequence "
                    f"(CASE_t1ce.nii.gz, CASE-t2f.nii.gz; a stacked file CASE_t1ce+flair.nii.gz) or list them "
                    f"('{self.modalities_key}': 't1ce+flair', channel order)."
                )
            if len(set(names)) != len(names) or len(names) != image.shape[0]:
                raise ValueError(
                    f"image '{source or key}' has {image.shape[0]} channel(s) (shape {tuple(image.shape)}) for the "
                    f"sequences {'+'.join(names)}: give one channel per sequence, each sequence once."
                )
            full = place_channels(image, [TEACHER_CHANNELS.index(n) for n in names], len(TEACHER_CHANNELS))
            d[key] = keep_meta(presence_input(full, [m in names for m in TEACHER_CHANNELS]), image)
            logging.getLogger("kd_components.inference").info(
                "case '%s': segmenting from %s (absent: %s)",
                split_file_name(str(source))[0] if source else key,
                "+".join(CHANNEL_NAMES[n] for n in TEACHER_CHANNELS if n in names),
                ", ".join(CHANNEL_NAMES[n] for n in TEACHER_CHANNELS if n not in names) or "none",
            )
        return d


class FillAbsentd(MapTransform):
    """The four channels of a case that lacks some sequences: the loaded channels put at their teacher channels, the
    absent ones zero (a normalised image's mean), and ``present_key`` set to the four presence flags (a bool
    tensor) for the trainer's modality dropout and the ``any`` student's validation. A complete case (four
    channels, no flags) gets all four flags set; anything else passes unchanged (the trainer refuses it by name).

    Args:
        keys: the image key.
        present_key: the item key of the flags (``kd_components.data.datalist.PRESENT_KEY``: as the datalist
            loader writes it for an entry with null at an absent sequence).
        num_channels: the teacher's channels (4).
        allow_missing_keys: don't raise when a key is absent.

    Raises:
        ValueError: at call, flags whose count of present channels differs from the image's channels.
    """

    def __init__(
        self,
        keys: KeysCollection,
        present_key: str = "present",
        num_channels: int = 4,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.present_key, self.num_channels = present_key, int(num_channels)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        from kd_components.subsets import place_channels

        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            flags = d.get(self.present_key)
            if flags is None:
                if image.shape[0] == self.num_channels:
                    d[self.present_key] = torch.ones(self.num_channels, dtype=torch.bool)
                continue
            flags = [bool(f) for f in (flags.tolist() if isinstance(flags, torch.Tensor) else flags)]
            if len(flags) != self.num_channels or sum(flags) != image.shape[0]:
                raise ValueError(
                    f"case '{d.get('case', source_name(d, key) or '?')}': presence flags {flags} do not fit an image "
                    f"of shape {tuple(image.shape)}: give one flag per channel ({self.num_channels}), as many set "
                    f"as files loaded."
                )
            if image.shape[0] == self.num_channels:
                d[self.present_key] = torch.tensor(flags)
                continue
            channels = [c for c, f in enumerate(flags) if f]
            d[key], d[self.present_key] = place_channels(image, channels, self.num_channels), torch.tensor(flags)
        return d
