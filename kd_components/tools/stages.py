"""The stage engine the demo and the ablation share: run sizes, and each stage as the bundles' own command line.

A ``Stage`` is one ``python -m monai.bundle run ...`` (or ``python -m kd_components.data ...``) process with the
files it must leave behind; ``data_stage``, ``teacher_stages`` and ``student_stages`` build them from the sizes of a
profile (``PROFILES``: the demo's default and the CI-sized quick run). The commands live in ``tools.demo`` and
``tools.ablation``; neither imports the other.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kd_components.errors import InputError
from kd_components.resources import bundles_root, checkout_root
from kd_components.subsets import ALL_SUBSETS, canonical_student_modality, is_any, subset_name

#: where the stages run: the checkout when there is one (relative defaults such as data/synthetic resolve there as
#: in the README), else the caller's folder
REPO = checkout_root() or Path.cwd()
BUNDLES = bundles_root()

#: run sizes: the default fits a 2-core CPU, ``--quick`` is the CI smoke run.
_DEFAULT = {
    "num_cases": 32,
    "shape": [64, 64, 64],
    "roi": [48, 48, 48],
    "lr": 1e-3,
    "teacher_epochs": 8,
    # 6 (114 steps), chosen on validation with 3 seeds: every seed's KD student at or above its baseline on every
    # region (at 4 epochs seed 0's ET was below its baseline with every teacher and KD variant; docs/results.md)
    "student_epochs": 6,
    "val_fraction": 0.15,
    "test_fraction": 0.25,
    # KD weight 0 on regions where the teacher is not better than the seed's baseline on validation: off, chosen
    # on validation with 3 seeds (every region distilled: mean gain 0.096 against 0.086; docs/results.md)
    "kd_follow_margin": False,
}
PROFILES = {
    "default": _DEFAULT,
    "quick": {
        **_DEFAULT,
        "num_cases": 6,
        "shape": [32, 32, 32],
        "roi": [32, 32, 32],
        "teacher_epochs": 2,
        "student_epochs": 1,
    },
}
TEACHER_CONFIGS = BUNDLES / "teacher" / "configs"
STUDENT_CONFIGS = BUNDLES / "student_kd" / "configs"


_children: set[subprocess.Popen] = set()
_children_lock = threading.Lock()
_stopping = threading.Event()


def run_child(cmd: list[str], **kwargs) -> int:
    """``subprocess.run(cmd, **kwargs).returncode``, with the child registered so that a signal that stops this
    process (:func:`stop_on_signals`) ends it too, and no new child starts once one did."""
    if _stopping.is_set():
        return -signal.SIGTERM
    with subprocess.Popen(cmd, **kwargs) as proc:
        with _children_lock:
            _children.add(proc)
        if _stopping.is_set():  # the signal came while it started
            proc.terminate()
        try:
            return proc.wait()
        except BaseException:  # this process is stopping: give the child a moment to end cleanly, then kill it
            try:
                proc.wait(timeout=10)
            except BaseException:
                proc.kill()
            raise
        finally:
            with _children_lock:
                _children.discard(proc)


def stopping() -> bool:
    """Whether a signal asked this process to stop (no further stage should start)."""
    return _stopping.is_set()


def _stop(signum: int, frame=None) -> None:
    _stopping.set()
    with _children_lock:
        children = list(_children)
    for proc in children:
        proc.terminate()
    raise SystemExit(
        f"error: stopped by {signal.Signals(signum).name}: the running stages were ended too; run the same command "
        "again to go on (finished stages are kept, a stage cut short starts again)."
    )


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within it, SIGTERM (``kill``, ``timeout``, a batch scheduler) and SIGHUP end this process *and* its running
    stages, instead of leaving trainings running on, orphaned, into the output folder; the previous handlers come
    back after it. Ctrl-C (SIGINT) already reaches the whole process group. Use it in a command's main thread::

        with stop_on_signals():
            for stage in stages:
                stage.run(force)
    """
    _stopping.clear()
    signals = (signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, _stop) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclass
