#!/usr/bin/env bash
# Make this machine able to build images with no registry: podman with runc, the ulimits the
# build needs, and a Debian bookworm base made with debootstrap and imported as
# localhost/debian-minbase:bookworm. Idempotent; run as root.
set -euo pipefail

if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq podman runc debootstrap >/dev/null
fi

# crun fails on this machine's hybrid cgroups; a full pip install needs more open files.
mkdir -p /etc/containers
if ! grep -q 'runtime = "runc"' /etc/containers/containers.conf 2>/dev/null; then
  cat > /etc/containers/containers.conf <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
CONF
fi

if ! podman image exists localhost/debian-minbase:bookworm; then
  rootfs="$(mktemp -d)"
  debootstrap --variant=minbase bookworm "$rootfs" >/dev/null
  tar -C "$rootfs" -c . | podman import - localhost/debian-minbase:bookworm >/dev/null
  rm -rf "$rootfs"
fi
echo "podman ready: $(podman --version), base localhost/debian-minbase:bookworm"
