"""The endpoint latency model (inference/latency.py): a vLLM server's slots, first token and decode."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from inference.latency import VLLM_32B_H100, EndpointLatency, SimulatedServer
from streams.roles import VerificationCase
from tests.streams.reasoning_endpoint import Persona, ReasoningEndpoint, serve_reasoning


def test_a_request_is_its_first_token_and_its_decode_and_a_batch_comes_in_waves() -> None:
    latency = EndpointLatency(ttft_s=0.2, tokens_per_s=20.0, concurrency=32, output_tokens=100)
    assert latency.request_s() == pytest.approx(5.2)
    assert latency.request_s(40) == pytest.approx(2.2)
    assert latency.batch_s(32) == pytest.approx(5.2)  # one wave
    assert latency.batch_s(33) == pytest.approx(10.4)  # a 33rd request waits for a slot
    assert latency.batch_s(0) == 0.0
    with pytest.raises(ValueError):
        EndpointLatency(ttft_s=0.1, tokens_per_s=0.0, concurrency=1, output_tokens=1)
    # The calibration: 653.6 tok/s over 32 sequences (vllm-project/vllm#17788).
    judge = VLLM_32B_H100["judge"]
    assert judge.concurrency == 32 and judge.tokens_per_s == pytest.approx(653.6 / 32, abs=0.05)


async def test_the_server_runs_at_most_its_concurrency_and_queues_the_rest() -> None:
    latency = EndpointLatency(ttft_s=0.0, tokens_per_s=1000.0, concurrency=4, output_tokens=50)  # 50 ms
    server = SimulatedServer(latency)
    started = time.perf_counter()
    await server.requests_at_once(10)  # waves of 4, 4, 2
    elapsed = time.perf_counter() - started
    assert server.requests == 10 and server.max_running == 4
    assert elapsed >= 3 * 0.05 * 0.95  # three waves, never fewer
    scaled = SimulatedServer(latency, time_scale=0.0)
    started = time.perf_counter()
    await scaled.requests_at_once(10)
    assert time.perf_counter() - started < 0.1 and scaled.max_running == 4


async def test_the_simulated_roles_answer_the_same_only_later() -> None:
    """With the latency model on, the world's verifier gives the same answers, one wave later."""
    from toolcall.types import Sample
    from world import World
    from world.simulation import SimulatedWorldVerifier

    world = World(0)
    items = (await world.samples(6, seed="latency"))[:6]  # a dialogue may give more than one sample
    cases = [
        VerificationCase(
            f"c{n}", "s", Sample(tools=i.sample.tools, messages=i.sample.messages, label=i.truth)
        )
        for n, i in enumerate(items)
    ]
    latency = EndpointLatency(ttft_s=0.05, tokens_per_s=1000.0, concurrency=4, output_tokens=50)  # 0.1 s
    server = SimulatedServer(latency)
    started = time.perf_counter()
    late = await SimulatedWorldVerifier(world, error_rate=0.1, server=server).ask(cases)
    elapsed = time.perf_counter() - started
    assert late == await SimulatedWorldVerifier(world, error_rate=0.1).ask(cases)
    assert len(cases) == server.requests == 6
    assert elapsed >= 2 * 0.1 * 0.95  # 6 requests on 4 slots: two waves


async def test_the_test_endpoint_answers_as_late_as_its_server_would() -> None:
    """Six requests to one model whose server has 2 slots: three waves of (first token + words)."""
    latency = EndpointLatency(ttft_s=0.05, tokens_per_s=4000.0, concurrency=2, output_tokens=0)
    endpoint = ReasoningEndpoint(
        personas={"m": Persona(trace_words=(100, 101))}, truth={}, latency=latency, time_scale=1.0
    )
    async with serve_reasoning(endpoint) as served, httpx.AsyncClient(base_url=served.base_url) as client:
        payload = {
            "model": "m",
            "max_tokens": 1000,
            "messages": [
                {"role": "system", "content": "You are an expert evaluator."},
                {"role": "user", "content": "<conversation>\nUSER: hi\n</conversation>"},
            ],
        }
        started = time.perf_counter()
        answers = await asyncio.gather(*(client.post("/chat/completions", json=payload) for _ in range(6)))
        elapsed = time.perf_counter() - started
    assert all(answer.status_code == 200 for answer in answers)
    server = endpoint.servers["m"]
    assert server.requests == 6 and server.max_running == 2
    one = latency.request_s(100)  # ~100 words of trace plus the short answer
    assert elapsed >= 3 * one * 0.95
