#!/usr/bin/env bash
# GPU check: the vLLM engine and verl paths proven on one NVIDIA GPU, in one command (docs/gpu.md).
#
# Usage: scripts/gpu-check.sh [--dry-run] [--reuse-envs] [--work DIR] [--out FILE] [-- CHECK OPTIONS]
#   (default)     build .venv-gpu (this project with the `gpu` extra: vLLM on CUDA, versions from
#                 uv.lock) and .venv-verl-gpu (scripts/install-verl.sh --gpu), then run
#                 scripts/gpu_check.py: setup, (a) vLLM engine, (b) verl GRPO, (c) merge + probe
#                 reload, (d) a loop round on the embedded broker.
#   --dry-run     no GPU needed: the same steps on the CPU builds (.venv with the cpu-serve extra,
#                 .venv-verl), as far as they go; steps that need CUDA end as "needs a GPU".
#   --reuse-envs  use the environments as they are (they must exist) instead of building them.
#   CHECK OPTIONS go to scripts/gpu_check.py (--only a,c; --dtype; --compile; --sft-steps N; ...).
# Writes benchmarks/results/gpu_check.json (a dry run: gpu_check_dry_run.json); exit 0 when every
# check is ok (a dry run: when none failed).
set -euo pipefail
cd "$(dirname "$0")/.."

DRY_RUN=0
REUSE=0
WORK="data/gpu-check"
OUT=""
CHECK_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --reuse-envs) REUSE=1 ;;
        --work) WORK="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        --) shift; CHECK_ARGS=("$@"); break ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if [ "$DRY_RUN" = 1 ]; then
    MAIN_VENV=".venv"
    VERL_VENV=".venv-verl"
else
    MAIN_VENV=".venv-gpu"
    VERL_VENV=".venv-verl-gpu"
fi
mkdir -p "$WORK/logs"
ENV_JSON="$WORK/env_build.json"
ENTRIES=()

UV_VERSION="0.13.9"
ensure_uv() {
    if ! command -v uv >/dev/null 2>&1 || [ "$(uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
        python3 -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
    fi
}

# The project with the `gpu` extra, at uv.lock's versions. The lock pins torch to the CPU build on
# linux x86_64 (the wheel these CPU machines keep on disk); a GPU machine takes the same torch
# version from PyPI, whose linux x86_64 wheel is the CUDA build, with its CUDA libraries.
build_main_gpu_env() {
    # Called as an `if` condition, where `set -e` does not apply: every step checks its own status.
    local python="$MAIN_VENV/bin/python" locked="$WORK/requirements-gpu.txt" torch_pin
    env -u UV_FIND_LINKS uv venv --quiet --allow-existing --python 3.11 "$MAIN_VENV" || return 1
    uv export --frozen --extra gpu --no-dev --no-hashes --no-emit-project --no-header --no-annotate \
        >"$locked.all" || return 1
    torch_pin="$(grep -E '^torch==' "$locked.all" | head -n1 | sed -E 's/[+ ;].*//')"
    [ -n "$torch_pin" ] || { echo "uv.lock's export names no torch" >&2; return 1; }
    grep -v -E '^torch==' "$locked.all" >"$locked" || return 1
    # The export is the lock's whole closure: no resolution (bfcl-eval's declared extras stay out).
    env -u UV_FIND_LINKS uv pip install --python "$python" --no-deps -r "$locked" || return 1
    env -u UV_FIND_LINKS uv pip install --python "$python" "$torch_pin" || return 1
    env -u UV_FIND_LINKS uv pip install --python "$python" --no-deps -e . || return 1
    "$python" -c 'import torch, sys; sys.exit(0 if torch.version.cuda else "torch in the main env is a CPU build")'
}

build_main_cpu_env() { scripts/install.sh --extra cpu-serve; }
build_verl_gpu_env() { scripts/install-verl.sh --gpu --venv "$VERL_VENV"; }
build_verl_cpu_env() { scripts/install-verl.sh --venv "$VERL_VENV"; }

# Run a build, timed, its output in WORK/logs/env-SLUG.log; record {name, status, seconds}.
timed_build() {
    local slug="$1" name="$2" venv="$3" step="$4" log="$WORK/logs/env-$1.log" started status
    started="$(date +%s.%N)"
    echo "-> env: $name ($venv) ..."
    if "$step" >"$log" 2>&1; then status="ok"; else status="failed"; fi
    local seconds
    seconds="$(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$started" "$(date +%s.%N)")"
    echo "   $status in ${seconds} s (log $log)"
    if [ "$status" != ok ]; then tail -n 20 "$log" >&2; fi
    ENTRIES+=("{\"name\": \"$name\", \"status\": \"$status\", \"seconds\": $seconds, \"venv\": \"$venv\"}")
    [ "$status" = ok ]
}

if [ "$REUSE" = 1 ]; then
    for venv in "$MAIN_VENV" "$VERL_VENV"; do
        [ -x "$venv/bin/python" ] || { echo "--reuse-envs: $venv/bin/python does not exist" >&2; exit 2; }
    done
    ENTRIES+=("{\"name\": \"main\", \"status\": \"ok\", \"seconds\": 0, \"venv\": \"$MAIN_VENV\", \"reused\": true}")
    ENTRIES+=("{\"name\": \"verl\", \"status\": \"ok\", \"seconds\": 0, \"venv\": \"$VERL_VENV\", \"reused\": true}")
else
    ensure_uv
    if [ "$DRY_RUN" = 1 ]; then
        timed_build main main "$MAIN_VENV" build_main_cpu_env || exit 1
        timed_build verl verl "$VERL_VENV" build_verl_cpu_env || true
    else
        timed_build main "main (gpu extra)" "$MAIN_VENV" build_main_gpu_env || exit 1
        # Without the verl env, setup and (a) still run; (b)-(d) then fail with the reason.
        timed_build verl "verl (--gpu)" "$VERL_VENV" build_verl_gpu_env || true
    fi
fi
(IFS=,; echo "[${ENTRIES[*]}]") >"$ENV_JSON"

ARGS=(--verl-python "$VERL_VENV/bin/python" --work "$WORK" --env-build "$ENV_JSON")
if [ "$DRY_RUN" = 1 ]; then ARGS+=(--dry-run); fi
if [ -n "$OUT" ]; then ARGS+=(--out "$OUT"); fi
exec "$MAIN_VENV/bin/python" -m scripts.gpu_check "${ARGS[@]}" "${CHECK_ARGS[@]}"
