#!/usr/bin/env bash
# Install, lint, and run the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --extra cpu-serve
scripts/install-verl.sh   # verl in its own env: the trainer's verl backend is tested against it
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports   # the layers run one way (docs/architecture.md)
exec .venv/bin/python -m pytest -q -rsx --durations=25 "$@"
