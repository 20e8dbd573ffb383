#!/usr/bin/env bash
# Build the Ollama-API-compatible test image (images/ollama-test) locally, offline.
#
# No Ollama image can be pulled or built on the test host, so this image stands in for it: the
# sandbox image's python3 runs images/ollama-test/server.py on llama-cpp-python (copied from the
# project's venv, with its dependencies and the OpenMP runtime) and serves the embedded Gemma GGUF
# model (baked in: the node gives an Ollama container only its own model store, no host model).
#
# Cached: the image carries a label with a key over everything that goes in (recipe files, base
# image id, llama-cpp-python version, model file); when the existing image's key matches, nothing
# is built. --force rebuilds anyway.
#
# Usage: scripts/build-ollama-test-image.sh [--force] [TAG]   (default localhost/cynode-ollama-test:latest)
# Environment: CYNODE_SANDBOX_IMAGE (the base), CYNODE_TEST_MODEL_PATH (the GGUF; default where
# scripts/fetch-model.sh puts it), PYTHON (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."

force=0
if [[ "${1:-}" == "--force" ]]; then
    force=1
    shift
fi
tag="${1:-localhost/cynode-ollama-test:latest}"
base="${CYNODE_SANDBOX_IMAGE:-localhost/cynode-sandbox:latest}"
python="${PYTHON:-.venv/bin/python}"
model="${CYNODE_TEST_MODEL_PATH:-${XDG_CACHE_HOME:-$HOME/.cache}/cynode/models/gemma3-270m-q4_k_m.gguf}"
recipe_dir=images/ollama-test
# What llama-cpp-python imports, besides itself.
packages=(llama_cpp numpy numpy.libs jinja2 markupsafe diskcache typing_extensions.py)

log() { printf '[build-ollama-test-image] %s\n' "$*" >&2; }

for needed in "$model:run scripts/fetch-model.sh" "$python:run scripts/bootstrap"; do
    if [[ ! -e "${needed%%:*}" ]]; then
        log "${needed%%:*} is missing: ${needed#*:}"
        exit 1
    fi
done
if ! podman image exists "$base"; then
    log "base image $base is missing: run scripts/build-sandbox-image.sh"
    exit 1
fi

site="$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
llama_version="$("$python" -c 'import llama_cpp; print(llama_cpp.__version__)')"
base_id="$(podman image inspect --format '{{.Id}}' "$base")"
key="$({
    cat "$recipe_dir/Containerfile" "$recipe_dir/server.py" "$0"
    printf '%s|%s|%s|%s\n' "$base_id" "$llama_version" "$(stat -c '%s %Y' "$model")" "${packages[*]}"
} | sha256sum | cut -c1-16)"

if [[ $force -eq 0 ]] && podman image exists "$tag" \
    && [[ "$(podman image inspect --format '{{index .Labels "io.cynode.ollama-test.recipe"}}' "$tag")" == "$key" ]]; then
    log "$tag is up to date (recipe $key)"
    exit 0
fi

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/site-packages" "$context/lib"
for package in "${packages[@]}"; do
    cp -a "$site/$package" "$context/site-packages/"
done
find "$context/site-packages" -name __pycache__ -prune -exec rm -rf {} +
# llama.cpp's CPU backend links the OpenMP runtime, which a Debian minbase lacks.
gomp="$(ldconfig -p | awk '$1 == "libgomp.so.1" {print $NF; exit}')"
if [[ -z "$gomp" ]]; then
    log "libgomp.so.1 is missing on this host: apt-get install libgomp1"
    exit 1
fi
cp -L "$gomp" "$context/lib/"
# A hard link when on one file system: the model is not copied, only named in the context.
ln "$model" "$context/model.gguf" 2>/dev/null || cp "$model" "$context/model.gguf"
cp "$recipe_dir/Containerfile" "$recipe_dir/server.py" "$context/"
"$python" -c 'from cynode.sandbox.podman_service import containers_conf; print(containers_conf(), end="")' \
    > "$context/containers.conf"

previous="$(podman image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
log "building $tag on $base (recipe $key)"
CONTAINERS_CONF="$context/containers.conf" podman build --quiet --network=none --pull=never \
    --build-arg "BASE_IMAGE=$base" --build-arg "RECIPE_KEY=$key" \
    --tag "$tag" --file "$context/Containerfile" "$context" >/dev/null
if [[ -n "$previous" && "$previous" != "$(podman image inspect --format '{{.Id}}' "$tag")" ]]; then
    # The replaced image is now untagged; drop it unless a container still uses it.
    podman rmi "$previous" >/dev/null 2>&1 || true
fi
log "built $tag"
