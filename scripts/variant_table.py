"""A table of ablation variants against the baseline and against a reference variant (the shipped recipe), Dice paired
by case (95% t-interval over cases, cases better), from the ablation's per-case tables of one split: the
literature-terms table of docs/results.md ("Distillation terms from the literature", test split) and the real
students' settings (validation split).

``python scripts/variant_table.py --runs runs/any_phantom --modality t1ce --variants voxel_mean_cwd,...``
``python scripts/variant_table.py --runs runs/real3mm_settings --split validation --variants voxel_mean_agree,...``
``python scripts/variant_table.py --runs runs/real3mm_settings --seeds 0,1 --variants voxel_mean_t1`` (Dice averaged
over the seeds; differences paired by case and seed, each case's averaged over the seeds, as the study's table)
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from kd_components.tools.report import dice_cell, difference_cells, seed_evaluation


def evaluation(runs: Path, variant: str, modality: str, seeds: Sequence[int], split: str = "test") -> list[dict]:
    """``[{"seed", "rows"}]`` of one model's evaluations on ``split``, one per seed asked, or ``[]`` when any seed has
    none (a row over some of the seeds would not pair with the others)."""
    found = [e for s in seeds for e in seed_evaluation(runs / variant / modality / f"seed{s}", s, split)]
    return found if len(found) == len(seeds) else []


def table(
    runs: Path,
    modality: str,
    variants: list[str],
    reference: str = "voxel_mean",
    seed: int | Sequence[int] = 0,
    split: str = "test",
) -> str:
    """Markdown: the baseline, the reference and each variant, with Dice and the paired differences to both, over
    the seed (an int) or seeds (a sequence) asked."""
    seeds = [seed] if isinstance(seed, int) else list(seed)
    base = evaluation(runs, "baseline", modality, seeds, split)
    ref = evaluation(runs, reference, modality, seeds, split)
    name = f"seed {seeds[0]}" if len(seeds) == 1 else "seeds " + ", ".join(str(s) for s in seeds)
    lines = [
        f"| {modality}, {name} | Dice ET / TC / WT | − baseline ET | TC | WT | − {reference} ET | TC | WT |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant in ["baseline", reference] + [v for v in variants if v not in ("baseline", reference)]:
        e = {"baseline": base, reference: ref}.get(variant) or evaluation(runs, variant, modality, seeds, split)
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
    ap.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0 or 0,1 (every row needs each of them)")
    ap.add_argument("--split", default="test", choices=("test", "validation"), help="the evaluation to tabulate")
    args = ap.parse_args(argv)
    if not args.runs.is_dir():
        raise SystemExit(f"--runs {args.runs}: not a folder; give the ablation's --output folder.")
    try:
        seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"--seeds {args.seeds}: not comma-separated integers; give e.g. 0 or 0,1.") from None
    if not seeds:
        raise SystemExit("--seeds: empty; give e.g. 0 or 0,1.")
    print(table(args.runs, args.modality, args.variants.split(","), args.reference, seeds, args.split))


if __name__ == "__main__":
    main()
