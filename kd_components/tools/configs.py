"""The student's configs, generated from the teacher's plus one overlay per file: one recipe, written once.

``python -m kd_components.tools.configs``          writes ``bundles/student_kd/configs/<name>.json``
``python -m kd_components.tools.configs --check``  exits 1 naming the first differing id when a committed file is
                                                    not what generation gives (CI and ``tests/test_layout.py`` run it)

For every ``bundles/student_kd/overlays/<name>.json`` the student's ``configs/<name>.json`` is the teacher's
``configs/<name>.json`` with the overlay merged in, by the rules of MONAI's config merge (``ConfigParser`` ids and
``monai.bundle.utils.merge_kv``), applied in the overlay's order:

- ``"a#b#0#c": value`` replaces (or adds) the value at that id: ``#`` separates nested keys and list indices;
- ``"+a#b": [...]`` / ``{...}`` extends the list / updates the dict at that id (MONAI's ``+`` prefix);
- ``"~a#b": null`` removes that key (the one form MONAI's merge has no word for: an id the student does not have).

A key new at its level is placed before the next key of the overlay at the same level that the teacher already
has (so ``student_modality`` sits beside ``in_channels``, not at the end of the file); otherwise at the end.
The committed configs stay complete, so each bundle still loads alone; the overlays are where the student's recipe
differs from the teacher's, and nowhere else. Configs the teacher has no counterpart for (``baseline.json``,
``cached_teacher.json``, ``teacher_*.json``) are written by hand.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

from kd_components.errors import InputError, command

REPO = Path(__file__).resolve().parents[2]
ID_SEP = "#"
MERGE = "+"
DELETE = "~"


def _split(key: str) -> tuple[str, list[str]]:
    op = key[0] if key[:1] in (MERGE, DELETE) else ""
    return op, key[len(op) :].split(ID_SEP)


def _locate(root: dict, parts: list[str], key: str) -> tuple[dict | list, str]:
    """The container and the key (or list index) that ``parts`` names. A dict key may itself hold ``#`` (an overlay
    config's ``"train#handlers"``): the longest run of parts that is a key of the dict is taken first.

    Raises:
        ValueError: a part of the id that is neither a key nor an index of what it reaches into.
    """
    node: Any = root
    i = 0
    while True:
        rest = parts[i:]
        if isinstance(node, dict):
            for j in range(len(rest), 0, -1):
                name = ID_SEP.join(rest[:j])
                if name in node:
                    break
            else:
                if len(rest) == 1:
                    return node, rest[0]  # a new key at this level
                raise ValueError(f"overlay id {key!r}: {rest[0]!r} is not in the teacher's config.")
            if j == len(rest):
                return node, name
            node, i = node[name], i + j
        elif isinstance(node, list):
            if not rest[0].isdigit() or int(rest[0]) >= len(node):
                raise ValueError(f"overlay id {key!r}: {rest[0]!r} is not an index of a list of {len(node)}.")
            if len(rest) == 1:
                return node, rest[0]
            node, i = node[int(rest[0])], i + 1
        else:
            raise ValueError(f"overlay id {key!r}: {rest[0]!r} reaches into a {type(node).__name__}.")


def _insert(node: dict, key: str, value: Any, before: str | None) -> None:
    """Set ``node[key]``; a new key goes before ``before`` (an existing key) when given, else at the end."""
    if key in node or before is None or before not in node:
        node[key] = value
        return
    items = list(node.items())
    node.clear()
    for k, v in items:
        if k == before:
            node[key] = value
        node[k] = v


def merge(base: dict, overlay: dict) -> dict:
    """Return ``base`` with ``overlay`` merged in (module docstring's rules); ``base`` is not changed.

    Raises:
        ValueError: an overlay id that does not reach into the base, a ``+`` merge of unlike types, or a ``~``
            removal of an id the base does not have.
    """
    out = copy.deepcopy(base)
    keys = list(overlay)
    for i, key in enumerate(keys):
        op, parts = _split(key)
        parent, last = _locate(out, parts, key)
        value = copy.deepcopy(overlay[key])
        exists = last in parent if isinstance(parent, dict) else True
        if op == DELETE:
            if not exists or isinstance(parent, list):
                raise ValueError(f"overlay id {key!r}: '~' removes a key the teacher's config has.")
            del parent[last]
        elif op == MERGE:
            current = parent[last] if exists and isinstance(parent, dict) else parent[int(last)] if exists else None
            if isinstance(current, dict) and isinstance(value, dict):
                current.update(value)
            elif isinstance(current, list) and isinstance(value, list):
                current.extend(value)
            else:
                raise ValueError(f"overlay id {key!r}: '+' merges a dict into a dict or a list into a list.")
        elif isinstance(parent, list):
            parent[int(last)] = value
        else:
            _insert(parent, last, value, None if exists else _next_sibling(out, keys[i + 1 :], parent))
    return out


def _next_sibling(root: dict, later: list[str], parent: dict) -> str | None:
    """The first later overlay key that names an existing key of ``parent``."""
    for key in later:
        op, parts = _split(key)
        try:
            where, last = _locate(root, parts, key)
        except ValueError:
            continue
        if where is parent and last in parent:
            return last
    return None


def first_difference(committed: Any, generated: Any, where: str = "") -> str | None:
    """The first id (``#`` path, ``<root>`` for the whole file) where two configs differ, key order included."""
    here = where or "<root>"
    if isinstance(committed, dict) and isinstance(generated, dict):
        if list(committed) != list(generated):
            missing = [k for k in generated if k not in committed] + [k for k in committed if k not in generated]
            if missing:
                return f"{where}{ID_SEP if where else ''}{missing[0]}"
            return f"{here} (key order)"
        for k in committed:
            found = first_difference(committed[k], generated[k], f"{where}{ID_SEP if where else ''}{k}")
            if found:
                return found
        return None
    if isinstance(committed, list) and isinstance(generated, list):
        if len(committed) != len(generated):
            return f"{here} (a list of {len(committed)} items, generation gives {len(generated)})"
        for i, (a, b) in enumerate(zip(committed, generated)):
            found = first_difference(a, b, f"{where}{ID_SEP if where else ''}{i}")
            if found:
                return found
        return None
    return None if committed == generated and type(committed) is type(generated) else here


def dumps(config: dict) -> str:
    """The project's JSON form: indented 4, keys in their order, one newline at the end."""
    return json.dumps(config, indent=4) + "\n"


def generate(repo: Path = REPO) -> dict[Path, str]:
    """Every generated student config: its path and its text.

    Raises:
        InputError: an overlay without a teacher config of its name, or one that does not merge.
    """
    teacher, student = repo / "bundles" / "teacher" / "configs", repo / "bundles" / "student_kd"
    out = {}
    for overlay_path in sorted((student / "overlays").glob("*.json")):
        base_path = teacher / overlay_path.name
        if not base_path.is_file():
            raise InputError(f"{overlay_path}: the teacher has no configs/{overlay_path.name} to overlay.")
        try:
            config = merge(json.loads(base_path.read_text()), json.loads(overlay_path.read_text()))
        except ValueError as err:
            raise InputError(f"{overlay_path}: {err}") from None
        out[student / "configs" / overlay_path.name] = dumps(config)
    return out


def check(repo: Path = REPO) -> list[str]:
    """One line per committed student config that is not what generation gives (empty when all are)."""
    problems = []
    for path, text in generate(repo).items():
        rel = path.relative_to(repo)
        if not path.is_file():
            problems.append(f"{rel}: missing; run `python -m kd_components.tools.configs`.")
            continue
        committed = path.read_text()
        if committed != text:
            where = first_difference(json.loads(committed), json.loads(text)) or "<formatting>"
            problems.append(
                f"{rel}: id {where!r} differs from what the teacher's config and overlays/{path.name} give; "
                "edit the teacher's config or the overlay, then run `python -m kd_components.tools.configs`."
            )
    return problems


@command
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kd_components.tools.configs", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on a difference")
    parser.add_argument("--repo", type=Path, default=REPO, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.repo)
        for line in problems:
            print(line, file=sys.stderr)
        return 1 if problems else 0
    for path, text in generate(args.repo).items():
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(args.repo)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
