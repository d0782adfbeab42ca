#!/usr/bin/env bash
# Install, then run the end-to-end demo on the embedded broker.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec .venv/bin/looptool demo "$@"
