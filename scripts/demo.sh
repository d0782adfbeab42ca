#!/usr/bin/env bash
# Install, then run the end-to-end demo on the embedded broker.
set -euo pipefail
cd "$(dirname "$0")/.."
# --inexact: keep what `scripts/test.sh` installed (the vLLM CPU server), so switching between the
# two does not uninstall and reinstall it every time.
scripts/install.sh --inexact
exec .venv/bin/looptool demo "$@"
