"""The GPU check's dry run, end to end on the CPU, so that ``scripts/gpu-check.sh`` cannot rot.

``scripts/gpu-check.sh --dry-run --reuse-envs`` runs in the installed ``.venv`` (vLLM's CPU build)
and ``.venv-verl`` (verl's CPU env). Check (a) is left out to keep the test's CPU time to a couple of
minutes: (c) runs the same vLLM engine, the same reload and the same comparison with transformers.
What must hold: setup builds a policy vLLM's GPU kernels take; (b) has verl validate the exact
scaled-down Table 6 overrides, then stops at the launch, named as needing a GPU; (c) merges a real
verl FSDP checkpoint and the probe stage reloads it through vLLM and decodes every member, in
agreement with transformers; (d) starts the broker, the worker with the vLLM policy and the verl
trainer, which stops at its preflight, named as needing a GPU.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu-check.sh"


def _require_envs() -> None:
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed (the cpu-serve extra)")
    if not (ROOT / ".venv-verl" / "bin" / "python").exists():
        reason = "the verl environment (.venv-verl) is missing: create it with scripts/install-verl.sh"
        if os.environ.get("LOOPTOOL_TEST_SKIP_VERL") == "1":
            pytest.skip(reason)
        pytest.fail(reason + ", or set LOOPTOOL_TEST_SKIP_VERL=1 to skip this test")
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("the dry run reuses ./.venv, which this checkout lacks")


@pytest.mark.timeout(1500)
def test_dry_run_walks_the_checks_and_names_the_steps_that_need_a_gpu(tmp_path: Path) -> None:
    _require_envs()
    out = tmp_path / "gpu_check.json"
    command = [SCRIPT, "--dry-run", "--reuse-envs", "--work", tmp_path / "work", "--out", out]
    done = subprocess.run(
        [*map(str, command), "--", "--only", "setup,b,c,d"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1400,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    results = json.loads(out.read_text())
    rows = {row["key"]: row for row in results["checks"]}
    assert [row["key"] for row in results["checks"]] == ["env:main", "env:verl", "setup", "b", "c", "d"]
    assert results["mode"] == "dry-run" and results["ok"] is True
    assert results["versions"]["verl"]["verl"] == "0.9.1"
    assert results["versions"]["main"]["cuda_available"] is False

    setup = rows["setup"]
    assert setup["status"] == "ok", setup
    assert setup["figures"]["head_dim"] == 64

    grpo = rows["b"]
    assert grpo["status"] == "needs a GPU", grpo
    assert "needs CUDA" in grpo["detail"]
    # verl accepted the scaled-down Table 6 round: 8 prompts x 4 rollouts, mini-batch 4, 2 steps
    assert grpo["figures"]["planned_steps"] == 2
    assert (grpo["figures"]["train_batch"], grpo["figures"]["mini_batch"]) == (8, 4)
    assert "verl_config_validated_s" in grpo["figures"]

    merge = rows["c"]
    assert merge["status"] == "ok", merge
    figures = merge["figures"]
    assert figures["checkpoint"].startswith("stand-in")
    assert figures["merged_dtype"] == "bfloat16" and figures["missing_tensors"] == []
    changed, total = map(int, figures["tensors_changed"].split("/"))
    assert changed == total > 0
    assert figures["probed"] == "16/16" and figures["under_new_checkpoint"] is True
    assert figures["merged_max_abs_logprob_diff"] <= results["tolerance"]["max_abs"]

    loop = rows["d"]
    assert loop["status"] == "needs a GPU", loop
    assert "transfer_queue" in loop["detail"]
    assert loop["figures"]["round_1_members"] == 8
    assert loop["figures"]["worker_ready_s"] is not None  # the worker came up with the vLLM policy

    assert "needs a GPU" in done.stdout and "results:" in done.stdout
