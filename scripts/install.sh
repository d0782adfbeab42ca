#!/usr/bin/env bash
# Install everything the project needs into ./.venv, from the project's own files only.
# Usage: scripts/install.sh [uv sync options, e.g. --extra cpu-serve]
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION="0.13.9"
if ! command -v uv >/dev/null 2>&1 || [ "$(uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
    python3 -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi

# torch is pinned to the CPU build that pip finds through PIP_FIND_LINKS on these machines;
# uv does not read pip's settings, so hand it the same folder (else it downloads a ~3 GB CUDA build).
if [ -z "${UV_FIND_LINKS:-}" ] && [ -n "${PIP_FIND_LINKS:-}" ]; then
    export UV_FIND_LINKS="$PIP_FIND_LINKS"
fi

if [ -n "${UV_FIND_LINKS:-}" ]; then
    uv sync --locked "$@"
else
    # No local wheel folder: resolve afresh from the package index (uv.lock records the local one).
    uv sync "$@"
fi
