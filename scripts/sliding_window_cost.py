"""What the faster inference setting costs in Dice, measured on the phantom (writes docs/inference_speed.md).

    python scripts/sliding_window_cost.py [--output docs/inference_speed.md] [--epochs 12]

Trains a teacher with the bundle's own config on a phantom, then evaluates it twice on the test split with
``evaluate.json`` (which scores the label map inference writes): with the inference configs' sliding window (a window
half the volume's size, overlap 0.5) and with one window over the whole volume and no overlap. The phantom is kept
small so that it runs on a 2-core CPU in minutes; the ratio of window to volume (64 of 96 voxels) is close to the
real setting's (128 of 240). Per-case paired differences and the time of each setting are reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEACHER = REPO / "bundles" / "teacher" / "configs"


def _workflow(files, run_id, **overrides):
    from monai.bundle import ConfigWorkflow

    wf = ConfigWorkflow(
        config_file=[str(TEACHER / f) for f in files],
        meta_file=str(TEACHER / "metadata.json"),
        logging_file=False,
        workflow_type="train" if run_id == "training" else "infer",
        run_id=run_id,
        **overrides,
    )
    wf.initialize()
    wf.run()
    return wf


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", default=str(REPO / "docs" / "inference_speed.md"))
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--cases", type=int, default=16)
    ap.add_argument("--shape", type=int, default=96)
    args = ap.parse_args(argv)

    from kd_components.data import write_phantom
    from kd_components.evaluation import read_per_case

    shape, window = args.shape, (args.shape * 2 // 3) // 16 * 16
    with tempfile.TemporaryDirectory(prefix="kd_sw_") as tmp:
        tmp = Path(tmp)
        write_phantom(tmp / "data", args.cases, (shape, shape, shape), seed=0, val_fraction=0.2, test_fraction=0.3)
        common = {"dataset_dir": str(tmp / "data"), "bundle_root": str(tmp / "teacher"), "device": "cpu"}
        common.update({"roi_size": [window] * 3, "num_workers": 0})
        _workflow(
            ["train.json"], "training", epochs=args.epochs, val_interval=args.epochs, learning_rate=2e-3, **common
        )
        settings = {
            f"window {window}^3, overlap 0.5 (the inference configs' kind)": {"inference_roi_size": [window] * 3},
            f"one window {shape}^3, overlap 0": {"inference_roi_size": [shape] * 3, "validate#inferer#overlap": 0.0},
        }
        rows, times = {}, {}
        for name, extra in settings.items():
            out = tmp / f"eval_{len(rows)}"
            t0 = time.perf_counter()
            _workflow(["train.json", "evaluate.json"], "evaluating", output_dir=str(out), **common, **extra)
            times[name] = time.perf_counter() - t0
            rows[name] = {r["case"]: r for r in read_per_case(out / "metrics_per_case.csv")}
    default, fast = list(rows)
    lines = [
        "# Faster inference: what one whole-volume window costs in Dice",
        "",
        f"Written by `python scripts/sliding_window_cost.py --epochs {args.epochs} --cases {args.cases} --shape "
        f"{args.shape}` on a 2-core CPU: a teacher trained {args.epochs} epochs on a {shape}^3 phantom with "
        f"{window}^3 crops, evaluated with `evaluate.json` (the label map inference writes) on "
        f"{len(rows[default])} test cases, once per setting.",
        "",
        "| region | Dice, " + default + " | Dice, " + fast + " | paired difference (mean, min, max) |",
        "|---|---|---|---|",
    ]
    for region in ("et", "tc", "wt"):
        a = [rows[default][c][f"dice_{region}"] for c in rows[default]]
        b = [rows[fast][c][f"dice_{region}"] for c in rows[default]]
        diff = [y - x for x, y in zip(a, b)]
        lines.append(
            f"| {region.upper()} | {statistics.mean(a):.4f} | {statistics.mean(b):.4f} | {statistics.mean(diff):+.4f} "
            f"({min(diff):+.4f}, {max(diff):+.4f}) |"
        )
    lines += [
        "",
        "Evaluation time (all test cases, including loading): "
        + "; ".join(f"{k}: {v:.1f} s" for k, v in times.items())
        + ".",
        "",
        'On real data the setting is `--inferer#roi_size "[240,240,160]" --inferer#overlap 0` for inference.json '
        '(and `--inference_roi_size "[240,240,160]" --validate#inferer#overlap 0` for evaluate.json); '
        "docs/benchmarks.md has its time on 240x240x155.",
        "",
    ]
    Path(args.output).write_text("\n".join(lines))
    print("\n".join(lines))
    print(json.dumps({"times_s": times}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
