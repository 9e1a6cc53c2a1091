"""Record the official BraTS 2023+ metrics of the hand-made cases in ``tests/official_cases.py``.

Run with the official package in a side environment (it pulls panoptica, SimpleITK and pandas, which the project
does not need)::

    python3 -m venv .venv-brats-eval && .venv-brats-eval/bin/pip install brats-evaluation==0.0.10
    PYTHONPATH=tests .venv-brats-eval/bin/python scripts/record_official_metrics.py tests/data/brats_evaluation.json

It writes, per case and region (ET, TC, WT), the official global Dice and HD95 as computed by
``brats_evaluation``'s bundled ``gli`` configuration (panoptica), with the package versions, and the summary value
its ``metrics_parser`` puts in place of an infinite HD95.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path

import nibabel as nib
import numpy as np
from official_cases import cases
from panoptica import Panoptica_Evaluator


def _number(x):
    x = float(x)
    return "NaN" if math.isnan(x) else ("Infinity" if math.isinf(x) else x)


def main(output: str) -> None:
    config = str(files("brats_evaluation").joinpath("configs", "config_gli.yaml"))
    evaluator = Panoptica_Evaluator.load_from_config(config)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (ref, pred, spacing) in cases().items():
            affine = np.diag([*spacing, 1.0])
            nib.save(nib.Nifti1Image(ref, affine), f"{tmp}/ref.nii.gz")
            nib.save(nib.Nifti1Image(pred, affine), f"{tmp}/pred.nii.gz")
            groups = evaluator.evaluate(f"{tmp}/pred.nii.gz", f"{tmp}/ref.nii.gz")
            results[name] = {
                region.upper(): {
                    "dice": _number(groups[region].to_dict(True)["global_bin_dsc"]),
                    "hd95": _number(groups[region].to_dict(True)["global_bin_hd95"]),
                }
                for region in ("et", "tc", "wt")
            }
    record = {
        "tool": "brats-evaluation (bundled config 'gli'), global binary Dice and HD95 per region",
        "versions": {p: version(p) for p in ("brats-evaluation", "panoptica", "numpy", "scipy")},
        "summary_inf_hd95": 373,
        "results": results,
    }
    Path(output).write_text(json.dumps(record, indent=4) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main(sys.argv[1])
