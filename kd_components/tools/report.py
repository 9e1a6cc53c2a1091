"""Comparison report: ``python -m kd_components.tools.report --runs DIR [--output DIR]``.

Gathers every evaluation (``metrics_summary.json`` + ``metrics_per_case.csv`` written by the bundles'
``evaluate.json``) under ``--runs`` and writes ``report.md`` with

- a table in the paper's shape: Dice and HD95 per region (ET, TC, WT) for the teacher and, per modality, the
  baseline and the KD student (mean over test cases, averaged over seeds; the spread over seeds beside it);
- KD minus baseline per region as paired per-case differences (each case's difference averaged over seeds)
  with a 95% t-interval over cases, and how many cases improved;
- the teacher beside each student, flagging regions where the teacher is not clearly better than the baseline
  (then there is little to distil);

and the figures ``regions.png`` (bar chart of Dice per region and model) and ``case.png`` (one test case: the
student's modality, ground truth, baseline, KD student and teacher).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kd_components.brats import CHANNEL_NAMES, MODALITY_ALIASES, TEACHER_CHANNELS
from kd_components.errors import InputError, command
from kd_components.evaluation import read_per_case
from kd_components.files import atomic_write_text

__all__ = [
    "collect",
    "dice_cell",
    "difference_cells",
    "dominating_case_median",
    "paired_difference",
    "seed_evaluation",
    "write_report",
    "main",
]

REGION_ORDER = ("et", "tc", "wt")
#: the teacher must beat the baseline by at least this Dice for a region to count as "clearly better".
CLEAR_MARGIN = 0.02


def collect(runs: Path) -> list[dict]:
    """Every evaluation under ``runs``: its tags, summary and per-case rows."""
    found = []
    for summary in sorted(runs.rglob("metrics_summary.json")):
        content = json.loads(summary.read_text())
        per_case = summary.parent / "metrics_per_case.csv"
        if not per_case.is_file():
            continue
        tags = content.get("tags", {})
        found.append(
            {
                "convention": str(content.get("convention", "brats2021")),
                "model": str(tags.get("model", "?")),
                "modality": str(tags.get("modality", "all")),
                "seed": int(tags.get("seed", 0)),
                "et_min_voxels": int(tags.get("et_min_voxels", 0) or 0),
                "rows": read_per_case(per_case),
                "dir": summary.parent,
                # the demo and the ablation write each evaluation into a folder named after its split
                "split": summary.parent.name if summary.parent.name in ("validation", "test") else "test",
            }
        )
    if not found:
        raise InputError(
            f"no evaluation found under '{runs}': run the bundles' evaluate.json first (files metrics_summary.json "
            f"and metrics_per_case.csv)."
        )
    return found


def _t_quantile(df: int) -> float:
    try:
        from scipy.stats import t

        return float(t.ppf(0.975, df))
    except ImportError:  # pragma: no cover - scipy is a dependency
        return 1.96


def paired_difference(kd: list[dict], base: list[dict], metric: str) -> dict:
    """KD minus baseline for ``metric``, paired by case (and seed), then averaged over seeds per case.

    Args:
        kd: evaluations of the KD student (one per seed), each with ``rows``.
        base: evaluations of the baseline, the same seeds.

    Returns:
        ``{"mean", "low", "high", "n_cases", "n_better", "n_seeds"}`` with a 95% t-interval over cases.
    """
    by_case: dict[str, list[float]] = defaultdict(list)
    base_by_seed = {b["seed"]: {r["case"]: r for r in b["rows"]} for b in base}
    seeds = set()
    for k in kd:
        ref = base_by_seed.get(k["seed"])
        if ref is None:
            continue
        seeds.add(k["seed"])
        for r in k["rows"]:
            if r["case"] in ref:
                by_case[r["case"]].append(r[metric] - ref[r["case"]][metric])
    d = np.array([np.mean(v) for v in by_case.values()], dtype=np.float64)
    if len(d) == 0:
        return {"mean": math.nan, "low": math.nan, "high": math.nan, "n_cases": 0, "n_better": 0, "n_seeds": 0}
    half = _t_quantile(len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)) if len(d) > 1 else math.nan
    better = int((d > 0).sum()) if metric.startswith("dice") else int((d < 0).sum())
    return {
        "mean": float(d.mean()),
        "low": float(d.mean() - half),
        "high": float(d.mean() + half),
        "n_cases": int(len(d)),
        "n_better": better,
        "n_seeds": len(seeds),
    }


def seed_evaluation(seed_folder: Path, seed: int, split: str = "test") -> list[dict]:
    """``[{"seed", "rows"}]`` of one model's evaluation on ``split`` (``seed_folder/split/metrics_per_case.csv``, the
    ablation's layout), or ``[]`` when it has none: the input of :func:`paired_difference` and
    :func:`difference_cells`."""
    table = seed_folder / split / "metrics_per_case.csv"
    return [{"seed": seed, "rows": read_per_case(table)}] if table.is_file() else []


def dice_cell(runs: list[dict], regions: Sequence[str] = ("et", "tc", "wt")) -> str:
    """``0.400 / 0.550 / 0.700``: mean Dice per region over each run's cases, then over the runs (seeds)."""
    return " / ".join(f"{_mean_over_seeds(runs, 'dice_' + k)[0]:.3f}" for k in regions)


