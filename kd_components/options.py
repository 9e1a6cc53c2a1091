"""Parsing option values that reach the library from configs and command lines."""

from __future__ import annotations

import math

__all__ = ["as_bool", "at_least"]

_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def as_bool(value, name: str = "value") -> bool:
    """A boolean from a config or the command line, where ``--flag false`` arrives as the string ``'false'``.

    Args:
        value: a bool, 0/1, or true/false/yes/no/on/off in any case.
        name: the setting's name, for the error message.

    Raises:
        ValueError: any other value (``bool('false')`` would be True, so strings are never taken by truthiness).
    """
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{name} is {value!r}: give true or false.")


def at_least(value, minimum: float, name: str = "value", strict: bool = False) -> float:
    """``value`` as a float that is >= ``minimum`` (> with ``strict``); strings from a command line are parsed.

    Raises:
        ValueError: not a number, NaN, or below the bound.
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (number > minimum if strict else number >= minimum):
        raise ValueError(f"{name} must be a number {'>' if strict else '>='} {minimum:g}, got {value!r}.")
    return number
