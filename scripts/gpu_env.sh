# Sourced by the GPU scripts: install the carried wheels (wheels/) into /tmp/site, no registry needed, and put them
# and this repository on PYTHONPATH. Idempotent: a warm machine keeps /tmp/site.
PY=${PYTHON:-python3}
if [[ ! -f /tmp/site/.done ]]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site wheels/*.whl
    touch /tmp/site/.done
fi
export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export PYTHONWARNINGS=ignore
