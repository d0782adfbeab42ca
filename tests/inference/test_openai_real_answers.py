"""OpenAIBackend against answers real servers and proxies give: the error shapes of OpenAI, DeepSeek,
vLLM and gateways, content as parts, long Retry-After, a refused budget field, keys in error pages."""

from __future__ import annotations

import asyncio
import gzip
import json
from typing import Any

import pytest
from aiohttp import web
from inference_fake_endpoint import FakeEndpoint, serve_fake_endpoint

from inference.base import InferenceError, SamplingConfig
from inference.openai_backend import OpenAIBackend, rejection_is_input_fault
from tests.http_server import serve_app
from tests.inference.test_openai_resilience import CHAT, GREEDY, backend_for, json_logs


def answering(status: int, body: Any, headers: dict[str, str] | None = None) -> FakeEndpoint:
    return FakeEndpoint(mode="custom", respond=lambda payload, request: (status, body, headers or {}))


def error(message: str, **fields: Any) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", **fields}}


async def answer_of(message: dict[str, Any], finish_reason: str = "stop") -> Any:
    """The Generation the backend makes of a server's 200 answer holding ``message``."""
    body = {"choices": [{"index": 0, "message": message, "finish_reason": finish_reason}]}
    async with serve_fake_endpoint(answering(200, body)) as endpoint:
        backend = backend_for(endpoint)
        try:
            [[generation]] = await backend.generate([CHAT], GREEDY)
        finally:
            await backend.close()
    return generation


async def failure_of(endpoint: FakeEndpoint, **options: Any) -> InferenceError:
    async with serve_fake_endpoint(endpoint):
        backend = backend_for(endpoint, **options)
        try:
            with pytest.raises(InferenceError) as caught:
                await backend.generate([CHAT], GREEDY)
        finally:
            await backend.close()
    return caught.value


@pytest.mark.parametrize(
    "message",
    [
        # OpenAI's reasoning models, DeepSeek's reasoner, a strict gateway, a renamed model.
        "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens'.",
        "deepseek-reasoner does not support the parameter `logprobs`",
        "Unrecognized request argument supplied: chat_template_kwargs",
        "1 validation error: extra inputs are not permitted (structured_outputs)",
        "The model `judge-32b` does not exist.",
        # Azure, a deployment of a model without chat completions.
        "The chatCompletion operation does not work with the specified model, text-embedding-ada-002. "
        "Please choose different model and try again.",
        # Claude (direct or through a gateway): the client always sends both.
        "`temperature` and `top_p` cannot both be specified for this model. Please use only one.",
        # vLLM with max_tokens at the model's whole context: no input can fit.
        "'max_tokens' or 'max_completion_tokens' is too large: 4096. This model's maximum context "
        "length is 4096 tokens and your request has 812 input tokens (4096 > 4096 - 812).",
    ],
)
async def test_a_refused_request_field_pauses_the_stage_instead_of_blaming_every_input(message: str) -> None:
    endpoint = answering(400, error(message))
    failed = await failure_of(endpoint)
    assert not failed.input_fault and not failed.retryable  # the stage pauses: no input is dead-lettered
    assert "not this input" in str(failed) and endpoint.requests == 1


@pytest.mark.parametrize(
    "message",
    [
        "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens. "
        "Please reduce the length of the messages or completion.",
        "prompt is too long: 210000 tokens > 200000 maximum",
        "Input validation error: `inputs` must have less than 4096 tokens",  # neither: the input's
        # vLLM: a budget that fits the context, with this input's tokens it does not
        "'max_tokens' or 'max_completion_tokens' is too large: 2048. This model's maximum context "
        "length is 4096 tokens and your request has 3000 input tokens (2048 > 4096 - 3000).",
    ],
)
async def test_a_prompt_too_long_is_the_inputs_fault(message: str) -> None:
    failed = await failure_of(answering(400, error(message)))
    assert failed.input_fault and not failed.retryable
    assert rejection_is_input_fault(message)


