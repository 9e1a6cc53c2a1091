"""The main job: ``python -m kd_components.demo --output runs/demo [--data-dir DIR] [--quick] [--force]``.

Each stage is the bundles' own command line (``python -m monai.bundle run ...``), printed before it runs, so
what the demo does a user can do by hand. A stage whose outputs exist is reused unless ``--force``.

Stages now: the synthetic phantom (unless ``--data-dir`` is given) and the 4-modality teacher.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from kd_components.errors import InputError

REPO = Path(__file__).resolve().parents[1]
BUNDLES = REPO / "bundles"

#: run sizes: the default fits a 2-core CPU, ``--quick`` is the CI smoke run.
PROFILES = {
    "default": {"num_cases": 24, "shape": [64, 64, 64], "roi": [64, 64, 64], "teacher_epochs": 20, "lr": 1e-3},
    "quick": {"num_cases": 5, "shape": [32, 32, 32], "roi": [32, 32, 32], "teacher_epochs": 2, "lr": 1e-3},
}


@dataclass
class Stage:
    """One step of the demo: a command and the file whose presence means it is done."""

    name: str
    cmd: list[str]
    done: Path

    def run(self, force: bool) -> None:
        print(f"\n=== {self.name} ===\n$ {shlex.join(self.cmd)}", flush=True)
        if self.done.exists() and not force:
            print(f"(done already: {self.done} exists; --force to redo)", flush=True)
            return
        t0 = time.time()
        res = subprocess.run(self.cmd, cwd=REPO)
        if res.returncode != 0:
            raise SystemExit(f"error: stage '{self.name}' failed with exit status {res.returncode} (command above).")
        print(f"--- {self.name}: {time.time() - t0:.0f} s", flush=True)


def _bundle_cmd(run_id: str, configs: list[Path], **overrides) -> list[str]:
    files = str([str(c) for c in configs]) if len(configs) > 1 else str(configs[0])
    cmd = [sys.executable, "-m", "monai.bundle", "run", run_id, "--config_file", files]
    for k, v in overrides.items():
        cmd += [f"--{k}", json.dumps(v) if isinstance(v, list) else str(v)]
    return cmd


def plan(output: Path, data_dir: Path | None, quick: bool) -> list[Stage]:
    """The demo's stages, in order."""
    p = PROFILES["quick" if quick else "default"]
    stages = []
    if data_dir is None:
        data_dir = output / "data"
        stages.append(
            Stage(
                "synthetic phantom",
                [
                    sys.executable,
                    "-m",
                    "kd_components.data",
                    "synthetic",
                    "--output",
                    str(data_dir),
                    "--num-cases",
                    str(p["num_cases"]),
                    "--shape",
                    *map(str, p["shape"]),
                    "--seed",
                    "0",
                ],
                data_dir / "datalist.json",
            )
        )
        datalist = data_dir / "datalist.json"
    else:
        datalist = output / "datalist.json"
        stages.append(
            Stage(
                "datalist of the BraTS folder",
                [
                    sys.executable,
                    "-m",
                    "kd_components.data",
                    "datalist",
                    "--data-dir",
                    str(data_dir),
                    "--output",
                    str(datalist),
                ],
                datalist,
            )
        )
    teacher = output / "teacher"
    stages.append(
        Stage(
            "teacher (4 modalities)",
            _bundle_cmd(
                "training",
                [BUNDLES / "teacher" / "configs" / "train.json"],
                dataset_dir=data_dir,
                data_list_file_path=datalist,
                ckpt_dir=teacher / "models",
                output_dir=teacher / "eval",
                epochs=p["teacher_epochs"],
                roi_size=p["roi"],
                learning_rate=p["lr"],
                cache_rate=1.0,
                num_workers=0 if quick else 2,
            ),
            teacher / "models" / "model_final.pt",
        )
    )
    return stages


def _check_run_config(output: Path, config: dict, force: bool) -> None:
    """Refuse to mix two different runs in one output folder."""
    f = output / "demo_config.json"
    if f.is_file() and json.loads(f.read_text()) != config and not force:
        raise InputError(
            f"output folder '{output}' holds a demo run with other settings ({f}): choose another --output, "
            f"or add --force to redo every stage there."
        )
    output.mkdir(parents=True, exist_ok=True)
    f.write_text(json.dumps(config, indent=4) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m kd_components.demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--output", default="runs/demo", help="run folder (default runs/demo)")
    ap.add_argument("--data-dir", default=None, help="a BraTS folder; default: generate the synthetic phantom")
    ap.add_argument("--quick", action="store_true", help="CI-sized run (tiny phantom, 2 epochs)")
    ap.add_argument("--force", action="store_true", help="redo every stage even if its outputs exist")
    args = ap.parse_args(argv)
    output = Path(args.output).resolve()
    data_dir = Path(args.data_dir).resolve() if args.data_dir else None
    try:
        if data_dir is not None and not data_dir.is_dir():
            raise InputError(f"--data-dir '{data_dir}' does not exist: give a folder of BraTS case folders.")
        _check_run_config(output, {"data_dir": str(data_dir), "quick": args.quick}, args.force)
        stages = plan(output, data_dir, args.quick)
    except InputError as e:
        print(e.code, file=sys.stderr)
        return 1
    t0 = time.time()
    for stage in stages:
        stage.run(args.force)
    print(f"\ndemo finished in {time.time() - t0:.0f} s; outputs in {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
