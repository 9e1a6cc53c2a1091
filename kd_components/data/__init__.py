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
from kd_components.data.phantom import PhantomCase, make_phantom_case, write_phantom
from kd_components.data.stack import stack_case

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
