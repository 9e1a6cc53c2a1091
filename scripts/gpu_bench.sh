#!/usr/bin/env bash
# The GPU benchmark of docs/benchmarks.md, as one prepared script for a machine with a GPU that reaches no package
# registry but has torch, numpy, scipy and matplotlib (issue 13). On this machine first:
#     scripts/gpu_bench.sh --download        # fetches the wheels it carries into wheels/ (git-ignored)
# then on the GPU machine, from the repository root (wheels/ carried along):
#     scripts/gpu_bench.sh                   # installs from wheels/ only, runs the benchmark, writes the GPU section
# Extra arguments go to the benchmark (e.g. --iterations 20 --warmup 5).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [[ "${1:-}" == "--download" ]]; then
    "$PY" -m pip download --no-deps -d wheels monai==1.6.1 pytorch-ignite==0.5.5 nibabel==5.4.2 fire==0.7.1 \
        termcolor tqdm packaging importlib-resources
    exit 0
fi
"$PY" -m pip install --no-index --find-links wheels --no-deps monai pytorch-ignite nibabel fire termcolor tqdm packaging
"$PY" -m pip install --no-deps --no-build-isolation -e .
"$PY" -m kd_components.tools.bench --crops 128 224x224x144 --batch-sizes 1 2 --iterations 20 --warmup 5 "$@"
