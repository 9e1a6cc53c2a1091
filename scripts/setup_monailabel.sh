#!/usr/bin/env bash
# MONAI Label 0.8.5 in its own virtual environment (default .venv-monailabel), for serving the packaged bundles.
# Its own venv because monailabel needs numpy < 2 and a torchvision that matches torch (torch 2.14.1 +
# torchvision 0.29.1); the project's venv keeps torch 2.13.0 and numpy 2. Installs nothing when the venv is there.
# Serving needs MONAI only (monai 1.5.2 here; our inference configs avoid Spacingd, which breaks under 1.6).
set -euo pipefail
VENV="${1:-.venv-monailabel}"
if [ -x "$VENV/bin/monailabel" ] && "$VENV/bin/python" -c "import monailabel" 2>/dev/null; then
    echo "MONAI Label venv ready: $VENV"
    exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
    torch==2.14.1 torchvision==0.29.1 monailabel==0.8.5 monai==1.5.2 "pydicom<3" "dicomweb-client<0.61"
echo "MONAI Label venv ready: $VENV"
