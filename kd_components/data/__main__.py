"""Command line: ``python -m kd_components.data {synthetic,datalist,stack,msd} ...``."""

from __future__ import annotations

import argparse
import sys
import time

from kd_components.data.datalist import build_datalist, build_datalist_from_split, write_datalist
from kd_components.data.phantom import write_phantom
from kd_components.data.stack import stack_case
from kd_components.errors import command


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m kd_components.data", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("synthetic", help="write the synthetic BraTS-like phantom (2018-2021 layout) and its datalist")
    s.add_argument("--output", required=True, help="folder to write (new, empty, or an earlier phantom)")
    s.add_argument("--num-cases", type=int, default=24, help="number of cases (default 24)")
    s.add_argument(
        "--shape",
        type=int,
        nargs=3,
        default=[64, 64, 64],
        metavar=("X", "Y", "Z"),
        help="volume shape, at most 240 240 155 (default 64 64 64)",
    )
    s.add_argument("--seed", type=int, default=0, help="master seed: same seed, same data (default 0)")
    s.add_argument("--val-fraction", type=float, default=0.2, help="share of cases for validation (default 0.2)")
    s.add_argument("--test-fraction", type=float, default=0.2, help="share of cases for the test split (default 0.2)")
    d = sub.add_parser("datalist", help="write a training/validation/test datalist of a BraTS folder")
    d.add_argument("--data-dir", required=True, help="folder holding BraTS case folders (2018-2021 or 2023 layout)")
    d.add_argument("--output", required=True, help="datalist JSON to write (paths inside are relative to --data-dir)")
    d.add_argument("--val-fraction", type=float, default=0.2, help="share of cases for validation (default 0.2)")
    d.add_argument("--test-fraction", type=float, default=0.2, help="share of cases for the test split (default 0.2)")
    d.add_argument("--seed", type=int, default=0, help="seed of the random split (default 0)")
    d.add_argument(
        "--split-file",
        help="take training/validation/test from a published split (JSON with the three case lists, or a shipped "
        "one: brats2018_mmformer_fold0, brats2018_public42); --val-fraction then moves that share of its training "
        "cases to validation when it has none, and --test-fraction is not used",
    )
    d.add_argument(
        "--allow-absent-sequences",
        action="store_true",
        help="keep cases that lack some of the four sequences (null at their channels, all in training): the training "
        "data of a --student_modality any student; without it such cases are refused by name",
    )
    k = sub.add_parser("stack", help="write one case's four modalities as one 4-channel NIfTI (T1c, T1, T2, FLAIR)")
    k.add_argument("--case-dir", required=True, help="folder of one BraTS case (2018-2021 or 2023 layout)")
    k.add_argument("--output", required=True, help="4-channel NIfTI to write, e.g. studies/CASE.nii.gz")
    k.add_argument(
        "--modality",
        default=None,
        help="only a student's sequences, e.g. t1ce+flair (a 2-channel image for that student); default all four",
    )
    m = sub.add_parser(
        "msd",
        help="convert the Medical Segmentation Decathlon's Task01_BrainTumour (4-D images) to the BraTS 2018-2021 "
        "layout, channels and labels mapped by dataset.json, and write its datalist",
    )
    m.add_argument("--data-dir", required=True, help="the MSD Task01_BrainTumour folder (dataset.json, imagesTr/)")
    m.add_argument("--output", required=True, help="new or empty folder to write the BraTS-layout cases into")
    m.add_argument("--val-fraction", type=float, default=0.2, help="share of cases for validation (default 0.2)")
    m.add_argument("--test-fraction", type=float, default=0.2, help="share of cases for the test split (default 0.2)")
    m.add_argument("--seed", type=int, default=0, help="seed of the random split (default 0)")
    m.add_argument("--max-cases", type=int, default=None, help="convert the first N cases only")
    return p


@command
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    t0 = time.time()
    if args.command == "synthetic":
        out = write_phantom(
            args.output, args.num_cases, tuple(args.shape), args.seed, args.val_fraction, args.test_fraction
        )
    elif args.command == "stack":
        from kd_components.brats import CHANNEL_NAMES, TEACHER_CHANNELS, combination_members

        out = stack_case(args.case_dir, args.output, args.modality)
        members = combination_members(args.modality) if args.modality else TEACHER_CHANNELS
        print(f"wrote {out} (channels {', '.join(CHANNEL_NAMES[m] for m in members)}) in {time.time() - t0:.1f} s")
        return 0
    elif args.command == "msd":
        from kd_components.data.msd import convert_msd

        out = convert_msd(args.data_dir, args.output, args.val_fraction, args.test_fraction, args.seed, args.max_cases)
    elif args.split_file:
        dl = build_datalist_from_split(args.data_dir, args.split_file, args.val_fraction, args.seed)
        out = write_datalist(dl, args.output, args.data_dir)
    else:
        out = write_datalist(
            build_datalist(
                args.data_dir,
                args.val_fraction,
                args.test_fraction,
                args.seed,
                allow_absent=args.allow_absent_sequences,
            ),
            args.output,
            args.data_dir,
        )
    import json

    content = json.loads(out.read_text())
    counts = ", ".join(f"{k} {len(content[k])}" for k in ("training", "validation", "test"))
    print(f"wrote {out} ({counts}; label convention {content['label_convention']}) in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
