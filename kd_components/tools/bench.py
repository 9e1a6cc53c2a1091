"""Benchmark: the cost of distillation, measured side by side in one run.

``python -m kd_components.tools.bench [--roi 128] [--iterations 6] [--output docs/benchmarks.md]``

One run measures, each mode in its own process (so peak resident memory is its own): student training
iterations of the baseline, of KD with the teacher run online, and of KD with cached teacher logits, through the
student bundle's own configs (``train.json`` + ``baseline.json`` / ``cached_teacher.json``); the data pipeline's
share of each iteration (Ignite's ``GET_BATCH_STARTED`` -> ``GET_BATCH_COMPLETED``); the one-off cost of caching;
and sliding-window inference over a 240x240x155 volume for the student and the teacher with the inference
configs' window (128^3, overlap 0.5). It prints a table and writes ``docs/benchmarks.md`` with the machine, the
versions and the exact command. Targets (reported, never asserted): KD online <= 1.35x the baseline's iteration
time, KD cached <= 1.10x, peak RSS of student training at 128^3 crops < 4 GiB on CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kd_components.errors import InputError, command
from kd_components.files import atomic_write_text

__all__ = ["main"]

REPO = Path(__file__).resolve().parents[2]
STUDENT = REPO / "bundles" / "student_kd" / "configs"
MODES = {
    "baseline": ["baseline.json"],
    "kd_online": [],
    "kd_cached": ["cached_teacher.json"],
}
TARGETS = {"kd_online": 1.35, "kd_cached": 1.10}
RSS_TARGET_GIB = 4.0


def _segresnet(in_channels: int):
    from monai.networks.nets import SegResNet

    return SegResNet(
        blocks_down=[1, 2, 2, 4], blocks_up=[1, 1, 1], init_filters=16, in_channels=in_channels, out_channels=3
    )


def _worker(mode: str, work: Path, roi: int, iterations: int, warmup: int) -> dict:
    """Train the student in ``mode`` for ``warmup + iterations`` iterations; times, data share and peak RSS."""
    import torch
    from ignite.engine import Events
    from monai.bundle import ConfigWorkflow

    files = [str(STUDENT / "train.json"), *[str(STUDENT / f) for f in MODES[mode]]]
    overrides = {
        "bundle_root": str(work / f"student_{mode}"),
        "dataset_dir": str(work / "data"),
        "teacher_ckpt": str(work / "teacher.pt"),
        "roi_size": [roi] * 3,
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
    trainer.add_event_handler(Events.GET_BATCH_COMPLETED, lambda e: marks["got"].append(time.perf_counter()))

    def _done(engine):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        marks["done"].append(time.perf_counter())
        if len(marks["done"]) >= warmup + iterations:
            engine.terminate()

    trainer.add_event_handler(Events.ITERATION_COMPLETED, _done)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.run()
    teacher_s = trainer.teacher_seconds[warmup:]
    n = len(marks["done"])
    iters = [marks["done"][i] - marks["start"][i] for i in range(warmup, n)]
    data = [marks["got"][i] - marks["start"][i] for i in range(warmup, n)]
    return {
        "mode": mode,
        "iterations": len(iters),
        "iter_s": statistics.median(iters),
        "iter_s_all": iters,
        "teacher_s": statistics.median(teacher_s) if teacher_s else 0.0,
        "data_share": sum(data) / sum(iters),
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
    }


def _sliding_window(shape: tuple[int, int, int], roi: int) -> dict:
    """Seconds of one sliding-window pass over a ``shape`` volume, student (1 channel) and teacher (4)."""
    import torch
    from monai.inferers import SlidingWindowInferer

    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    inferer = SlidingWindowInferer(roi_size=[roi] * 3, sw_batch_size=1, overlap=0.5)
    out = {}
    for name, channels in (("student", 1), ("teacher", 4)):
        net = _segresnet(channels).to(device=device, memory_format=torch.channels_last_3d).eval()
        x = torch.randn(1, channels, *shape, device=device)
        with torch.no_grad(), torch.autocast("cuda", enabled=device.type == "cuda"):
            net(x[..., :roi, :roi, :roi])  # warm-up: one window, so both timings exclude one-off set-up
            t0 = time.perf_counter()
            inferer(x, net)
            if device.type == "cuda":
                torch.cuda.synchronize()
            out[name] = time.perf_counter() - t0
    return out


def _run_worker(mode: str, args, work: Path) -> dict:
    cmd = [sys.executable, "-m", "kd_components.tools.bench", "--worker", mode, "--work", str(work)]
    cmd += ["--roi", str(args.roi), "--iterations", str(args.iterations), "--warmup", str(args.warmup)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"benchmark worker '{mode}' failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


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
        "cpu": f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM",
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "versions": f"Python {platform.python_version()}, torch {torch.__version__}, monai {monai.__version__}, "
        f"numpy {numpy.__version__}, {platform.system()} {platform.release()}",
        "threads": torch.get_num_threads(),
    }


def _report(results: dict, sw: dict, cache_s: float, args, machine: dict, command: str) -> str:
    base = results["baseline"]
    lines = [
        "# Benchmarks: the cost of distillation",
        "",
        "Measured in one run of the command below (each training mode in its own process, so its peak resident",
        "memory is its own). Student = SegResNet init 16, 1 input channel; teacher = the same with 4 inputs, frozen.",
        "Iteration = data fetch + (teacher) + student forward/backward/step, batch 1, median of the timed",
        "iterations after warm-up. Targets are goals recorded here, never asserted in tests.",
        "",
        f"- Command: `{command}`",
        f"- Machine: {machine['cpu']}; GPU: {machine['gpu']}; torch threads: {machine['threads']}",
        f"- Versions: {machine['versions']}",
        f"- Crops: {args.roi}^3 from a {args.shape[0]}x{args.shape[1]}x{args.shape[2]} phantom, "
        f"{args.warmup} warm-up + {args.iterations} timed iterations per mode",
        "",
        "## Training iteration",
        "",
        "| mode | s / iteration (min-max) | x baseline | target | teacher forward s / it | data share | "
        "peak RSS (GiB) | x baseline |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode in MODES:
        r = results[mode]
        ratio = r["iter_s"] / base["iter_s"]
        target = TARGETS.get(mode)
        verdict = "" if target is None else f"<= {target:.2f}x: {'met' if ratio <= target else 'NOT met'}"
        spread = f"{min(r['iter_s_all']):.1f}-{max(r['iter_s_all']):.1f}"
        lines.append(
            f"| {mode} | {r['iter_s']:.2f} ({spread}) | {ratio:.2f} | {verdict} | {r.get('teacher_s', 0.0):.2f} | "
            f"{100 * r['data_share']:.1f}% | {r['peak_rss_gib']:.2f} | {r['peak_rss_gib'] / base['peak_rss_gib']:.2f} |"
        )
    worst = max(r["peak_rss_gib"] for r in results.values())
    online = results["kd_online"]
    lines += [
        "",
        f"Iteration times vary by +-{50 * (max(base['iter_s_all']) - min(base['iter_s_all'])) / base['iter_s']:.0f}% "
        f"between iterations of the baseline here (min-max above; a shared machine), so ratios of medians are only as "
        f"good as that. The teacher forward, timed inside the "
        f"handler, is the direct cost of online KD: {online['teacher_s']:.2f} s per iteration, i.e. "
        f"{(base['iter_s'] + online['teacher_s']) / base['iter_s']:.2f}x the baseline's median iteration; cached KD "
        f"has no teacher forward.",
        f"Peak RSS of student training at {args.roi}^3 crops: {worst:.2f} GiB (all modes; target < "
        f"{RSS_TARGET_GIB:.0f} GiB{'' if args.roi == 128 else ', stated for 128^3'}: "
        f"{'met' if worst < RSS_TARGET_GIB else 'NOT met'}).",
        f"Caching the teacher's logits (sliding window over each training case's brain, float16, compressed): "
        f"{cache_s:.1f} s for {args.cases - 1} case(s), once.",
        "",
        f"## Sliding-window inference over {'x'.join(map(str, args.sw_shape))}",
        "",
        "| network | seconds |",
        "|---|---|",
        f"| student (1 channel) | {sw['student']:.1f} |",
        f"| teacher (4 channels) | {sw['teacher']:.1f} |",
        "",
        f"Window {args.sw_roi}^3, overlap 0.5, batch of 1 window (the inference configs' settings).",
        "",
    ]
    return "\n".join(lines)


@command
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kd_components.tools.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--roi", type=int, default=128, help="training crop size (default 128)")
    p.add_argument("--shape", type=int, nargs=3, default=[160, 160, 144], help="phantom volume shape")
    p.add_argument("--cases", type=int, default=3, help="phantom cases (one goes to validation)")
    p.add_argument("--iterations", type=int, default=6, help="timed iterations per mode")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    p.add_argument("--sw-shape", type=int, nargs=3, default=[240, 240, 155], help="sliding-window volume")
    p.add_argument("--sw-roi", type=int, default=128, help="sliding-window size")
    p.add_argument("--output", default=str(REPO / "docs" / "benchmarks.md"), help="markdown report to write")
    p.add_argument("--worker", choices=sorted(MODES), help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.worker, Path(args.work), args.roi, args.iterations, args.warmup)))
        return 0
    if args.roi % 8 or args.iterations < 1 or args.cases < 2:
        raise InputError("--roi must be a multiple of 8, --iterations >= 1 and --cases >= 2.")
    import torch

    from kd_components.data import write_phantom
    from kd_components.tools.cache import cache_teacher_logits

    command = " ".join(["python -m kd_components.tools.bench", *(argv if argv is not None else sys.argv[1:])])
    with tempfile.TemporaryDirectory(prefix="kd_bench_") as tmp:
        work = Path(tmp)
        write_phantom(
            work / "data", args.cases, tuple(args.shape), seed=0, val_fraction=1 / args.cases, test_fraction=0
        )
        torch.manual_seed(0)
        torch.save(_segresnet(4).state_dict(), work / "teacher.pt")
        t0 = time.perf_counter()
        cache_teacher_logits(work / "teacher.pt", work / "data", overrides={"roi_size": [args.roi] * 3})
        cache_s = time.perf_counter() - t0
        results = {}
        for mode in MODES:
            results[mode] = r = _run_worker(mode, args, work)
            print(
                f"{mode}: {r['iter_s']:.2f} s/iteration, data {100 * r['data_share']:.1f}%, "
                f"peak RSS {r['peak_rss_gib']:.2f} GiB",
                flush=True,
            )
    sw = _sliding_window(tuple(args.sw_shape), args.sw_roi)
    report = _report(results, sw, cache_s, args, _machine(), command)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, report)
    atomic_write_text(
        out.with_suffix(".json"), json.dumps({"results": results, "sliding_window_s": sw}, indent=2) + "\n"
    )
    print(report)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
