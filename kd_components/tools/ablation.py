"""Ablation of the distillation settings: variants x modalities x seeds, scored on one split, against the baseline.

``python -m kd_components.tools.ablation --output runs/ablation [--data-dir DIR] [--modalities all] [--seeds 2]
[--variants a,b,...] [--split validation] [--jobs N] [--num-cases N] [--teacher-epochs N] [--student-epochs N]``

Every variant is a set of explicit overrides of the student bundle (so a variant means the same thing after the
bundle's defaults change); ``baseline`` is the bundle's ``configs/baseline.json`` (no teacher). Each student is
trained on the training split with the bundle's own command and scored on ``--split`` (``validation`` by
default: settings are chosen there, never on test). Stages run ``--jobs`` at a time, each a separate
``python -m monai.bundle run`` process (on a GPU machine many small trainings share the device). A stage whose
outputs exist is reused.

Writes ``ablation.md`` and ``ablation.json``: per variant, modality and region the mean Dice and KD minus baseline
paired by case (each case's difference averaged over seeds) with a 95% t-interval over cases; per variant a
summary over the (modality, region) pairs: mean gain, pairs with the interval above zero and below zero. The
variant ranked first by the rule stated in the table (fewest pairs below zero, then most above zero, then the
largest mean gain) is named, so the choice is mechanical and made before looking at test.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kd_components.brats import CHANNEL_NAMES
from kd_components.errors import InputError, command
from kd_components.evaluation import read_per_case
from kd_components.files import atomic_write_text
from kd_components.subsets import ANY, is_any
from kd_components.tools.report import REGION_ORDER, paired_difference
from kd_components.tools.stages import (
    SUBSET_NAMES,
    Stage,
    check_counts,
    common_overrides,
    data_stage,
    parse_modalities,
    sizes,
    stage_env,
    stop_on_signals,
    stopping,
    student_stages,
    subset_folder,
    teacher_stages,
)
from kd_components.training.quality import collapsed
from kd_components.transforms import pixdim_setting

__all__ = ["VARIANTS", "TEACHER_VARIANTS", "check_run_settings", "rank_variants", "summarise", "main"]

_KD_SIGMOID = "kd_components.losses.SigmoidKLDivLoss"
_KD_CLASS = "kd_components.losses.RegionClassKLDivLoss"
#: every KD setting, given explicitly by each variant (the bundle defaults of 0.1.0 as the reference).
_TUMOUR_BALANCED = {
    "loss#kd_loss#_target_": _KD_SIGMOID,
    "kd_weight": 0.25,
    "kd_temperature": 2.0,
    "kd_region": "tumour",
    "kd_balanced": True,
    "kd_channel_weights": None,
    "kd_follow_margin": False,
    "kd_agreement": False,
    "feature_weight": 0.1,
    "feature_distance": "cosine",
    "unlabelled_split": None,
    "unlabelled_pseudo_labels": False,
    "kd_terms": [],
}
_VOXEL_MEAN = {**_TUMOUR_BALANCED, "kd_region": "all", "kd_balanced": False}
_CWD = {"_target_": "kd_components.terms.ChannelWiseDistillation", "weight": 1.0, "temperature": 4.0}
_PROTOTYPES = {"_target_": "kd_components.terms.PrototypeDistillation", "weight": 1.0, "layer": "up_layers.2"}
_AFFINITY = {"_target_": "kd_components.terms.PairwiseAffinity", "weight": 1.0, "layer": "down_layers.3"}
_FEATURES_3 = {
    "_target_": "kd_components.terms.FeatureMatching",
    "weight": 0.1,
    "layers": ["down_layers.1", "down_layers.2", "down_layers.3"],
}
#: the datalist split of the training cases whose labels ``--labelled-fraction`` withholds.
UNLABELLED_SPLIT = "training_unlabelled"

#: name -> student bundle overrides (``None``: the baseline, no teacher).
VARIANTS: dict[str, dict | None] = {
    "baseline": None,
    "tumour_balanced": _TUMOUR_BALANCED,
    "voxel_mean": _VOXEL_MEAN,
    "voxel_mean_wt_half": {**_VOXEL_MEAN, "kd_channel_weights": [1.0, 0.5, 1.0]},
    "voxel_mean_wt_off": {**_VOXEL_MEAN, "kd_channel_weights": [1.0, 0.0, 1.0]},
    # KD weight 0 on each region where the teacher is not better than this seed's baseline on validation
    "voxel_mean_margin": {**_VOXEL_MEAN, "kd_follow_margin": True},
    "voxel_mean_t1": {**_VOXEL_MEAN, "kd_temperature": 1.0},
    "voxel_mean_agree": {**_VOXEL_MEAN, "kd_agreement": True},
    "voxel_mean_t4": {**_VOXEL_MEAN, "kd_temperature": 4.0},
    "voxel_mean_feat_off": {**_VOXEL_MEAN, "feature_weight": 0.0},
    "voxel_mean_feat_l2": {**_VOXEL_MEAN, "feature_distance": "l2"},
    "class_kl": {**_VOXEL_MEAN, "loss#kd_loss#_target_": _KD_CLASS},
    # literature terms plugged in by config (kd_components.terms), beside the recipe's logit KD
    "voxel_mean_cwd": {**_VOXEL_MEAN, "kd_terms": [_CWD]},
    "voxel_mean_features3": {**_VOXEL_MEAN, "feature_weight": 0.0, "kd_terms": [_FEATURES_3]},
    "voxel_mean_prototypes": {**_VOXEL_MEAN, "kd_terms": [_PROTOTYPES]},
    "voxel_mean_affinity": {**_VOXEL_MEAN, "kd_terms": [_AFFINITY]},
    "voxel_mean_long_teacher": _VOXEL_MEAN,
    "class_kl_long_teacher": {**_VOXEL_MEAN, "loss#kd_loss#_target_": _KD_CLASS},
    # the training cases left out by --labelled-fraction, used without their labels (teacher outputs only)
    "voxel_mean_unlabelled": {**_VOXEL_MEAN, "unlabelled_split": UNLABELLED_SPLIT},
    # the same cases with the teacher's thresholded map as their supervised target (pseudo-labels)
    "voxel_mean_pseudo": {**_VOXEL_MEAN, "unlabelled_split": UNLABELLED_SPLIT, "unlabelled_pseudo_labels": True},
    # the teacher as labeller only: its maps on the withheld cases, no KD term (does distillation add to its labels?)
    "pseudo_labels_only": {
        **_VOXEL_MEAN,
        "kd_weight": 0.0,
        "feature_weight": 0.0,
        "unlabelled_split": UNLABELLED_SPLIT,
        "unlabelled_pseudo_labels": True,
    },
}
#: variants distilled from the teacher trained ``--long-teacher-factor`` times longer.
TEACHER_VARIANTS = {"voxel_mean_long_teacher": "teacher_long", "class_kl_long_teacher": "teacher_long"}
#: variants that learn from the cases ``--labelled-fraction`` leaves out
UNLABELLED_VARIANTS = [v for v, o in VARIANTS.items() if (o or {}).get("unlabelled_split")]
DEFAULT_VARIANTS = [v for v in VARIANTS if v != "class_kl_long_teacher" and v not in UNLABELLED_VARIANTS]


def labelled_subset(datalist: Path, fraction: float, output: Path) -> Path:
    """A copy of ``datalist`` whose training split keeps the first ``fraction`` of its cases (at least one); the
    others move to ``training_unlabelled`` (labels withheld: only a distilled student with ``unlabelled_split``
    uses them, through the teacher). Validation and test are unchanged. The datalist's training order is already
    a seeded shuffle (``kd_components.data datalist``), so the first cases are a random subset."""
    content = json.loads(datalist.read_text())
    training = list(content["training"])
    k = max(1, round(fraction * len(training)))
    content["training"], content[UNLABELLED_SPLIT] = training[:k], training[k:]
    out = output / f"datalist_labelled{fraction:g}.json"
    atomic_write_text(out, json.dumps(content, indent=4) + "\n")
    return out


def _student_sizes(p: dict, steps: int | None, n_items: int) -> dict:
    """``p`` with the student's epochs set from a step budget (``steps`` None: as given): the same number of
    optimizer steps whatever the number of training items, with about 14 validations per run."""
    if not steps:
        return p
    epochs = max(1, math.ceil(steps / max(1, n_items)))
    return {**p, "student_epochs": epochs, "student_val_interval": max(1, epochs // 14)}


def _run_pool(
    groups: list[list[Stage]], jobs: int, log_dir: Path, force: bool, threads: int | None = None
) -> list[str]:
    """Run each group of stages in order, ``jobs`` groups at a time; returns the names of failed stages.

    Each stage gets ``threads`` CPU threads (default: the cores shared out between the jobs).
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    env = stage_env(OMP_NUM_THREADS=str(threads or max(1, (os.cpu_count() or 2) // jobs)))
    failed: list[str] = []

    def run_group(group: list[Stage]) -> None:
        for stage in group:
            if stopping():
                return
            if stage.done.exists() and not force:
                continue
            log = log_dir / (stage.name.replace(" ", "_").replace(",", "").replace(":", "") + ".log")
            t0 = time.time()
            returncode = stage.execute(env, log)
            status = "ok" if returncode == 0 else f"FAILED (exit {returncode}; log {log})"
            print(f"{stage.name}: {time.time() - t0:.0f} s {status}", flush=True)
            if returncode != 0:
                failed.append(stage.name)
                return

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(run_group, groups))
    return failed


def _evaluations(
    root: Path, split: str, left_out: list[str] | None = None, seeds: Sequence[int] | None = None
) -> list[dict]:
    """The per-case rows of each seed's evaluation under ``root/<seed folder>/<split>``, of the ``seeds`` asked
    (None: every seed folder there; a table of ``--seeds 1`` holds seed 0 only, even where a longer study left more).

    A run whose validation record says it collapsed is left out (its folder appended to ``left_out``): its Dice
    fell while its loss fell, and its numbers are not a result of the settings it names.
    """
    out = []
    for per_case in sorted(root.glob(f"seed*/{split}/metrics_per_case.csv")):
        run = per_case.parents[len(Path(split).parts)]  # the seed folder (``split`` may be a nested folder)
        if seeds is not None and int(run.name[4:]) not in seeds:
            continue
        if collapsed(run / "models") is not None:
            if left_out is not None:
                left_out.append(str(run))
            continue
        out.append({"seed": int(run.name[4:]), "rows": read_per_case(per_case)})
    return out


def result_keys(modalities: list[str], split: str) -> dict[str, tuple[str, str]]:
    """The columns of the tables: ``{key: (modality folder, evaluation folder)}``; the ``any`` student gives one key
    per subset it was evaluated from (``any:t1ce+flair`` -> ``("any", "test_subsets/t1ce+flair")``)."""
    keys: dict[str, tuple[str, str]] = {}
    for m in modalities:
        if is_any(m):
            keys.update({f"{ANY}:{s}": (m, subset_folder(split, s)) for s in SUBSET_NAMES})
        else:
            keys[m] = (m, split)
    return keys


def _cell(c: dict) -> str:
    return "–" if c["dice"] != c["dice"] else f"{c['dice']:.3f}"


def _subsets_markdown(table: dict, keys: list[str]) -> list[str]:
    """The one student for every subset: a row per subset, the ``any`` students (no KD, KD and their paired
    difference per region) beside the dedicated students of that subset where this run trained them."""
    if not any(k.startswith(f"{ANY}:") for k in keys):
        return []
    kd = [v for v in table if v != "baseline"]
    lines = [
        "",
        "## One student for every subset (`--student_modality any`)",
        "",
        "Each row: the `any` students given only that subset of the sequences (the others absent); `dedicated`: a "
        "student trained on that subset alone, where this run trained one. Dice ET / TC / WT; Δ = KD − no-KD of the "
        "`any` student, paired by case, 95% t-interval, cases better.",
        "",
    ]
    for v in kd:
        lines += [f"### `{v}`", ""] if len(kd) > 1 else []
        lines += [
            "| subset | any, no KD | any, KD | Δ ET | Δ TC | Δ WT | dedicated, no KD | dedicated, KD |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for s in SUBSET_NAMES:
            a = f"{ANY}:{s}"
            if a not in keys:
                continue
            base = "/".join(_cell(table["baseline"]["cells"][f"{a}/{r}"]) for r in REGION_ORDER)
            dist = "/".join(_cell(table[v]["cells"][f"{a}/{r}"]) for r in REGION_ORDER)
            deltas = []
            for r in REGION_ORDER:
                d = table[v]["cells"][f"{a}/{r}"]["diff"]
                deltas.append(
                    "–"
                    if not d or not d["n_cases"]
                    else f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] {d['n_better']}/{d['n_cases']}"
                )
            ded = [
                "/".join(_cell(table[w]["cells"][f"{s}/{r}"]) for r in REGION_ORDER) if s in keys else "–"
                for w in ("baseline", v)
            ]
            name = "+".join(CHANNEL_NAMES[m] for m in s.split("+"))
            lines.append(f"| {name} | {base} | {dist} | " + " | ".join(deltas) + f" | {ded[0]} | {ded[1]} |")
    return lines


def summarise(results: dict[str, dict[str, list[dict]]], modalities: list[str]) -> dict:
    """Per variant: per (modality, region) the mean Dice and the paired difference to the baseline; a summary.

    Args:
        results: ``{variant: {modality: [evaluation per seed]}}``, each evaluation ``{"seed", "rows"}``.
    """
    table: dict = {}
    for variant, by_mod in results.items():
        pairs, entry = [], {}
        for m in modalities:
            evals, base = by_mod.get(m, []), results.get("baseline", {}).get(m, [])
            for r in REGION_ORDER:
                metric = f"dice_{r}"
                mean = (
                    float(sum(sum(x[metric] for x in e["rows"]) / len(e["rows"]) for e in evals) / len(evals))
                    if evals
                    else math.nan
                )
                d = paired_difference(evals, base, metric) if variant != "baseline" else None
                entry[f"{m}/{r}"] = {"dice": mean, "diff": d}
                # the any student's 45 subset pairs have their own table; the ranking weighs each model once
                if d is not None and d["n_cases"] and not m.startswith(f"{ANY}:"):
                    pairs.append(d)
        summary = {}
        if pairs:
            summary = {
                "mean_gain": float(sum(d["mean"] for d in pairs) / len(pairs)),
                "above": sum(d["low"] > 0 for d in pairs),
                "below": sum(d["high"] < 0 for d in pairs),
                "pairs": len(pairs),
            }
        table[variant] = {"cells": entry, "summary": summary}
    return table


def rank_variants(table: dict) -> list[str]:
    """Variants (not the baseline) by the stated rule: fewest pairs below zero, most above zero, largest gain.

    Only variants with every (modality, region) pair scored are ranked: a variant cut short (a run that did not
    finish) would otherwise win by having fewer pairs that can fall below zero.
    """
    complete = max((t["summary"]["pairs"] for t in table.values() if t["summary"]), default=0)
    scored = [(v, t["summary"]) for v, t in table.items() if t["summary"] and t["summary"]["pairs"] == complete]
    scored.sort(key=lambda vs: (vs[1]["below"], -vs[1]["above"], -vs[1]["mean_gain"]))
    return [v for v, _ in scored]


def _markdown(table: dict, modalities: list[str], split: str, command_line: str, info: dict) -> str:
    ranked = rank_variants(table)
    lines = [
        f"# Ablation of the distillation settings ({split} split)",
        "",
        "Command:",
        "",
        "```bash",
        command_line,
        "```",
        "",
        f"Data: {info['data']}; {info['n_cases']} {split} case(s) scored per model; seeds {info['seeds']}; teacher "
        f"{info['teacher_epochs']} epochs (long teacher {info['long_teacher_epochs']}), students "
        + (
            f"{info['student_steps']} optimizer steps each"
            if info.get("student_steps")
            else f"{info['student_epochs']} epochs"
        )
        + (
            f"; students see the labels of {info['labelled_fraction']:g} of the training cases"
            if info.get("labelled_fraction", 1) < 1
            else ""
        )
        + f"; crops {info['roi']}"
        + (f"; inputs resampled to {info['pixdim']} mm" if info.get("pixdim") else "")
        + ".",
        "",
        "Δ = variant − baseline Dice, paired by case (each case's difference averaged over seeds), 95% t-interval",
        "over cases. Summary over the (modality, region) pairs: mean Δ, pairs with the interval above zero (↑) and",
        "below zero (↓). Rank: fewest ↓, then most ↑, then the largest mean Δ.",
        "",
        "## Summary",
        "",
        "| rank | variant | mean Δ Dice | ↑ | ↓ | settings |",
        "|---|---|---|---|---|---|",
    ]
    incomplete = [v for v, t in table.items() if t["summary"] and v not in ranked]
    for i, v in enumerate([*ranked, *incomplete], 1):
        s = table[v]["summary"]
        settings = {k: val for k, val in (VARIANTS.get(v) or {}).items() if _VOXEL_MEAN.get(k, "-") != val}
        if v in TEACHER_VARIANTS:
            settings["teacher"] = "long"
        rank = i if v in ranked else "incomplete"
        lines.append(
            f"| {rank} | {v} | {s['mean_gain']:+.3f} | {s['above']}/{s['pairs']} | {s['below']}/{s['pairs']} | "
            f"{json.dumps(settings) if settings else '(voxel_mean)'} |"
        )
    subsets_section = _subsets_markdown(table, modalities)
    modalities = [m for m in modalities if not m.startswith(f"{ANY}:")]
    lines += ["", "## Per modality and region", ""]
    header = "| variant | " + " | ".join(f"{m} {r.upper()}" for m in modalities for r in REGION_ORDER) + " |"
    lines += [header, "|---|" + "---|" * (3 * len(modalities))]
    for v in ["baseline", *ranked, *incomplete]:
        cells = []
        for m in modalities:
            for r in REGION_ORDER:
                c = table[v]["cells"][f"{m}/{r}"]
                d = c["diff"]
                if d is None or not d["n_cases"]:
                    cells.append(f"{c['dice']:.3f}")
                else:
                    cells.append(
                        f"{c['dice']:.3f} ({d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] "
                        f"{d['n_better']}/{d['n_cases']})"
                    )
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    lines += subsets_section
    if ranked:
        lines += ["", f"First by the rule: **{ranked[0]}**."]
    if info.get("collapsed"):
        lines += [
            "",
            "Left out, collapsed (validation Dice fell below half its best while training went on, and never rose "
            "above that best again): " + ", ".join(f"`{r}`" for r in info["collapsed"]) + ".",
        ]
    return "\n".join(lines) + "\n"


#: the settings every stage of an output folder shares, recorded there by the first run
RUN_SETTINGS = "run_settings.json"


def check_run_settings(output: Path, settings: dict) -> None:
    """Record ``settings`` in ``output/run_settings.json``, or refuse a run whose settings differ from the recorded
    ones: stages whose outputs exist are reused, so another voxel size, crop or learning rate in the same folder would
    mix runs of two recipes in one table.

    Raises:
        InputError: settings that differ from the recorded ones, each named with both values.
    """
    path = output / RUN_SETTINGS
    if path.is_file():
        recorded = json.loads(path.read_text())
        differ = [
            f"{k} {json.dumps(v)} (recorded {json.dumps(recorded.get(k))})"
            for k, v in settings.items()
            if json.loads(json.dumps(v)) != recorded.get(k)
        ]
        if differ:
            raise InputError(
                f"--output '{output}' holds runs made with other settings: {'; '.join(differ)}; give another --output "
                f"or the recorded settings ({path})."
            )
        return
    atomic_write_text(path, json.dumps(settings, indent=4) + "\n")


def _parse_variants(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise InputError(f"--variants: unknown {', '.join(unknown)}; choose from {', '.join(VARIANTS)}.")
    return list(dict.fromkeys(["baseline", *names]))


def _stages(
    args, p: dict, output: Path, data_dir: Path | None, variants: list[str], modalities: list[str]
) -> list[str]:
    """Make the data, train the teachers, then every student; returns the names of failed stages."""
    first, data_dir, datalist = data_stage(output, data_dir, p)
    if _run_pool([[first]], 1, output / "logs", args.force):
        raise SystemExit("error: the data stage failed (log in the logs folder).")
    common, train_common = common_overrides(data_dir, datalist, p)
    # the teacher always learns from every labelled training case; the students may see fewer labels
    s_common, s_train_common = common, train_common
    n_training = len(json.loads(datalist.read_text()).get("training", []))
    n_labelled = n_training
    if args.labelled_fraction < 1:
        subset = labelled_subset(datalist, args.labelled_fraction, output)
        s_common, s_train_common = common_overrides(data_dir, subset, p)
        n_labelled = len(json.loads(subset.read_text())["training"])
    teachers = {"teacher": p}
    if any(v in TEACHER_VARIANTS for v in variants):
        long_epochs = p["teacher_epochs"] * args.long_teacher_factor
        teachers["teacher_long"] = {
            **p,
            "teacher_epochs": long_epochs,
            "teacher_val_interval": args.val_interval or max(1, long_epochs // 2),
        }
    first_wave = [teacher_stages(output / t, tp, common, train_common, args.split) for t, tp in teachers.items()]
    if args.stages == "baselines" or not any(VARIANTS[v] is not None for v in variants):
        first_wave = []  # no distilled student asked here: no teacher to train
    groups, group_variants = [], []
    for v in variants:
        teacher = output / TEACHER_VARIANTS.get(v, "teacher") / "models" / "model.pt"
        for m in modalities:
            for seed in range(args.seeds):
                overrides = dict(VARIANTS[v] or {})
                if VARIANTS[v] is not None:  # the quality gate: the teacher beside this seed's baseline
                    overrides["baseline_validation"] = output / "baseline" / m / f"seed{seed}" / "models"
                n_items = n_training if overrides.get("unlabelled_split") else n_labelled
                groups.append(
                    student_stages(
                        output / v / m / f"seed{seed}",
                        f"{v} {m} seed {seed}",
                        m,
                        seed,
                        VARIANTS[v] is None,
                        teacher,
                        _student_sizes(p, args.student_steps, n_items),
                        s_common,
                        s_train_common,
                        args.split,
                        overrides,
                    )
                )
                group_variants.append(v)
    # the teachers and the baselines (which need no teacher) first, side by side; then the distilled students.
    # --stages runs a part only, so that two invocations can share the cores (e.g. teachers + distilled in one,
    # baselines in the other), each stage writing only its own folder
    baselines = [g for g, v in zip(groups, group_variants) if VARIANTS[v] is None]
    rest = [g for g, v in zip(groups, group_variants) if VARIANTS[v] is not None]
    waves = {
        "all": [first_wave + baselines, rest],
        "teachers": [first_wave],
        "baselines": [baselines],
        "distilled": [rest],
    }[args.stages]
    failed = []
    for wave in waves:
        failed += _run_pool(wave, args.jobs, output / "logs", args.force, args.threads)
    return failed


@command
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m kd_components.tools.ablation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--output", default="runs/ablation", help="run folder (default runs/ablation)")
    ap.add_argument("--data-dir", default=None, help="a BraTS folder; default: generate the synthetic phantom")
    ap.add_argument(
        "--modalities",
        default="all",
        help="student modalities: all (default), t1ce, or a list t1,t2; a combination joins names with + "
        "(t1ce+flair); any: one student for every subset, evaluated from each of the 15",
    )
    ap.add_argument("--seeds", type=int, default=2, help="student seeds per modality and variant (default 2)")
    ap.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help="comma-separated variants (see module doc)")
    ap.add_argument("--split", default="validation", choices=("validation", "test"), help="split to score on")
    ap.add_argument("--jobs", type=int, default=1, help="trainings at a time (default 1)")
    ap.add_argument("--num-cases", type=int, default=None, help="phantom cases (default: the demo's)")
    ap.add_argument("--teacher-epochs", type=int, default=None, help="teacher epochs (default: the demo's)")
    ap.add_argument("--long-teacher-factor", type=int, default=3, help="the long teacher trains this many times longer")
    ap.add_argument("--student-epochs", type=int, default=None, help="student epochs (default: the demo's)")
    ap.add_argument(
        "--val-interval", type=int, default=None, help="validate every N epochs (default: at half and at the end)"
    )
    ap.add_argument("--val-fraction", type=float, default=None, help="phantom validation fraction (default: demo's)")
    ap.add_argument("--test-fraction", type=float, default=None, help="phantom test fraction (default: the demo's)")
    ap.add_argument(
        "--student-steps",
        type=int,
        default=None,
        help="train each student for this many optimizer steps (epochs from its number of training items)",
    )
    ap.add_argument(
        "--labelled-fraction",
        type=float,
        default=1.0,
        help="students see the labels of this fraction of the training cases (default 1); the others go to the "
        "datalist's training_unlabelled split, which variants voxel_mean_unlabelled (teacher outputs only) and "
        "voxel_mean_pseudo (the teacher's thresholded map as their label) and pseudo_labels_only (its map, no KD) "
        "learn from",
    )
    ap.add_argument(
        "--split-file",
        default=None,
        help="a BraTS folder's split (kd_components.data datalist --split-file: a shipped name such as "
        "brats2018_public42, or a JSON of case lists) instead of --val-fraction / --test-fraction",
    )
    ap.add_argument(
        "--pixdim",
        type=float,
        nargs="+",
        default=None,
        help="resample every input to this voxel size in mm, one or three numbers (the bundles' pixdim; default: "
        "each image's own spacing)",
    )
    ap.add_argument(
        "--roi", type=int, nargs=3, default=None, help="training crop and sliding window (default 48 48 48)"
    )
    ap.add_argument("--lr", type=float, default=None, help="learning rate of teacher and students (default 1e-3)")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads per stage (default: cores / jobs)")
    ap.add_argument(
        "--stages",
        default="all",
        choices=("all", "teachers", "baselines", "distilled"),
        help="run a part only (default all): the teachers, the baselines, or the distilled students",
    )
    ap.add_argument("--quick", action="store_true", help="CI-sized run")
    ap.add_argument("--force", action="store_true", help="redo every stage even if its outputs exist")
    ap.add_argument(
        "--summarise-only", action="store_true", help="run nothing: tabulate the evaluations already under --output"
    )
    args = ap.parse_args(argv)
    check_counts(
        args,
        (
            "seeds",
            "jobs",
            "num_cases",
            "teacher_epochs",
            "student_epochs",
            "long_teacher_factor",
            "val_interval",
            "threads",
            "student_steps",
        ),
    )
    for name in ("val_fraction", "test_fraction"):
        value = getattr(args, name)
        if value is not None and not 0 < value < 1:
            raise InputError(f"--{name.replace('_', '-')} {value}: give a fraction between 0 and 1.")
    if not 0 < args.labelled_fraction <= 1:
        raise InputError(f"--labelled-fraction {args.labelled_fraction}: give a fraction in (0, 1].")
    variants, modalities = _parse_variants(args.variants), parse_modalities(args.modalities)
    unlabelled = [v for v in variants if v in UNLABELLED_VARIANTS]
    if args.labelled_fraction == 1 and unlabelled:
        raise InputError(
            f"--variants {','.join(unlabelled)} needs --labelled-fraction below 1 (it learns from the cases left out)."
        )
    if args.split_file and not args.data_dir:
        raise InputError("--split-file names cases of a BraTS folder: give --data-dir too (the phantom splits itself).")
    try:
        pixdim = pixdim_setting(args.pixdim[0] if args.pixdim and len(args.pixdim) == 1 else args.pixdim)
    except ValueError:
        raise InputError(
            f"--pixdim {' '.join(f'{v:g}' for v in args.pixdim)}: give one voxel size in mm or three, all > 0 "
            "(--pixdim 3 or --pixdim 3 3 3)."
        ) from None
    if args.roi is not None and min(args.roi) < 1 or args.lr is not None and not args.lr > 0:
        raise InputError(f"--roi {args.roi} / --lr {args.lr}: give three sizes >= 1 and a learning rate > 0.")
    output = Path(args.output).resolve()
    data_dir = Path(args.data_dir).resolve() if args.data_dir else None
    if data_dir is not None and not data_dir.is_dir():
        raise InputError(f"--data-dir '{data_dir}' does not exist: give a folder of BraTS case folders.")
    p = sizes(args.quick, args.teacher_epochs, args.student_epochs, args.val_interval)
    if args.num_cases:
        p["num_cases"] = args.num_cases
    for name in ("val_fraction", "test_fraction"):
        if getattr(args, name) is not None:
            p[name] = getattr(args, name)
    p.update({"pixdim": pixdim, "split_file": args.split_file})
    p.update({k: v for k, v in (("roi", args.roi), ("lr", args.lr)) if v is not None})
    output.mkdir(parents=True, exist_ok=True)
    check_run_settings(output, {"pixdim": pixdim, "roi": p["roi"], "lr": p["lr"], "split_file": args.split_file})
    t0, failed = time.time(), []
    if not args.summarise_only:
        with stop_on_signals():
            failed = _stages(args, p, output, data_dir, variants, modalities)
    left_out: list[str] = []
    keys = result_keys(modalities, args.split)
    seeds = range(args.seeds)
    results = {
        v: {k: _evaluations(output / v / m, sp, left_out, seeds) for k, (m, sp) in keys.items()} for v in variants
    }
    table = summarise(results, list(keys))
    n_cases = max((len(e["rows"]) for by in results.values() for es in by.values() for e in es), default=0)
    info = {
        "data": f"'{data_dir.name}' (a BraTS folder)"
        if args.data_dir
        else f"synthetic phantom, {p['num_cases']} cases of {'x'.join(map(str, p['shape']))}",
        "n_cases": n_cases,
        "seeds": list(range(args.seeds)),
        "teacher_epochs": p["teacher_epochs"],
        "long_teacher_epochs": p["teacher_epochs"] * args.long_teacher_factor,
        "student_epochs": p["student_epochs"],
        "student_steps": args.student_steps,
        "labelled_fraction": args.labelled_fraction,
        "roi": "x".join(map(str, p["roi"])),
        "pixdim": "x".join(f"{v:g}" for v in pixdim) if pixdim else None,
        "lr": p["lr"],
        "split_file": args.split_file,
        "collapsed": sorted(left_out),
    }
    command_line = "python -m kd_components.tools.ablation " + shlex.join(argv if argv is not None else sys.argv[1:])
    atomic_write_text(
        output / f"ablation_{args.split}.md", _markdown(table, list(keys), args.split, command_line, info)
    )
    atomic_write_text(
        output / f"ablation_{args.split}.json",
        json.dumps({"info": info, "ranked": rank_variants(table), "table": table, "failed": failed}, indent=2) + "\n",
    )
    print(f"\nablation finished in {time.time() - t0:.0f} s; table: {output / f'ablation_{args.split}.md'}")
    if failed:
        print(f"{len(failed)} stage(s) failed: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
