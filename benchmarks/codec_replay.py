"""Benchmark: Avro codec vs JSON, and replay of a run's topics into the sample store.

Prints events/s for encode, decode and replay-into-store of N events (default 100k), each with a
JSON encoding (pydantic ``model_dump_json`` / ``model_validate_json``) measured side by side in the
same run as the reference, plus the raw aiokafka consume rate of the same topics. A third row is the
Avro codec with its validated-once tool specs turned off (every read validates every tool spec): the
before/after of that fix, in the same run. Writes the figures
to ``benchmarks/results/codec_replay.json``.

    .venv/bin/python -m benchmarks.codec_replay [--events 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from rich.console import Console
from rich.table import Table

from benchmarks.harness import add_output_arguments, finish_machine_info, machine_info, save
from bus.broker import EmbeddedBroker
from bus.kafka import EventProducer, ReplayStats, ensure_topics, replay
from bus.topics import topic_for_event
from looptool.config import Settings, load_settings
from schemas.codec import EventCodec, EventDecodeError
from schemas.events import (
    PAYLOAD_TYPES,
    Event,
    MatchDiff,
    ProbeResult,
    Producer,
    SampleAdded,
    Verdict,
    derived_event_id,
    make_event,
)
from toolcall.specs import ParamSchema, ToolSpec
from toolcall.types import Action, Message, ToolCall
from views.store import SampleStore

PRODUCER = Producer(stage="bench", version="1")
console = Console()


class JsonEventCodec:
    """The reference: the same events as pydantic JSON, with the event type in front."""

    def encode(self, event: Event[Any]) -> bytes:
        return event.event_type.encode() + b"\n" + event.model_dump_json().encode()

    def decode(self, data: bytes) -> Event[Any]:
        event_type, _, body = data.partition(b"\n")
        try:
            return Event[PAYLOAD_TYPES[event_type.decode()]].model_validate_json(body)  # type: ignore[valid-type]
        except (KeyError, ValueError) as exc:
            raise EventDecodeError(str(exc)) from exc


def make_events(run_id: str, n: int) -> list[Event[Any]]:
    """A realistic mix: 60% SampleAdded, 30% ProbeResult, 10% Verdict."""
    tools = [
        ToolSpec(
            name=f"tool_{k}",
            description="Look something up in a service with a few parameters.",
            parameters=ParamSchema(
                type="object",
                properties={
                    "city": ParamSchema(type="string", description="City name"),
                    "days": ParamSchema(type="integer", description="Days ahead"),
                    "unit": ParamSchema(type="string", enum=["celsius", "fahrenheit"]),
                },
                required=["city"],
            ),
        )
        for k in range(3)
    ]
    events: list[Event[Any]] = []
    samples: list[Event[SampleAdded]] = []
    for i in range(n):
        kind = i % 10
        if kind < 6 or not samples:
            label = Action(calls=[ToolCall(name="tool_0", arguments={"city": f"City {i}", "days": i % 7})])
            event = make_event(
                SampleAdded(
                    sample_id=f"s_{i:08d}",
                    tools=tools,
                    messages=[
                        Message(role="user", content=f"What's the weather in City {i} in {i % 7} days?")
                    ],
                    label=label,
                    origin="seed",
                    round=0,
                    source_format="bench",
                    content_hash=f"{i:032x}",
                ),
                run_id=run_id,
                producer=PRODUCER,
            )
            samples.append(event)
        elif kind < 9:
            parent = samples[i % len(samples)]
            event = make_event(
                ProbeResult(
                    sample_id=parent.payload.sample_id,
                    round=1,
                    label_event_id=parent.event_id,
                    tools=parent.payload.tools,
                    messages=parent.payload.messages,
                    label=parent.payload.label,
                    raw_output="<think>The user wants the weather.</think>\n<tool_call>...</tool_call>",
                    prediction=parent.payload.label,
                    matched=kind != 8,
                    diffs=[] if kind != 8 else [MatchDiff(kind="wrong_argument", path="days")],
                    ppl=1.2 + (i % 13) / 10,
                    num_tokens=40,
                ),
                run_id=run_id,
                producer=PRODUCER,
                parent_ids=[parent.event_id],
                event_id=derived_event_id([parent.event_id], "probe", str(i)),
                checkpoint_id="ckpt-1",
            )
        else:
            parent = samples[i % len(samples)]
            event = make_event(
                Verdict(
                    sample_id=parent.payload.sample_id,
                    round=1,
                    probe_event_id=parent.event_id,
                    tools=parent.payload.tools,
                    messages=parent.payload.messages,
                    label=parent.payload.label,
                    verdict="PRED_WRONG",
                    decided_by="judge",
                    label_position=1,
                    error_analysis="The prediction used the wrong number of days.",
                    correct_approach="Use the days the user asked for.",
                ),
                run_id=run_id,
                producer=PRODUCER,
                parent_ids=[parent.event_id],
                event_id=derived_event_id([parent.event_id], "judge", str(i)),
            )
        events.append(event)
    return events


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


async def produce(settings: Settings, encoded: list[tuple[Event[Any], bytes]]) -> None:
    async with EventProducer(settings.kafka, linger_ms=20) as producer:
        futures = [
            await producer._producer.send(
                topic_for_event(settings.run_id, event.event_type), value=data, key=event.key.encode()
            )
            for event, data in encoded
        ]
        await asyncio.gather(*futures)


async def raw_consume_rate(settings: Settings, n: int) -> float:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(f"{settings.run_id}.{name}", p)
            for name in ("samples", "probes", "verdicts")
            for p in range(settings.kafka.partitions)
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen = 0
        start = time.perf_counter()
        while seen < n:
            fetched = await consumer.getmany(timeout_ms=1000, max_records=5000)
            seen += sum(len(records) for records in fetched.values())
        return seen / (time.perf_counter() - start)
    finally:
        await consumer.stop()


async def replay_into_store(settings: Settings, codec: Any, store_path: Path) -> tuple[float, int]:
    store = SampleStore.reset(store_path)
    stats = ReplayStats()
    start = time.perf_counter()
    async for batch in replay(
        settings.kafka, settings.run_id, ["samples", "probes", "verdicts"], codec=codec, stats=stats
    ):
        store.apply([d.event for d in batch])
    elapsed = time.perf_counter() - start
    return elapsed, stats.records - stats.undecodable


async def main(n: int) -> dict[str, Any]:
    codecs = {
        "avro": EventCodec(),
        "avro, validate every read": EventCodec(validated_once=False),
        "json": JsonEventCodec(),
    }
    results: dict[str, Any] = {
        "events": n,
        "machine": machine_info(),
    }
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        rows = []
        for index, (name, codec) in enumerate(codecs.items()):
            settings = load_settings(
                None, run_id=f"bench-{index}", kafka={"bootstrap_servers": broker.bootstrap_servers}
            )
            events = make_events(settings.run_id, n)
            encode_s, blobs = timed(lambda codec=codec, events=events: [codec.encode(e) for e in events])
            decode_s, decoded = timed(lambda codec=codec, blobs=blobs: [codec.decode(b) for b in blobs])
            assert decoded == events, f"{name} codec does not round-trip"
            await ensure_topics(settings.kafka, settings.run_id)
            await produce(settings, list(zip(events, blobs, strict=True)))
            raw_rate = await raw_consume_rate(settings, n)
            replay_s, replayed = await replay_into_store(settings, codec, Path(tmp) / str(index))
            assert replayed == n
            entry = {
                "encode_per_s": n / encode_s,
                "decode_per_s": n / decode_s,
                "mean_bytes": sum(map(len, blobs)) / n,
                "raw_consume_per_s": raw_rate,
                "replay_into_store_per_s": n / replay_s,
            }
            results[name] = entry
            rows.append((name, entry))
    for key in ("encode_per_s", "decode_per_s", "replay_into_store_per_s"):
        results[f"avro_over_json_{key}"] = results["avro"][key] / results["json"][key]
    results["avro_over_json_bytes"] = results["avro"]["mean_bytes"] / results["json"]["mean_bytes"]
    before = results["avro, validate every read"]
    for key in ("decode_per_s", "replay_into_store_per_s"):
        results[f"validated_once_speedup_{key}"] = results["avro"][key] / before[key]

    table = Table(
        "codec",
        "encode ev/s",
        "decode ev/s",
        "bytes/event",
        "raw consume ev/s",
        "replay→store ev/s",
        title=f"{n:,} events (60% SampleAdded, 30% ProbeResult, 10% Verdict)",
    )
    for name, e in rows:
        table.add_row(
            name,
            f"{e['encode_per_s']:,.0f}",
            f"{e['decode_per_s']:,.0f}",
            f"{e['mean_bytes']:.0f}",
            f"{e['raw_consume_per_s']:,.0f}",
            f"{e['replay_into_store_per_s']:,.0f}",
        )
    table.add_row(
        "avro/json",
        f"{results['avro_over_json_encode_per_s']:.2f}×",
        f"{results['avro_over_json_decode_per_s']:.2f}×",
        f"{results['avro_over_json_bytes']:.2f}×",
        "",
        f"{results['avro_over_json_replay_into_store_per_s']:.2f}×",
    )
    table.add_row(
        "validated once / every read",
        "",
        f"{results['validated_once_speedup_decode_per_s']:.2f}×",
        "",
        "",
        f"{results['validated_once_speedup_replay_into_store_per_s']:.2f}×",
    )
    console.print(table)
    finish_machine_info(results["machine"])
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    add_output_arguments(parser, "codec_replay")
    args = parser.parse_args()
    save(asyncio.run(main(args.events)), args)