async def test_an_error_sent_with_http_200_is_read_as_the_error_it_carries() -> None:
    # Some gateways answer every request with 200 and put the upstream's error in the body.
    context = await failure_of(answering(200, {"error": {"message": "maximum context length", "code": 400}}))
    assert context.input_fault and not context.retryable
    refused = await failure_of(answering(200, {"error": {"message": "Unsupported parameter: 'seed'"}}))
    assert not refused.input_fault and not refused.retryable
    overloaded = FakeEndpoint(
        mode="custom",
        fail_times=1,
        respond=lambda payload, request: (200, {"error": {"message": "overloaded", "code": 503}}, {}),
    )
    async with serve_fake_endpoint(overloaded):
        backend = backend_for(overloaded, max_retries=2)
        try:
            [[generation]] = await backend.generate([CHAT], GREEDY)
        finally:
            await backend.close()
    assert generation.text == "answer 0 done" and overloaded.requests == 2  # retried, then answered


async def test_content_given_as_parts_is_read_with_its_thinking_as_the_reasoning() -> None:
    message = {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": [{"type": "text", "text": "Response 1 drops the city."}]},
            {"type": "text", "text": "RESPONSE 1 INCORRECT\n"},
            {"type": "text", "text": "Error Analysis: no city."},
        ],
    }
    generation = await answer_of(message)
    assert generation.text == "RESPONSE 1 INCORRECT\nError Analysis: no city."
    assert generation.reasoning == "Response 1 drops the city."


async def test_tool_calls_a_server_parsed_out_of_the_text_are_kept() -> None:
    from toolcall.parsing import parse_output
    from toolcall.types import ToolCall

    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    generation = await answer_of(message, finish_reason="tool_calls")
    parsed = parse_output(generation.text)
    assert parsed.kind == "calls" and parsed.action.calls == [
        ToolCall(name="get_weather", arguments={"city": "Paris"})
    ]


async def test_a_retry_after_longer_than_the_backoff_is_left_to_the_stage() -> None:
    endpoint = answering(429, error("rate limited"), {"Retry-After": "120"})
    failed = await failure_of(endpoint, backoff_max_s=0.05, max_retries=4)
    # Not knocked again before the endpoint's time (4 retries at the 0.05 s backoff would be): the
    # error carries the wait, and the stage pauses that long (bus/worker.py).
    assert endpoint.requests == 1 and failed.retryable and failed.retry_after_s == 120.0


async def test_the_budget_field_and_logprobs_follow_the_settings() -> None:
    async with serve_fake_endpoint() as endpoint:
        backend = backend_for(endpoint, budget_field="max_completion_tokens", logprobs=False)
        try:
            await backend.generate([CHAT], SamplingConfig(max_tokens=64))
        finally:
            await backend.close()
    payload = endpoint.payloads[0]
    assert (
        payload["max_completion_tokens"] == 64 and "max_tokens" not in payload and "logprobs" not in payload
    )
    with pytest.raises(ValueError, match="budget_field"):
        OpenAIBackend("http://127.0.0.1:1/v1", "m", budget_field="max_new_tokens")


async def test_a_key_at_the_cut_of_an_error_excerpt_does_not_survive_in_part() -> None:
    secret = "sk-CANARY-abcdef0123456789SECRETKEY"

    def echo(payload: dict[str, Any], request: web.Request) -> tuple[int, Any, dict[str, str]]:
        # The key's last character lands just past the 300-character excerpt.
        page = "x" * (301 - len(secret)) + secret + " and more"
        return 502, page, {}

    with json_logs() as buffer:
        async with serve_fake_endpoint(FakeEndpoint(mode="custom", respond=echo)) as endpoint:
            backend = OpenAIBackend(
                endpoint.base_url,
                "m",
                api_key=secret,
                max_retries=1,
                backoff_initial_s=0.01,
                backoff_max_s=0.02,
            )
            try:
                with pytest.raises(InferenceError) as failed:
                    await backend.generate([CHAT], GREEDY)
            finally:
                await backend.close()
    for text in (buffer.getvalue(), str(failed.value)):
        assert secret[:12] not in text  # no piece of the key long enough to mean anything
    assert "***" in str(failed.value)


