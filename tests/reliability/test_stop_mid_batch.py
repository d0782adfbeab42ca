"""A stage stopped mid-batch (SIGTERM, Ctrl-C: the worker cancels its agents) leaves that batch
unacknowledged, so the next start processes it again (bus/worker.py ``take_adaptive``).

It once acknowledged the interrupted batch as it closed: its offsets were committed, the restarted
worker never saw those inputs, and the round never closed."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from bus.batching import AdaptiveBatching
from bus.worker import take_adaptive


class _Channel:
    def __aiter__(self) -> _Channel:
        return self

    async def __anext__(self) -> Any:
        await asyncio.Event().wait()


class FakeStream:
    """What take_adaptive uses of a faust stream: its processors are fed ``values`` one by one."""

    def __init__(self, values: list[str]):
        self.values = values
        self.enable_acks = True
        self._processors: list[Any] = []
        self.current_event: str | None = None
        self.should_stop = False
        self.channel = _Channel()
        self.acked: list[str] = []
        self._feeding: asyncio.Task[None] | None = None

    def add_processor(self, processor: Any) -> None:
        self._processors.append(processor)

    def _enable_passive(self, channel: Any) -> None:
        self._feeding = asyncio.create_task(self._feed())

    async def _feed(self) -> None:
        for value in self.values:
            self.current_event = value
            for processor in self._processors:
                await processor(value)

    async def wait(self, event: asyncio.Event) -> None:
        await event.wait()

    async def wait_for_stopped(self, event: asyncio.Event, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    async def ack(self, event: str) -> None:
        self.acked.append(event)


async def test_a_batch_interrupted_by_a_stop_is_not_acknowledged() -> None:
    stream = FakeStream([f"e{i}" for i in range(4)])
    batching = AdaptiveBatching(min_size=2, max_size=2, max_wait_s=0.5)
    processed: list[list[str]] = []
    second_started = asyncio.Event()

    async def agent() -> None:
        async for batch in take_adaptive(stream, batching):
            if processed:  # the second batch: a long LLM call, stopped half-way
                second_started.set()
                await asyncio.Event().wait()
            processed.append(batch)

    task = asyncio.create_task(agent())
    await asyncio.wait_for(second_started.wait(), 5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.05)  # let a closing generator run what it runs
    assert processed == [["e0", "e1"]]
    assert stream.acked == ["e0", "e1"]  # e2 and e3 stay unacknowledged: redelivered on restart
    assert stream.enable_acks is True  # the stream is left as it was found
    if stream._feeding is not None:
        stream._feeding.cancel()
