"""OpenAIBackend against the session's real vLLM server (CPU), checked against transformers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from inference_parity import compare_greedy

from inference.base import InferenceError, SamplingConfig
from inference.openai_backend import OpenAIBackend
from inference.transformers_backend import TransformersBackend
from inference.vllm_backend import ServedModel

# The client fixture and the tests share the session's event loop (the httpx pool is bound to it).
pytestmark = pytest.mark.asyncio(loop_scope="session")

PROMPTS = [
    [
        {"role": "system", "content": "You are a helpful assistant with access to tools."},
        {"role": "user", "content": f"Find flights from city {i} to city {i + 3} tomorrow."},
    ]
    for i in range(5)
]


@pytest.fixture
async def client(vllm_server: ServedModel) -> AsyncIterator[OpenAIBackend]:
    backend = OpenAIBackend(vllm_server.base_url, vllm_server.model, timeout_s=120, vllm_extensions=True)
    try:
        yield backend
    finally:
        await backend.close()


@pytest.fixture(scope="module")
def reference(vllm_server: ServedModel) -> TransformersBackend:
    return TransformersBackend(vllm_server.model_path, "reference")


async def test_greedy_chat_with_logprobs_matches_transformers(
    client: OpenAIBackend, reference: TransformersBackend
) -> None:
    greedy = SamplingConfig(max_tokens=16)
    served = await client.generate(PROMPTS, greedy)
    assert served == await client.generate(PROMPTS, greedy)
    expected = await reference.generate(PROMPTS, greedy)
    exact = 0
    for chat, (want,), (got,) in zip(PROMPTS, expected, served, strict=True):
        assert len(got.token_logprobs) == len(got.token_ids) >= 1
        if compare_greedy(reference, chat, want, got.token_ids, got.token_logprobs):
            exact += 1
            assert got.text == want.text and got.finish_reason == want.finish_reason
    assert exact >= len(PROMPTS) // 2 + 1


async def test_sampled_n_completions_follow_the_seed(client: OpenAIBackend) -> None:
    sampling = SamplingConfig(greedy=False, temperature=1.0, n=3, seed=3, max_tokens=8)
    first = await client.generate(PROMPTS[:2], sampling)
    assert [len(options) for options in first] == [3, 3]
    assert first == await client.generate(PROMPTS[:2], sampling)
    assert any(len({g.text for g in options}) > 1 for options in first)
    assert all(lp <= 0.0 for options in first for g in options for lp in g.token_logprobs)


async def test_stop_strings_end_the_answer(client: OpenAIBackend) -> None:
    [(full,)] = await client.generate(PROMPTS[:1], SamplingConfig(max_tokens=16))
    stop = next((c for c in full.text[2:] if c.isprintable() and c != "\ufffd"), None)
    if stop is None:
        pytest.skip(f"no usable stop character in {full.text!r}")
    [(cut,)] = await client.generate(PROMPTS[:1], SamplingConfig(max_tokens=16, stop=(stop,)))
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.index(stop)]


async def test_score_matches_transformers(client: OpenAIBackend, reference: TransformersBackend) -> None:
    continuations = [
        '<tool_call>\n{"name": "search_flights", "arguments": {"origin": "SFO"}}\n</tool_call>',
        "The weather in Paris is sunny.",
        "",
        "<think>hmm</think> ok",
        "12 3",
    ]
    scored = await client.score(PROMPTS, continuations)
    expected = await reference.score(PROMPTS, continuations)
    assert [len(s) for s in scored] == [len(s) for s in expected]
    assert scored[2] == []
    for got, want in zip(scored, expected, strict=True):
        assert got == pytest.approx(want, abs=1e-3)


async def test_prompt_over_the_context_is_a_non_retryable_error(client: OpenAIBackend) -> None:
    too_long = [{"role": "user", "content": "weather " * 6000}]  # over the server's 4096 tokens
    with pytest.raises(InferenceError, match="HTTP 400") as caught:
        await client.generate([too_long], SamplingConfig(max_tokens=4))
    assert not caught.value.retryable and caught.value.input_fault


async def test_load_checks_the_served_model(client: OpenAIBackend, vllm_server: ServedModel) -> None:
    await client.load("", vllm_server.model)
    assert client.model_id == vllm_server.model
    with pytest.raises(InferenceError, match="does not serve") as caught:
        await client.load("", "another-model")
    assert not caught.value.retryable
    assert client.model_id == vllm_server.model


async def test_template_switches_and_a_budget_cut_off(vllm_server: ServedModel) -> None:
    # chat_template_kwargs reach the server's template (this one ignores enable_thinking, as a
    # template without the switch does); an answer cut off by max_tokens says "length".
    backend = OpenAIBackend(
        vllm_server.base_url,
        vllm_server.model,
        timeout_s=120,
        chat_template_kwargs={"enable_thinking": False},
    )
    try:
        [(cut,)] = await backend.generate(PROMPTS[:1], SamplingConfig(max_tokens=3))
        [(plain,)] = await backend.generate(PROMPTS[:1], SamplingConfig(max_tokens=16))
    finally:
        await backend.close()
    assert cut.finish_reason == "length" and plain.text.startswith(cut.text)
    assert cut.reasoning is None  # no reasoning parser on this server
