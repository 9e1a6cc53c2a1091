"""Cache the teacher's logits once per case, so that student training needs no teacher forward.

``python -m kd_components.tools.cache --teacher-ckpt bundles/teacher/models/model.pt --dataset-dir data/synthetic``

For every case of the chosen splits (default: training) the teacher runs as in its own validation: the four
modalities cropped to the brain (``CropForeground``, as in training), z-scored over the brain, sliding window of
``roi_size`` over the whole crop. The logits are pasted back on the case's full image grid (outside the brain:
each channel's lowest logit of the case, i.e. confidently "no tumour") and stored as float16 in a compressed
``.npz`` (``teacher_logits/<case>.npz``). A copy of the datalist, ``datalist_teacher_logits.json``, adds the key
``teacher_logits`` to those entries; the student bundle with ``configs/cached_teacher.json`` loads it as one more
key that goes through the same spatial transforms (crop, pad, random crop, flips) as image and label.

Files whose stored checkpoint digest matches are reused, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kd_components.errors import InputError, command
from kd_components.files import atomic_path, atomic_write_text, file_md5
from kd_components.resources import bundles_root

__all__ = ["CACHE_DATALIST", "cache_teacher_logits"]

CACHE_DATALIST = "datalist_teacher_logits.json"
TEACHER_TRAIN = bundles_root() / "teacher" / "configs" / "train.json"


def _rel(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def teacher_logits_full_grid(teacher, image, inferer) -> np.ndarray:
    """Teacher logits (C, X, Y, Z) on the grid of ``image`` (4, X, Y, Z, unnormalised), computed on its brain crop.

    Args:
        teacher: the teacher network in eval mode.
        image: the four modalities as loaded (channel first).
        inferer: a MONAI inferer (sliding window) called as ``inferer(batch, teacher)``.
    """
    import torch
    from monai.transforms import NormalizeIntensity
    from monai.transforms.utils import generate_spatial_bounding_box, is_positive

    start, end = generate_spatial_bounding_box(image, select_fn=is_positive, allow_smaller=True)
    crop = image[(slice(None),) + tuple(slice(s, e) for s, e in zip(start, end))]
    crop = NormalizeIntensity(nonzero=True, channel_wise=True)(crop)
    device = next(teacher.parameters()).device
    with torch.no_grad(), torch.autocast("cuda", enabled=device.type == "cuda"):
        logits = inferer(torch.as_tensor(crop)[None].float().to(device), teacher)
    logits = (logits[0] if not isinstance(logits, (list, tuple)) else logits[0][0]).float().cpu().numpy()
    full = np.empty((logits.shape[0], *image.shape[1:]), dtype=np.float32)
    full[:] = logits.reshape(logits.shape[0], -1).min(axis=1)[:, None, None, None]
    full[(slice(None),) + tuple(slice(s, e) for s, e in zip(start, end))] = logits
    return full


def cache_teacher_logits(
    teacher_ckpt: str | os.PathLike,
    dataset_dir: str | os.PathLike,
    data_list_file_path: str | os.PathLike | None = None,
    output: str | os.PathLike | None = None,
    splits: Sequence[str] = ("training",),
    config_files: Sequence[str | os.PathLike] = (),
    overrides: dict | None = None,
    device: str | None = None,
) -> Path:
    """Write the teacher's logits of every case in ``splits`` and the datalist that points at them.

    Args:
        teacher_ckpt: the teacher's weights.
        dataset_dir: the data folder (the bundles' ``dataset_dir``).
        data_list_file_path: the datalist (default ``<dataset_dir>/datalist.json``).
        output: folder for ``teacher_logits/`` and the new datalist (default ``dataset_dir``, i.e. beside the
            datalist); the new datalist's paths stay relative to ``dataset_dir`` where they can.
        splits: datalist splits to cache.
        config_files: teacher overlays the checkpoint was trained with (e.g. ``configs/unet.json``).
        overrides: ``{id: value}`` for the teacher config (e.g. ``{"roi_size": [96, 96, 96]}``).
        device: ``cpu`` or ``cuda:0`` (default: CUDA when available).

    Returns:
        the path of the written datalist.

    Raises:
        InputError: missing data, datalist, split or checkpoint; weights that do not fit the teacher; an output
            folder that cannot be written.
    """
    import torch
    from monai.bundle import ConfigParser
    from monai.transforms import LoadImage

    from kd_components.data.datalist import load_datalist
    from kd_components.training.checkpoints import load_network

    t0 = time.time()
    base = Path(dataset_dir)
    datalist_path = Path(data_list_file_path) if data_list_file_path else base / "datalist.json"
    items = {split: load_datalist(datalist_path, split, base, allow_absent=True) for split in splits}
    lacking = [i.get("case", i["image"]) for its in items.values() for i in its if not all(i.get("present") or [True])]
    if lacking:
        raise InputError(
            f"{len(lacking)} case(s) of '{datalist_path}' lack sequences (e.g. '{lacking[0]}'): cached teacher logits "
            "need the four sequences of every case; distil online (the any student with a teacher trained with "
            "--allow_absent_sequences true)."
        )
    from kd_components.training.teacher import teacher_weights

    ckpt = Path(teacher_weights(teacher_ckpt))
    if not ckpt.is_file():
        raise InputError(f"--teacher-ckpt '{ckpt}' does not exist: train the teacher first or give its model.pt.")
    from kd_components.deploy.weights import SETTINGS_NAME, read_model_settings

    trained_at = (read_model_settings(ckpt.parent) or {}).get("pixdim")
    if trained_at is not None:
        raise InputError(
            f"--teacher-ckpt '{ckpt}' was trained at {trained_at} mm ({SETTINGS_NAME}): cached logits are written at "
            f"the images' own spacing only; distil from this teacher online (without configs/cached_teacher.json)."
        )
    out = Path(output) if output else base
    try:
        (out / "teacher_logits").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot write into '{out}' ({e.strerror}): pass --output with a writable folder.") from None

    parser = ConfigParser()
    parser.read_config([str(TEACHER_TRAIN), *[str(c) for c in config_files]])
    for key, value in (overrides or {}).items():
        parser[key] = value
    parser["device"] = device or ("cuda:0" if torch.cuda.is_available() else "cpu")
    teacher = parser.get_parsed_content("network_def", instantiate=True)
    teacher = load_network(teacher, ckpt, what="--teacher-ckpt").to(torch.device(parser["device"])).eval()
    inferer = parser.get_parsed_content("validate#inferer", instantiate=True)
    digest = file_md5(ckpt)
    loader = LoadImage(image_only=True, ensure_channel_first=True)

    content = json.loads(datalist_path.read_text())
    written = reused = 0
    for split in splits:
        for raw, item in zip(content[split], items[split]):
            name = raw.get("case") or Path(raw["label"]).parent.name
            target = out / "teacher_logits" / f"{name}.npz"
            if target.is_file():
                try:
                    with np.load(target) as z:
                        if str(z["checkpoint_md5"]) == digest and z["logits"].ndim == 4:
                            raw["teacher_logits"] = _rel(target, base)
                            reused += 1
                            continue
                except (OSError, KeyError, ValueError):
                    pass  # unreadable or stale: rewrite it
            image = loader(item["image"])
            logits = teacher_logits_full_grid(teacher, image, inferer)
            with atomic_path(target) as tmp:
                np.savez_compressed(tmp, logits=logits.astype(np.float16), checkpoint_md5=np.array(digest))
            raw["teacher_logits"] = _rel(target, base)
            written += 1
    content["teacher_logits"] = {
        "checkpoint": str(ckpt.resolve()),
        "checkpoint_md5": digest,
        "roi_size": parser.get_parsed_content("roi_size"),
        "dtype": "float16",
        "splits": list(splits),
    }
    new = atomic_write_text(out / CACHE_DATALIST, json.dumps(content, indent=4) + "\n")
    print(f"wrote {new} ({written} case(s) cached, {reused} reused) in {time.time() - t0:.1f} s")
    return new


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m kd_components.tools.cache", description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher-ckpt", required=True, help="the teacher's model.pt")
    p.add_argument("--dataset-dir", required=True, help="the data folder (the bundles' dataset_dir)")
    p.add_argument("--datalist", help="datalist JSON (default <dataset-dir>/datalist.json)")
    p.add_argument("--output", help="folder for teacher_logits/ and the new datalist (default: the dataset folder)")
    p.add_argument("--splits", nargs="+", default=["training"], help="datalist splits to cache (default training)")
    p.add_argument("--config-file", action="append", default=[], help="teacher overlay it was trained with")
    p.add_argument("--roi-size", type=int, nargs=3, help="sliding-window size (default: the teacher's roi_size)")
    p.add_argument("--device", help="cpu or cuda:0 (default: CUDA when available)")
    return p


@command
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cache_teacher_logits(
        args.teacher_ckpt,
        args.dataset_dir,
        args.datalist,
        args.output,
        args.splits,
        args.config_file,
        {"roi_size": args.roi_size} if args.roi_size else None,
        args.device,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
