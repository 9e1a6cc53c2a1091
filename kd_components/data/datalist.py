"""BraTS folder discovery, datalist JSON writing and datalist loading with checks before any work starts.

Both BraTS layouts are recognised (2018-2021 and 2023 on; see :mod:`kd_components.brats`).

A datalist entry is ``{"image": [t1ce, t1, t2, flair], "label": seg, "case": CASE, "label_convention": ...}``
with paths relative to the data folder; the image order is the teacher's channel order (T1c, T1, T2, FLAIR),
the one of MONAI model-zoo ``brats_mri_segmentation``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kd_components.brats import (
    CHANNEL_NAMES,
    FILE_SEPARATOR,
    FILE_SUFFIXES,
    TEACHER_CHANNELS,
    channel_order_problem,
    split_file_name,
)
from kd_components.data import validate
from kd_components.errors import InputError
from kd_components.files import atomic_write_text

__all__ = [
    "BratsCase",
    "find_cases",
    "build_datalist",
    "build_datalist_from_split",
    "read_split_file",
    "write_datalist",
    "datalist_leaks",
    "load_datalist",
    "check_entry",
    "missing_data",
    "PRESENT_KEY",
]


@dataclass
class BratsCase:
    """One case folder found on disk: ``files`` maps role (t1ce, t1, t2, flair, seg) to a path."""

    name: str
    folder: Path
    convention: str
    files: dict[str, Path] = field(default_factory=dict)

    def missing(self, allow_absent: bool = False) -> list[str]:
        """Expected file names of the roles that were not found (``allow_absent``: of the segmentation only, and of
        the sequences when the case has none)."""
        sep, suffixes = FILE_SEPARATOR[self.convention], FILE_SUFFIXES[self.convention]
        suffix_of = {role: suffix for suffix, role in suffixes.items()}
        roles = (*TEACHER_CHANNELS, "seg")
        if allow_absent and any(m in self.files for m in TEACHER_CHANNELS):
            roles = ("seg",)
        return [f"{self.name}{sep}{suffix_of[r]}.nii.gz" for r in roles if r not in self.files]

    def absent(self) -> list[str]:
        """The sequences (canonical names) this case has no file for."""
        return [m for m in TEACHER_CHANNELS if m not in self.files]


def find_cases(data_dir: str | os.PathLike, allow_absent: bool = False) -> list[BratsCase]:
    """Find BraTS cases under ``data_dir`` (any depth), in either layout, sorted by name.

    Args:
        data_dir: the folder of the case folders.
        allow_absent: accept cases that lack some of the four sequences (at least one, and the segmentation): the
            training data of a ``--student_modality any`` student (or a teacher trained with absent sequences).

    Raises:
        InputError: ``data_dir`` missing, no case found, a case mixing layouts or missing a modality or its
            segmentation (all incomplete cases are listed in one message).
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise InputError(f"data folder '{root}' does not exist: give the folder that holds the BraTS case folders.")
    cases: dict[Path, BratsCase] = {}
    visited: set[str] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):  # symlinked case folders are cases too
        real = os.path.realpath(folder)
        if real in visited:  # a link back up the tree, or two links to one folder: walk it once
            dirs[:] = []
            continue
        visited.add(real)
        for fname in sorted(files):
            # the BraTS names are read in one place (brats.split_file_name): "x-t1.nii.gz" is not one
            name, conv, role = split_file_name(fname)
            if conv is None or "+" in role or not fname.endswith((".nii", ".nii.gz")):
                continue  # not a BraTS name, or a stacked file (CASE_t1ce+flair.nii.gz): not one of the case's files
            case = cases.setdefault(Path(folder), BratsCase(name, Path(folder), conv))
            if case.convention != conv:
                raise InputError(
                    f"case folder '{folder}' mixes the BraTS 2018-2021 names (CASE_t1ce) and the 2023 names "
                    f"(CASE-t1c): keep one layout per case."
                )
            if role in case.files:
                raise InputError(f"case folder '{folder}' has two files for {role}: keep one.")
            case.files[role] = Path(folder) / fname
    if not cases and (root / "dataset.json").is_file() and (root / "imagesTr").is_dir():
        raise InputError(
            f"'{root}' is a Medical Segmentation Decathlon task (dataset.json, 4-D imagesTr/): convert it to the BraTS "
            f"layout first with python -m kd_components.data msd --data-dir '{root}' --output DIR, then use DIR."
        )
    if not cases:
        raise InputError(
            f"no BraTS case found under '{root}': expected folders CASE/ with CASE_{{t1,t1ce,t2,flair,seg}}.nii.gz "
            f"(2018-2021) or CASE-{{t1n,t1c,t2w,t2f,seg}}.nii.gz (2023)."
        )
    incomplete = [c for c in cases.values() if c.missing(allow_absent)]
    if incomplete:
        detail = "; ".join(
            f"'{c.folder}' lacks {', '.join(c.missing(allow_absent))}" for c in sorted(incomplete, key=lambda c: c.name)
        )
        need = (
            "its segmentation and at least one sequence"
            if allow_absent
            else "all four modalities and its segmentation (for a --student_modality any student, write the datalist "
            "with --allow-absent-sequences)"
        )
        raise InputError(
            f"{len(incomplete)} case(s) incomplete: {detail}. Every case needs {need}: add the files or move the "
            f"case out of the data folder."
        )
    return sorted(cases.values(), key=lambda c: c.name)


