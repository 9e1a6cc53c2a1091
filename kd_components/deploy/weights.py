"""What the weights need travels with them: ``model_settings.json`` beside ``model.pt``.

A SegResNet with GroupNorm segments well only with the window it was trained on: sliding a 128^3 window over a
brain cropped to about 64^3 pads most of each window with zeros, which shifts the normalisation statistics
(measured on the demo's student: Dice ET 0.107 / TC 0.024 / WT 0.116 at 128^3 against 0.840 / 0.330 / 0.703 at its
48^3 training window). A one-channel student also runs on any modality without complaint. So training writes, beside
its checkpoints, the window, the input channels and the student's modality; inference and evaluation read them:

- ``write_model_settings``, in both bundles' ``training`` list (rank 0), writes the file;
- ``trained_window``: the window to slide (``--roi_size`` unset: the trained one; set and different: used, with one
  warning line that names the Dice risk);
- ``trained_modality``: the student's modality (unset: the trained one; set and different: refused in one line by
  ``check_modality``, which evaluation runs too);
- ``trained_pixdim``: the voxel size the inputs were resampled to (``--pixdim`` unset: the trained one; set and
  different: refused in one line, since a network trained at 3 mm sees a 1-mm tumour three times too large).

Weights without the file (the model zoo's, or from before 0.6) keep the configs' defaults, said in one line.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from kd_components import subsets
from kd_components.errors import InputError
from kd_components.files import atomic_write_text
from kd_components.transforms import pixdim_setting

__all__ = [
    "SETTINGS_NAME",
    "check_channels",
    "check_modality",
    "read_model_settings",
    "require_weights",
    "trained_modality",
    "trained_pixdim",
    "trained_window",
    "write_model_settings",
]

logger = logging.getLogger("kd_components.weights")

#: the file beside ``model.pt``.
SETTINGS_NAME = "model_settings.json"
#: the window of weights without settings (the configs' default before the settings existed, and the zoo's).
DEFAULT_WINDOW = (128, 128, 128)


def _window(roi_size: Sequence[int] | int, name: str = "roi_size") -> list[int]:
    values = [int(roi_size)] * 3 if isinstance(roi_size, int) else [int(v) for v in roi_size]
    if len(values) != 3 or min(values) < 1:
        raise ValueError(f"{name} must be 3 sizes >= 1, got {roi_size!r}.")
    return values


def write_model_settings(
    ckpt_dir: str | os.PathLike,
    roi_size: Sequence[int],
    in_channels: int,
    modality: str | None = None,
    normalisation: str = "nonzero, channel-wise",
    pixdim: Sequence[float] | float | None = None,
    absent_sequences: bool = False,
) -> Path | None:
    """Write ``<ckpt_dir>/model_settings.json``: what inference needs to use these weights as trained.

    Args:
        ckpt_dir: where the training writes ``model.pt``.
        roi_size: the training crop (the window inference should slide).
        in_channels: the network's input channels.
        modality: the student's modality (canonical name); None for the four-channel teacher.
        normalisation: how the inputs were normalised (stated, for a reader).
        pixdim: the voxel size (mm) the inputs were resampled to; None: each image's own spacing.
        absent_sequences: whether training accepted cases with absent sequences (zero at their channels): a student
            distilled online from cases that lack sequences needs a teacher trained so.

    Returns:
        the file written, or None on a torchrun rank other than 0 (nothing written there).
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
        return None
    settings = {
        "roi_size": _window(roi_size),
        "in_channels": int(in_channels),
        "modality": subsets.canonical_student_modality(modality) if modality else None,
        "channels": subsets.input_channel_names(modality or None),
        "normalisation": normalisation,
        "pixdim": pixdim_setting(pixdim),
        "absent_sequences": bool(absent_sequences),
    }
    path = Path(ckpt_dir) / SETTINGS_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(settings, indent=4) + "\n")
    return path


