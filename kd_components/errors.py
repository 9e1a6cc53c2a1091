"""The one error type for bad input: a single line that says what, where and how to fix it."""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable

__all__ = ["InputError", "command"]

#: terminal colour codes (torch puts some in its messages): never part of a one-line error
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class InputError(SystemExit):
    """Bad input found before any work starts.

    It derives from ``SystemExit`` on purpose: MONAI's config parser wraps every ``Exception`` raised while it
    evaluates an expression in a ``RuntimeError`` with a long traceback, and the user would have to dig the
    reason out of it. A ``SystemExit`` passes through untouched, so ``python -m monai.bundle run ...`` stops with
    exactly one line, ``error: <message>``, and exit status 1. Code that wants to handle it catches
    ``InputError`` (``except Exception`` does not).

    Args:
        message: what is wrong, where (file or setting) and how to fix it, on one line.
    """

    def __init__(self, message: str):
        self.message = " ".join(_ANSI.sub("", str(message)).split())
        super().__init__(f"error: {self.message}")

    def __str__(self) -> str:
        return self.message


def command(main: Callable[[list[str] | None], int | None]) -> Callable[[list[str] | None], int]:
    """Decorate a command's ``main(argv)``: an ``InputError`` becomes its one line on stderr and exit status 1.

    The one wrapper every ``python -m kd_components...`` command uses.

    Example::

        @command
        def main(argv: list[str] | None = None) -> int:
            args = parser.parse_args(argv)
            ...  # raise InputError("--data-dir 'x' does not exist: ...") on bad input
    """

    @functools.wraps(main)
    def wrapped(argv: list[str] | None = None) -> int:
        try:
            return int(main(argv) or 0)
        except InputError as e:
            print(e.code, file=sys.stderr)
            return 1

    return wrapped
