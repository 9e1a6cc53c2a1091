"""Data tools: the synthetic BraTS-like phantom and BraTS datalists (``python -m kd_components.data --help``).

The BraTS facts themselves (modalities, channel order, conventions, regions) live in :mod:`kd_components.brats`.
"""

from __future__ import annotations

from kd_components.data.datalist import (
    BratsCase,
    build_datalist,
    build_datalist_from_split,
    check_entry,
    datalist_leaks,
    find_cases,
    load_datalist,
    load_training_items,
    read_split_file,
    write_datalist,
)

#: names of the modules the bundles' configs never need at run time, imported when first used (PEP 562), so that a
#: packaged bundle carries only the code its configs import (``kd_components.tools.package``)
_LAZY = {"PhantomCase": "phantom", "make_phantom_case": "phantom", "write_phantom": "phantom", "stack_case": "stack"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"kd_components.data.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'kd_components.data' has no attribute {name!r}")


__all__ = [
    "BratsCase",
    "PhantomCase",
    "build_datalist",
    "build_datalist_from_split",
    "check_entry",
    "find_cases",
    "load_datalist",
    "datalist_leaks",
    "load_training_items",
    "make_phantom_case",
    "read_split_file",
    "stack_case",
    "write_datalist",
    "write_phantom",
]
