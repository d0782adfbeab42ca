"""How long an LLM endpoint takes to answer, the way a vLLM server behaves: a latency model.

A vLLM server decodes at most ``concurrency`` requests at once (its ``--max-num-seqs``); the others
wait in its queue. A request that is running takes ``ttft_s`` (time to first token: queueing aside,
the prefill of its prompt) and then ``output_tokens / tokens_per_s`` (decode, at the per-request rate
of a loaded server). :class:`SimulatedServer` holds one server's queue: the stages of a process that
ask the same role wait on the same slots (each process has its own simulated server).

Calibration (:data:`VLLM_32B_H100`), from published vLLM serving figures:

- **decode and concurrency**: Qwen3-32B (bf16) on one H100 NVL, vLLM 0.8.5.post1,
  ``--max-num-seqs 32``, ``benchmark_serving.py`` on ShareGPT (1000 requests, 200,516 generated
  tokens): output token throughput 653.6 tok/s with 32 sequences decoding, i.e. **20.4 tok/s per
  request** (TPOT ~49 ms) at a concurrency of **32**
  (https://github.com/vllm-project/vllm/issues/17788).
- **time to first token**: that run's TTFT is its queue (all requests sent at once), so the prefill
  alone is taken from a run that did not queue: Qwen2.5-72B-Instruct on 2 x H100 (36 B parameters
  per GPU, as close as published figures get to 32 B on one), vLLM, concurrency 1: TTFT 129 ms for
  a 1,024-token prompt, 150 ms for 2,048 (https://github.com/tenstorrent/tt-inference-server/issues/143).
  The roles' prompts are 1-3k tokens (tool list, conversation, two responses), so **0.15 s**.

The answer lengths per role are ours, not the source's: a judge writes its decision, error analysis
and correct approach (Figure 10 format, ~150 tokens), a generator a new conversation and its calls
(~250), a verifier a verdict and a reason (~60). A reasoning model thinks first: several times more.

Pure logic and asyncio only (no model, no HTTP): the world's simulated roles
(:mod:`world.simulation`) and the test endpoint use it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class EndpointLatency:
    """One role's server: its time to first token, per-request decode rate, slots and answer length."""

    ttft_s: float
    tokens_per_s: float
    concurrency: int
    output_tokens: int

    def __post_init__(self) -> None:
        if self.ttft_s < 0 or self.tokens_per_s <= 0 or self.concurrency < 1 or self.output_tokens < 0:
            raise ValueError(f"impossible endpoint latency: {self}")

    def request_s(self, output_tokens: int | None = None) -> float:
        """Seconds one running request takes (no queueing): first token, then the rest decoded."""
        tokens = self.output_tokens if output_tokens is None else output_tokens
        return self.ttft_s + tokens / self.tokens_per_s

    def batch_s(self, requests: int, output_tokens: int | None = None) -> float:
        """Seconds ``requests`` sent at once take on an idle server (waves of ``concurrency``)."""
        return math.ceil(requests / self.concurrency) * self.request_s(output_tokens) if requests else 0.0


# Calibrated as the module says: one 32B model on one H100 per role.
VLLM_32B_H100_TTFT_S = 0.15
VLLM_32B_H100_TOKENS_PER_S = 20.4
VLLM_32B_H100_CONCURRENCY = 32


def _vllm_32b_h100(output_tokens: int) -> EndpointLatency:
    return EndpointLatency(
        VLLM_32B_H100_TTFT_S, VLLM_32B_H100_TOKENS_PER_S, VLLM_32B_H100_CONCURRENCY, output_tokens
    )


VLLM_32B_H100 = {
    "judge": _vllm_32b_h100(150),
    "generator": _vllm_32b_h100(250),
    "verifier": _vllm_32b_h100(60),
}


class SimulatedServer:
    """The queue of one server: requests run ``latency.concurrency`` at a time, the rest wait.

    ``time_scale`` multiplies every wait (tests run the model at a fraction of real time).
    """

    def __init__(self, latency: EndpointLatency, time_scale: float = 1.0):
        if time_scale < 0:
            raise ValueError("time_scale must be >= 0")
        self.latency = latency
        self.time_scale = time_scale
        self.requests = 0
        self.max_running = 0
        self._running = 0
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._loop is not loop:  # a semaphore belongs to one event loop
            self._slots, self._loop = asyncio.Semaphore(self.latency.concurrency), loop
        return self._slots

    async def request(self, output_tokens: int | None = None) -> None:
        """Wait as one request would: for a slot, then its first token and its decode."""
        async with self._semaphore():
            self.requests += 1
            self._running += 1
            self.max_running = max(self.max_running, self._running)
            try:
                await asyncio.sleep(self.latency.request_s(output_tokens) * self.time_scale)
            finally:
                self._running -= 1

    async def requests_at_once(self, count: int, output_tokens: Sequence[int] | None = None) -> None:
        """Wait as ``count`` requests sent together would (a stage's batch sent concurrently)."""
        lengths = list(output_tokens) if output_tokens is not None else [self.latency.output_tokens] * count
        await asyncio.gather(*(self.request(tokens) for tokens in lengths))
