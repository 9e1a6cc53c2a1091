"""Benchmark: the cost of distillation and of the data pipeline, measured side by side in one run.

``python -m kd_components.tools.bench [--crops 128 224x224x144] [--batch-sizes 1 2] [--pipelines default fast]``

One run measures, each configuration in its own process (so peak resident memory is its own), student training
iterations through the student bundle's own configs: the baseline (``baseline.json``), KD with the teacher online
and KD with cached teacher logits (``cached_teacher.json``), each with the default data pipeline and the fast one
(``fast_train.json``), at every crop and batch size asked for. For each: the median iteration, the *floor* (the
same iteration on a batch already on the device: forward, backward and optimizer step only), iteration / floor,
the data pipeline's share (Ignite's ``GET_BATCH_STARTED`` -> ``GET_BATCH_COMPLETED``), samples per second, peak RSS
and peak GPU memory. Then the one-off cost of caching the teacher's logits, and sliding-window inference over a
240x240x155 volume for student and teacher, with the inference configs' window (128^3, overlap 0.5) and with the
faster setting (one window over the whole volume, no overlap), repeated alternately so that neither network gets
the warm machine.

Paired rounds (``--rounds R``): on a shared or noisy machine one run per row cannot tell 1.05x from 1.17x. With R
rounds every row of a (crop, batch, pipeline) group runs R times, the modes alternated (round k starts at the k-th
mode, so no mode always runs first or last); each round's KD row is divided by the same round's baseline, and the
table gives the median of those paired ratios with their range, the verdicts use the median.

It writes the section of ``docs/benchmarks.md`` (and ``.json``) for the machine it ran on (``cpu`` or ``gpu``),
keeping the other machine's section. Targets are recorded with each figure, never asserted in tests: on CPU KD
online <= 1.30x the baseline, KD cached <= 1.05x, the fast pipeline no slower than the default one, peak RSS < 4
GiB at 128^3; on a GPU data share < 5%, iteration <= 1.15x the floor, KD online <= 1.35x the baseline (a teacher
forward costs about a third of a student step), KD cached <= 1.05x the baseline and <= KD online, batch 2 at >= 1.8x
the samples per second of batch 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kd_components.errors import InputError, command
from kd_components.files import atomic_write_text
from kd_components.resources import bundles_root, checkout_root

__all__ = ["main"]

REPO = checkout_root() or Path.cwd()
STUDENT = bundles_root() / "student_kd" / "configs"
MODES = {"baseline": ["baseline.json"], "kd_online": [], "kd_cached": ["cached_teacher.json"]}
PIPELINES = {"default": [], "fast": ["fast_train.json"]}
CPU_TARGETS = {"kd_online": 1.30, "kd_cached": 1.05}
GPU_TARGETS = {"data_share": 0.05, "floor_ratio": 1.15, "kd_online": 1.35, "kd_cached": 1.05, "batch2_speedup": 1.8}
RSS_TARGET_GIB = 4.0


def _segresnet(in_channels: int):
    from monai.networks.nets import SegResNet

    return SegResNet(
        blocks_down=[1, 2, 2, 4], blocks_up=[1, 1, 1], init_filters=16, in_channels=in_channels, out_channels=3
    )


def _crop(text: str) -> list[int]:
    """``128`` -> [128, 128, 128]; ``224x224x144`` -> [224, 224, 144]."""
    parts = [int(p) for p in re.split(r"[x,]", str(text)) if p]
    size = parts * 3 if len(parts) == 1 else parts
    if len(size) != 3 or any(s < 16 or s % 16 for s in size):
        raise InputError(
            f"--crops {text!r}: give N or XxYxZ with sizes that are multiples of 16 (e.g. 128, 224x224x144)."
        )
    return size


def _name(crop: list[int]) -> str:
    return "x".join(map(str, crop)) if len(set(crop)) > 1 else f"{crop[0]}^3"


def _sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _worker(spec: dict, work: Path, iterations: int, warmup: int) -> dict:
    """Train the student of ``spec`` for ``warmup + iterations`` iterations; then time its floor."""
    import torch
    from ignite.engine import Events
    from monai.bundle import ConfigWorkflow

    mode, pipeline, batch, crop = spec["mode"], spec["pipeline"], spec["batch"], spec["crop"]
    files = [str(STUDENT / "train.json"), *[str(STUDENT / f) for f in MODES[mode] + PIPELINES[pipeline]]]
    overrides = {
        "bundle_root": str(work / f"student_{mode}_{pipeline}_{batch}_{_name(crop)}"),
        "dataset_dir": str(work / "data"),
        "teacher_ckpt": str(work / "teacher.pt"),
        "roi_size": crop,
        "batch_size": batch,
        "epochs": 1000,
        "val_interval": 100000,
        "device": "cuda:0" if torch.cuda.is_available() else "cpu",
    }
    if mode == "kd_cached":
        overrides["data_list_file_path"] = str(work / "data" / "datalist_teacher_logits.json")
    wf = ConfigWorkflow(
        config_file=files,
        meta_file=str(STUDENT / "metadata.json"),
        logging_file=False,
        workflow_type="train",
        run_id="training",
        **overrides,
    )
    wf.initialize()
    trainer = wf.parser.get_parsed_content("train#trainer")
    marks: dict[str, list[float]] = {"start": [], "got": [], "done": []}
    trainer.add_event_handler(Events.GET_BATCH_STARTED, lambda e: marks["start"].append(time.perf_counter()))
    kept: list[dict] = []

    def _got(engine):
        marks["got"].append(time.perf_counter())
        if not kept:  # the first batch as the loader gives it (the trainer takes cached logits out of it)
            kept.append(dict(engine.state.batch))

    trainer.add_event_handler(Events.GET_BATCH_COMPLETED, _got)

    def _done(engine):
        _sync()
        marks["done"].append(time.perf_counter())
        if len(marks["done"]) >= warmup + iterations:
            engine.terminate()

    trainer.add_event_handler(Events.ITERATION_COMPLETED, _done)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.run()
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # training's, before the floor's runs
    peak_gpu = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    teacher_s = trainer.teacher_seconds[warmup:]
    n = len(marks["done"])
    iters = [marks["done"][i] - marks["start"][i] for i in range(warmup, n)]
    data = [marks["got"][i] - marks["start"][i] for i in range(warmup, n)]
    floor = _floor(trainer, kept[0], iterations)
    samples = batch * int(wf.parser.get_parsed_content("num_samples") if "num_samples" in wf.parser else 1)
    median = statistics.median(iters)
    return {
        **spec,
        "iterations": len(iters),
        "iter_s": median,
        "iter_s_all": iters,
        "floor_s": floor,
        "teacher_s": statistics.median(teacher_s) if teacher_s else 0.0,
        "data_share": sum(data) / sum(iters),
        "samples_per_s": samples / median,
        "peak_rss_gib": peak_rss,
        "peak_gpu_gib": peak_gpu,
    }


def _floor(trainer, batch, iterations: int) -> float:
    """Median seconds of the trainer's own iteration on one batch already on the device (no data loading)."""
    import torch
    from monai.data import list_data_collate

    collated = batch if isinstance(batch, dict) else list_data_collate(batch)
    device = trainer.state.device
    # plain tensors already on the device: the pure network step, without MetaTensor bookkeeping
    on_device = {
        k: (v.as_tensor() if hasattr(v, "as_tensor") else v).to(device) if isinstance(v, torch.Tensor) else v
        for k, v in collated.items()
    }
    times = []
    for _ in range(max(iterations, 2)):
        trainer.state.batch = trainer.state.output = None  # nothing left over for the engine's decollation
        step_batch = dict(on_device)  # the trainer takes cached logits out of the dict it gets
        _sync()
        t0 = time.perf_counter()
        trainer._iteration(trainer, step_batch)
        _sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def _sliding_window(shape: tuple[int, int, int], roi: int, sw_batch: int = 2, repeats: int = 2) -> dict:
    """Seconds of one sliding-window pass over a ``shape`` volume, student (1 channel) and teacher (4), with the
    inference configs' setting (``sw_batch`` windows per forward), with one window per forward, and with one window
    over the whole volume; medians of alternating repeats.

    One window per forward is slow for the student on CPU: PyTorch runs a convolution on oneDNN only when batch x
    channels x depth x height > 20480 (among other cases), so the student's first convolution (1 input channel,
    batch 1, 128^3) takes its slow native path, about 0.16 s of 2.2 s per window here; two windows per forward avoid
    it, for the same output (GroupNorm works per sample).
    """
    import torch
    from monai.inferers import SlidingWindowInferer

    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    whole = [-(-s // 16) * 16 for s in shape]
    settings = {
        "default": SlidingWindowInferer(roi_size=[roi] * 3, sw_batch_size=sw_batch, overlap=0.5),
        "one_window": SlidingWindowInferer(roi_size=[roi] * 3, sw_batch_size=1, overlap=0.5),
        "whole": SlidingWindowInferer(roi_size=whole, sw_batch_size=1, overlap=0.0),
    }
    nets = {
        n: _segresnet(c).to(device=device, memory_format=torch.channels_last_3d).eval()
        for n, c in (("student", 1), ("teacher", 4))
    }
    times: dict[str, list[float]] = {}
    with torch.no_grad(), torch.autocast("cuda", enabled=device.type == "cuda"):
        for name, net in nets.items():  # warm-up: each batch size once, so no timing carries one-off set-up
            for b in {1, sw_batch}:
                net(torch.zeros(b, 1 if name == "student" else 4, roi, roi, roi, device=device))
        for repeat in range(repeats):
            for setting, inferer in settings.items():
                order = list(nets.items()) if repeat % 2 == 0 else list(nets.items())[::-1]  # neither always goes first
                for name, net in order:
                    x = torch.randn(1, 1 if name == "student" else 4, *shape, device=device)
                    _sync()
                    t0 = time.perf_counter()
                    inferer(x, net)
                    _sync()
                    times.setdefault(f"{name}_{setting}", []).append(time.perf_counter() - t0)
    out = {k: statistics.median(v) for k, v in times.items()}
    out["whole_window"] = whole
    return out


def _run_worker(spec: dict, args, work: Path) -> dict:
    cmd = [sys.executable, "-m", "kd_components.tools.bench", "--worker", json.dumps(spec), "--work", str(work)]
    cmd += ["--iterations", str(args.iterations), "--warmup", str(args.warmup)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"benchmark worker {spec} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _combine(runs: list[dict]) -> dict:
    """One row from the rounds of one configuration: iterations pooled (median, min-max), floor and teacher time
    the median of the rounds', peaks the largest, each round's median kept in ``rounds_s``."""
    if len(runs) == 1:
        return {**runs[0], "rounds_s": [runs[0]["iter_s"]]}
    pooled = [t for r in runs for t in r["iter_s_all"]]
    median = statistics.median(pooled)
    gpu = [r["peak_gpu_gib"] for r in runs if r["peak_gpu_gib"] is not None]
    return {
        **runs[0],
        "iterations": len(pooled),
        "iter_s": median,
        "iter_s_all": pooled,
        "floor_s": statistics.median(r["floor_s"] for r in runs),
        "teacher_s": statistics.median(r["teacher_s"] for r in runs),
        "data_share": sum(r["data_share"] * r["iterations"] for r in runs) / sum(r["iterations"] for r in runs),
        "samples_per_s": runs[0]["samples_per_s"] * runs[0]["iter_s"] / median,
        "peak_rss_gib": max(r["peak_rss_gib"] for r in runs),
        "peak_gpu_gib": max(gpu) if gpu else None,
        "rounds_s": [r["iter_s"] for r in runs],
    }


def _ratio(r: dict, base: dict | None) -> tuple[float, float, float] | None:
    """``r`` over its baseline: the median of the per-round paired ratios and their range (one round: the ratio)."""
    if base is None:
        return None
    mine, theirs = r.get("rounds_s") or [r["iter_s"]], base.get("rounds_s") or [base["iter_s"]]
    if len(mine) != len(theirs) or len(mine) == 1:
        x = r["iter_s"] / base["iter_s"]
        return x, x, x
    ratios = [a / b for a, b in zip(mine, theirs)]
    return statistics.median(ratios), min(ratios), max(ratios)


def _machine() -> dict:
    import monai
    import numpy
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "kind": "gpu" if torch.cuda.is_available() else "cpu",
        "cpu": f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM",
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "versions": f"Python {platform.python_version()}, torch {torch.__version__}, monai {monai.__version__}, "
        f"numpy {numpy.__version__}, {platform.system()} {platform.release()}",
        "threads": torch.get_num_threads(),
    }


def _paired(r: dict, results: list[dict], **changes) -> dict | None:
    """The row of ``results`` with ``r``'s mode, pipeline, batch and crop, except ``changes``; None if not run."""
    want = {k: v for k, v in {**r, **changes}.items() if k in ("mode", "pipeline", "batch", "crop")}
    return next((x for x in results if all(x[k] == v for k, v in want.items())), None)


def _verdicts(r: dict, results: list[dict], kind: str) -> str:
    """Targets that apply to one row, each with met / NOT met."""
    out = []
    base = _paired(r, results, mode="baseline")
    if kind == "cpu":
        if r["mode"] in CPU_TARGETS and base:
            t = CPU_TARGETS[r["mode"]]
            out.append(f"<= {t:.2f}x baseline: {'met' if _ratio(r, base)[0] <= t else 'NOT met'}")
        default = _paired(r, results, pipeline="default")
        if r["pipeline"] == "fast" and default:
            out.append(f"fast <= default: {'met' if r['iter_s'] <= default['iter_s'] else 'NOT met'}")
    else:
        share, floor = GPU_TARGETS["data_share"], GPU_TARGETS["floor_ratio"]
        out.append(f"data < {100 * share:.0f}%: {'met' if r['data_share'] < share else 'NOT met'}")
        out.append(f"<= {floor:.2f}x floor: {'met' if r['iter_s'] <= floor * r['floor_s'] else 'NOT met'}")
        if r["mode"] in ("kd_online", "kd_cached") and base:
            t = GPU_TARGETS[r["mode"]]
            out.append(f"<= {t:.2f}x baseline: {'met' if _ratio(r, base)[0] <= t else 'NOT met'}")
        online = _paired(r, results, mode="kd_online")
        if r["mode"] == "kd_cached" and online:
            out.append(f"<= KD online: {'met' if r['iter_s'] <= online['iter_s'] else 'NOT met'}")
        one = _paired(r, results, batch=1)
        if r["batch"] == 2 and one:
            t = GPU_TARGETS["batch2_speedup"]
            ok = r["samples_per_s"] >= t * one["samples_per_s"]
            out.append(f"samples/s >= {t:.1f}x batch 1: {'met' if ok else 'NOT met'}")
    return "; ".join(out)


def _section(results: list[dict], sw: dict, cache_s: float, args, machine: dict, command: str) -> str:
    kind = machine["kind"]
    lines = [
        f"## {kind.upper()}: {machine['gpu'] if kind == 'gpu' else machine['cpu']}",
        "",
        f"- Command: `{command}`",
        f"- Machine: {machine['cpu']}; GPU: {machine['gpu']}; torch threads: {machine['threads']}",
        f"- Versions: {machine['versions']}",
        f"- Phantom {'x'.join(map(str, args.shape))}, {args.cases} cases; {args.warmup} warm-up + {args.iterations} "
        f"timed iterations per row; each row its own process"
        + (
            f"; {rounds} rounds, the modes alternated; x baseline = median (min-max) of the {rounds} paired per-round "
            "ratios"
            if (rounds := getattr(args, "rounds", 1)) > 1
            else ""
        ),
        "",
        "| mode | pipeline | crop | batch | s / it (min-max) | floor s / it | it / floor | x baseline | "
        "teacher s / it | data share | samples / s | peak RSS GiB | peak GPU GiB | targets |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ratio = _ratio(r, _paired(r, results, mode="baseline"))
        ratio = (
            "-"
            if ratio is None
            else f"{ratio[0]:.2f}" + (f" ({ratio[1]:.2f}-{ratio[2]:.2f})" if ratio[1] < ratio[2] else "")
        )
        gpu = "-" if r["peak_gpu_gib"] is None else f"{r['peak_gpu_gib']:.2f}"
        lines.append(
            f"| {r['mode']} | {r['pipeline']} | {_name(r['crop'])} | {r['batch']} | {r['iter_s']:.2f} "
            f"({min(r['iter_s_all']):.2f}-{max(r['iter_s_all']):.2f}) | {r['floor_s']:.2f} | "
            f"{r['iter_s'] / r['floor_s']:.2f} | {ratio} | {r['teacher_s']:.2f} | {100 * r['data_share']:.1f}% | "
            f"{r['samples_per_s']:.3f} | {r['peak_rss_gib']:.2f} | {gpu} | {_verdicts(r, results, kind)} |"
        )
    worst: dict[str, float] = {}
    for r in results:
        key = f"{_name(r['crop'])} {r['pipeline']} pipeline"
        worst[key] = max(worst.get(key, 0.0), r["peak_rss_gib"])
    lines += [
        "",
        "Peak RSS per crop and pipeline (all modes): "
        + ", ".join(
            f"{k}: {v:.2f} GiB"
            + (
                f" (target < {RSS_TARGET_GIB:.0f} GiB: {'met' if v < RSS_TARGET_GIB else 'NOT met'})"
                if k.startswith("128^3")
                else ""
            )
            for k, v in sorted(worst.items())
        )
        + ".",
        *([_cpu_pipelines(results)] if kind == "cpu" else []),
        f"Caching the teacher's logits (sliding window over each training case's brain, float16, compressed): "
        f"{cache_s:.1f} s for {args.cases - 1} case(s), once.",
        "",
    ]
    lines += _sliding_window_lines(sw, args, kind)
    return "\n".join(lines)


def _sliding_window_lines(sw: dict | None, args, kind: str) -> list[str]:
    """The sliding-window table, or one line saying it was not measured (``--no-sliding-window``)."""
    if sw is None:
        return [
            "Sliding-window inference: not measured in this run (`--no-sliding-window`); see the git history of",
            "this file for the last measurement.",
            "",
        ]
    whole = "x".join(map(str, sw["whole_window"]))
    return [
        f"Sliding-window inference over {'x'.join(map(str, args.sw_shape))} (medians of alternating repeats):",
        "",
        "| setting | student (1 channel) s | teacher (4 channels) s |",
        "|---|---|---|",
        f"| inference configs: window {args.sw_roi}^3, overlap 0.5, {args.sw_batch} windows per forward | "
        f"{sw['student_default']:.2f} | {sw['teacher_default']:.2f} |",
        f"| the same, 1 window per forward (the configs before 0.4.0) | {sw['student_one_window']:.2f} | "
        f"{sw['teacher_one_window']:.2f} |",
        f"| faster: one {whole} window, overlap 0 | {sw['student_whole']:.2f} | {sw['teacher_whole']:.2f} |",
        "",
        *(
            [
                "One window per forward leaves the student's first convolution (1 input channel) on PyTorch's slow "
                "native CPU path (oneDNN only above batch x channels x depth x height = 20480); the configs' "
                "`sw_batch_size` 2 avoids it.",
                "",
            ]
            if kind == "cpu"
            else []
        ),
    ]


def _cpu_pipelines(results: list[dict]) -> str:
    """The CPU's verdict on the two pipelines, from the paired rows of this run."""
    pairs = [
        f"{r['mode']} {r['iter_s'] / default['iter_s']:.2f}x"
        for r in results
        if r["pipeline"] == "fast" and (default := _paired(r, results, pipeline="default"))
    ]
    return (
        "On CPU the fast pipeline's random transforms run in the loader's thread beside the network's threads on the "
        f"same cores; fast / default in this run: {', '.join(pairs) or 'not measured'} (repeated runs on this shared "
        "2-core machine differ by about 10%). The default pipeline (worker processes) stays the CPU path: no cache to "
        "fill, and the lower peak RSS."
    )


HEADER = """# Benchmarks: the cost of distillation and of the data pipeline

Written by `python -m kd_components.tools.bench`; each machine kind has its own section, rewritten by a run on that
kind. Student = SegResNet init 16, 1 input channel; teacher = the same with 4 inputs, frozen. Iteration = data
fetch + (teacher) + student forward/backward/step, median of the timed iterations after warm-up; the floor is the
same iteration on a batch already on the device. Targets are goals recorded here, never asserted in tests.
"""


def _merge(path: Path, kind: str, section: str) -> str:
    """``path``'s report with the section of ``kind`` replaced (or added), the other kind's section kept."""
    begin, end = f"<!-- section:{kind} -->", f"<!-- /section:{kind} -->"
    old = path.read_text() if path.is_file() else ""
    sections = {
        k: m for k in ("cpu", "gpu") for m in re.findall(rf"<!-- section:{k} -->.*?<!-- /section:{k} -->", old, re.S)
    }
    sections[kind] = f"{begin}\n{section}\n{end}"
    if "gpu" not in sections:
        sections["gpu"] = "<!-- section:gpu -->\n## GPU\n\nPending: no GPU run recorded yet.\n<!-- /section:gpu -->"
    return HEADER + "\n" + "\n\n".join(sections[k] for k in ("cpu", "gpu") if k in sections) + "\n"


@command
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kd_components.tools.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--crops", nargs="+", default=["128"], help="training crops, N or XxYxZ (default 128)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1], help="batch sizes (default 1)")
    p.add_argument("--pipelines", nargs="+", default=list(PIPELINES), choices=list(PIPELINES), help="data pipelines")
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES), help="training modes")
    p.add_argument("--shape", type=int, nargs=3, default=[160, 160, 144], help="phantom volume shape")
    p.add_argument("--cases", type=int, default=3, help="phantom cases (one goes to validation)")
    p.add_argument("--iterations", type=int, default=6, help="timed iterations per row")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    p.add_argument(
        "--rounds", type=int, default=1, help="runs of every row, modes alternated; ratios paired per round (default 1)"
    )
    p.add_argument("--sw-shape", type=int, nargs=3, default=[240, 240, 155], help="sliding-window volume")
    p.add_argument("--sw-roi", type=int, default=128, help="sliding-window size")
    p.add_argument("--sw-batch", type=int, default=2, help="windows per forward (the configs' sw_batch_size)")
    p.add_argument(
        "--no-sliding-window",
        action="store_true",
        help="skip the sliding-window inference timings (the report says so)",
    )
    p.add_argument("--output", default=str(REPO / "docs" / "benchmarks.md"), help="markdown report to write")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker), Path(args.work), args.iterations, args.warmup)))
        return 0
    crops = [_crop(c) for c in args.crops]
    if args.iterations < 1 or args.cases < 2 or min(args.batch_sizes) < 1 or args.rounds < 1:
        raise InputError("--iterations >= 1, --cases >= 2, --rounds >= 1 and batch sizes >= 1 are needed.")
    import torch

    from kd_components.data import write_phantom
    from kd_components.tools.cache import cache_teacher_logits

    command = " ".join(["python -m kd_components.tools.bench", *(argv if argv is not None else sys.argv[1:])])
    results = []
    with tempfile.TemporaryDirectory(prefix="kd_bench_") as tmp:
        work = Path(tmp)
        write_phantom(
            work / "data", args.cases, tuple(args.shape), seed=0, val_fraction=1 / args.cases, test_fraction=0
        )
        torch.manual_seed(0)
        torch.save(_segresnet(4).state_dict(), work / "teacher.pt")
        t0 = time.perf_counter()
        cache_teacher_logits(work / "teacher.pt", work / "data", overrides={"roi_size": crops[0]})
        cache_s = time.perf_counter() - t0
        for crop in crops:
            for batch in args.batch_sizes:
                for pipeline in args.pipelines:  # paired: the modes of a pipeline run one after the other
                    runs: dict[str, list[dict]] = {m: [] for m in args.modes}
                    for k in range(args.rounds):  # round k starts at the k-th mode: no mode always first
                        shift = k % len(args.modes)
                        for mode in args.modes[shift:] + args.modes[:shift]:
                            spec = {"mode": mode, "pipeline": pipeline, "batch": batch, "crop": crop}
                            runs[mode].append(r := _run_worker(spec, args, work))
                            print(
                                f"round {k + 1}/{args.rounds} {mode} {pipeline} {_name(crop)} batch {batch}: "
                                f"{r['iter_s']:.2f} s/it, floor {r['floor_s']:.2f}, data {100 * r['data_share']:.1f}%, "
                                f"RSS {r['peak_rss_gib']:.2f} GiB",
                                flush=True,
                            )
                    results += [_combine(runs[m]) for m in args.modes]
    sw = None if args.no_sliding_window else _sliding_window(tuple(args.sw_shape), args.sw_roi, args.sw_batch)
    machine = _machine()
    section = _section(results, sw, cache_s, args, machine, command)
    out = Path(args.output)
    atomic_write_text(out, _merge(out, machine["kind"], section))
    store = out.with_suffix(".json")
    try:
        previous = json.loads(store.read_text()) if store.is_file() else {}
    except json.JSONDecodeError:
        previous = {}
    previous = {k: v for k, v in previous.items() if k in ("cpu", "gpu")}
    previous[machine["kind"]] = {"machine": machine, "command": command, "results": results, "sliding_window_s": sw}
    atomic_write_text(store, json.dumps(previous, indent=2) + "\n")
    print(section)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