async def test_a_server_that_trickles_its_answer_is_bounded_by_the_timeout_as_a_whole() -> None:
    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for _ in range(40):  # one byte every 0.1 s: each read is quick, the answer never ends in time
            await response.write(b" ")
            await asyncio.sleep(0.1)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", trickle)
    async with serve_app(app) as port:
        backend = OpenAIBackend(f"http://127.0.0.1:{port}/v1", "m", timeout_s=0.5, max_retries=0)
        try:
            started = asyncio.get_running_loop().time()
            with pytest.raises(InferenceError, match=r"timed out after 0\.5s"):
                await backend.generate([CHAT], GREEDY)
            assert asyncio.get_running_loop().time() - started < 2.0
        finally:
            await backend.close()


async def test_requests_cancelled_by_a_stopping_worker_do_not_open_the_circuit() -> None:
    endpoint = FakeEndpoint(delay_s=5.0)  # answers, but only after 5 s
    async with serve_fake_endpoint(endpoint):
        backend = backend_for(endpoint, breaker_threshold=1, timeout_s=10.0)
        try:
            for _ in range(3):  # more than the threshold
                asking = asyncio.create_task(backend.generate([CHAT], GREEDY))
                await asyncio.sleep(0.2)
                asking.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await asking
            endpoint.delay_s = 0.0
            [[generation]] = await backend.generate([CHAT], GREEDY)  # not "circuit open"
        finally:
            await backend.close()
    assert generation.text == "answer 0 done"


async def test_a_key_ending_in_a_newline_is_sent_without_it_and_one_with_inner_breaks_is_refused() -> None:
    """A key read from a file made by ``kubectl create secret --from-file`` ends in a newline: httpx
    refused the header and its error showed the key, escaped, which the scrubbing did not catch."""
    secret = "sk-CANARY-abcdef0123456789SECRETKEY"
    seen: list[str] = []

    def record(payload: dict[str, Any], request: web.Request) -> tuple[int, Any, dict[str, str]]:
        seen.append(request.headers.get("Authorization", ""))
        answer = {"role": "assistant", "content": "hello"}
        return 200, {"choices": [{"index": 0, "message": answer, "finish_reason": "stop"}]}, {}

    with json_logs() as buffer:
        async with serve_fake_endpoint(FakeEndpoint(mode="custom", respond=record)) as endpoint:
            backend = OpenAIBackend(endpoint.base_url, "m", api_key=secret + "\n", max_retries=0)
            try:
                [[output]] = await backend.generate([CHAT], GREEDY)
            finally:
                await backend.close()
    assert output.text == "hello" and seen == [f"Bearer {secret}"]
    assert secret[:12] not in buffer.getvalue()
    for broken in (secret[:10] + "\n" + secret[10:], secret + "\x00", "sk-é" + secret):
        with pytest.raises(ValueError, match="API key holds whitespace") as refused:
            OpenAIBackend("http://127.0.0.1:9/v1", "m", api_key=broken)
        assert secret[:12] not in str(refused.value)


async def test_an_answer_ended_by_an_error_is_asked_again_and_a_filtered_one_is_the_inputs_fault() -> None:
    """OpenRouter ends a choice with finish_reason "error" when its provider fails mid-answer; the
    fragment was read as a whole answer (a judge's half sentence became a verdict)."""
    fragment = "Response 1 is incorrect because it passes city=Paris while the user"
    failed_midway = {
        "index": 0,
        "message": {"role": "assistant", "content": fragment},
        "finish_reason": "error",
        "error": {"code": 502, "message": "Upstream provider error"},
    }
    calls = 0

    def flaky(payload: dict[str, Any], request: web.Request) -> tuple[int, Any, dict[str, str]]:
        nonlocal calls
        calls += 1
        if calls == 1:
            return 200, {"choices": [failed_midway]}, {}
        whole = {"role": "assistant", "content": fragment + " asked for Lyon."}
        return 200, {"choices": [{"index": 0, "message": whole, "finish_reason": "stop"}]}, {}

    async with serve_fake_endpoint(FakeEndpoint(mode="custom", respond=flaky)) as endpoint:
        backend = backend_for(endpoint)
        try:
            [[generation]] = await backend.generate([CHAT], GREEDY)
        finally:
            await backend.close()
    assert calls == 2 and generation.text.endswith("asked for Lyon.")

    always = {"choices": [{**failed_midway, "finish_reason": "error"}]}
    failure = await failure_of(answering(200, always))
    assert failure.retryable and "ended with an error" in str(failure)

    filtered = {
        "index": 0,
        "message": {"role": "assistant", "content": fragment},
        "finish_reason": "content_filter",
    }
    failure = await failure_of(answering(200, {"choices": [filtered]}))
    assert failure.input_fault and not failure.retryable and "content filter" in str(failure)


