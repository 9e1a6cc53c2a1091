"""Learning curves of a study: validation Dice per region against optimizer steps, KD beside the baseline.

``python -m kd_components.tools.curves --runs runs/ablation [--variants baseline,voxel_mean] [--output curves.png]``

Reads what every training already writes: the ``history`` of ``models/validation.json`` (one entry per validation)
and ``train/run_record.json`` (the command, from which the number of training items per epoch follows). Draws one
panel per (modality, region): each variant's mean over seeds with a band from the lowest to the highest seed, and
the teacher's own curve. Writes the curves as JSON beside the figure with, per run, whether it reached a plateau
by the stated rule: the mean Dice of the last ``--plateau-validations`` validations not above the best before them
by more than ``--plateau-delta``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from kd_components.errors import InputError, command
from kd_components.files import atomic_write_text
from kd_components.training.quality import RECORD_NAME, REGION_METRICS

__all__ = ["plateaued", "read_curve", "steps_per_epoch", "main"]


def _arg(cmd: list[str], name: str) -> str | None:
    flag = f"--{name}"
    for i, a in enumerate(cmd):
        if a == flag and i + 1 < len(cmd):
            return cmd[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def steps_per_epoch(run_record: dict) -> int | None:
    """Optimizer steps per epoch of a run, from its recorded command: training items (``training`` plus the
    ``--unlabelled_split`` items) over ``--batch_size`` (default 1). None when the datalist cannot be read."""
    cmd = [str(c) for c in run_record.get("command", [])]
    datalist = _arg(cmd, "data_list_file_path")
    if datalist is None:
        return None
    try:
        content = json.loads(Path(datalist).read_text())
    except (OSError, ValueError):
        return None
    n = len(content.get("training", []))
    extra = _arg(cmd, "unlabelled_split")
    if extra and extra not in ("None", "null"):
        n += len(content.get(extra, []))
    batch = int(_arg(cmd, "batch_size") or 1)
    return max(1, math.ceil(n / batch))


def read_curve(run: Path) -> dict | None:
    """``{"steps": [...], "ET": [...], "TC": [...], "WT": [...], "mean": [...]}`` of one run folder (the one holding
    ``models/`` and ``train/``), or None without a history."""
    try:
        history = json.loads((run / "models" / RECORD_NAME).read_text()).get("history") or []
        record = json.loads((run / "train" / "run_record.json").read_text())
    except (OSError, ValueError, AttributeError):
        return None
    per_epoch = steps_per_epoch(record)
    if not history or per_epoch is None:
        return None
    curve: dict = {"steps": [int(h["epoch"]) * per_epoch for h in history]}
    for region, metric in REGION_METRICS.items():
        curve[region] = [float(h.get(metric, math.nan)) for h in history]
    curve["mean"] = [float(h.get("val_mean_dice", math.nan)) for h in history]
    return curve


def plateaued(values: list[float], last: int = 3, delta: float = 0.005) -> bool:
    """Whether the last ``last`` values stay within ``delta`` of the best before them (not up by more than it)."""
    if len(values) <= last:
        return False
    return max(values[-last:]) <= max(values[:-last]) + delta


def _runs(root: Path, variants: list[str] | None) -> dict[str, dict[str, list[dict]]]:
    """``{variant: {modality: [curve per seed]}}`` of an ablation folder."""
    out: dict[str, dict[str, list[dict]]] = {}
    for models in sorted(root.glob(f"*/*/seed*/models/{RECORD_NAME}")):
        run = models.parent.parent
        variant, modality = run.parent.parent.name, run.parent.name
        if variants and variant not in variants:
            continue
        curve = read_curve(run)
        if curve is not None:
            curve["seed"] = run.name
            out.setdefault(variant, {}).setdefault(modality, []).append(curve)
    return out


def _draw(curves: dict, teacher: dict | None, output: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    modalities = sorted({m for by in curves.values() for m in by})
    regions = list(REGION_METRICS)
    fig, axes = plt.subplots(
        len(modalities), 3, figsize=(11, 3.0 * len(modalities)), squeeze=False, sharey=True, dpi=80
    )
    colours = {"baseline": "tab:grey"}
    palette = iter(["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:red"])
    for i, m in enumerate(modalities):
        for j, r in enumerate(regions):
            ax = axes[i][j]
            for variant, by in curves.items():
                runs = by.get(m, [])
                if not runs:
                    continue
                n = min(len(c["steps"]) for c in runs)
                steps = runs[0]["steps"][:n]
                values = np.array([c[r][:n] for c in runs])
                colour = colours.setdefault(variant, next(palette, "black"))
                ax.plot(steps, values.mean(0), color=colour, label=f"{variant} ({len(runs)} seed(s))")
                if len(runs) > 1:
                    ax.fill_between(steps, values.min(0), values.max(0), color=colour, alpha=0.2)
            if teacher is not None:
                ax.plot(teacher["steps"], teacher[r], color="black", linestyle="--", label="teacher (4 modalities)")
            ax.set_title(f"{m} {r}")
            ax.set_xlabel("optimizer steps")
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel("validation Dice")
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output)
    plt.close(fig)


@command
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m kd_components.tools.curves",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--runs", required=True, help="an ablation folder (teacher/, <variant>/<modality>/seedN/)")
    ap.add_argument("--variants", default=None, help="comma-separated variants to draw (default: all found)")
    ap.add_argument("--output", default=None, help="the figure (default: RUNS/curves.png; JSON beside it)")
    ap.add_argument("--title", default="validation Dice during training", help="the figure's title")
    ap.add_argument("--plateau-validations", type=int, default=3, help="plateau rule: last N validations (3)")
    ap.add_argument("--plateau-delta", type=float, default=0.005, help="plateau rule: not up by more than (0.005)")
    args = ap.parse_args(argv)
    root = Path(args.runs)
    if not root.is_dir():
        raise InputError(f"--runs '{root}' does not exist: give the --output folder of an ablation or study run.")
    variants = [v.strip() for v in args.variants.split(",")] if args.variants else None
    curves = _runs(root, variants)
    teacher = read_curve(root / "teacher")
    if not curves and teacher is None:
        raise InputError(
            f"--runs '{root}': no run with a validation history ({RECORD_NAME} with 'history', and "
            f"train/run_record.json) was found under it."
        )
    output = Path(args.output) if args.output else root / "curves.png"
    _draw(curves, teacher, output, args.title)

    def rule(c: dict) -> dict:
        return {
            "final_mean_dice": c["mean"][-1],
            "best_mean_dice": max(c["mean"]),
            "steps": c["steps"][-1],
            "plateau": plateaued(c["mean"], args.plateau_validations, args.plateau_delta),
        }

    summary = {
        "rule": f"plateau: the mean Dice of the last {args.plateau_validations} validations not above the best "
        f"before them by more than {args.plateau_delta}",
        "teacher": None if teacher is None else {**rule(teacher), "curve": teacher},
        "runs": {
            v: {
                m: [{"seed": c["seed"], **rule(c), "curve": {k: c[k] for k in ("steps", *REGION_METRICS)}} for c in cs]
                for m, cs in by.items()
            }
            for v, by in curves.items()
        },
    }
    atomic_write_text(output.with_suffix(".json"), json.dumps(summary, indent=4) + "\n")
    print(f"curves: {output} (and {output.with_suffix('.json').name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
