#!/usr/bin/env bash
# The GPU benchmark of docs/benchmarks.md, as one prepared script for a machine with a GPU that reaches no package
# registry but has torch, numpy, scipy and matplotlib (issue 13). On this machine first:
#     scripts/gpu_bench.sh --download        # fetches the wheels it carries into wheels/ (git-ignored)
# then on the GPU machine, from the repository root (wheels/ carried along):
#     scripts/gpu_bench.sh [OUTDIR]          # installs from wheels/ only, runs the benchmark, writes OUTDIR/benchmarks.md
# The rows: the default and the fast pipeline at 128^3, batch 1 (paired), then the fast pipeline at 128^3 and at
# the model zoo's crop 224x224x144, batch 1 and 2 in one run (so the batch-2 verdict pairs with its batch-1 row),
# each for the baseline, KD online and KD cached, on a phantom of BraTS size (240x240x155). BENCH_PARTS picks the
# parts (default "1 2"; part 1 is recorded in docs/benchmarks.md already, so a later GPU session can run
# BENCH_PARTS="2" only: 12 rows, each its own process; not yet timed on a GPU). BENCH_ROUNDS (default 1) runs
# every row that many times, the modes alternated, and pairs each KD row with its own round's baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [[ "${1:-}" == "--download" ]]; then
    "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d wheels monai==1.6.1 pytorch-ignite==0.5.5 nibabel==5.4.2 fire==0.7.1 termcolor
    exit 0
fi
OUTDIR=${1:-docs}
source scripts/gpu_env.sh
ITER=${BENCH_ITERATIONS:-10}
WARM=${BENCH_WARMUP:-3}
SMALL=${BENCH_CROP_SMALL:-128}
LARGE=${BENCH_CROP_LARGE:-224x224x144}
common=(--shape ${BENCH_SHAPE:-240 240 155} --cases 3 --iterations "$ITER" --warmup "$WARM" --sw-roi "$SMALL" --sw-shape ${BENCH_SW_SHAPE:-240 240 155} --rounds "${BENCH_ROUNDS:-1}")
PARTS=" ${BENCH_PARTS:-1 2} "
if [[ "$PARTS" == *" 1 "* ]]; then
    "$PY" -m kd_components.tools.bench --crops "$SMALL" --batch-sizes 1 --pipelines default fast "${common[@]}" \
        --output "$OUTDIR/benchmarks_small_b1.md"
fi
if [[ "$PARTS" == *" 2 "* ]]; then
    "$PY" -m kd_components.tools.bench --crops "$SMALL" "$LARGE" --batch-sizes 1 2 --pipelines fast "${common[@]}" \
        --output "$OUTDIR/benchmarks_fast_b1_b2.md"
fi