async def test_a_moderation_refusal_is_the_inputs_fault_and_other_403s_pause() -> None:
    """OpenRouter answers 403 for an input its moderation flags: that input was asked again for ever."""
    flagged = error('Input was flagged for "violence" by the moderation model', code=403)
    failed = await failure_of(answering(403, flagged))
    assert failed.input_fault and not failed.retryable
    failed = await failure_of(answering(403, error("Key not allowed to access this model", code=403)))
    assert not failed.input_fault


async def test_a_request_with_a_larger_budget_gets_proportionally_longer() -> None:
    """A cut-off answer is retried with twice the tokens; with the same time limit a slow reasoning
    judge's retry timed out every time, and the stage asked the whole batch again for ever."""

    async def at_400_tokens_per_s(request: web.Request) -> web.Response:
        payload = await request.json()
        await asyncio.sleep(payload["max_tokens"] / 400)
        answer = {"role": "assistant", "content": "done"}
        return web.json_response({"choices": [{"index": 0, "message": answer, "finish_reason": "stop"}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", at_400_tokens_per_s)
    async with serve_app(app) as port:
        url = f"http://127.0.0.1:{port}/v1"
        backend = OpenAIBackend(url, "m", timeout_s=0.3, timeout_tokens=64, max_retries=0, logprobs=False)
        try:
            for budget in (64, 128):  # 0.16 s within 0.3 s; 0.32 s within 0.6 s
                [[answer]] = await backend.generate([CHAT], SamplingConfig(greedy=True, max_tokens=budget))
                assert answer.text == "done"
        finally:
            await backend.close()


async def test_a_refusal_is_the_inputs_fault_with_its_words() -> None:
    """OpenAI's models answer a declined input with ``refusal`` and no content: that read as an empty
    answer, asked again and again, then an UNPARSEABLE verdict that never said why."""
    message = {"role": "assistant", "content": None, "refusal": "I can't help with that request."}
    body = {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
    failure = await failure_of(answering(200, body))
    assert failure.input_fault and not failure.retryable and "can't help with that" in str(failure)
    answered = await answer_of({"role": "assistant", "content": "BOTH_CORRECT", "refusal": None})
    assert answered.text == "BOTH_CORRECT"


@pytest.mark.parametrize("ended", ["MAX_TOKENS", "max_tokens", "Length", "model_length"])
async def test_an_answer_cut_off_by_its_budget_is_cut_off_whatever_the_server_calls_it(ended: str) -> None:
    """A Gemini gateway ends a cut-off answer with its native ``MAX_TOKENS`` (some proxies pass
    Anthropic's ``max_tokens``; Mistral's API says ``model_length`` when the context filled up): read
    as a whole answer, a judge's cut-off reasoning was used as its verdict and never asked again with a
    larger budget."""
    cut = {"role": "assistant", "content": "Response 1 is incorrect because it passes city=Paris while"}
    generation = await answer_of(cut, finish_reason=ended)
    assert generation.finish_reason == "length"
    empty = await answer_of({"role": "assistant"}, finish_reason=ended)  # Gemini: no content at all
    assert empty.finish_reason == "length" and empty.text == ""


@pytest.mark.parametrize("ended", ["SAFETY", "PROHIBITED_CONTENT", "content_filter: PROHIBITED_CONTENT"])
async def test_a_filter_a_server_names_its_own_way_is_the_inputs_fault(ended: str) -> None:
    """Gemini's OpenAI-compatible endpoint names its filters natively (``SAFETY``, ``RECITATION``...):
    the empty answer read as a complete one, asked again and again, and came back unparsed."""
    body = {"choices": [{"index": 0, "message": {"role": "assistant"}, "finish_reason": ended}]}
    failure = await failure_of(answering(200, body))
    assert failure.input_fault and not failure.retryable and ended in str(failure)


async def test_an_answer_the_server_aborted_is_asked_again() -> None:
    """SGLang and vLLM end a request they aborted with ``finish_reason: "abort"`` and what was decoded
    so far: that fragment was read as the whole answer."""
    fragment = "RESPONSE 1 INCORRECT\nError Analysis: Response 1 passes"
    calls = 0

    def aborted_once(payload: dict[str, Any], request: web.Request) -> tuple[int, Any, dict[str, str]]:
        nonlocal calls
        calls += 1
        text, ended = (fragment, "abort") if calls == 1 else (fragment + " Paris, not Lyon.", "stop")
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": ended}
        return 200, {"choices": [choice]}, {}

    async with serve_fake_endpoint(FakeEndpoint(mode="custom", respond=aborted_once)) as endpoint:
        backend = backend_for(endpoint)
        try:
            [[generation]] = await backend.generate([CHAT], GREEDY)
        finally:
            await backend.close()
    assert calls == 2 and generation.text.endswith("not Lyon.")


@pytest.mark.parametrize(
    "broken",
    [
        {"choices": [{"index": 0, "message": None, "finish_reason": "stop"}]},
        {"choices": [None]},
        {"choices": [{"index": 0, "message": {"content": "x"}, "logprobs": ["not", "an", "object"]}]},
    ],
)
async def test_a_choice_that_is_not_an_object_is_asked_again_not_a_crash(broken: dict[str, Any]) -> None:
    """A null message (a gateway's, Gemini's past a filter) or choice raised AttributeError out of the
    backend: not an endpoint failure, so the stage dead-lettered every input of its batch for it."""
    calls = 0

    def broken_once(payload: dict[str, Any], request: web.Request) -> tuple[int, Any, dict[str, str]]:
        nonlocal calls
        calls += 1
        if calls == 1:
            return 200, broken, {}
        answer = {"role": "assistant", "content": "BOTH_CORRECT"}
        return 200, {"choices": [{"index": 0, "message": answer, "finish_reason": "stop"}]}, {}

    async with serve_fake_endpoint(FakeEndpoint(mode="custom", respond=broken_once)) as endpoint:
        backend = backend_for(endpoint)
        try:
            [[generation]] = await backend.generate([CHAT], GREEDY)
        finally:
            await backend.close()
    assert calls == 2 and generation.text == "BOTH_CORRECT"
    failure = await failure_of(answering(200, broken))  # always so: an endpoint failure (a pause)
    assert failure.retryable and not failure.input_fault and "malformed response" in str(failure)


@pytest.mark.parametrize(
    ("status", "message"),
    [
        # vLLM before the "too large" wording.
        (
            400,
            "This model's maximum context length is 4096 tokens. However, you requested 4908 tokens "
            "(812 in the messages, 4096 in the completion). Please reduce the length of the messages "
            "or completion.",
        ),
        # SGLang.
        (
            400,
            "Requested token count exceeds the model's maximum context length of 4096 tokens. You "
            "requested a total of 4908 tokens: 812 tokens from the input messages and 4096 tokens for "
            "the completion. Please reduce the number of tokens in the input messages or the completion "
            "to fit within the limit.",
        ),
        # TGI (and Together, which runs it).
        (
            422,
            "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: 812 "
            "`inputs` tokens and 4096 `max_new_tokens`",
        ),
    ],
)
async def test_a_budget_that_alone_fills_the_context_pauses_whatever_server_says_so(
    status: int, message: str
) -> None:
    """vLLM's newer wording was read as the settings' fault; vLLM's older one, SGLang's and TGI's were
    blamed on the input, so a budget no prompt fits under dead-lettered every input of the stage."""
    failed = await failure_of(answering(status, error(message)))
    assert not failed.input_fault and not failed.retryable
    # The same words with a budget that leaves room: this prompt is too long, a dead letter.
    room = message.replace("4096 in the completion", "1024 in the completion")
    room = room.replace("4096 tokens for", "1024 tokens for").replace("4096 `max_new", "1024 `max_new")
    assert room != message and rejection_is_input_fault(room)


@pytest.mark.parametrize(
    "body",
    [
        {
            "error": {
                "code": 500,
                "message": "the request exceeds the available context size. try increasing the context "
                "size or enable context shift",
                "type": "exceed_context_size_error",
                "n_prompt_tokens": 14429,
                "n_ctx": 8192,
            }
        },
        {"error": {"code": 500, "message": "Context size has been exceeded.", "type": "server_error"}},
    ],
)
async def test_a_prompt_over_llama_cpps_context_answered_with_500_is_the_inputs_fault(
    body: dict[str, Any],
) -> None:
    """llama.cpp builds answer a prompt longer than their context with HTTP 500: it was retried, then
    the stage paused and asked the same prompt again for ever, and the breaker opened for the rest."""
    endpoint = answering(500, body)
    failed = await failure_of(endpoint, max_retries=3)
    assert failed.input_fault and not failed.retryable and endpoint.requests == 1
    assert "context" in str(failed)
    in_200 = await failure_of(answering(200, body))  # the same error in a 200's body
    assert in_200.input_fault and not in_200.retryable
    other = await failure_of(answering(500, error("CUDA out of memory", type="server_error")))
    assert other.retryable and not other.input_fault  # other 500s are still an outage


GEMINI_BAD_KEY = [
    {
        "error": {
            "code": 400,
            "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                }
            ],
        }
    }
]


async def test_a_key_refused_with_http_400_pauses_instead_of_blaming_every_input() -> None:
    """Gemini's OpenAI-compatible endpoint refuses a wrong or expired key with HTTP 400, not 401: read
    as the input's fault, a revoked key dead-lettered every input of every stage that asked."""
    failed = await failure_of(answering(400, GEMINI_BAD_KEY))
    assert not failed.input_fault and not failed.retryable
    expired = error("API key expired. Please renew the API key.", code=400)
    assert not (await failure_of(answering(400, expired))).input_fault
    # A prompt over the context is still that input's fault.
    assert (await failure_of(answering(400, error("prompt is too long for the context")))).input_fault


async def test_an_account_refused_with_http_400_pauses_instead_of_blaming_every_input() -> None:
    """Anthropic (direct or through a gateway) refuses an account out of credit with HTTP 400: read as
    the input's fault, running out of credit dead-lettered every input the stages asked."""
    message = (
        "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to "
        "upgrade or purchase credits."
    )
    failed = await failure_of(answering(400, {"type": "error", "error": error(message)["error"]}))
    assert not failed.input_fault and not failed.retryable


async def test_a_body_its_content_encoding_does_not_describe_is_asked_again_not_a_crash() -> None:
    """A proxy's page under a stale ``Content-Encoding: gzip`` made httpx raise DecodingError, which
    escaped the backend as itself: the stage dead-lettered every input of its batch for it."""
    calls = 0

    async def stale_gzip_once(request: web.Request) -> web.Response:
        nonlocal calls
        await request.read()
        calls += 1
        answer = {"role": "assistant", "content": "BOTH_CORRECT"}
        body = json.dumps({"choices": [{"index": 0, "message": answer, "finish_reason": "stop"}]})
        if calls > 1:
            return web.json_response(text=body)
        broken = gzip.compress(body.encode())[:-8] + b"notacrc!"  # its checksum is wrong
        return web.Response(
            body=broken, headers={"Content-Encoding": "gzip"}, content_type="application/json"
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", stale_gzip_once)
    async with serve_app(app) as port:
        backend = OpenAIBackend(f"http://127.0.0.1:{port}/v1", "m", max_retries=2, backoff_initial_s=0.01)
        try:
            [[generation]] = await backend.generate([CHAT], GREEDY)
        finally:
            await backend.close()
    assert calls == 2 and generation.text == "BOTH_CORRECT"


@pytest.mark.parametrize(
    "body",
    [
        {
            "error": {
                "message": "Budget has been exceeded! Current cost: 10.51, Max budget: 10.0",
                "code": "400",
            }
        },
        {
            "error": {
                "message": "litellm.BadRequestError: OpenAIException - Budget has been exceeded! Current "
                "cost: 14.2, Max budget: 100. Received Model Group=judge",
                "type": None,
                "code": "400",
            }
        },
    ],
)
async def test_a_proxy_budget_exceeded_with_http_400_pauses_instead_of_blaming_every_input(
    body: dict[str, Any],
) -> None:
    """A LiteLLM proxy answers a key or team over its budget with HTTP 400: read as the input's fault,
    a spent budget dead-lettered every input the stages asked until someone noticed."""
    failed = await failure_of(answering(400, body))
    assert not failed.input_fault and not failed.retryable


async def test_a_field_tgi_refuses_pauses_and_a_prompt_it_refuses_is_the_inputs_fault() -> None:
    """TGI (and Hugging Face Inference Endpoints) refuses ``top_p: 1.0``, which every greedy request
    carries, with a 422 "Input validation error: `top_p` must be > 0.0 and < 1.0": read as the input's
    fault, pointing a role at TGI dead-lettered every input of the stage."""
    refused = {"error": "Input validation error: `top_p` must be > 0.0 and < 1.0", "error_type": "validation"}
    failed = await failure_of(answering(422, refused))
    assert not failed.input_fault and not failed.retryable and "not this input" in str(failed)
    too_long = {
        "error": "Input validation error: `inputs` must have less than 4096 tokens. Given: 5210",
        "error_type": "validation",
    }
    assert (await failure_of(answering(422, too_long))).input_fault


async def test_a_greedy_request_is_answered_by_a_server_that_refuses_top_p_one() -> None:
    """Greedy requests carried ``top_p: 1.0``, which TGI refuses (422): a greedy judge could not be
    served by TGI whatever its settings, and the stage paused for ever."""

    def tgi(payload: dict[str, Any], request: web.Request) -> tuple[int, Any, dict[str, str]]:
        if "top_p" in payload and not 0.0 < payload["top_p"] < 1.0:
            refused = "Input validation error: `top_p` must be > 0.0 and < 1.0"
            return 422, {"error": refused, "error_type": "validation"}, {}
        answer = {"role": "assistant", "content": "BOTH_CORRECT"}
        return 200, {"choices": [{"index": 0, "message": answer, "finish_reason": "stop"}]}, {}

    async with serve_fake_endpoint(FakeEndpoint(mode="custom", respond=tgi)) as endpoint:
        backend = backend_for(endpoint)
        try:
            [[greedy]] = await backend.generate([CHAT], GREEDY)
            sampled = SamplingConfig(greedy=False, temperature=0.7, top_p=0.95, max_tokens=8)
            [[resampled]] = await backend.generate([CHAT], sampled)
        finally:
            await backend.close()
    assert greedy.text == resampled.text == "BOTH_CORRECT"
    assert endpoint.payloads[1]["top_p"] == 0.95  # a sampled request keeps its nucleus


TGI_GENERATION_FAILED = {
    "error": "Request failed during generation: Server error: CUDA out of memory. Tried to allocate 2.00 GiB",
    "error_type": "generation",
}


async def test_a_generation_that_fails_on_every_attempt_is_the_inputs_fault() -> None:
    """TGI answers HTTP 424 when a request's generation fails (out of memory on one long input): read
    as the endpoint's settings, the stage paused and asked that input again for ever, the others
    waiting behind it. It is asked again (load may have caused it), then blamed on the input."""
    endpoint = answering(424, TGI_GENERATION_FAILED)
    failed = await failure_of(endpoint, max_retries=2)
    assert failed.input_fault and not failed.retryable
    assert endpoint.requests == 3 and "the generation failed" in str(failed)
    in_200 = await failure_of(answering(200, {"error": {"code": 424, "message": "generation failed"}}))
    assert in_200.input_fault and not in_200.retryable
    # Once: a later attempt is answered.
    ok = {
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"}
        ]
    }
    answers = iter([(424, TGI_GENERATION_FAILED, {}), (200, ok, {})])
    flaky = FakeEndpoint(mode="custom", respond=lambda payload, request: next(answers))
    async with serve_fake_endpoint(flaky):
        backend = backend_for(flaky, max_retries=2)
        try:
            [[generation]] = await backend.generate([CHAT], GREEDY)
        finally:
            await backend.close()
    assert generation.text == "fine"
