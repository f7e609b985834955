#!/usr/bin/env bash
# Build an image of this repository: images/build.sh component|train-gpu|triton [TAG]
#
# Stages a clean build context under build/images/<name>/ (the package sources, constraints,
# the CA bundle, and wheels pip must take from disk), then builds with podman, or docker.
# Environment: PIP_INDEX_URL (internal PyPI mirror), CA_BUNDLE (default: the system bundle),
# BASE_IMAGE / TRITON_IMAGE (defaults in each Containerfile), WHEELS_DIR (default: pip's
# configured find-links), ENGINE (podman or docker).
set -euo pipefail
cd "$(dirname "$0")/.."

name="${1:?usage: images/build.sh component|train-gpu|triton [TAG]}"
tag="${2:-registry.mlops.internal/private-mlops/${name}:$(git rev-parse --short HEAD 2>/dev/null || echo dev)}"
engine="${ENGINE:-$(command -v podman || command -v docker || true)}"
[ -n "$engine" ] || { echo "no podman or docker on PATH: run images/setup-podman.sh first" >&2; exit 1; }
[ -f "images/${name}/Containerfile" ] || { echo "no images/${name}/Containerfile" >&2; exit 1; }

context="build/images/${name}"
rm -rf "$context" && mkdir -p "$context/wheels"
cp -r components pipelines mlops pyproject.toml README.md constraints.txt transformer-constraints.txt "$context/"
find "$context" -name __pycache__ -prune -exec rm -rf {} +
rm -rf "$context"/pipelines/*/feature_repo/data
cp "${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}" "$context/ca-bundle.crt"

# The dependencies of '.[all]' on their own, so the image installs them in a layer of their own
# that a source change does not invalidate (rebuilds take seconds, not minutes).
python3 - "$context/image-requirements.txt" <<'PY'
import sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = project["optional-dependencies"]
wanted = [*project["dependencies"], *(r for extra in ("train", "platform", "serve") for r in extras[extra])]
open(sys.argv[1], "w").write("".join(f"{r}\n" for r in dict.fromkeys(wanted) if not r.startswith("private-mlops")))
PY

# torch's CPU wheel (pinned as +cpu in constraints.txt) is served by no index: take it from disk.
wheels="${WHEELS_DIR:-$(python3 -m pip config get global.find-links 2>/dev/null || true)}"
torch_pin="$(grep -E '^torch==' constraints.txt | cut -d= -f3)"
if [ "$name" = component ] && [ -n "$wheels" ] && ls "$wheels"/torch-"${torch_pin}"-*.whl >/dev/null 2>&1; then
  cp "$wheels"/torch-"${torch_pin}"-*.whl "$context/wheels/"
fi

args=()
[ -n "${PIP_INDEX_URL:-}" ] && args+=(--build-arg "PIP_INDEX_URL=${PIP_INDEX_URL}")
[ -n "${BASE_IMAGE:-}" ] && args+=(--build-arg "BASE_IMAGE=${BASE_IMAGE}")
[ -n "${TRITON_IMAGE:-}" ] && args+=(--build-arg "TRITON_IMAGE=${TRITON_IMAGE}")
"$engine" build -f "images/${name}/Containerfile" -t "$tag" "${args[@]}" "$context"
echo "$tag"
