"""Benchmark: the archived broker (``looptool broker``) against the memory-only one, side by side.

Both brokers run as ``looptool broker`` child processes in the same run. Prints and writes to
``benchmarks/results/durable_broker.json``:

- produce and consume throughput of raw 200-byte records (one aiokafka client, acks=all) on each;
- the archive lag seen by a producer: from a record's acknowledgement to the moment the archive's
  committed offsets (the ``looptool.archive`` group, written after the fsync) cover it, for a steady
  stream, as p50 / p99 / max; the broker's own figure (record time stamp to fsync) from its log;
- how long an :class:`~bus.kafka.EventProducer` takes to report success (it waits for the archive);
- how long a SIGKILLed archived broker takes to come back with everything (restore rate).

    .venv/bin/python benchmarks/durable_broker.py [--records 20000] [--rate 2000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from rich.console import Console
from rich.table import Table

from bus.broker import ARCHIVE_GROUP
from bus.kafka import EventProducer, ensure_topics
from looptool.config import load_settings
from tests.broker_process import BrokerProcess
from tests.foundation.events_factory import event_of, sample_added

RESULTS = Path(__file__).parent / "results" / "durable_broker.json"
TOPIC = "bench.raw"


async def _create(bootstrap: str, partitions: int = 4) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()


async def throughput(bootstrap: str, records: int) -> dict[str, float]:
    await _create(bootstrap)
    payload = b"x" * 200
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=5
    )
    await producer.start()
    started = time.perf_counter()
    futures = [await producer.send(TOPIC, payload, key=str(i % 64).encode()) for i in range(records)]
    await asyncio.gather(*futures)
    produce_s = time.perf_counter() - started
    await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    partitions = [TopicPartition(TOPIC, p) for p in range(4)]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    got = 0
    started = time.perf_counter()
    while got < records:
        fetched = await consumer.getmany(timeout_ms=500, max_records=10000)
        got += sum(len(batch) for batch in fetched.values())
    consume_s = time.perf_counter() - started
    await consumer.stop()
    return {"produce_per_s": records / produce_s, "consume_per_s": records / consume_s}


async def archive_lag(bootstrap: str, rate: int, seconds: float) -> dict[str, float]:
    """Ack -> archived (the archive group's committed offset passes the record), for a steady stream."""
    topic = "bench.lag"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=5
    )
    await producer.start()
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=ARCHIVE_GROUP, enable_auto_commit=False)
    await reader.start()
    acked: list[tuple[TopicPartition, int, float]] = []
    archived_at: dict[tuple[TopicPartition, int], float] = {}
    stop = asyncio.Event()

    async def watch() -> None:
        known: dict[TopicPartition, int] = {}
        while not stop.is_set() or len(archived_at) < len(acked):
            now = time.perf_counter()
            for tp in [TopicPartition(topic, p) for p in range(4)]:
                end = await reader.committed(tp) or 0
                for offset in range(known.get(tp, 0), end):
                    archived_at[(tp, offset)] = now
                known[tp] = max(known.get(tp, 0), end)
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())

    def record(future: asyncio.Future[Any]) -> None:
        metadata = future.result()
        acked.append((metadata.topic_partition, metadata.offset, time.perf_counter()))

    interval = 0.01
    per_tick = max(1, int(rate * interval))
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        tick = time.perf_counter()
        for _ in range(per_tick):
            (await producer.send(topic, b"y" * 200)).add_done_callback(record)
        await asyncio.sleep(max(0.0, interval - (time.perf_counter() - tick)))
    await producer.flush()
    stop.set()
    await asyncio.wait_for(watcher, 30)
    await producer.stop()
    await reader.stop()
    lags = sorted(max(0.0, archived_at[(tp, offset)] - at) * 1000 for tp, offset, at in acked)
    return {
        "records": len(lags),
        "p50_ms": statistics.median(lags),
        "p99_ms": lags[int(0.99 * (len(lags) - 1))],
        "max_ms": lags[-1],
    }


