#!/usr/bin/env bash
# Build the CyNode image (orchestrator and gateway roles) from the project's wheel, without any
# container registry and with no network inside the build.
#
# Wheels for cynode, each dependency and pip are made here first (from PyPI or pip's cache) into a
# throwaway build context; the base is a local Debian image with python3 (by default the sandbox
# image scripts/build-sandbox-image.sh makes from debootstrap). podman runs with the
# containers.conf the node itself generates for this host (runtime, cgroup manager, ulimits).
#
# Usage: scripts/build-image.sh [TAG]   (default localhost/cynode:latest)
# Environment: CYNODE_SANDBOX_IMAGE (the base, as for build-sandbox-image.sh), PYTHON (default
# .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."

tag="${1:-localhost/cynode:latest}"
base="${CYNODE_SANDBOX_IMAGE:-localhost/cynode-sandbox:latest}"
python="${PYTHON:-.venv/bin/python}"

log() { printf '[build-image] %s\n' "$*" >&2; }

if ! podman image exists "$base"; then
    log "base image $base is missing: run scripts/build-sandbox-image.sh"
    exit 1
fi

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
log "making wheels"
# This machine's pip config names local indexes that may be absent; their warnings are noise.
"$python" -m pip wheel -q --wheel-dir "$context/wheels" . pip 2> >(grep -v '^WARNING: Location' >&2)
cp Containerfile "$context/Containerfile"
"$python" -c 'from cynode.sandbox.podman_service import containers_conf; print(containers_conf(), end="")' \
    > "$context/containers.conf"
log "building $tag on $base"
CONTAINERS_CONF="$context/containers.conf" podman build --network=none --pull=never \
    --build-arg "BASE_IMAGE=$base" --tag "$tag" --file "$context/Containerfile" "$context"