def read_model_settings(ckpt_dir: str | os.PathLike) -> dict | None:
    """The settings beside the weights in ``ckpt_dir`` (None when there are none or they cannot be read)."""
    try:
        content = json.loads((Path(ckpt_dir) / SETTINGS_NAME).read_text())
    except (OSError, ValueError):
        return None
    return content if isinstance(content, dict) else None


def require_weights(ckpt_dir: str | os.PathLike, name: str = "model.pt") -> Path:
    """``<ckpt_dir>/model.pt``, refused in one line when it does not exist (before inference loads anything).

    Raises:
        InputError: no weights there, with where they usually are.
    """
    path = Path(ckpt_dir) / name
    if not path.is_file():
        raise InputError(
            f"no weights to segment with: '{path}' does not exist; pass --ckpt_dir with the folder of a trained "
            f"model.pt (after the README's demo: runs/demo/t1ce/seed0/kd/models for the student, runs/demo/teacher/"
            f"models for the teacher), or train the bundle first."
        )
    return path


def check_channels(ckpt_dir: str | os.PathLike, in_channels: int) -> int:
    """Refuse, before anything is loaded, weights trained with another number of input channels than the network
    this config builds (a teacher's ``--ckpt_dir`` given to the student's inference: the state dict would not load,
    deep in the run). Weights without ``model_settings.json`` (the model zoo's) are not checked here.

    Args:
        ckpt_dir: the folder of ``model.pt`` (and of ``model_settings.json`` when training wrote one).
        in_channels: the input channels of the network the config builds.

    Returns:
        ``in_channels``.

    Raises:
        InputError: the recorded channel count differs, with what the weights are.
    """
    settings = read_model_settings(ckpt_dir)
    trained = settings.get("in_channels") if settings else None
    if trained is not None and int(trained) != int(in_channels):
        what = f"the {settings['modality']} student" if settings.get("modality") else "the four-sequence teacher"
        raise InputError(
            f"--ckpt_dir '{ckpt_dir}' holds weights of {what} ({trained} input channel(s), {SETTINGS_NAME}) but this "
            f"config's network takes {in_channels}: use that model's bundle (a teacher: bundles/teacher; a student: "
            f"bundles/student_kd), or pass the models folder of the model you meant."
        )
    return int(in_channels)


def _bundle_window(ckpt_dir: str | os.PathLike) -> list[int] | None:
    """``inferer#roi_size`` of ``<bundle>/configs/inference.json`` for weights in ``<bundle>/models``, if a list."""
    path = Path(ckpt_dir)
    config = path.parent / "configs" / "inference.json"
    if path.name != "models" or not config.is_file():
        return None
    try:
        roi = json.loads(config.read_text()).get("inferer", {}).get("roi_size")
        return _window(roi) if isinstance(roi, list) else None
    except (OSError, ValueError, AttributeError):
        return None


def trained_window(ckpt_dir: str | os.PathLike, roi_size: Sequence[int] | int | None = None) -> list[int]:
    """The sliding window for the weights in ``ckpt_dir``.

    Args:
        ckpt_dir: the folder of ``model.pt`` (and of ``model_settings.json`` when training wrote one).
        roi_size: an explicit window (``--roi_size``), or None for the one the weights were trained with.

    Returns:
        ``roi_size`` when given (with a warning when it differs from the trained one); else the trained window;
        else (no settings) the window of the bundle's own ``configs/inference.json`` when the weights sit in a
        bundle's ``models/`` (the model zoo's ``brats_mri_segmentation``: 240x240x160, what its inference slides);
        else 128^3.
    """
    settings = read_model_settings(ckpt_dir)
    trained = _window(settings["roi_size"]) if settings and "roi_size" in settings else None
    if roi_size is None:
        if trained is None and (bundle_window := _bundle_window(ckpt_dir)) is not None:
            logger.info(
                f"no {SETTINGS_NAME} beside the weights in '{ckpt_dir}': sliding the window of their bundle's "
                f"configs/inference.json, {'x'.join(map(str, bundle_window))}"
            )
            return bundle_window
        if trained is None:
            logger.info(
                f"no {SETTINGS_NAME} beside the weights in '{ckpt_dir}': sliding the default window "
                f"{'x'.join(map(str, DEFAULT_WINDOW))}; pass --roi_size with the window the weights were trained on"
            )
            return list(DEFAULT_WINDOW)
        return trained
    window = _window(roi_size)
    if trained is not None and window != trained:
        logger.warning(
            f"--roi_size {'x'.join(map(str, window))} differs from the window the weights in '{ckpt_dir}' were "
            f"trained on ({'x'.join(map(str, trained))}): another window changes the normalisation statistics at the "
            f"padded borders and can lower Dice sharply; leave --roi_size unset to use the trained one"
        )
    return window


