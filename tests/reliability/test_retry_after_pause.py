"""A stage paused by an endpoint that said when to come back waits at least that long (bus/worker.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from bus.worker import StageRunner
from inference.base import InferenceError
from streams.judge import LLMJudge
from streams.stage import TransientError
from tests.streams.test_roles import ScriptedBackend, judge_case


class Unavailable:
    """A stage whose endpoint is unavailable for a while: with a Retry-After first, then without."""

    def __init__(self) -> None:
        self.calls = 0
        self.name = "judge"

    async def process(self, events: Sequence[Any]) -> list[Any]:
        self.calls += 1
        if self.calls == 1:
            raise TransientError("judge endpoint unavailable: HTTP 429", retry_after_s=120.0)
        if self.calls == 2:
            raise TransientError("judge endpoint unavailable: HTTP 503")
        return []


async def test_the_worker_pauses_no_sooner_than_the_endpoint_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    runner = SimpleNamespace(stage=Unavailable(), retries=0, processed=0, published=0, producer=None)
    await StageRunner._process_until_done(runner, [])  # type: ignore[arg-type]
    assert slept == [120.0, 1.0]  # the endpoint's wait, then the worker's own backoff goes on
    assert runner.retries == 2


async def test_a_role_passes_the_endpoints_wait_on_to_the_stage() -> None:
    class RateLimited(ScriptedBackend):
        async def generate(self, prompts: Any, sampling: Any) -> Any:
            raise InferenceError("asks to come back in 90s (Retry-After)", retry_after_s=90.0)

    judge = LLMJudge(RateLimited(lambda c, s: None), current_time="t")  # type: ignore[arg-type]
    with pytest.raises(TransientError) as paused:
        await judge.ask([judge_case()])
    assert paused.value.retry_after_s == 90.0


async def test_a_batch_whose_outputs_cannot_be_published_stops_the_worker_unacknowledged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A send the broker refused (a message over its limit) crashed the faust agent, and the records
    of the batch were committed unprocessed. The worker now stops with the batch held: its
    generator is never resumed, which is what acknowledges a batch."""
    from aiokafka.errors import MessageSizeTooLargeError

    import bus.worker as worker

    resumed: list[bool] = []

    async def one_batch(stream: Any, batching: Any) -> Any:
        yield [SimpleNamespace(message="record")]
        resumed.append(True)  # the batch would be acknowledged here

    async def decode(message: Any) -> Any:
        return message

    async def publish(events: Any) -> float:
        raise MessageSizeTooLargeError("the message is 8388706 bytes")

    monkeypatch.setattr(worker, "take_adaptive", one_batch)
    runner = SimpleNamespace(
        stage=SimpleNamespace(name="relabel"),
        _actors=set(),
        _decode=decode,
        _process_until_done=publish,
        batch_sizes=[],
        batching=None,
        broker_lost=None,
        halted=None,
    )
    agent = asyncio.create_task(StageRunner._agent(runner, stream=None))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    assert isinstance(runner.halted, MessageSizeTooLargeError)
    assert not agent.done() and not resumed  # held until the worker stops it
    agent.cancel()
    with pytest.raises(asyncio.CancelledError):
        await agent
    assert not resumed


async def test_an_event_only_a_newer_release_can_read_stops_the_worker_unacknowledged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rolling upgrade across a change this release cannot resolve: the record used to be
    dead-lettered and committed, so the newer release's workers never saw it. The worker now stops
    with the batch held, dead-lettering nothing."""
    import bus.worker as worker
    from schemas.codec import IncompatibleSchemaError

    resumed: list[bool] = []
    letters: list[Any] = []

    async def one_batch(stream: Any, batching: Any) -> Any:
        yield [SimpleNamespace(message=SimpleNamespace(value=b"newer", topic="r.samples"))]
        resumed.append(True)

    async def newer_release(data: bytes) -> Any:
        raise IncompatibleSchemaError("SampleAdded v4 cannot be read as this release's v3", b"\x01" * 8)

    async def send_all(events: Any) -> None:
        letters.extend(events)

    monkeypatch.setattr(worker, "take_adaptive", one_batch)
    runner = SimpleNamespace(
        stage=SimpleNamespace(name="probe"),
        _actors=set(),
        definitions=SimpleNamespace(decode=newer_release),
        producer=SimpleNamespace(send_all=send_all),
        batch_sizes=[],
        batching=None,
        broker_lost=None,
        halted=None,
    )
    runner._decode = lambda message: StageRunner._decode(runner, message)  # type: ignore[arg-type]
    agent = asyncio.create_task(StageRunner._agent(runner, stream=None))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    assert isinstance(runner.halted, IncompatibleSchemaError)
    assert not agent.done() and not resumed and not letters
    agent.cancel()
    with pytest.raises(asyncio.CancelledError):
        await agent
    assert not resumed
