"""VLLMBackend really run (vLLM's offline engine on CPU) against the transformers backend's output.

The engine runs in a child script (vLLM needs ``if __name__ == "__main__"``), started in its own
process group that dies with us; the comparison happens here.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from inference_parity import compare_greedy

from inference.base import Generation, SamplingConfig
from inference.transformers_backend import TransformersBackend
from tests.requirements import require_vllm


@pytest.fixture(autouse=True)
def _vllm_installed() -> None:
    require_vllm()


SCRIPT = Path(__file__).with_name("vllm_offline_run.py")
REPO = Path(__file__).resolve().parents[2]
MAX_TOKENS = 24
PROMPTS = [
    [
        {"role": "system", "content": "You are a helpful assistant with access to tools."},
        {"role": "user", "content": f"Book {i * 7} tables in city {i}, then check the weather."},
    ]
    for i in range(6)
]
CONTINUATIONS = [
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
    "The weather in Paris is sunny.",
    "ok",
    "<think>hmm</think>",
    "12345",
    "",
]
# [policy] chat_template_kwargs for the whole run: Qwen3's thinking off (the seed-0 ChatML template
# has no such switch and renders as without it).
SWITCHES = {"enable_thinking": False}


def _die_with_parent() -> None:  # runs in the child before exec
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    os.setpgrp()


def _run_script(model_a: Path, model_b: Path, workdir: Path) -> dict[str, Any]:
    requests = workdir / "requests.json"
    output = workdir / "output.json"
    requests.write_text(
        json.dumps(
            {
                "prompts": PROMPTS,
                "continuations": CONTINUATIONS,
                "max_tokens": MAX_TOKENS,
                "chat_template_kwargs": SWITCHES,
            }
        ),
        encoding="utf-8",
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(model_a), str(model_b), str(requests), str(output)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=REPO,
        preexec_fn=_die_with_parent,
    )
    try:
        log, _ = process.communicate(timeout=560)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        log, _ = process.communicate()
        pytest.fail(f"vLLM script timed out; its output:\n{log.decode(errors='replace')[-6000:]}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, f"vLLM script failed:\n{log.decode(errors='replace')[-6000:]}"
    return json.loads(output.read_text(encoding="utf-8"))


def _generations(raw: list[list[dict[str, Any]]]) -> list[list[Generation]]:
    return [[Generation(**g) for g in options] for options in raw]


@pytest.fixture(scope="module")
def qwen3_template_policy(
    tiny_policy_factory: Callable[[int], Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The seed-1 tiny ChatML policy (head_dim 32: vLLM's CPU attention takes no smaller) with
    Qwen3's template, whose prompt the switches change."""
    from tests.families import TEMPLATES

    model = shutil.copytree(tiny_policy_factory(1), tmp_path_factory.mktemp("qwen3") / "policy")
    (model / "chat_template.jinja").write_text((TEMPLATES / "qwen3.jinja").read_text("utf-8"), "utf-8")
    return model


