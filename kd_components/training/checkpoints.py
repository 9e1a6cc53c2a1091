"""Reading network weights safely: plain state dicts, ``{"model": ...}``, MONAI CheckpointSaver files, TorchScript."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from kd_components.errors import InputError
from kd_components.training.settings import as_bool

__all__ = ["is_torchscript", "last_checkpoint", "load_state_dict_file", "load_network", "resume_checkpoint"]


def is_torchscript(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a TorchScript archive (``torch.jit.save``), by its content rather than its name."""
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_state_dict_file(path: str | os.PathLike, what: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The state dict in ``path``, read with ``weights_only=True`` (no code from the file runs).

    Accepts a plain state dict, ``{"model": state_dict, ...}`` (MONAI ``CheckpointSaver`` with several objects,
    model-zoo ``model.pt``) or ``{"state_dict": ...}``.

    Raises:
        InputError: missing file, a pickled module or other content that is not a state dict.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} '{p}' does not exist: check the path.")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as e:
        raise InputError(
            f"{what} '{p}' is not a plain state dict ({type(e).__name__}: {str(e).splitlines()[0][:160]}); if it "
            f"pickles a whole network, convert it once in a trusted session: "
            f"torch.save(torch.load(path, weights_only=False).state_dict(), 'model.pt')."
        ) from None
    if isinstance(obj, dict):
        for key in ("model", "state_dict", "network"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"{what} '{p}' holds no state dict (expected tensors by parameter name, or under 'model').")
    return obj


def load_network(network: nn.Module, path: str | os.PathLike, what: str = "checkpoint") -> nn.Module:
    """Load weights from ``path`` into ``network`` strictly, or return the TorchScript module stored there.

    Raises:
        InputError: unreadable file, or weights that do not fit ``network`` (missing / unexpected keys and the
            first shape mismatches are named).
    """
    if is_torchscript(path):
        return torch.jit.load(str(path), map_location="cpu")
    state = load_state_dict_file(path, what)
    own = network.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs network {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append(f"{len(shapes)} shape mismatch(es), first {shapes[0]}")
        if missing:
            parts.append(f"{len(missing)} missing key(s), e.g. {missing[0]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[0]}")
        raise InputError(
            f"{what} '{path}' does not fit {type(network).__name__}: {'; '.join(parts)}. It was trained with another "
            f"architecture or channel count: point to a matching checkpoint or override the network definition."
        )
    network.load_state_dict(state)
    return network


def resume_checkpoint(ckpt_dir: str | os.PathLike, resume) -> str | None:
    """The checkpoint to resume from when ``resume`` is true (``--resume true`` arrives as a string), else None.

    Raises:
        InputError: ``resume`` is not a boolean, or true with no checkpoint to resume from.
    """
    return last_checkpoint(ckpt_dir) if as_bool(resume, "resume") else None


def last_checkpoint(ckpt_dir: str | os.PathLike, prefix: str = "last") -> str:
    """The newest interval checkpoint (``<prefix>_checkpoint_epoch=N.pt``) in ``ckpt_dir``, for ``--resume true``.

    Raises:
        InputError: no such checkpoint (nothing to resume from).
    """
    import re

    found = []
    for p in Path(ckpt_dir).glob(f"{prefix}_checkpoint_epoch=*.pt"):
        m = re.search(r"epoch=(\d+)\.pt$", p.name)
        if m:
            found.append((int(m.group(1)), p))
    if not found:
        raise InputError(
            f"--resume true but '{ckpt_dir}' holds no '{prefix}_checkpoint_epoch=N.pt' (one is written after every "
            f"epoch): start without --resume, or point --bundle_root / --ckpt_dir at the interrupted run."
        )
    return str(max(found)[1])