def difference_cells(runs: list[dict], reference: list[dict], regions: Sequence[str] = ("et", "tc", "wt")) -> str:
    """Markdown cells (joined by `` | ``) of ``runs`` − ``reference`` Dice per region, paired by case: ``+0.100
    [−0.020, +0.220] 7/10``, bold where the interval excludes zero; empty cells when either has no evaluation or both
    are the same."""
    if not runs or not reference or runs is reference:
        return " | ".join("" for _ in regions)
    cells = []
    for k in regions:
        d = paired_difference(runs, reference, "dice_" + k)
        cell = f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]".replace("-", "−")
        cell += f" {d['n_better']}/{d['n_cases']}"
        cells.append(f"**{cell}**" if d["low"] > 0 or d["high"] < 0 else cell)
    return " | ".join(cells)


def _mean_over_seeds(evals: list[dict], metric: str) -> tuple[float, float]:
    per_seed = [np.mean([r[metric] for r in e["rows"]]) for e in evals]
    return float(np.mean(per_seed)), float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0


def dominating_case_median(evals: list[dict], metric: str) -> float | None:
    """The median over cases of ``metric`` (each case averaged over seeds) when one case is more than half of the
    sum over cases, so the mean mostly reports that case; else None (fewer than 3 cases: None)."""
    by_case: dict[str, list[float]] = defaultdict(list)
    for e in evals:
        for r in e["rows"]:
            if math.isfinite(r[metric]):
                by_case[r["case"]].append(r[metric])
    values = np.array([np.mean(v) for v in by_case.values()], dtype=np.float64)
    if len(values) < 3 or values.sum() <= 0 or values.max() <= 0.5 * values.sum():
        return None
    return float(np.median(values))


def _fmt(mean: float, spread: float, digits: int = 3) -> str:
    return f"{mean:.{digits}f}" + (f" ± {spread:.{digits}f}" if spread > 0 else "")


def _modality_name(m: str) -> str:
    """Display name of a modality or combination: ``t1ce`` -> ``T1c``, ``t1ce+flair`` -> ``T1c+FLAIR``."""
    parts = [MODALITY_ALIASES.get(p.strip().lower(), p) for p in str(m).split("+")]
    return "+".join(CHANNEL_NAMES.get(p, p) for p in parts)


