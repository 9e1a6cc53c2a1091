#!/usr/bin/env bash
# MONAI Label 0.8.5 in its own virtual environment (default .venv-monailabel), for serving and training the packaged
# bundles. Its own venv because monailabel needs numpy < 2 and a torchvision that matches torch (torch 2.14.1 +
# torchvision 0.29.1); the project's venv keeps torch 2.13.0 and numpy 2. Installs nothing when the venv is there.
# Serving needs MONAI only (monai 1.5.2 here; the inference configs' Spacingd does nothing unless trained with --pixdim);
# training runs on the kd_components copy inside each packaged bundle, which works with this monai and ignite.
#
# torch and torchvision: on a machine without an NVIDIA driver, the CPU builds from PyTorch's CPU index
# (KD_TORCH_CPU_INDEX, default https://download.pytorch.org/whl/cpu) when that index answers: a venv of about
# 3 GB. Otherwise the registry's builds, which are CUDA builds (they also run on CPU) with about 4 GB of NVIDIA
# libraries and triton: about 8 GB. PyPI's torchvision is a CUDA build, so it cannot sit beside a CPU torch.
# --no-compile: no byte-compiling of the ~8 GB at install (torch alone has thousands of modules); Python compiles
# what the server imports when it first starts (5 min for the whole setup, measured with two trainings beside it).
set -euo pipefail
VENV="${1:-.venv-monailabel}"
if [ -x "$VENV/bin/monailabel" ] && "$VENV/bin/python" -c "import monailabel" 2>/dev/null; then
    echo "MONAI Label venv ready: $VENV"
    exit 0
fi
TORCH_PINS=(torch==2.14.1 torchvision==0.29.1)
CPU_INDEX="${KD_TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
python3 -m venv "$VENV"
PIP=("$VENV/bin/pip" --disable-pip-version-check)
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
# the probe must come back with a +cpu build: pip's own settings may add other indexes that hold CUDA builds
if ! command -v nvidia-smi >/dev/null 2>&1 \
    && "${PIP[@]}" download --quiet --no-deps --timeout 15 --retries 0 --index-url "$CPU_INDEX" \
        --dest "$probe" torchvision==0.29.1+cpu >/dev/null 2>&1 \
    && compgen -G "$probe/torchvision-0.29.1+cpu-*.whl" >/dev/null; then
    "${PIP[@]}" install --quiet --no-compile --index-url "$CPU_INDEX" torch==2.14.1+cpu torchvision==0.29.1+cpu
    echo "torch and torchvision: CPU builds from $CPU_INDEX"
else
    echo "torch and torchvision: the registry's builds (CUDA; no NVIDIA driver needed to run on CPU; about 8 GB)"
fi
"${PIP[@]}" install --quiet --no-compile "${TORCH_PINS[@]}" monailabel==0.8.5 monai==1.5.2 "pydicom<3" "dicomweb-client<0.61"
echo "MONAI Label venv ready: $VENV ($(du -sh "$VENV" | cut -f1))"
