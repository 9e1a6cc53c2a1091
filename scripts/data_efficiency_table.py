"""The data-efficiency table of docs/results.md ("Data efficiency on real cases"): students that saw the labels of a
fraction of the training cases (``--labelled-fraction``), against that fraction's baseline and the full-label one,
Dice paired by case (95% t-interval over cases, cases better), from the ablation's per-case test tables.

``python scripts/data_efficiency_table.py --full runs/real3mm --fraction runs/real3mm_quarter --modality t1ce``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kd_components.tools.report import dice_cell, difference_cells, seed_evaluation

#: (variant folder, row name) of the fraction's runs, after its baseline.
FRACTION_ROWS = (
    ("voxel_mean_unlabelled", "the rest through the teacher's outputs only (`voxel_mean_unlabelled`)"),
    ("voxel_mean_pseudo", "the rest with the teacher's map as label (`voxel_mean_pseudo`)"),
    ("pseudo_labels_only", "the rest with the teacher's map as label, no KD terms (`pseudo_labels_only`)"),
)


def evaluation(folder: Path, seed: int) -> list[dict]:
    """``[{"seed", "rows"}]`` of one model's test evaluation, or ``[]`` when it has none."""
    return seed_evaluation(folder / f"seed{seed}", seed)


def table(full: Path, fraction: Path, modality: str, seed: int, labelled: str, total: str) -> str:
    """The markdown table: full-label baseline and KD, the fraction's baseline, and its two KD options."""
    full_base = evaluation(full / "baseline" / modality, seed)
    part_base = evaluation(fraction / "baseline" / modality, seed)
    rows = [
        ("all labels, baseline", total, full_base),
        ("all labels, KD (shipped recipe)", total, evaluation(full / "voxel_mean" / modality, seed)),
        (f"{labelled} labelled, baseline", labelled, part_base),
    ] + [
        (f"{labelled} labelled + {name}", f"{labelled} (+ the rest)", evaluation(fraction / v / modality, seed))
        for v, name in FRACTION_ROWS
    ]
    lines = [
        f"| {modality}, seed {seed} | labelled | Dice ET / TC / WT | − fraction's baseline ET | TC | WT "
        "| − full-label baseline ET | TC | WT |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, n, runs in rows:
        if not runs:
            lines.append(f"| {name} | {n} | (not run) | | | | | | |")
            continue
        versus = f"{difference_cells(runs, part_base)} | {difference_cells(runs, full_base)}"
        lines.append(f"| {name} | {n} | {dice_cell(runs)} | {versus} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", type=Path, required=True, help="the full-label study's --output folder")
    ap.add_argument("--fraction", type=Path, required=True, help="the --labelled-fraction run's --output folder")
    ap.add_argument("--modality", default="t1ce")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--labelled", default="6", help="labelled training cases of the fraction (for the row names)")
    ap.add_argument("--total", default="26", help="training cases of the full-label study")
    args = ap.parse_args(argv)
    for folder in (args.full, args.fraction):
        if not folder.is_dir():
            raise SystemExit(f"{folder}: not a folder; give the ablation's --output folders (--full, --fraction).")
    print(table(args.full, args.fraction, args.modality, args.seed, args.labelled, args.total))


if __name__ == "__main__":
    main()