def write_report(runs: Path, output: Path, command: str | None = None, split: str | None = None) -> Path:
    """Write ``report.md``, ``regions.png`` and ``case.png`` for the evaluations under ``runs``.

    ``split`` picks the evaluations of one split (``test`` or ``validation``) when ``runs`` holds both; by default
    the only one present, else ``test``.
    """
    evals = collect(runs)
    present = sorted({e["split"] for e in evals})
    split = split or (present[0] if len(present) == 1 else "test")
    evals = [e for e in evals if e["split"] == split]
    if not evals:
        raise InputError(f"no evaluation on the {split} split under '{runs}' (found: {', '.join(present)}).")
    output.mkdir(parents=True, exist_ok=True)
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for e in evals:
        groups[(e["model"], e["modality"])].append(e)
    teacher = groups.get(("teacher", "all"), [])
    modalities = sorted(
        {m for (model, m) in groups if model in ("kd", "baseline")},
        key=lambda m: TEACHER_CHANNELS.index(MODALITY_ALIASES.get(m, "t1ce")),
    )
    lines = ["# Distillation report", "", *_headline(groups, modalities, split), *_margin_line(runs, groups), ""]
    if command:
        lines += ["Command:", "", "```bash", command, "```", ""]
    conventions = sorted({e["convention"] for e in evals})
    rules = {
        "brats2021": "Dice 1 / HD95 0 where a region is empty in both masks, Dice 0 / HD95 373.13 mm where it is "
        "empty in one (BraTS 2021 rules)",
        "brats2023": "the official BraTS 2023+ rules: NaN where a region is empty in both masks (left out of means), "
        "HD95 inf (counted as 373) where it is empty in one or the masks do not overlap",
    }
    lines += _run_description(runs)
    lines += [
        f"Evaluations found under `{runs.name}/`: {len(evals)}; {max(len(e['rows']) for e in evals)} {split} case(s) "
        f"each. Metrics per {split} case on the label map inference writes, BraTS regions; "
        + "; ".join(rules.get(c, c) for c in conventions)
        + f". {_et_rule(evals)} Means over {split} cases, averaged over seeds (± the standard deviation over seeds "
        "when there are several).",
        "",
        "## Dice and HD95 per region",
        "",
        "| model | input | seeds | Dice ET | Dice TC | Dice WT | HD95 ET | HD95 TC | HD95 WT |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    dominated: list[str] = []

    def row(label: str, inp: str, ev: list[dict]) -> str:
        cells = [_fmt(*_mean_over_seeds(ev, f"dice_{r}")) for r in REGION_ORDER]
        for r in REGION_ORDER:
            cell = _fmt(*_mean_over_seeds(ev, f"hd95_{r}"), digits=1)
            median = dominating_case_median(ev, f"hd95_{r}")
            if median is not None:
                cell += f" (median {median:.1f})"
                dominated.append(f"{label} {inp} HD95 {r.upper()}")
            cells.append(cell)
        return f"| {label} | {inp} | {len(ev)} | " + " | ".join(cells) + " |"

    if teacher:
        lines.append(row("teacher", "T1c+T1+T2+FLAIR", teacher))
    for m in modalities:
        for model, label in (("baseline", "baseline"), ("kd", "KD student")):
            if groups.get((model, m)):
                lines.append(row(label, _modality_name(m), groups[(model, m)]))
    if dominated:
        lines += [
            "",
            "The median over cases is given beside a mean that one case dominates (that case alone is more than half "
            "of the sum, e.g. an HD95 of 373 mm where a region is missing in one mask): " + ", ".join(dominated) + ".",
        ]
    lines += [
        "",
        "## KD minus baseline (paired by case and seed)",
        "",
        "Positive Dice differences and negative HD95 differences favour the KD student. 95% t-interval over",
        f"{split} cases of each case's difference averaged over seeds; `better` counts cases where KD is better.",
        "",
        "| input | region | Δ Dice [95% CI] | better | Δ HD95 [95% CI] | teacher − baseline Dice | note |",
        "|---|---|---|---|---|---|---|",
    ]
    notes = []
    for m in modalities:
        kd, base = groups.get(("kd", m), []), groups.get(("baseline", m), [])
        if not kd or not base:
            continue
        for r in REGION_ORDER:
            dd, dh = paired_difference(kd, base, f"dice_{r}"), paired_difference(kd, base, f"hd95_{r}")
            gap = (
                _mean_over_seeds(teacher, f"dice_{r}")[0] - _mean_over_seeds(base, f"dice_{r}")[0]
                if teacher
                else math.nan
            )
            note = ""
            if teacher and not gap > CLEAR_MARGIN:
                note = "teacher not clearly better: little to distil"
                notes.append(f"{_modality_name(m)} {r.upper()}")
            lines.append(
                f"| {_modality_name(m)} | {r.upper()} | {dd['mean']:+.3f} [{dd['low']:+.3f}, {dd['high']:+.3f}] | "
                f"{dd['n_better']}/{dd['n_cases']} | {dh['mean']:+.1f} [{dh['low']:+.1f}, {dh['high']:+.1f}] | "
                f"{gap:+.3f} | {note} |"
            )
    if any(len(groups.get(("kd", m), [])) < 2 for m in modalities):
        lines += [
            "",
            "**One seed is not evidence**: seed-to-seed spread on small phantoms reaches 0.15 Dice. Use",
            "`--seeds 3` or more before drawing conclusions.",
        ]
    if notes:
        lines += [
            "",
            f"The teacher is not clearly better than the baseline (by > {CLEAR_MARGIN} Dice) for: "
            + ", ".join(notes)
            + ". There the student has little to learn from it.",
        ]
    figures = _figures(groups, teacher, modalities, output)
    if figures:
        lines += ["", "## Figures", ""] + [f"![{name}]({name})" for name in figures]
    report = output / "report.md"
    atomic_write_text(report, "\n".join(lines) + "\n")
    return report


#: what the converged study (docs/results.md) found, stated beside every short-budget result.
CONVERGED_FINDING = (
    "a short training budget measures a faster start as much as a better student: see the section on convergence "
    "in docs/results.md for what distillation gives once the students have converged"
)


def _student_steps(evals: list[dict]) -> int | None:
    """Optimizer steps of the students' training, from the run record beside an evaluation (None if unknown)."""
    from kd_components.tools.curves import read_curve

    for e in evals:
        curve = read_curve(Path(e["dir"]).parent)
        if curve is not None:
            return curve["steps"][-1]
    return None


def _headline(groups: dict, modalities: list[str], split: str) -> list[str]:
    """One line: per modality the three KD - baseline Dice differences and whether each interval excludes zero."""
    parts = []
    for m in modalities:
        kd, base = groups.get(("kd", m), []), groups.get(("baseline", m), [])
        if not kd or not base:
            continue
        cells = []
        for r in REGION_ORDER:
            d = paired_difference(kd, base, f"dice_{r}")
            verdict = "above 0" if d["low"] > 0 else "below 0" if d["high"] < 0 else "includes 0"
            cells.append(f"{r.upper()} {d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] ({verdict})")
        steps = _student_steps(kd)
        budget = f", students trained {steps} steps" if steps else ""
        parts.append(f"{_modality_name(m)} ({len(kd)} seed(s), {split}{budget}): " + "; ".join(cells))
    if not parts:
        return []
    return [f"**Headline, KD − baseline Dice [95% CI]**: {' | '.join(parts)}. Note: {CONVERGED_FINDING}."]


def _et_rule(evals: list[dict]) -> str:
    """The ET post-processing the evaluations used, in one sentence (published single-modality tables use one)."""
    values = sorted({e.get("et_min_voxels", 0) for e in evals})
    if values == [0]:
        return "ET post-processing: none (a predicted ET of any size counts as ET)."
    return (
        "ET post-processing: a predicted ET smaller than "
        + " / ".join(f"{v} voxels" for v in values)
        + " relabelled as necrosis (`et_min_voxels`, as RFNet and mmFormer report ET)."
    )


def _margin_line(runs: Path, groups: dict) -> list[str]:
    """With the demo's ``kd_follow_margin`` on: the regions where KD was switched off, per modality and seed.

    The same rule as the training (``kd_components.training.quality.weak_regions``) on the same records: the
    teacher's ``validation.json`` and the seed's baseline's, in the demo's layout. Empty for other runs.
    """
    from kd_components.tools.stages import PROFILES
    from kd_components.training.quality import TEACHER_MARGIN, read_validation_record, weak_regions

    config_file = runs / "demo_config.json"
    if not config_file.is_file():
        return []
    config = json.loads(config_file.read_text())
    follow = config.get("kd_follow_margin", PROFILES["quick" if config.get("quick") else "default"]["kd_follow_margin"])
    teacher = read_validation_record(runs / "teacher" / "models")
    if not follow or teacher is None:
        return []
    cells = []
    for (model, m), evals in groups.items():
        if model != "kd":
            continue
        for e in sorted(evals, key=lambda e: e["seed"]):
            base = read_validation_record(Path(e["dir"]).parent.parent / "baseline" / "models")
            if base is not None:
                weak = weak_regions(teacher, base)
                off = ", ".join(weak) if weak else "none"
                cells.append(f"{_modality_name(m)} seed {e['seed']}: off on {off}")
    if not cells:
        return []
    return [
        "",
        "KD region weights follow the teacher's validation margin (`kd_follow_margin`): KD is switched off on each "
        f"region where the teacher's validation Dice is not above the baseline's by {TEACHER_MARGIN}; "
        + "; ".join(cells)
        + ".",
    ]


def _run_description(runs: Path) -> list[str]:
    """What the demo trained on, from its ``demo_config.json`` (data, epochs, split sizes); empty without one."""
    config_file = runs / "demo_config.json"
    if not config_file.is_file():
        return []
    config = json.loads(config_file.read_text())
    data = config.get("data_dir")
    source = "the synthetic BraTS-like phantom (not real scans)" if data in (None, "None") else f"`{Path(data).name}`"
    datalists = [p for p in (runs / "data" / "datalist.json", runs / "datalist.json") if p.is_file()]
    sizes = ""
    if datalists:
        content = json.loads(datalists[0].read_text())
        sizes = ", ".join(f"{len(content.get(k, []))} {k}" for k in ("training", "validation", "test")) + " cases; "
    epochs = []
    for key, label in (("teacher_epochs", "teacher"), ("student_epochs", "students")):
        if config.get(key) is not None:
            epochs.append(f"{label} {config[key]} epochs")
    detail = f"; {', '.join(epochs)}" if epochs else " (the demo's default epochs)"
    return [f"Data: {source}; {sizes}quick run: {bool(config.get('quick'))}{detail}.", ""]


def _figures(groups, teacher, modalities, output: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("notice: matplotlib is not installed, so report.md has no figures (pip install matplotlib)", flush=True)
        return []
    names = []
    models = ([("teacher", "all", "teacher")] if teacher else []) + [
        (model, m, f"{'KD' if model == 'kd' else 'baseline'} {_modality_name(m)}")
        for m in modalities
        for model in ("baseline", "kd")
        if groups.get((model, m))
    ]
    if models:
        fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(models) + 2), 3.5))
        width = 0.8 / len(models)
        for i, (model, m, label) in enumerate(models):
            ev = groups[(model, m)]
            means = [_mean_over_seeds(ev, f"dice_{r}") for r in REGION_ORDER]
            ax.bar(np.arange(3) + i * width, [v for v, _ in means], width, yerr=[s for _, s in means], label=label)
        ax.set_xticks(np.arange(3) + 0.4 - width / 2, [r.upper() for r in REGION_ORDER])
        ax.set_ylabel("Dice (test cases)")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        fig.savefig(output / "regions.png", dpi=100)
        plt.close(fig)
        names.append("regions.png")
    if modalities and _case_figure(groups, teacher, modalities[0], output, plt):
        names.append("case.png")
    return names


