"""The main job: the paper's comparison in one command.

``python -m kd_components.tools.demo --output runs/demo [--data-dir DIR] [--modalities t1ce|all|t1,t2] [--seeds N]
[--quick] [--force]``

Stages: the synthetic phantom (or a datalist of ``--data-dir``), the 4-modality teacher, then for each modality
and seed the baseline student and the KD student, each evaluated on the held-out test split, and finally the
report (``report.md`` with figures). Each stage is the bundles' own command line (``python -m monai.bundle run
...``), printed before it runs, so what the demo does a user can do by hand. A stage whose outputs exist is
reused unless ``--force``. The default (T1ce, one seed) took 507 s on an idle 2-core CPU (from a fresh clone at
ab5f494; the README's figure); ``--quick`` is the CI-sized smoke run.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from kd_components.data.datalist import find_cases
from kd_components.errors import InputError, command
from kd_components.files import atomic_write_text
from kd_components.tools.stages import (
    Stage,
    check_counts,
    common_overrides,
    data_stage,
    parse_modalities,
    sizes,
    stop_on_signals,
    student_stages,
    teacher_stages,
)


def plan(
    output: Path,
    data_dir: Path | None,
    quick: bool,
    modalities: list[str],
    seeds: list[int],
    teacher_epochs: int | None = None,
    student_epochs: int | None = None,
    eval_split: str = "test",
    kd_follow_margin: bool | None = None,
) -> list[Stage]:
    """The demo's stages, in order. Validation runs at half and at the end of each training.

    ``kd_follow_margin`` None: the profile's (off: every region distilled, as chosen on validation)."""
    p = sizes(quick, teacher_epochs, student_epochs)
    follow = p["kd_follow_margin"] if kd_follow_margin is None else kd_follow_margin
    first, data_dir, datalist = data_stage(output, data_dir, p)
    common, train_common = common_overrides(data_dir, datalist, p)
    teacher = output / "teacher"
    stages = [first, *teacher_stages(teacher, p, common, train_common, eval_split)]
    for m in modalities:
        for seed in seeds:
            for model in ("baseline", "kd"):
                name = f"{m} student, seed {seed}, {'KD' if model == 'kd' else 'baseline'}"
                stages += student_stages(
                    output / m / f"seed{seed}" / model,
                    name,
                    m,
                    seed,
                    model == "baseline",
                    teacher / "models" / "model.pt",
                    p,
                    common,
                    train_common,
                    eval_split,
                    # the quality gate compares the teacher's validation Dice with this seed's baseline's and, with
                    # kd_follow_margin, switches KD off on the regions where the teacher is not better
                    {
                        "baseline_validation": output / m / f"seed{seed}" / "baseline" / "models",
                        "kd_follow_margin": follow,
                    }
                    if model == "kd"
                    else None,
                )
    return stages


def _check_run_config(output: Path, config: dict, force: bool) -> None:
    """Refuse to mix two different runs in one output folder."""
    f = output / "demo_config.json"
    old = json.loads(f.read_text()) if f.is_file() else None
    if isinstance(old, dict):
        old.setdefault("eval_split", "test")  # runs from before --eval-split
    if old is not None and old != config and not force:
        raise InputError(
            f"output folder '{output}' holds a demo run with other settings ({f}): choose another --output, "
            f"or add --force to redo every stage there."
        )
    output.mkdir(parents=True, exist_ok=True)
    atomic_write_text(f, json.dumps(config, indent=4) + "\n")


@command
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m kd_components.tools.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--output", default="runs/demo", help="run folder (default runs/demo)")
    ap.add_argument("--data-dir", default=None, help="a BraTS folder; default: generate the synthetic phantom")
    ap.add_argument(
        "--modalities",
        default="t1ce",
        help="student modalities: t1ce (default), all, or a list t1,t2; a combination joins names with +: t1ce+flair",
    )
    ap.add_argument("--seeds", type=int, default=1, help="student seeds per modality (default 1; use 3+ for evidence)")
    ap.add_argument("--teacher-epochs", type=int, default=None, help="teacher epochs (default 8; quick 2)")
    ap.add_argument("--student-epochs", type=int, default=None, help="student epochs (default 6; quick 1)")
    ap.add_argument(
        "--eval-split",
        default="test",
        choices=("test", "validation"),
        help="split the models are scored on (default test; validation to choose settings without seeing test)",
    )
    ap.add_argument(
        "--kd-follow-margin",
        default=None,
        choices=("true", "false"),
        help="KD weight 0 on regions where the teacher is not better than the baseline on validation "
        "(default false, chosen on validation)",
    )
    ap.add_argument("--quick", action="store_true", help="CI-sized run (tiny phantom, 1-2 epochs)")
    ap.add_argument("--force", action="store_true", help="redo every stage even if its outputs exist")
    args = ap.parse_args(argv)
    output = Path(args.output).resolve()
    data_dir = Path(args.data_dir).resolve() if args.data_dir else None
    modalities = parse_modalities(args.modalities)
    check_counts(args, ("seeds", "teacher_epochs", "student_epochs"))
    if data_dir is not None:
        if not data_dir.is_dir():
            raise InputError(f"--data-dir '{data_dir}' does not exist: give a folder of BraTS case folders.")
        find_cases(data_dir)  # refuses a folder without complete BraTS cases, before any work
    config = {
        "data_dir": str(data_dir),
        "quick": args.quick,
        "modalities": modalities,
        "seeds": args.seeds,
        "teacher_epochs": args.teacher_epochs,
        "student_epochs": args.student_epochs,
        "eval_split": args.eval_split,
    }
    follow = None if args.kd_follow_margin is None else args.kd_follow_margin == "true"
    if follow is not None:
        config["kd_follow_margin"] = follow
    _check_run_config(output, config, args.force)
    stages = plan(
        output,
        data_dir,
        args.quick,
        modalities,
        list(range(args.seeds)),
        args.teacher_epochs,
        args.student_epochs,
        args.eval_split,
        follow,
    )
    t0 = time.time()
    with stop_on_signals():
        for i, stage in enumerate(stages, 1):
            stage.name = f"[{i}/{len(stages) + 1}] {stage.name}"
            stage.run(args.force)
    command = "python -m kd_components.tools.demo " + shlex.join(argv if argv is not None else sys.argv[1:])
    report = Stage(
        f"[{len(stages) + 1}/{len(stages) + 1}] report",
        [
            sys.executable,
            "-m",
            "kd_components.tools.report",
            "--runs",
            str(output),
            "--command",
            command,
            "--split",
            args.eval_split,
        ],
        output / "report.md",
    )
    report.run(force=True)
    print(f"\ndemo finished in {time.time() - t0:.0f} s; report: {output / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
