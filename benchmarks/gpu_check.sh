#!/usr/bin/env bash
# make gpu-check: benchmarks/gpu_check.py, here in .venv, or on the lent GPU machine as it is.
#
# That machine has its own python3 (3.12, CUDA torch, numpy, pandas, pyarrow, scikit-learn), no
# network and no .venv: the packages the train path imports beyond those (benchmarks/gpu-carry.txt:
# pydantic, PyYAML and what they pull in) come as wheels carried in .whl/gpu-check, made here by
# `make gpu-wheels`. The device call:
#   run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=...)
# PYTHON names another interpreter than .venv's (tests/test_benchmarks.py runs the check in a bare
# venv holding only the machine's packages, as the machine would), GPU_WHEELS another wheel folder.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ]; then
  exec .venv/bin/python benchmarks/gpu_check.py "$@"
fi
python=${PYTHON:-python3}
wheels=${GPU_WHEELS:-.whl/gpu-check}
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
if [ -d "$wheels" ]; then
  "$python" -m pip install -q --no-index --no-deps --target "$site" "$wheels"/*.whl
fi
missing=$(grep -v '^#' benchmarks/gpu-carry.txt | while read -r distribution module; do
  PYTHONPATH="$site" "$python" -c "import $module" 2>/dev/null || printf '%s ' "$distribution"
done)
if [ -n "$missing" ]; then
  echo "gpu-check: $python lacks $missing: run 'make gpu-wheels' here and carry .whl (or install them)" >&2
  exit 2
fi
# the workers torchrun starts inherit PYTHONPATH: they import the same packages and this checkout
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
"$python" benchmarks/gpu_check.py "$@"