@pytest.fixture(scope="module")
def vllm_run(
    tiny_policy_factory: Callable[[int], Path],
    qwen3_template_policy: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    # One engine for every test here: each start costs about a minute on CPU.
    return _run_script(tiny_policy_factory(0), qwen3_template_policy, tmp_path_factory.mktemp("vllm-offline"))


async def _assert_matches_transformers(
    reference: TransformersBackend, decoded: list[list[Generation]]
) -> None:
    expected = await reference.generate(PROMPTS, SamplingConfig(max_tokens=MAX_TOKENS))
    exact = 0
    for chat, (want,), (got,) in zip(PROMPTS, expected, decoded, strict=True):
        if compare_greedy(reference, chat, want, got.token_ids, got.token_logprobs):
            exact += 1
            # Same tokens: same text (both leave out EOS, and bytes of an unfinished character).
            assert got.text == want.text
            assert got.finish_reason == want.finish_reason
    # Near-ties are rare on this model (margins ~1e-3 vs float noise ~1e-6): most must be exact.
    assert exact >= len(PROMPTS) // 2 + 1


async def test_vllm_greedy_equals_transformers_greedy(
    vllm_run: dict[str, Any], tiny_policy_factory: Callable[[int], Path]
) -> None:
    reference = TransformersBackend(tiny_policy_factory(0), "seed0")
    decoded = _generations(vllm_run["greedy_a"])
    assert decoded == _generations(vllm_run["greedy_a_again"])  # greedy is deterministic
    await _assert_matches_transformers(reference, decoded)


async def test_vllm_load_switches_to_the_new_checkpoint(
    vllm_run: dict[str, Any], qwen3_template_policy: Path
) -> None:
    assert vllm_run["model_id_after_load"] == "seed1"
    # The old engine is gone, not left running beside the new one; close() ends the last one.
    assert len(vllm_run["engine_processes_after_load"]) == 1
    assert vllm_run["engine_processes_after_close"] == []
    reference = TransformersBackend(qwen3_template_policy, "seed1", chat_template_kwargs=SWITCHES)
    decoded = _generations(vllm_run["greedy_b"])
    assert decoded != _generations(vllm_run["greedy_a"])
    await _assert_matches_transformers(reference, decoded)


async def test_vllm_score_equals_transformers_score(
    vllm_run: dict[str, Any], tiny_policy_factory: Callable[[int], Path]
) -> None:
    reference = TransformersBackend(tiny_policy_factory(0), "seed0")
    expected = await reference.score(PROMPTS, CONTINUATIONS)
    assert [len(s) for s in vllm_run["score"]] == [len(s) for s in expected]
    assert vllm_run["score"][-1] == []
    for got, want in zip(vllm_run["score"], expected, strict=True):
        assert got == pytest.approx(want, abs=1e-3)


def test_vllm_sampling_gives_n_seeded_completions(vllm_run: dict[str, Any]) -> None:
    sampled = _generations(vllm_run["sampled"])
    assert [len(options) for options in sampled] == [3, 3]
    assert sampled == _generations(vllm_run["sampled_again"])  # same seed, same samples
    assert any(len({tuple(g.token_ids) for g in options}) > 1 for options in sampled)
    for options in sampled:
        for generation in options:
            assert len(generation.token_logprobs) == len(generation.token_ids) <= 8
            assert all(lp <= 0.0 for lp in generation.token_logprobs)


def test_vllm_stop_strings(vllm_run: dict[str, Any]) -> None:
    if not vllm_run["stop"]:
        pytest.skip("greedy completion too short to pick a stop string")
    [(cut,)] = _generations(vllm_run["stopped"])
    full = _generations(vllm_run["greedy_a"])[0][0]
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.index(vllm_run["stop"])]
    assert cut.token_ids == full.token_ids[: len(cut.token_ids)]


async def test_vllm_scores_after_the_prompt_the_policys_switches_render(
    vllm_run: dict[str, Any], qwen3_template_policy: Path
) -> None:
    """[policy] chat_template_kwargs reach the vLLM backend's prompts, and still hold after a
    checkpoint switch: with thinking off its log-probs are the transformers backend's under the same
    switches (Qwen3's empty reasoning block in the prompt), not those after the template's default
    prompt."""
    switched = await TransformersBackend(
        qwen3_template_policy, "switches", chat_template_kwargs=SWITCHES
    ).score(PROMPTS, CONTINUATIONS)
    default = await TransformersBackend(qwen3_template_policy, "default").score(PROMPTS, CONTINUATIONS)
    for got, want, other in zip(vllm_run["score_b"], switched, default, strict=True):
        assert got == pytest.approx(want, abs=1e-3)
        if want:  # the empty continuation has no log-probs under either prompt
            assert got != pytest.approx(other, abs=1e-3)
