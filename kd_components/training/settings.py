"""Checks of a bundle's settings, run by its ``initialize`` step so that bad values stop it with one line.

This is the config boundary: the library raises ``ValueError``; here the same checks become ``InputError``
naming the override to change.
"""

from __future__ import annotations

from kd_components import brats, options
from kd_components.errors import InputError
from kd_components.losses import KD_REGIONS, FeatureDistillationLoss

__all__ = ["as_bool", "check_distillation_settings", "student_channel"]


def check_distillation_settings(
    seg_weight: float,
    kd_weight: float,
    feature_weight: float,
    kd_temperature: float,
    kd_region: str = "tumour",
    feature_distance: str = "cosine",
    kd_balanced: bool = True,
    cached_logits_key: str | None = None,
) -> None:
    """Refuse distillation settings the loss could not use, naming the override to change.

    Raises:
        InputError: a negative or non-numeric weight, a temperature <= 0, an unknown region or distance, a
            ``kd_balanced`` that is not a boolean, the feature term with cached teacher logits (they hold no
            features).
    """
    for name, value in (("seg_weight", seg_weight), ("kd_weight", kd_weight), ("feature_weight", feature_weight)):
        try:
            ok = float(value) >= 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise InputError(f"--{name} {value!r}: a loss weight must be a number >= 0 (0 switches the term off).")
    try:
        ok = float(kd_temperature) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"--kd_temperature {kd_temperature!r}: the temperature must be a number > 0 (typically 1-4).")
    if kd_region not in KD_REGIONS:
        raise InputError(f"--kd_region {kd_region!r}: use one of {', '.join(KD_REGIONS)}.")
    if feature_distance not in FeatureDistillationLoss.DISTANCES:
        raise InputError(
            f"--feature_distance {feature_distance!r}: use one of {', '.join(FeatureDistillationLoss.DISTANCES)}."
        )
    as_bool(kd_balanced, "kd_balanced")
    if cached_logits_key is not None and float(feature_weight) > 0:
        raise InputError(
            f"cached teacher outputs carry logits only, but feature_weight is {feature_weight}: set "
            f"--feature_weight 0 with configs/cached_teacher.json, or distil online for the feature term."
        )


def as_bool(value, name: str) -> bool:
    """:func:`kd_components.options.as_bool` for a setting ``--name``.

    Raises:
        InputError: a value that is not a boolean, 0/1 or true/false/yes/no (any case).
    """
    try:
        return options.as_bool(value, name)
    except ValueError:
        raise InputError(f"--{name} is {value!r}: give true or false.") from None


def student_channel(modality: str) -> int:
    """The teacher-input channel of the student's modality (``--student_modality``).

    Raises:
        InputError: a name that is not a BraTS modality.
    """
    try:
        return brats.modality_index(modality)
    except ValueError as e:
        raise InputError(str(e)) from None
