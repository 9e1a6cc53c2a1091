"""Data tools: the synthetic BraTS-like phantom and BraTS datalists (``python -m kd_components.data --help``)."""

from __future__ import annotations

from kd_components.data.datalist import (
    CHANNEL_NAMES,
    MODALITY_ALIASES,
    TEACHER_CHANNELS,
    build_datalist,
    check_entry,
    find_cases,
    load_datalist,
    modality_index,
    write_datalist,
)
from kd_components.data.phantom import MODALITIES, PhantomCase, make_phantom_case, write_phantom
from kd_components.data.stack import stack_case

__all__ = [
    "CHANNEL_NAMES",
    "MODALITIES",
    "MODALITY_ALIASES",
    "TEACHER_CHANNELS",
    "PhantomCase",
    "build_datalist",
    "check_entry",
    "find_cases",
    "load_datalist",
    "make_phantom_case",
    "modality_index",
    "stack_case",
    "write_datalist",
    "write_phantom",
]