class Stage:
    """One step of the demo: a command and the file whose presence means it is done."""

    name: str
    cmd: list[str]
    done: Path

    def execute(self, env: dict[str, str], log: Path | None = None) -> int:
        """Run the command from the repository root (output to ``log`` when given); its exit status."""
        if log is None:
            return run_child(self.cmd, cwd=REPO, env=env)
        with open(log, "w") as f:
            f.write("$ " + shlex.join(self.cmd) + "\n")
            f.flush()
            return run_child(self.cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT, env=env)

    def run(self, force: bool) -> None:
        print(f"\n=== {self.name} ===\n$ {shlex.join(self.cmd)}", flush=True)
        if self.done.exists() and not force:
            print(f"(done already: {self.done} exists; --force to redo)", flush=True)
            return
        t0 = time.time()
        returncode = self.execute(stage_env())
        if returncode != 0:
            raise SystemExit(f"error: stage '{self.name}' failed with exit status {returncode} (command above).")
        print(f"--- {self.name}: {time.time() - t0:.0f} s", flush=True)


#: MONAI warns on every config it parses that configs run code; the demo runs only this repository's own configs,
#: so its stages leave that notice out (a user running a bundle command by hand still sees it).
TRUSTED_CONFIGS_FILTER = "ignore:parsing config_file:UserWarning"


def stage_env(**extra: str) -> dict[str, str]:
    """The environment of a stage: this process's, with MONAI's config-trust notice filtered."""
    env = {**os.environ, **extra}
    env["PYTHONWARNINGS"] = ",".join(w for w in (env.get("PYTHONWARNINGS"), TRUSTED_CONFIGS_FILTER) if w)
    return env


def _bundle_cmd(run_id: str, configs: list[Path], **overrides) -> list[str]:
    files = str([str(c) for c in configs]) if len(configs) > 1 else str(configs[0])
    cmd = [sys.executable, "-m", "monai.bundle", "run", run_id, "--config_file", files]
    for k, v in overrides.items():
        cmd += [f"--{k}", json.dumps(v) if isinstance(v, list) else str(v)]
    return cmd


