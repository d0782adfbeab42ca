#!/usr/bin/env bash
# Install, then run the end-to-end demo on the embedded broker.
# A full run (no --quick) also writes its report to benchmarks/results/demo_report.json, the file the
# README's demo table is generated from and checked against (python -m scripts.docs_figures).
set -euo pipefail
cd "$(dirname "$0")/.."
# --inexact: keep what `scripts/test.sh` installed (the vLLM CPU server), so switching between the
# two does not uninstall and reinstall it every time.
scripts/install.sh --inexact
extra=()
case " $* " in
*" --quick "* | *" --results-file "*) ;;
*) extra=(--results-file benchmarks/results/demo_report.json) ;;
esac
exec .venv/bin/looptool demo "${extra[@]}" "$@"
