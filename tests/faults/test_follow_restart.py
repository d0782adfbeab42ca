"""A follower (curate, the trainer, the checkpoint watcher) on a broker that restarts empty.

Tansu answers a fetch past the end of a lost log with an empty record set and the new, lower end,
and auto-creates the topic for the next producer. A follower that kept fetching would, once the new
log grows past its position, fold another log's events into what it had read. It must instead fail
with ``BrokerDataLost`` quickly, and hand its caller nothing from the new log.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiokafka import TopicPartition

from bus.broker import EmbeddedBroker
from bus.kafka import (
    LOSS_CHECK_INTERVAL_S,
    BrokerDataLost,
    EventProducer,
    PartitionsAdded,
    ensure_topics,
    follow,
)
from bus.topics import topic_name
from looptool.config import Settings, load_settings
from tests.foundation.events_factory import event_of, sample_added


async def test_a_follower_hands_over_nothing_from_a_restarted_broker_and_fails_fast() -> None:
    broker = EmbeddedBroker()
    broker.start()
    try:
        settings = load_settings(
            None, run_id="follow-restart", kafka={"bootstrap_servers": broker.bootstrap_servers}
        )
        await ensure_topics(settings.kafka, settings.run_id)
        before = [event_of(sample_added(f"s_old_{i}"), run_id=settings.run_id) for i in range(12)]
        async with EventProducer(settings.kafka) as producer:
            await producer.send_all(before)

        stream = follow(settings.kafka, settings.run_id, ["samples"], idle_timeout_ms=200)
        seen: list[str] = []
        read_everything = asyncio.Event()
        lost_at: list[float] = []

        async def follower() -> None:
            try:
                async for batch in stream:
                    seen.extend(d.event.event_id for d in batch)
                    if len(seen) >= len(before):
                        read_everything.set()
            except BrokerDataLost:
                lost_at.append(time.monotonic())
                raise

        task = asyncio.create_task(follower())
        await asyncio.wait_for(read_everything.wait(), 60)
        assert sorted(seen) == sorted(e.event_id for e in before)

        port = broker.port
        await asyncio.to_thread(broker.stop)
        broker = EmbeddedBroker(port=port)  # the same address, empty memory
        await asyncio.to_thread(broker.start)
        restarted = time.monotonic()
        # Other producers carry on: the new log soon grows past what was read from the old one.
        after = [event_of(sample_added(f"s_new_{i}"), run_id=settings.run_id) for i in range(60)]
        for chunk in range(0, len(after), 10):
            for attempt in range(20):  # the first sends after a restart fail while the topic is created
                try:
                    async with EventProducer(settings.kafka) as producer:
                        await producer.send_all(after[chunk : chunk + 10])
                    break
                except Exception:
                    if attempt == 19:
                        raise
                    await asyncio.sleep(0.25)
            await asyncio.sleep(0.2)
        done, _ = await asyncio.wait([task], timeout=60)
        assert done, "the follower never noticed the restart"
        error = task.exception()
    finally:
        broker.stop()

    assert isinstance(error, BrokerDataLost) and "lost the run's events" in str(error), error
    assert not set(seen) & {e.event_id for e in after}, "events of the new log reached the caller"
    # Noticed at the first fetch that reports the lower end, not after the idle checks.
    assert lost_at[0] - restarted < 2 * LOSS_CHECK_INTERVAL_S, lost_at[0] - restarted


async def test_a_follower_stops_when_partitions_are_added_to_a_followed_topic(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Partitions added mid-run (kafka-topics --alter) took part of every later key's events where the
    follower never read: the curator's round waited for ever. The follower now stops, naming the
    topic. The embedded broker refuses CreatePartitions, so the follower is started on the topic's
    metadata without its last partition, as one started before the partition was added."""
    import bus.kafka

    await ensure_topics(settings.kafka, settings.run_id)
    samples = topic_name(settings.run_id, "samples")
    whole = bus.kafka._run_partitions

    async def before_the_alter(consumer: Any, run_id: str, topics: Any) -> list[TopicPartition]:
        monkeypatch.setattr(bus.kafka, "_run_partitions", whole)  # later reads see the topic as it is
        found = await whole(consumer, run_id, topics)
        last = max(tp.partition for tp in found if tp.topic == samples)
        return [tp for tp in found if tp != TopicPartition(samples, last)]

    monkeypatch.setattr(bus.kafka, "_run_partitions", before_the_alter)
    monkeypatch.setattr(bus.kafka, "LOSS_CHECK_INTERVAL_S", 0.3)
    async with EventProducer(settings.kafka) as producer:
        await producer.send_all([event_of(sample_added(f"s_{i}"), run_id=settings.run_id) for i in range(4)])

    async def read_on() -> None:
        async for _ in follow(settings.kafka, settings.run_id, ["samples"], idle_timeout_ms=100):
            pass

    with pytest.raises(PartitionsAdded, match=rf"{samples} has \d+ partitions now, \d+ when this follower"):
        await asyncio.wait_for(read_on(), timeout=20)
