"""Where the bundles are: in a checkout, the repository's ``bundles/``; in an installed package, the copy shipped
inside it (``kd_components/bundles/``, package data); ``KD_BUNDLES`` names another folder. The tools find the
teacher's and the student's configs through :func:`bundles_root` only, so ``pip install`` of the project (not
editable) runs the demo from any folder."""

from __future__ import annotations

import os
from pathlib import Path

from kd_components.errors import InputError

__all__ = ["BUNDLE_NAMES", "bundles_root", "checkout_root"]

#: the bundles every tool needs, by folder name
BUNDLE_NAMES = ("teacher", "student_kd")
_PACKAGE = Path(__file__).resolve().parent


def _complete(root: Path) -> bool:
    return all((root / name / "configs" / "train.json").is_file() for name in BUNDLE_NAMES)


def checkout_root() -> Path | None:
    """The repository this package runs from (its ``bundles/`` beside the package), or None when installed."""
    root = _PACKAGE.parent
    return root if _complete(root / "bundles") and (root / "pyproject.toml").is_file() else None


def bundles_root() -> Path:
    """The folder holding ``teacher/`` and ``student_kd/``.

    Raises:
        InputError: ``KD_BUNDLES`` set to a folder without both bundles, or none found (an installation without its
            package data), naming where it looked.
    """
    given = os.environ.get("KD_BUNDLES")
    if given:
        if not _complete(Path(given)):
            raise InputError(
                f"KD_BUNDLES '{given}' does not hold the bundles {', '.join(BUNDLE_NAMES)} (each with configs/"
                f"train.json): point it at a checkout's bundles/ folder, or unset it."
            )
        return Path(given).resolve()
    checkout = checkout_root()
    if checkout is not None:
        return checkout / "bundles"
    if _complete(_PACKAGE / "bundles"):
        return _PACKAGE / "bundles"
    raise InputError(
        f"the bundles are neither beside the package ('{_PACKAGE.parent / 'bundles'}') nor inside it "
        f"('{_PACKAGE / 'bundles'}'): reinstall kd-components from its repository, or set KD_BUNDLES to a checkout's "
        f"bundles/ folder."
    )
