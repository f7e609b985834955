#!/usr/bin/env bash
# make gpu-check: benchmarks/gpu_check.py, here in .venv, or on the lent GPU machine as it is.
#
# That machine has its own python3 (3.12, CUDA torch, pandas, pyarrow, scikit-learn), no network
# and no .venv: the one package the train path needs beyond those, pydantic (and its core), comes
# as wheels carried in .whl/gpu-check, made here by `make gpu-wheels`. The device call:
#   run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=...)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then
  exec .venv/bin/python benchmarks/gpu_check.py "$@"
fi
python=${PYTHON:-python3}
site=$(mktemp -d)
if ! "$python" -c "import pydantic" 2>/dev/null; then
  if [ ! -d .whl/gpu-check ]; then
    echo "gpu-check: $python lacks pydantic and no wheels were carried: run 'make gpu-wheels' and carry .whl" >&2
    exit 2
  fi
  "$python" -m pip install -q --no-index --no-deps --target "$site" .whl/gpu-check/*.whl
fi
# the workers torchrun starts inherit PYTHONPATH: they import the same packages and this checkout
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
exec "$python" benchmarks/gpu_check.py "$@"