def sizes(
    quick: bool = False,
    teacher_epochs: int | None = None,
    student_epochs: int | None = None,
    val_interval: int | None = None,
) -> dict:
    """The run sizes of a profile, with validation every ``val_interval`` epochs (default: at half and at the end)."""
    p = dict(PROFILES["quick" if quick else "default"])
    p["teacher_epochs"] = teacher_epochs or p["teacher_epochs"]
    p["student_epochs"] = student_epochs or p["student_epochs"]
    p["teacher_val_interval"] = val_interval or max(1, p["teacher_epochs"] // 2)
    p["student_val_interval"] = val_interval or max(1, p["student_epochs"] // 2)
    return p


def data_stage(output: Path, data_dir: Path | None, p: dict) -> tuple[Stage, Path, Path]:
    """The stage that makes the data (phantom) or the datalist (a BraTS folder): ``(stage, data_dir, datalist)``."""
    split = ["--val-fraction", str(p["val_fraction"]), "--test-fraction", str(p["test_fraction"])]
    if data_dir is None:
        data_dir = output / "data"
        cmd = [sys.executable, "-m", "kd_components.data", "synthetic", "--output", str(data_dir)]
        cmd += ["--num-cases", str(p["num_cases"]), "--shape", *map(str, p["shape"]), "--seed", "0", *split]
        return Stage("synthetic phantom", cmd, data_dir / "datalist.json"), data_dir, data_dir / "datalist.json"
    datalist = output / "datalist.json"
    cmd = [sys.executable, "-m", "kd_components.data", "datalist", "--data-dir", str(data_dir)]
    cmd += ["--output", str(datalist), *(["--split-file", str(p["split_file"])] if p.get("split_file") else split)]
    return Stage("datalist of the BraTS folder", cmd, datalist), data_dir, datalist


def common_overrides(data_dir: Path, datalist: Path, p: dict) -> tuple[dict, dict]:
    """Bundle overrides of every stage, and of the training stages: ``(common, train_common)``."""
    common = {
        "dataset_dir": data_dir,
        "data_list_file_path": datalist,
        "roi_size": p["roi"],
        "num_workers": 0,  # the phantom is cached: crops and flips per step are cheap in the main process
    }
    if p.get("pixdim"):
        common["pixdim"] = p["pixdim"]
    return common, {**common, "learning_rate": p["lr"], "cache_rate": 1.0}


def teacher_stages(teacher: Path, p: dict, common: dict, train_common: dict, eval_split: str = "test") -> list[Stage]:
    """Train the 4-modality teacher into ``teacher/models`` and evaluate it on ``eval_split``."""
    return [
        Stage(
            "teacher (4 modalities): training",
            _bundle_cmd(
                "training",
                [TEACHER_CONFIGS / "train.json"],
                ckpt_dir=teacher / "models",
                output_dir=teacher / "train",
                epochs=p["teacher_epochs"],
                val_interval=p["teacher_val_interval"],
                **train_common,
            ),
            teacher / "models" / f"last_checkpoint_epoch={p['teacher_epochs']}.pt",
        ),
        Stage(
            f"teacher: evaluation on the {eval_split} split",
            _bundle_cmd(
                "evaluating",
                [TEACHER_CONFIGS / "train.json", TEACHER_CONFIGS / "evaluate.json"],
                ckpt_dir=teacher / "models",
                output_dir=teacher / eval_split,
                eval_split=eval_split,
                **common,
            ),
            teacher / eval_split / "metrics_summary.json",
        ),
    ]


def student_stages(
    run: Path,
    name: str,
    modality: str,
    seed: int,
    baseline: bool,
    teacher_ckpt: Path | None,
    p: dict,
    common: dict,
    train_common: dict,
    eval_split: str = "test",
    overrides: dict | None = None,
) -> list[Stage]:
    """Train one student into ``run/models`` and evaluate it on ``eval_split`` (``run/<split>``); the ``any``
    student once per subset of the sequences (``run/<split>_subsets/<subset>``, ``subset_folder``)."""
    configs = [STUDENT_CONFIGS / "train.json"] + ([STUDENT_CONFIGS / "baseline.json"] if baseline else [])
    extra = {"teacher_ckpt": teacher_ckpt} if teacher_ckpt is not None and not baseline else {}
    extra.update(overrides or {})
    evaluations = [(eval_split, {})]
    if is_any(modality):
        evaluations = [(subset_folder(eval_split, s), {"input_modalities": s}) for s in SUBSET_NAMES]
    return [
        Stage(
            f"{name}: training",
            _bundle_cmd(
                "training",
                configs,
                ckpt_dir=run / "models",
                output_dir=run / "train",
                student_modality=modality,
                seed=seed,
                epochs=p["student_epochs"],
                val_interval=p["student_val_interval"],
                **extra,
                **train_common,
            ),
            run / "models" / f"last_checkpoint_epoch={p['student_epochs']}.pt",
        ),
        *(
            Stage(
                f"{name}: evaluation on the {eval_split} split" + (f" from {how['input_modalities']}" if how else ""),
                _bundle_cmd(
                    "evaluating",
                    [*configs, STUDENT_CONFIGS / "evaluate.json"],
                    ckpt_dir=run / "models",
                    output_dir=run / folder,
                    student_modality=modality,
                    seed=seed,
                    eval_split=eval_split,
                    **how,
                    **extra,
                    **common,
                ),
                run / folder / "metrics_summary.json",
            )
            for folder, how in evaluations
        ),
    ]


#: the 15 subsets of the sequences, by name (``t1ce``, ..., ``t1ce+t1+t2+flair``), in ``ALL_SUBSETS``' order.
SUBSET_NAMES = [subset_name(s) for s in ALL_SUBSETS]


def subset_folder(split: str, subset: str) -> str:
    """Where the ``any`` student's evaluation from ``subset`` goes in its run folder: ``test_subsets/t1ce+flair``."""
    return f"{split}_subsets/{subset}"


def check_counts(args: argparse.Namespace, names: tuple[str, ...]) -> None:
    """Refuse a count option below 1 (``None``: not given), naming the option."""
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise InputError(f"--{name.replace('_', '-')} {value}: give 1 or more.")


def parse_modalities(value: str) -> list[str]:
    if value.strip().lower() == "all":
        return ["t1", "t1ce", "t2", "flair"]
    names = [v.strip() for v in value.split(",") if v.strip()]
    try:  # one modality (t1ce), a combination (t1ce+flair), each in the teacher's channel order; or any
        return list(dict.fromkeys(canonical_student_modality(n) for n in names))
    except ValueError as e:
        raise InputError(f"--modalities: {e}") from None
