"""What a training run records about itself: seed, versions, command and the resolved configuration.

``record_run`` is called by the bundles' ``training`` id just before the trainer starts. It logs the seed and the
versions, and writes ``<output_dir>/run_record.json``: seed, versions, the command line, and the configuration as
the run resolved it (the config files merged in order, the command's overrides applied, `%` macros expanded) when
the run came from ``python -m monai.bundle run``. On torchrun ranks other than 0 it does nothing.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import platform
import sys
from pathlib import Path

__all__ = ["record_run", "versions"]

logger = logging.getLogger("kd_components.run")


def versions() -> dict[str, str]:
    """Versions of Python and the packages a run depends on."""
    import monai
    import numpy
    import torch

    import kd_components

    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "monai": monai.__version__,
        "numpy": numpy.__version__,
        "kd_components": kd_components.__version__,
        "cuda": torch.version.cuda or "none",
    }
    try:
        import ignite

        out["pytorch-ignite"] = ignite.__version__
    except ImportError:
        pass
    return out


def _value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def resolved_config_from_argv(argv: list[str]) -> dict | None:
    """The configuration of a ``python -m monai.bundle run ...`` command line, merged and with macros expanded."""
    from monai.bundle import ConfigParser

    if "--config_file" not in argv:
        return None
    args, i = {}, 0
    while i < len(argv):
        if argv[i].startswith("--") and i + 1 < len(argv):
            key, val = argv[i][2:], argv[i + 1]
            args[key.split("=")[0]] = _value(val)
            i += 2
        elif argv[i].startswith("--") and "=" in argv[i]:
            key, val = argv[i][2:].split("=", 1)
            args[key] = _value(val)
            i += 1
        else:
            i += 1
    files = args.pop("config_file")
    for k in ("meta_file", "logging_file", "args_file", "tracking"):
        args.pop(k, None)
    try:
        parser = ConfigParser(ConfigParser.load_config_files(files))
        for key, value in args.items():
            parser[key] = value
        parser.resolve_macro_and_relative_ids()
        return parser.get()
    except Exception as e:  # noqa: BLE001 - the record must never stop a run
        return {"error": f"could not resolve the configuration: {type(e).__name__}: {e}"}


def record_run(output_dir: str | os.PathLike, seed: int) -> Path | None:
    """Log seed and versions; write ``run_record.json`` into ``output_dir`` (rank 0 only). Returns its path."""
    from kd_components.files import atomic_write_text
    from kd_components.training.distributed import rank

    if int(os.environ.get("RANK", rank())) != 0:
        return None
    info = {"seed": seed, "versions": versions(), "command": [Path(sys.executable).name, *sys.argv]}
    logger.info(f"seed {seed}; " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    info["config"] = resolved_config_from_argv(sys.argv[1:])
    return atomic_write_text(Path(output_dir) / "run_record.json", json.dumps(info, indent=2, default=str) + "\n")
