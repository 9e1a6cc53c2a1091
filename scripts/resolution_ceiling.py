"""The Dice a perfect model could reach at a voxel size, scored as the bundles score: each case's 1-mm label regions
resampled to ``--pixdim`` (linear, as the images are), put back on the 1-mm grid by the bundles' own inversion
(``ResampleToPixdimd`` + ``Invertd``, linear), thresholded at 0.5 and scored against the 1-mm label. What is lost
here is lost to resolution alone, before any learning (docs/results.md, "Real BraTS 2018 cases").

``python scripts/resolution_ceiling.py --data-dir DIR --datalist DATALIST --split test --pixdim 3 2``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from monai.transforms import Compose, Invertd, LoadImaged

from kd_components.evaluation import region_metrics
from kd_components.transforms import BratsLabelToRegionsd, ResampleToPixdimd


def ceiling(label_path: str, pixdim: float) -> dict[str, float]:
    pre = Compose(
        [
            LoadImaged("label", ensure_channel_first=True, image_only=True),
            BratsLabelToRegionsd("label"),
            ResampleToPixdimd("label", pixdim),  # linear: the regions as soft masks, as a network's probabilities
        ]
    )
    d = pre({"label": label_path})
    reference = LoadImaged("label", ensure_channel_first=True, image_only=True)({"label": label_path})
    reference = BratsLabelToRegionsd("label")(reference)["label"]
    d["pred"] = d["label"].clone()
    back = Invertd("pred", transform=pre, orig_keys="label", nearest_interp=False)(d)["pred"]
    spacing = [float(v) for v in reference.pixdim]
    return region_metrics((back > 0.5).float(), reference, spacing)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--datalist", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--pixdim", type=float, nargs="+", default=[3.0, 2.0])
    args = ap.parse_args()
    torch.set_num_threads(1)
    items = json.loads(Path(args.datalist).read_text())[args.split]
    out = {}
    for mm in args.pixdim:
        rows = [ceiling(str(Path(args.data_dir) / it["label"]), mm) for it in items]
        out[f"{mm:g} mm"] = {k: round(sum(r[k] for r in rows) / len(rows), 4) for k in rows[0]}
        print(f"{mm:g} mm ({len(rows)} {args.split} cases):", json.dumps(out[f"{mm:g} mm"]), flush=True)


if __name__ == "__main__":
    main()
