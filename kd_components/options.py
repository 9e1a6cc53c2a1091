"""Parsing option values that reach the library from configs and command lines."""

from __future__ import annotations

__all__ = ["as_bool"]

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
