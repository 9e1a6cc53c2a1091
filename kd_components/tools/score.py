"""``python -m kd_components.tools.score --reference REF --prediction PRED [--convention brats2021|brats2023]
[--labels 2021|2023|auto]``: score a predicted label map against a reference; prints one JSON object.

The rules are ``kd_components.evaluation``'s (its module docstring has the table); a map on another grid, an
unreadable file or labels outside the convention are refused in one line, exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys

from kd_components.errors import InputError, command
from kd_components.evaluation import score_files

__all__ = ["main"]


@command
def main(argv: list[str] | None = None) -> int:
    sc = argparse.ArgumentParser(prog="python -m kd_components.tools.score", description=__doc__.split("\n\n")[0])
    sc.add_argument("--reference", required=True, help="ground-truth label map (NIfTI)")
    sc.add_argument("--prediction", required=True, help="predicted label map on the same grid")
    sc.add_argument(
        "--convention",
        default="brats2021",
        help="brats2021 (default, as the bundles' metric_convention) or brats2023 (the official 2023+ rules)",
    )
    sc.add_argument("--labels", default="auto", help="label values: 2021 (ET 4), 2023 (ET 3) or auto (default)")
    args = sc.parse_args(argv)
    try:
        scores = score_files(args.reference, args.prediction, args.convention, args.labels)
    except ValueError as e:
        raise InputError(str(e)) from None
    print(json.dumps(scores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