def check_modality(ckpt_dir: str | os.PathLike, modality: str | None) -> str | None:
    """Refuse a student modality other than the one the weights in ``ckpt_dir`` were trained on.

    Args:
        ckpt_dir: the folder of the weights (and of their ``model_settings.json``).
        modality: the modality asked for; None (the four-channel teacher) checks nothing.

    Returns:
        the canonical name of ``modality`` (None for None).

    Raises:
        InputError: an unknown name, or one that differs from the trained modality.
    """
    if modality is None:
        return None
    try:
        canonical = subsets.canonical_student_modality(modality)
    except ValueError as e:
        raise InputError(f"--student_modality: {e}") from None
    settings = read_model_settings(ckpt_dir)
    trained = settings.get("modality") if settings else None
    if trained is not None and canonical != trained:
        raise InputError(
            f"--student_modality {modality} but the weights in '{ckpt_dir}' were trained on {trained} "
            f"({SETTINGS_NAME}): a student runs on any scan of its channel count and segments the wrong one badly; "
            f"pass --student_modality {trained}, or the weights of a {canonical} student."
        )
    return canonical


def trained_modality(ckpt_dir: str | os.PathLike, modality: str | None = None) -> str:
    """The student's modality for the weights in ``ckpt_dir``: ``modality`` if given (checked), else the trained one
    (t1ce for weights without settings).

    Raises:
        InputError: as ``check_modality``.
    """
    if modality is not None:
        return check_modality(ckpt_dir, modality)
    settings = read_model_settings(ckpt_dir)
    trained = settings.get("modality") if settings else None
    if trained is None:
        logger.info(f"no trained modality recorded beside the weights in '{ckpt_dir}': assuming t1ce")
        return "t1ce"
    return str(trained)


def _mm(pixdim: Sequence[float] | None) -> str:
    return "each image's own spacing" if pixdim is None else "x".join(f"{v:g}" for v in pixdim) + " mm"


def trained_pixdim(ckpt_dir: str | os.PathLike, pixdim: Sequence[float] | float | None = None) -> list[float] | None:
    """The voxel size to resample inputs to for the weights in ``ckpt_dir``: the one they were trained at.

    Args:
        ckpt_dir: the folder of ``model.pt`` (and of ``model_settings.json`` when training wrote one).
        pixdim: an explicit voxel size (``--pixdim``), or None for the trained one.

    Returns:
        the trained voxel size (None: no resampling) when ``pixdim`` is None or equal to it; ``pixdim`` for weights
        without settings (the model zoo's).

    Raises:
        InputError: ``pixdim`` malformed, or different from the voxel size recorded beside the weights.
    """
    try:
        asked = pixdim_setting(pixdim)
    except ValueError as e:
        raise InputError(f"--pixdim: {e}") from None
    settings = read_model_settings(ckpt_dir)
    if not settings or "pixdim" not in settings:
        return asked
    trained = pixdim_setting(settings["pixdim"])
    if asked is not None and trained != asked:
        raise InputError(
            f"--pixdim {asked} but the weights in '{ckpt_dir}' were trained at {_mm(trained)} ({SETTINGS_NAME}): "
            f"at another voxel size every structure looks another size to the network; leave --pixdim unset to use "
            f"the trained one."
        )
    if trained is not None:
        logger.info(f"resampling inputs to {_mm(trained)} as the weights in '{ckpt_dir}' were trained")
    return trained
