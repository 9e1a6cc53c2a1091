"""Checks of a bundle's settings, run by its ``initialize`` step so that bad values stop it with one line."""

from __future__ import annotations

from kd_components.errors import InputError
from kd_components.losses import REGIONS, FeatureDistillationLoss

__all__ = ["as_bool", "check_distillation_settings"]


def check_distillation_settings(
    seg_weight: float,
    kd_weight: float,
    feature_weight: float,
    kd_temperature: float,
    kd_region: str = "tumour",
    feature_distance: str = "cosine",
) -> None:
    """Refuse distillation settings the loss could not use, naming the override to change.

    Raises:
        InputError: a negative or non-numeric weight, a temperature <= 0, an unknown region or distance.
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
    if kd_region not in REGIONS:
        raise InputError(f"--kd_region {kd_region!r}: use one of {', '.join(REGIONS)}.")
    if feature_distance not in FeatureDistillationLoss.DISTANCES:
        raise InputError(
            f"--feature_distance {feature_distance!r}: use one of {', '.join(FeatureDistillationLoss.DISTANCES)}."
        )


def as_bool(value, name: str) -> bool:
    """A boolean setting from a config or the command line, where ``--flag false`` arrives as the string 'false'.

    Raises:
        InputError: a value that is not a boolean, 0/1 or true/false/yes/no (any case).
    """
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise InputError(f"--{name} is {value!r}: give true or false.")