async def producer_close(bootstrap: str, events: int = 500) -> float:
    settings = load_settings(None, run_id="bench", kafka={"bootstrap_servers": bootstrap})
    await ensure_topics(settings.kafka, settings.run_id)
    batch = [event_of(sample_added(f"s_{i}"), run_id="bench") for i in range(events)]
    async with EventProducer(settings.kafka) as producer:
        await producer.send_all(batch)
        started = time.perf_counter()
    return time.perf_counter() - started


async def main(records: int, rate: int, seconds: float) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": platform.processor() or platform.machine(), "records": records}
    with tempfile.TemporaryDirectory() as tmp:
        for name, memory_only in (("memory-only", True), ("archived", False)):
            broker = BrokerProcess(
                Path(tmp) / name / "archive", Path(tmp) / name / "logs", memory_only=memory_only
            )
            bootstrap = broker.start()
            try:
                entry: dict[str, Any] = await throughput(bootstrap, records)
                entry["event_producer_close_s"] = await producer_close(bootstrap)
                if not memory_only:
                    entry["archive_lag"] = await archive_lag(bootstrap, rate, seconds)
                    broker.stop()  # SIGTERM: it prints its own lag figures as it stops
                    lag_line = re.search(
                        r"archive lag p50 ([\d.]+) ms, p99 ([\d.]+) ms, max ([\d.]+) ms", broker.output()
                    )
                    assert lag_line is not None, broker.output()
                    entry["broker_side_lag_ms"] = dict(
                        zip(("p50", "p99", "max"), map(float, lag_line.groups()), strict=True)
                    )
                    broker.start()
                    broker.kill()  # a crash right after a restore: nothing may be lost either
                    started = time.perf_counter()
                    broker.start()
                    entry["restart_with_restore_s"] = time.perf_counter() - started
                    restored = re.search(
                        r"restored (\d+) events of \d+ topics in ([\d.]+) s", broker.output()
                    )
                    assert restored is not None, broker.output()
                    entry["restored_events"] = int(restored.group(1))
                    entry["restore_s"] = float(restored.group(2))
                    entry["restore_per_s"] = int(restored.group(1)) / max(float(restored.group(2)), 1e-3)
                results[name] = entry
            finally:
                broker.stop()
    for key in ("produce_per_s", "consume_per_s"):
        results[f"archived_over_memory_{key}"] = results["archived"][key] / results["memory-only"][key]
    return results


def report(results: dict[str, Any], console: Console) -> None:
    table = Table("", "memory-only", "archived", title="looptool broker: memory-only vs archived")
    for key in ("produce_per_s", "consume_per_s"):
        table.add_row(key, f"{results['memory-only'][key]:,.0f}", f"{results['archived'][key]:,.0f}")
    table.add_row(
        "EventProducer reports success after (s)",
        f"{results['memory-only']['event_producer_close_s']:.3f}",
        f"{results['archived']['event_producer_close_s']:.3f}",
    )
    console.print(table)
    lag = results["archived"]["archive_lag"]
    console.print(
        f"archive lag, ack -> archived ({lag['records']} records): p50 {lag['p50_ms']:.0f} ms, "
        f"p99 {lag['p99_ms']:.0f} ms, max {lag['max_ms']:.0f} ms; broker side: "
        f"{results['archived'].get('broker_side_lag_ms')}"
    )
    archived = results["archived"]
    console.print(
        f"restart after SIGKILL: {archived['restart_with_restore_s']:.1f} s with "
        f"{archived['restored_events']:,} events restored ({archived['restore_per_s']:,.0f}/s)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--rate", type=int, default=2000, help="records/s of the steady stream for the lag")
    parser.add_argument("--seconds", type=float, default=10.0)
    options = parser.parse_args()
    figures = asyncio.run(main(options.records, options.rate, options.seconds))
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    report(figures, Console())
