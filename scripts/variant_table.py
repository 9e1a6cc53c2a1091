"""A table of ablation variants against the baseline and against a reference variant (the shipped recipe), Dice paired
by case (95% t-interval over cases, cases better), from the ablation's per-case tables of one split: the
literature-terms table of docs/results.md ("Distillation terms from the literature", test split) and the real
students' settings (validation split).

``python scripts/variant_table.py --runs runs/any_phantom --modality t1ce --variants voxel_mean_cwd,...``
``python scripts/variant_table.py --runs runs/real3mm_settings --split validation --variants voxel_mean_agree,...``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kd_components.tools.report import dice_cell, difference_cells, seed_evaluation


def evaluation(runs: Path, variant: str, modality: str, seed: int, split: str = "test") -> list[dict]:
    """``[{"seed", "rows"}]`` of one model's evaluation on ``split``, or ``[]`` when it has none."""
    return seed_evaluation(runs / variant / modality / f"seed{seed}", seed, split)


def table(
    runs: Path, modality: str, variants: list[str], reference: str = "voxel_mean", seed: int = 0, split: str = "test"
) -> str:
    """Markdown: the baseline, the reference and each variant, with Dice and the paired differences to both."""
    base = evaluation(runs, "baseline", modality, seed, split)
    ref = evaluation(runs, reference, modality, seed, split)
    lines = [
        f"| {modality}, seed {seed} | Dice ET / TC / WT | − baseline ET | TC | WT | − {reference} ET | TC | WT |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant in ["baseline", reference] + [v for v in variants if v not in ("baseline", reference)]:
        e = {"baseline": base, reference: ref}.get(variant) or evaluation(runs, variant, modality, seed, split)
        if not e:
            lines.append(f"| `{variant}` | (not run) | | | | | | |")
            continue
        dice = dice_cell(e)
        versus_ref = difference_cells(e, ref) if variant != "baseline" else difference_cells([], ref)
        lines.append(f"| `{variant}` | {dice} | {difference_cells(e, base)} | {versus_ref} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, required=True, help="the ablation's --output folder")
    ap.add_argument("--modality", default="t1ce")
    ap.add_argument("--variants", required=True, help="comma-separated variant names (folders under --runs)")
    ap.add_argument("--reference", default="voxel_mean", help="the variant the others are compared with too")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", default="test", choices=("test", "validation"), help="the evaluation to tabulate")
    args = ap.parse_args(argv)
    if not args.runs.is_dir():
        raise SystemExit(f"--runs {args.runs}: not a folder; give the ablation's --output folder.")
    print(table(args.runs, args.modality, args.variants.split(","), args.reference, args.seed, args.split))


if __name__ == "__main__":
    main()
