"""Write the bundle's datalist from a BraTS folder, in the model zoo's ``scripts/prepare_datalist.py`` form.

``python scripts/prepare_datalist.py --path /data/BraTS2021 [--output /data/BraTS2021/datalist.json]``

Finds every case folder under ``--path`` (any depth) in the BraTS 2018-2021 layout
(``CASE/CASE_{t1,t1ce,t2,flair,seg}.nii.gz``) or the 2023 one (``CASE/CASE-{t1n,t1c,t2w,t2f,seg}.nii.gz``) and
splits the cases at random (fixed ``--seed``) into ``training``, ``validation`` and ``test``. Each entry lists the
images in the bundles' channel order T1c, T1, T2, FLAIR and the label, as paths relative to ``--path``: pass that
folder as ``--dataset_dir`` and the output as ``--data_list_file_path`` (the default output,
``<path>/datalist.json``, is the bundles' default ``data_list_file_path``). Needs the Python standard library only,
so it runs wherever the bundle does; the bundle's own copy stands alone (each bundle carries one).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys

#: per layout: file suffix -> role, and the separator between case name and suffix.
LAYOUTS = {
    "_": {"t1ce": "t1ce", "t1": "t1", "t2": "t2", "flair": "flair", "seg": "seg"},
    "-": {"t1c": "t1ce", "t1n": "t1", "t2w": "t2", "t2f": "flair", "seg": "seg"},
}
ORDER = ("t1ce", "t1", "t2", "flair")  # the teacher's channels, the model zoo's brats_mri_segmentation order
NAME = re.compile(r"^(?P<case>.+?)(?P<sep>[_-])(?P<suffix>[a-z0-9]+)\.nii(\.gz)?$")


def find_cases(path: str) -> tuple[list[dict], list[str]]:
    """Datalist entries of the complete cases under ``path`` and a description of each incomplete folder."""
    entries, problems = [], []
    for folder, _, files in sorted(os.walk(path)):
        roles: dict[str, str] = {}
        for fname in sorted(files):
            m = NAME.match(fname)
            role = LAYOUTS.get(m["sep"], {}).get(m["suffix"]) if m else None
            if role is not None:
                roles[role] = os.path.relpath(os.path.join(folder, fname), path)
        if not roles:
            continue
        missing = [r for r in (*ORDER, "seg") if r not in roles]
        if missing:
            problems.append(f"{os.path.relpath(folder, path)} lacks {', '.join(missing)}")
            continue
        entries.append({"image": [roles[r] for r in ORDER], "label": roles["seg"]})
    return entries, problems


def split(entries: list[dict], val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[dict]]:
    """Random training / validation / test split; the same seed and cases give the same split."""
    shuffled = sorted(entries, key=lambda e: e["label"])
    random.Random(seed).shuffle(shuffled)
    n_val, n_test = round(len(shuffled) * val_fraction), round(len(shuffled) * test_fraction)
    return {
        "training": shuffled[n_val + n_test :],
        "validation": shuffled[:n_val],
        "test": shuffled[n_val : n_val + n_test],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--path", required=True, help="folder holding the BraTS case folders")
    ap.add_argument("--output", default=None, help="datalist JSON to write (default <path>/datalist.json)")
    ap.add_argument("--val-fraction", type=float, default=0.2, help="share of cases for validation (default 0.2)")
    ap.add_argument("--test-fraction", type=float, default=0.2, help="share of cases for test (default 0.2)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    args = ap.parse_args(argv)
    if not os.path.isdir(args.path):
        print(f"error: --path '{args.path}' is not a folder: give the folder of BraTS case folders.", file=sys.stderr)
        return 1
    if not (0 <= args.val_fraction < 1 and 0 <= args.test_fraction < 1 and args.val_fraction + args.test_fraction < 1):
        print(
            "error: --val-fraction and --test-fraction must be in [0, 1) and leave cases for training.", file=sys.stderr
        )
        return 1
    entries, problems = find_cases(args.path)
    if problems:
        print(f"error: incomplete BraTS cases under '{args.path}': {'; '.join(problems)}.", file=sys.stderr)
        return 1
    if not entries:
        print(
            f"error: no BraTS case under '{args.path}': expected CASE/CASE_{{t1,t1ce,t2,flair,seg}}.nii.gz or "
            f"CASE/CASE-{{t1n,t1c,t2w,t2f,seg}}.nii.gz.",
            file=sys.stderr,
        )
        return 1
    datalist = split(entries, args.val_fraction, args.test_fraction, args.seed)
    output = args.output or os.path.join(args.path, "datalist.json")
    tmp = output + ".tmp"
    with open(tmp, "w") as f:
        json.dump(datalist, f, indent=4)
        f.write("\n")
    os.replace(tmp, output)
    sizes = ", ".join(f"{len(v)} {k}" for k, v in datalist.items())
    print(f"wrote {output}: {sizes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
