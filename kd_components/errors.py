"""The one error type for bad input: a single line that says what, where and how to fix it."""

from __future__ import annotations

__all__ = ["InputError"]


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
        self.message = " ".join(str(message).split())
        super().__init__(f"error: {self.message}")

    def __str__(self) -> str:
        return self.message