def _entry(case: BratsCase, root: Path) -> dict:
    return {
        # an absent sequence (a datalist written with --allow-absent-sequences) is null at its channel
        "image": [case.files[m].relative_to(root).as_posix() if m in case.files else None for m in TEACHER_CHANNELS],
        "label": case.files["seg"].relative_to(root).as_posix(),
        "case": case.name,
        "label_convention": case.convention,
    }


def _check_fraction(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise InputError(f"--{name.replace('_', '-')} is {value}: give a fraction in [0, 1).")
    return value


def build_datalist(
    data_dir: str | os.PathLike,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    check_images: bool = True,
    allow_absent: bool = False,
) -> dict:
    """Datalist of the BraTS cases under ``data_dir`` split at random into training, validation and test.

    Paths are relative to ``data_dir`` (the bundles' ``dataset_dir``). Splits are deterministic by ``seed``; each
    of validation and test gets at least one case when the fraction is non-zero and there are three cases or
    more, and training always keeps at least one. With ``allow_absent`` cases lacking sequences are kept (null at
    their channels in ``image``), all in training: validation and test are drawn from the complete cases.

    Raises:
        InputError: bad fractions, or any problem of :func:`find_cases` / :func:`check_entry`.
    """
    val_fraction = _check_fraction("val_fraction", val_fraction)
    test_fraction = _check_fraction("test_fraction", test_fraction)
    if val_fraction + test_fraction >= 1.0:
        raise InputError(
            f"--val-fraction {val_fraction} + --test-fraction {test_fraction} leave no training case: "
            f"keep the sum below 1."
        )
    root = Path(data_dir)
    cases = find_cases(root, allow_absent)
    entries = [_entry(c, root) for c in cases if not c.absent()]
    partial = [_entry(c, root) for c in cases if c.absent()]
    if check_images:
        problems = [p for e in entries + partial for p in check_entry(e, root, allow_absent=allow_absent)]
        validate.flush()
        if problems:
            raise InputError(f"{len(problems)} problem(s) in '{root}': " + "; ".join(problems))
    n = len(entries)
    order = np.random.default_rng(seed).permutation(n)

    def count(frac: float) -> int:
        k = int(round(n * frac))
        return max(k, 1) if frac > 0 and n >= 3 else k

    n_test, n_val = count(test_fraction), count(val_fraction)
    n_val = min(n_val, max(n - 1 - n_test, 0))
    if (val_fraction > 0 and n_val == 0) or (test_fraction > 0 and n_test == 0):
        raise InputError(
            f"{n} case(s) under '{root}' cannot fill training, validation and test (--val-fraction {val_fraction} "
            f"and --test-fraction {test_fraction} leave {n_val} validation and {n_test} test case(s)): add cases "
            f"(3 or more), or pass --val-fraction 0 / --test-fraction 0 for a split you do not need."
        )
    test = sorted(order[:n_test].tolist())
    val = sorted(order[n_test : n_test + n_val].tolist())
    train = sorted(order[n_test + n_val :].tolist())
    conventions = sorted({e["label_convention"] for e in entries})
    return {
        "description": "BraTS datalist written by kd_components.data; paths are relative to the data folder.",
        "channel_order": [CHANNEL_NAMES[m] for m in TEACHER_CHANNELS],
        "label_convention": conventions[0] if len(conventions) == 1 else "mixed",
        "split_seed": int(seed),
        "training": [entries[i] for i in train] + partial,
        "validation": [entries[i] for i in val],
        "test": [entries[i] for i in test],
    }


#: published splits shipped with the package (case identifiers only), by name
SPLITS_DIR = Path(__file__).resolve().parents[1] / "splits"


def read_split_file(split_file: str | os.PathLike) -> dict[str, list[str]]:
    """The case lists of a split file: a JSON object with ``training``, ``validation`` and ``test`` lists of case
    names (or paths, whose last part is taken), or the name of a split shipped in ``kd_components/splits``.

    Raises:
        InputError: a missing or unreadable file, or one without the three lists.
    """
    path = Path(split_file)
    if not path.is_file() and (SPLITS_DIR / f"{split_file}.json").is_file():
        path = SPLITS_DIR / f"{split_file}.json"
    shipped = ", ".join(sorted(p.stem for p in SPLITS_DIR.glob("*.json")))
    if not path.is_file():
        raise InputError(
            f"--split-file '{split_file}' does not exist: give a JSON file with 'training', 'validation' and 'test' "
            f"case lists, or a shipped split ({shipped})."
        )
    try:
        content = json.loads(path.read_text())
        lists = {k: [Path(str(c)).name for c in content[k]] for k in ("training", "validation", "test")}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise InputError(
            f"--split-file '{path}' is not a split ({type(e).__name__}: {e}): it needs a JSON object with the lists "
            f"'training', 'validation' and 'test' (an empty list where a split has none)."
        ) from None
    return lists


def build_datalist_from_split(
    data_dir: str | os.PathLike,
    split_file: str | os.PathLike,
    val_fraction: float = 0.0,
    seed: int = 0,
    check_images: bool = True,
) -> dict:
    """Datalist of the cases under ``data_dir`` split as a published split file says (its protocol reproduced).

    Every case the split names must be in ``data_dir``; cases in ``data_dir`` that the split does not name are left
    out. When the split has no validation list, ``val_fraction`` of its training cases (chosen with ``seed``) become
    the validation split; its test list is never touched.

    Raises:
        InputError: cases of the split missing from ``data_dir`` (named), a case in two lists, bad fractions, or any
            problem of :func:`find_cases` / :func:`check_entry`.
    """
    val_fraction = _check_fraction("val_fraction", val_fraction)
    split = read_split_file(split_file)
    root = Path(data_dir)
    cases = {c.name: c for c in find_cases(root)}
    named = [c for k in ("training", "validation", "test") for c in split[k]]
    twice = sorted({c for c in named if named.count(c) > 1})
    if twice:
        raise InputError(f"--split-file '{split_file}' puts {len(twice)} case(s) in two lists: {', '.join(twice[:5])}.")
    missing = [c for c in named if c not in cases]
    if missing:
        raise InputError(
            f"{len(missing)} case(s) of --split-file '{split_file}' are not under '{root}': {', '.join(missing[:5])}"
            f"{' ...' if len(missing) > 5 else ''}; give the folder of that BraTS release (case folders named as in "
            f"the split)."
        )
    lists = {k: list(split[k]) for k in ("training", "validation", "test")}
    if not lists["validation"] and val_fraction > 0:
        order = np.random.default_rng(seed).permutation(len(lists["training"]))
        k = max(1, int(round(len(order) * val_fraction)))
        chosen = set(order[:k].tolist())
        lists["validation"] = [c for i, c in enumerate(lists["training"]) if i in chosen]
        lists["training"] = [c for i, c in enumerate(lists["training"]) if i not in chosen]
    entries = {k: [_entry(cases[c], root) for c in sorted(v)] for k, v in lists.items()}
    if check_images:
        problems = [p for v in entries.values() for e in v for p in check_entry(e, root)]
        validate.flush()
        if problems:
            raise InputError(f"{len(problems)} problem(s) in '{root}': " + "; ".join(problems))
    conventions = sorted({e["label_convention"] for v in entries.values() for e in v})
    return {
        "description": "BraTS datalist written by kd_components.data; paths are relative to the data folder.",
        "channel_order": [CHANNEL_NAMES[m] for m in TEACHER_CHANNELS],
        "label_convention": conventions[0] if len(conventions) == 1 else "mixed",
        "split_file": str(split_file),
        "split_seed": int(seed),
        "left_out": len(cases) - len(named),
        **entries,
    }


def write_datalist(datalist: dict, output: str | os.PathLike, base_dir: str | os.PathLike | None = None) -> Path:
    """Write ``datalist`` as indented JSON (via a temporary file, so a kill never leaves half a file).

    Raises:
        InputError: the datalist leaks (:func:`datalist_leaks`); nothing is written.
    """
    leaks = datalist_leaks(datalist, base_dir if base_dir is not None else Path(output).parent)
    if leaks:
        raise InputError(f"datalist for '{output}' not written: {leaks}")
    return atomic_write_text(output, json.dumps(datalist, indent=4) + "\n")


def _split_lists(content: dict) -> dict[str, list]:
    """The case lists of a datalist (every key whose value is a list of entries with an ``image``)."""
    return {
        k: v for k, v in content.items() if isinstance(v, list) and any(isinstance(i, dict) and "image" in i for i in v)
    }


def datalist_leaks(content: dict, base_dir: str | os.PathLike) -> str:
    """What makes a datalist leak, in one sentence with the fix; empty when it does not.

    A case (by name, or by any image or label file, paths resolved through symlinks) may be in one split once: the
    same case twice in a split weighs it twice, a case in two splits (training and test) puts what is tested into
    training, and two cases sharing a file are one case under two names. Any of these makes every reported number
    wrong.
    """
    base = Path(base_dir)
    owner: dict[str, tuple[str, str]] = {}  # key -> (split, case)
    problems: list[str] = []
    for split, items in _split_lists(content).items():
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            name = str(item.get("case") or f"entry {i}")
            files = [item.get("image")] if isinstance(item.get("image"), str) else list(item.get("image") or [])
            files = [f for f in files if f is not None]  # an absent sequence
            files += [item["label"]] if isinstance(item.get("label"), str) else []
            keys = [f"case {name}"] if item.get("case") else []  # unnamed entries are told apart by their files
            keys += [f"file {(base / f).resolve()}" for f in files]
            for key in dict.fromkeys(keys):
                if key in owner:
                    other_split, other = owner[key]
                    where = f"twice in '{split}'" if other_split == split else f"in '{other_split}' and '{split}'"
                    what = f"case '{name}'" if other == name else f"cases '{other}' and '{name}'"
                    via = "" if key.startswith("case ") else f" (the same file {key[5:]})"
                    problems.append(f"{what} {where}{via}")
                    break
                owner[key] = (split, name)
    if not problems:
        return ""
    more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
    return (
        f"it leaks: {'; '.join(problems[:3])}{more}; every case must be in one split, once, with files of its own: "
        f"fix the lists, or rebuild the datalist with python -m kd_components.data datalist."
    )


#: how to mend a datalist entry whose images are not in the teacher's channel order (training, evaluation, inference)
CHANNEL_ORDER_FIX = (
    "'image' lists T1c, T1, T2, FLAIR in that order (the teacher's channels): reorder it, or write the datalist with "
    "python -m kd_components.data datalist"
)


def _header_shape(path: Path) -> tuple[int, ...]:
    import nibabel as nib

    return tuple(int(s) for s in nib.load(str(path)).shape)


def check_entry(entry: dict, base_dir: str | os.PathLike, n_channels: int = 4, allow_absent: bool = False) -> list[str]:
    """Problems of one datalist entry (empty list when it is usable), each with the file and how to fix it.

    Every voxel is read (``kd_components.data.validate.case_problems``): missing or unreadable files, shapes or
    affines that differ, NaN/Inf voxels, empty modalities, label values outside the case's convention. Clean cases
    are remembered by path, size and modification time, so a second run re-reads only what changed. A null in
    ``image`` (an absent sequence) is a problem unless ``allow_absent``, and a case needs one sequence at least.
    """
    base = Path(base_dir)
    name = entry.get("case") or entry.get("label") or "?"
    images = entry.get("image")
    if isinstance(images, str):
        images = [images]
    if not isinstance(images, list) or len(images) != n_channels:
        return [f"case '{name}': 'image' must list {n_channels} modality file(s) (T1c, T1, T2, FLAIR), got {images!r}"]
    problems = []
    absent = [CHANNEL_NAMES[m] for m, p in zip(TEACHER_CHANNELS, images) if p is None] if n_channels == 4 else []
    if len(absent) == len(images):
        return [f"case '{name}': 'image' lists no sequence (all null): give at least one file"]
    if absent and not allow_absent:
        problems.append(
            f"case '{name}' lacks {', '.join(absent)} (null in 'image'): cases with absent sequences train only a "
            f"--student_modality any student, or the teacher with --allow_absent_sequences true; add the file(s) "
            f"or leave the case out of this split"
        )
    if n_channels == 4 and (misplaced := channel_order_problem(images)) is not None:
        problems.append(f"case '{name}': {misplaced}; {CHANNEL_ORDER_FIX}")
    images = [p for p in images if p is not None]
    if "teacher_logits" in entry and not (base / entry["teacher_logits"]).is_file():
        problems.append(
            f"case '{name}': cached teacher logits '{base / entry['teacher_logits']}' do not exist (write them "
            f"with 'python -m kd_components.tools.cache')"
        )
    label = base / entry["label"] if "label" in entry else None
    return problems + validate.case_problems(
        str(name), [base / p for p in images], label, entry.get("label_convention")
    )


def missing_data(dataset_dir: str | os.PathLike, data_list_file_path: str | os.PathLike) -> list[str]:
    """What is missing of a bundle's data (the folder, else the datalist), each with how to fix it; empty if none."""
    base, path = Path(dataset_dir), Path(data_list_file_path)
    if not base.is_dir():
        return [
            f"dataset_dir '{base}' does not exist: pass --dataset_dir with your BraTS folder, or generate the "
            f"phantom with 'python -m kd_components.data synthetic --output {base}'"
        ]
    if not path.is_file():
        return [
            f"datalist '{path}' does not exist: write it with 'python -m kd_components.data datalist --data-dir "
            f"{base} --output {path}' or pass --data_list_file_path"
        ]
    return []


def load_datalist(
    data_list_file_path: str | os.PathLike,
    data_list_key: str,
    base_dir: str | os.PathLike,
    n_channels: int = 4,
    check: bool = True,
    missing_ok: bool = False,
    allow_absent: bool = False,
) -> list[dict]:
    """Load one split of a datalist for a bundle, checking it first; paths come back joined to ``base_dir``.

    A drop-in replacement of ``monai.data.load_decathlon_datalist`` that refuses bad input with one line.

    Args:
        data_list_file_path: the datalist JSON.
        data_list_key: ``training``, ``validation`` or ``test``.
        base_dir: the data folder the relative paths start from (the bundles' ``dataset_dir``).
        n_channels: number of image files each entry must list.
        check: read every file's header and compare shapes (a few seconds for a BraTS training set).
        missing_ok: a missing data folder or datalist file gives ``[]`` instead of an error: the bundles' training
            datalist, whose absence ``check_inputs`` reports together with the run's other missing inputs.
        allow_absent: accept entries whose ``image`` has null at an absent sequence; such an item comes back with
            the files it has and ``present`` (one flag per channel, ``PRESENT_KEY``) for ``FillAbsentd``.

    Raises:
        InputError: missing folder or file (unless ``missing_ok``), an absent sequence (unless ``allow_absent``),
            unreadable or empty datalist, missing split,
            missing or unreadable images, shapes that differ (all problems of the split in one message).
    """
    base, path = Path(base_dir), Path(data_list_file_path)
    missing = missing_data(base, path)
    if missing and missing_ok:
        return []
    if missing:
        raise InputError(missing[0] + ".")
    try:
        content = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(
            f"datalist '{path}' is not valid JSON ({e}): rewrite it with 'kd_components.data datalist'."
        ) from None
    items = content.get(data_list_key) if isinstance(content, dict) else None
    leaks = datalist_leaks(content, base) if isinstance(content, dict) else ""
    if leaks:
        raise InputError(f"datalist '{path}': {leaks}")
    if not isinstance(items, list) or not items:
        raise InputError(
            f"datalist '{path}' has no '{data_list_key}' cases: it needs a non-empty list under '{data_list_key}' "
            f"(rebuild it with 'kd_components.data datalist', which splits cases into training/validation/test)."
        )
    problems = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "image" not in item:
            problems.append(f"entry {i} of '{data_list_key}' has no 'image'")
        elif check:
            problems.extend(check_entry(item, base, n_channels, allow_absent))
    validate.flush()
    if problems:
        count = f"{len(problems)} problem(s)"
        raise InputError(f"datalist '{path}', split '{data_list_key}', {count}: " + "; ".join(problems))
    return [_join(item, base) for item in items]


#: the item key of the channels a case has (one flag per teacher channel), for items with absent sequences.
PRESENT_KEY = "present"


def _join(item: dict, base: Path) -> dict:
    out = dict(item)
    images = out.get("image")
    if isinstance(images, list) and any(p is None for p in images):
        out[PRESENT_KEY] = [p is not None for p in images]
        out["image"] = [p for p in images if p is not None]
    for key in ("image", "label", "teacher_logits"):
        if key in out:
            v = out[key]
            out[key] = (
                [str(base / p) for p in v] if isinstance(v, Sequence) and not isinstance(v, str) else str(base / v)
            )
    return out


#: the item key that marks whether a training item's label may be used (``False``: withheld, teacher only).
LABELLED_KEY = "labelled"


def load_training_items(
    data_list_file_path: str | os.PathLike,
    base_dir: str | os.PathLike,
    unlabelled_split: str | None = None,
    n_channels: int = 4,
    missing_ok: bool = True,
    allow_absent: bool = False,
) -> list[dict]:
    """The training items of a bundle: the ``training`` split, plus the cases of ``unlabelled_split`` with their
    labels withheld.

    Items of ``unlabelled_split`` (e.g. ``"training_unlabelled"``) lose their ``label`` (whether the datalist gives
    one or not) and carry ``labelled: False``: the student learns from them only through the teacher's outputs,
    which is where a teacher adds information that a label-only baseline cannot have. With ``unlabelled_split``
    None the items are exactly those of :func:`load_datalist` (no ``labelled`` key).

    Args:
        data_list_file_path, base_dir, n_channels, missing_ok, allow_absent: as :func:`load_datalist` (for
            ``training``).
        unlabelled_split: datalist key of the cases used without their labels; None for none.

    Raises:
        InputError: as :func:`load_datalist`, whose leak check refuses a case (by name or by a file) in both splits.
    """
    items = load_datalist(
        data_list_file_path, "training", base_dir, n_channels, missing_ok=missing_ok, allow_absent=allow_absent
    )
    if not unlabelled_split:
        return items
    # a case in both splits is refused by load_datalist's leak check (datalist_leaks), with the two split names
    extra = load_datalist(data_list_file_path, str(unlabelled_split), base_dir, n_channels, allow_absent=allow_absent)
    withheld = [{**{k: v for k, v in item.items() if k != "label"}, LABELLED_KEY: False} for item in extra]
    return [{**item, LABELLED_KEY: True} for item in items] + withheld