def _case_figure(groups, teacher, modality, output: Path, plt) -> bool:
    def first_case(evals):
        for e in evals:
            files = sorted((e["dir"] / "cases").glob("*.npz"))
            if files:
                return files[0]
        return None

    base_f, kd_f = first_case(groups.get(("baseline", modality), [])), first_case(groups.get(("kd", modality), []))
    if base_f is None or kd_f is None:
        return False
    teacher_f = first_case(teacher)
    base, kd = np.load(base_f), np.load(kd_f)
    if "image" not in base:
        return False
    label = base["label"]
    z = int(np.argmax((label > 0).sum(axis=(0, 1)))) if label.any() else label.shape[2] // 2
    channel = TEACHER_CHANNELS.index(MODALITY_ALIASES.get(modality, "t1ce"))
    image = base["image"][channel][:, :, z].astype(np.float32)
    panels = [
        (f"{_modality_name(modality)} (student input)", None),
        ("ground truth", label),
        ("baseline", base["pred"]),
        ("KD student", kd["pred"]),
    ]
    if teacher_f is not None:
        t = np.load(teacher_f)["pred"]
        if t.shape == label.shape:
            panels.append(("teacher", t))
    from matplotlib.colors import ListedColormap

    cmap = ListedColormap([(0, 0, 0, 0), (1, 0.2, 0.2, 0.6), (0.2, 0.9, 0.2, 0.45), (1, 1, 0, 0.7), (1, 1, 0, 0.7)])
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9))
    for ax, (title, lab) in zip(axes, panels):
        ax.imshow(image.T, cmap="gray", origin="lower")
        if lab is not None:
            ax.imshow(lab[:, :, z].T, cmap=cmap, vmin=0, vmax=4, origin="lower", interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.suptitle(f"{base_f.stem}: red NCR, green ED, yellow ET", fontsize=8)
    fig.tight_layout()
    fig.savefig(output / "case.png", dpi=100)
    plt.close(fig)
    return True


@command
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m kd_components.tools.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--runs", required=True, help="folder holding the evaluations (searched recursively)")
    ap.add_argument("--output", default=None, help="where report.md and figures go (default: --runs)")
    ap.add_argument("--command", default=None, help="the command that produced the runs, quoted in the report")
    ap.add_argument(
        "--split",
        default=None,
        choices=("test", "validation"),
        help="which split (default: the one present, else test)",
    )
    args = ap.parse_args(argv)
    runs = Path(args.runs)
    if not runs.is_dir():
        raise InputError(f"--runs '{runs}' is not a folder: give the demo's output folder.")
    report = write_report(runs, Path(args.output) if args.output else runs, args.command, args.split)
    print(f"wrote {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
