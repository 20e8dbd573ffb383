#!/usr/bin/env bash
# Build the default CyNode sandbox image locally, without any container registry.
#
# A Debian minbase root filesystem is made with debootstrap, packed into a tarball cached under
# $CYNODE_CACHE_DIR (default ~/.cache/cynode) and imported with `podman import`. The image holds
# the sandbox minimum tools (sh, coreutils, find, tar, gzip, zip/unzip, ps, env) and python3, which
# prompt jobs use to speak HTTP over the inference proxy's Unix socket.
#
# Idempotent: exits early when the image already exists, unless --force is given. A cached rootfs
# tarball is reused, so a forced rebuild only re-imports it; --refresh also rebuilds the rootfs.
#
# Usage: scripts/build-sandbox-image.sh [--force] [--refresh] [--image REF]
# Environment: CYNODE_SANDBOX_IMAGE, CYNODE_CACHE_DIR, CYNODE_DEBIAN_MIRROR, CYNODE_DEBIAN_SUITE.
set -euo pipefail

image="${CYNODE_SANDBOX_IMAGE:-localhost/cynode-sandbox:latest}"
cache_dir="${CYNODE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cynode}"
mirror="${CYNODE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite="${CYNODE_DEBIAN_SUITE:-bookworm}"
packages="python3,procps,ca-certificates,zip,unzip"
# Bump when the rootfs recipe below changes, so stale cached tarballs are not reused.
recipe_version=1
force=0
refresh=0

while [[ $# -gt 0 ]]; do
    case "$1" in
        --force) force=1 ;;
        --refresh) force=1; refresh=1 ;;
        --image) image="$2"; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

log() { printf '[build-sandbox-image] %s\n' "$*" >&2; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

ensure_prerequisites() {
    local missing=()
    command -v podman >/dev/null || missing+=(podman)
    command -v runc >/dev/null || missing+=(runc)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    if [[ ${#missing[@]} -gt 0 ]]; then
        log "installing ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

ensure_prerequisites

if [[ $force -eq 0 ]] && podman image exists "$image"; then
    log "$image already exists (use --force to rebuild)"
    exit 0
fi

arch="$(dpkg --print-architecture)"
key="$(printf '%s|%s|%s|%s|%s' "$recipe_version" "$suite" "$arch" "$packages" "$mirror" | sha256sum | cut -c1-12)"
tarball="$cache_dir/sandbox-rootfs-$suite-$arch-$key.tar.gz"
mkdir -p "$cache_dir/debs"

if [[ $refresh -eq 1 || ! -s "$tarball" ]]; then
    rootfs="$(mktemp -d "${TMPDIR:-/tmp}/cynode-rootfs.XXXXXX")"
    trap 'as_root rm -rf "$rootfs"' EXIT
    log "debootstrap $suite ($arch) into $rootfs; this takes a few minutes"
    as_root debootstrap --variant=minbase --include="$packages" --cache-dir="$(realpath "$cache_dir/debs")" \
        "$suite" "$rootfs" "$mirror" >"$cache_dir/debootstrap.log" 2>&1 \
        || { tail -n 30 "$cache_dir/debootstrap.log" >&2; exit 1; }
    # Trim what a sandbox never needs; dpkg's database stays so images can be derived from this one.
    as_root rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
        "$rootfs"/usr/share/info/* "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/*
    as_root mkdir -p "$rootfs/workspace" "$rootfs/job"
    as_root chmod 1777 "$rootfs/tmp"
    as_root tar -C "$rootfs" --numeric-owner -cf - . | gzip -1 >"$tarball.partial"
    mv "$tarball.partial" "$tarball"
    log "cached rootfs tarball at $tarball"
fi

previous="$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
log "importing $tarball as $image"
podman import --quiet \
    --change 'CMD ["/bin/sh"]' \
    --change 'WORKDIR /workspace' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'LABEL io.cynodeai.sandbox.purpose=base-tools,python-tools' \
    --message "CyNode sandbox ($suite minbase + $packages)" \
    "$tarball" "$image" >/dev/null
if [[ -n "$previous" && "$previous" != "$(podman image inspect --format '{{.Id}}' "$image")" ]]; then
    # The replaced image is now untagged; drop it unless a container still uses it.
    podman rmi "$previous" >/dev/null 2>&1 || true
fi
log "built $image"
