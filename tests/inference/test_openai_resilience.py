"""OpenAIBackend against a real local HTTP server that misbehaves: retries, breaker, limits, secrets."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import socket
import time
from collections.abc import Iterator

import pytest
import structlog
from inference_fake_endpoint import FakeEndpoint, serve_fake_endpoint

from common.logs import LogSettings, configure_logging
from inference.base import InferenceError, SamplingConfig
from inference.openai_backend import OpenAIBackend

CHAT = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]
GREEDY = SamplingConfig(max_tokens=8)


def backend_for(endpoint: FakeEndpoint, **options: object) -> OpenAIBackend:
    settings: dict[str, object] = {
        "timeout_s": 2.0,
        "max_retries": 2,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        "breaker_threshold": 50,
        "breaker_cooldown_s": 60.0,
    }
    settings.update(options)
    return OpenAIBackend(endpoint.base_url, "fake-model", **settings)  # type: ignore[arg-type]


async def test_generate_sends_the_sampling_fields_and_parses_choices() -> None:
    async with serve_fake_endpoint() as endpoint:
        backend = backend_for(endpoint, vllm_extensions=True)
        try:
            sampling = SamplingConfig(
                greedy=False, temperature=0.7, top_p=0.9, n=3, seed=11, stop=("</tool_call>",), max_tokens=8
            )
            [options] = await backend.generate([CHAT], sampling)
        finally:
            await backend.close()
    payload = endpoint.payloads[0]
    assert payload["model"] == "fake-model" and payload["messages"] == CHAT
    assert (payload["n"], payload["temperature"], payload["top_p"], payload["seed"]) == (3, 0.7, 0.9, 11)
    assert payload["stop"] == ["</tool_call>"] and payload["logprobs"] is True
    assert payload["return_token_ids"] is True and payload["max_tokens"] == 8
    # The fake answers choices in reverse order; the backend puts them back in index order.
    assert [g.text for g in options] == ["answer 0 done", "answer 1 done", "answer 2 done"]
    assert [g.token_ids for g in options] == [[10, 20, 30], [10, 21, 30], [10, 22, 30]]
    assert options[0].token_logprobs == [-0.5, -1.0, -1.5]
    assert endpoint.authorizations == [None]  # no key configured: no Authorization header


async def test_greedy_sends_temperature_zero_and_no_vllm_fields_by_default() -> None:
    async with serve_fake_endpoint() as endpoint:
        backend = backend_for(endpoint)
        try:
            await backend.generate([CHAT], GREEDY)
        finally:
            await backend.close()
    payload = endpoint.payloads[0]
    assert payload["temperature"] == 0.0 and "top_p" not in payload  # no nucleus to cut when greedy
    assert "seed" not in payload and "stop" not in payload and "return_token_ids" not in payload


async def test_transient_500s_are_retried_until_an_answer() -> None:
    async with serve_fake_endpoint(FakeEndpoint(mode="500", fail_times=2)) as endpoint:
        backend = backend_for(endpoint, max_retries=3)
        try:
            [[generation]] = await backend.generate([CHAT], GREEDY)
        finally:
            await backend.close()
    assert generation.text == "answer 0 done"
    assert endpoint.requests == 3


@pytest.mark.parametrize("mode", ["500", "garbage", "wrong_shape", "429"])
async def test_persistent_failures_give_up_after_bounded_retries(mode: str) -> None:
    async with serve_fake_endpoint(FakeEndpoint(mode=mode, retry_after="0")) as endpoint:
        backend = backend_for(endpoint, max_retries=2)
        try:
            with pytest.raises(InferenceError) as caught:
                await backend.generate([CHAT], GREEDY)
        finally:
            await backend.close()
    assert endpoint.requests == 3  # one try + max_retries
    assert caught.value.retryable
    assert "failed 3 times" in str(caught.value)


async def test_timeouts_are_retried_then_raise() -> None:
    async with serve_fake_endpoint(FakeEndpoint(mode="slow", delay_s=1.0)) as endpoint:
        backend = backend_for(endpoint, timeout_s=0.2, max_retries=1)
        try:
            with pytest.raises(InferenceError, match="timed out") as caught:
                await backend.generate([CHAT], GREEDY)
        finally:
            await backend.close()
    assert endpoint.requests == 2
    assert caught.value.retryable


async def test_connection_refused_is_retried_then_raises() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = OpenAIBackend(
        f"http://127.0.0.1:{port}/v1",
        "m",
        timeout_s=1.0,
        max_retries=2,
        backoff_initial_s=0.01,
        backoff_max_s=0.02,
    )
    try:
        with pytest.raises(InferenceError, match="ConnectError") as caught:
            await backend.generate([CHAT], GREEDY)
    finally:
        await backend.close()
    assert "failed 3 times" in str(caught.value)


async def test_client_errors_are_not_retried() -> None:
    async with serve_fake_endpoint(FakeEndpoint(mode="400")) as endpoint:
        backend = backend_for(endpoint, max_retries=4)
        try:
            with pytest.raises(InferenceError, match="HTTP 400") as caught:
                await backend.generate([CHAT], GREEDY)
        finally:
            await backend.close()
    assert endpoint.requests == 1
    assert not caught.value.retryable


async def test_retry_after_is_honoured() -> None:
    async with serve_fake_endpoint(FakeEndpoint(mode="429", fail_times=1, retry_after="0.4")) as endpoint:
        backend = backend_for(endpoint, backoff_max_s=5.0)
        try:
            started = time.monotonic()
            await backend.generate([CHAT], GREEDY)
            waited = time.monotonic() - started
        finally:
            await backend.close()
    assert endpoint.requests == 2
    assert waited >= 0.4  # the backoff alone (0.01 s scale) would have retried far sooner


async def test_breaker_opens_fails_fast_and_recovers_when_the_server_heals() -> None:
    cooldown = 0.6
    async with serve_fake_endpoint(FakeEndpoint(mode="500")) as endpoint:
        backend = backend_for(endpoint, max_retries=1, breaker_threshold=2, breaker_cooldown_s=cooldown)
        try:
            for _ in range(2):  # two requests fail after their retries: the circuit opens
                with pytest.raises(InferenceError, match="failed 2 times"):
                    await backend.generate([CHAT], GREEDY)
            assert endpoint.requests == 4
            opened_at = time.monotonic()

            endpoint.heal()
            with pytest.raises(InferenceError, match="circuit open") as caught:
                await backend.generate([CHAT], GREEDY)
            assert caught.value.retryable
            assert endpoint.requests == 4  # failed fast: nothing reached the server

            await asyncio.sleep(max(0.0, cooldown - (time.monotonic() - opened_at)) + 0.1)
            [[generation]] = await backend.generate([CHAT], GREEDY)  # half-open probe succeeds
            assert generation.text == "answer 0 done"
            await backend.generate([CHAT, CHAT], GREEDY)  # closed again: everything flows
            assert endpoint.requests == 7
        finally:
            await backend.close()


async def test_half_open_failure_reopens_the_circuit() -> None:
    async with serve_fake_endpoint(FakeEndpoint(mode="500")) as endpoint:
        backend = backend_for(endpoint, max_retries=0, breaker_threshold=1, breaker_cooldown_s=0.3)
        try:
            with pytest.raises(InferenceError, match="failed 1 times"):
                await backend.generate([CHAT], GREEDY)
            await asyncio.sleep(0.4)
            with pytest.raises(InferenceError, match="failed 1 times"):  # the probe reaches the server, fails
                await backend.generate([CHAT], GREEDY)
            with pytest.raises(InferenceError, match="circuit open"):
                await backend.generate([CHAT], GREEDY)
            assert endpoint.requests == 2
        finally:
            await backend.close()


async def test_client_errors_do_not_open_the_breaker() -> None:
    async with serve_fake_endpoint(FakeEndpoint(mode="400")) as endpoint:
        backend = backend_for(endpoint, breaker_threshold=1)
        try:
            for _ in range(3):
                with pytest.raises(InferenceError, match="HTTP 400"):
                    await backend.generate([CHAT], GREEDY)
        finally:
            await backend.close()
    assert endpoint.requests == 3


async def test_concurrency_limit_holds() -> None:
    async with serve_fake_endpoint(FakeEndpoint(delay_s=0.15)) as endpoint:
        backend = backend_for(endpoint, max_concurrency=3)
        try:
            results = await backend.generate([CHAT] * 12, GREEDY)
        finally:
            await backend.close()
    assert len(results) == 12 and endpoint.requests == 12
    assert endpoint.max_in_flight == 3


@contextlib.contextmanager
def json_logs() -> Iterator[io.StringIO]:
    """Everything logged in the block, as JSON lines at debug level; the logging set-up restored after."""
    buffer = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging(LogSettings(format="json", level="debug"), stream=buffer)
    try:
        yield buffer
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        structlog.reset_defaults()


async def test_api_key_never_reaches_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-test-DO-NOT-LEAK-4242"
    with json_logs() as buffer:
        caplog.set_level(logging.DEBUG)
        async with serve_fake_endpoint(FakeEndpoint(mode="echo_auth_500")) as endpoint:
            backend = OpenAIBackend(
                endpoint.base_url,
                "fake-model",
                api_key=secret,
                max_retries=2,
                backoff_initial_s=0.01,
                backoff_max_s=0.02,
                breaker_threshold=1,
            )
            try:
                with pytest.raises(InferenceError) as failed:
                    await backend.generate([CHAT], GREEDY)
                with pytest.raises(InferenceError, match="circuit open") as fast:
                    await backend.generate([CHAT], GREEDY)
                text_of_backend = repr(backend) + str(vars(backend).get("base_url"))
            finally:
                await backend.close()
    # The key was really sent, and the server really echoed it back into its error page.
    assert endpoint.authorizations[0] == f"Bearer {secret}"
    logged = buffer.getvalue()
    events = [json.loads(line)["event"] for line in logged.splitlines() if line.startswith("{")]
    assert events.count("openai.retry") == 2 and "openai.gave_up" in events
    assert "bad gateway for Bearer ***" in str(failed.value)  # the echo was kept, the key masked
    for text in (
        logged,
        caplog.text,
        str(failed.value),
        repr(failed.value),
        str(fast.value),
        text_of_backend,
    ):
        assert secret not in text
