"""Benchmark: the Avro codec against JSON and the Avro libraries' own speed, and replay into the store.

N events (default 100k; 60% SampleAdded, 30% ProbeResult, 10% Verdict, each carrying its sample's
three tools) through three codecs, measured side by side in one run:

- ``avro``: the codec as it writes today: tool sets as 16-byte digests (each distinct set once, as a
  ToolSetRegistered on the run's toolsets topic), read by the compiled reader that trusts the writer
  schema (:mod:`schemas.codec`);
- ``avro, first versions, full validation``: the same events in the layout they had before tool sets
  were interned (every type's first schema version, tools inline), read with full pydantic validation
  of every event: what reading cost before;
- ``json``: pydantic JSON (``model_dump_json`` / ``model_validate_json``), the reference.

Per codec: encode and decode events/s (wall clock and per CPU-second of this process, which tells a
contended run from a slow codec; decode as a consumer does it, each event dropped once decoded, and
again keeping all of them alive, the method of the earlier runs, which makes the cyclic collector walk
them; the benchmark's own fixtures are frozen out of the collector's sight first; and, for the Avro
codecs, decoded to the flat form a replay into the store reads, :mod:`schemas.flat`), mean bytes per
event (and with the definitions the run wrote, spread over its events), the raw aiokafka consume rate
of the same topics, and replay into an empty sample store (``views.store.rebuild``: read every topic
from offset 0 with a fresh codec that learns the tool sets from the topic, decode, write LanceDB in
Arrow batches), for the ``avro`` run also in ``--workers`` worker processes (``rebuild --workers``:
each reads a share of the partitions; CPU counts the workers' too). Two last rows are the Avro
libraries on their own, on the ``avro`` records (writer schema only, records as dicts, no conversion
to events): cavro, which the codec reads and writes bodies with, and fastavro, which it used before:
the ceiling of any codec built on each. Writes ``benchmarks/results/codec_replay.json``.

    .venv/bin/python -m benchmarks.codec_replay [--events 100000] [--workers 2 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro
from aiokafka import AIOKafkaConsumer, TopicPartition
from rich.table import Table

from benchmarks.harness import add_output_arguments, finish_machine_info, machine_info, save, wide_console
from bus.broker import EmbeddedBroker
from bus.kafka import EventProducer, ReplayStats, ensure_topics
from bus.topics import topic_for_event
from looptool.config import Settings, load_settings
from schemas.codec import HEADER_SIZE, EventCodec, EventDecodeError, body_schema
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
from schemas.flat import FlatReader
from schemas.interning import ToolSetCatalog
from schemas.registry import default_registry
from toolcall.specs import ParamSchema, ToolSpec
from toolcall.types import Action, Message, ToolCall
from views.store import rebuild

PRODUCER = Producer(stage="bench", version="1")
MIX = "60% SampleAdded, 30% ProbeResult, 10% Verdict"
AVRO, BEFORE, JSON = "avro", "avro, first versions, full validation", "json"
CEILING = "fastavro's own decoder (ceiling)"
CAVRO_CEILING = "cavro's own decoder (ceiling)"


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


class FirstVersionsCodec(EventCodec):
    """Writes every event with its type's first schema version (tools inline); reads validating all."""

    def __init__(self) -> None:
        super().__init__(validate=True, toolsets=ToolSetCatalog())

    def encode(self, event: Event[Any]) -> bytes:
        return self.encode_as(event, self.registry.versions(event.event_type)[0])


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


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process, result)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


async def produce(settings: Settings, events: list[Event[Any]], blobs: list[bytes], codec: Any) -> int:
    """The encoded events on their topics, after the definitions they refer to (as a producer writes
    them: each set before its first use); returns the bytes of those definitions."""
    interning = isinstance(codec, EventCodec) and not isinstance(codec, FirstVersionsCodec)
    async with EventProducer(settings.kafka, codec=codec if interning else None, linger_ms=20) as producer:
        definitions = 0
        if interning:
            first_use: dict[Any, Event[Any]] = {}
            for event in events:
                codec.encode(event)
                for reference in codec.references:
                    first_use.setdefault(reference, event)
            for reference, event in first_use.items():
                await producer._define(event, reference)
                definition = make_event(
                    codec.definition(reference), run_id=settings.run_id, producer=PRODUCER
                )
                definitions += len(codec.encode(definition))
        futures = [
            await producer._producer.send(
                topic_for_event(settings.run_id, event.event_type), value=data, key=event.key.encode()
            )
            for event, data in zip(events, blobs, strict=True)
        ]
        await asyncio.gather(*futures)
    return definitions


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


async def replay_into_store(
    settings: Settings, codec: Any, store_path: Path, workers: int = 1
) -> tuple[float, float, int]:
    """``rebuild`` with ``codec`` (a fresh one: it learns the tool sets from the topic), or in
    ``workers`` processes (each with its own fresh codec).

    Returns (wall seconds, CPU seconds of this process and its workers, events replayed)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the broker is never waited for: not in it
    wall, cpu = time.perf_counter(), time.process_time()
    if workers == 1:
        stats: ReplayStats = await rebuild(settings, store_path, codec=codec)
    else:
        stats = await rebuild(settings, store_path, workers=workers)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu += after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    return wall, cpu, stats.records - stats.undecodable


def decode_each(codec: Any, blobs: list[bytes]) -> None:
    """Decode every event and drop it, as a consumer does once it has handled the event."""
    decode = codec.decode
    for data in blobs:
        decode(data)


class FastavroBodies:
    """fastavro on its own: a body read to a dict with its writer schema, and written back."""

    def __init__(self) -> None:
        self.registry = default_registry()

    def decode(self, data: bytes) -> tuple[Any, Any]:
        body = io.BytesIO(data)
        body.seek(HEADER_SIZE)
        parsed = self.registry.by_fingerprint(data[2:HEADER_SIZE]).parsed  # type: ignore[union-attr]
        return parsed, fastavro.schemaless_reader(body, parsed, None)

    def encode(self, schema: Any, record: Any) -> bytes:
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, schema, record)
        return buffer.getvalue()


class CavroBodies:
    """cavro on its own, with the codec's options (records as dicts)."""

    def __init__(self) -> None:
        self.registry = default_registry()
        self.schemas: dict[bytes, Any] = {}

    def decode(self, data: bytes) -> tuple[Any, Any]:
        fingerprint = data[2:HEADER_SIZE]
        schema = self.schemas.get(fingerprint)
        if schema is None:
            found = self.registry.by_fingerprint(fingerprint)
            schema = self.schemas[fingerprint] = body_schema(found.schema)  # type: ignore[union-attr]
        return schema, schema.binary_decode(data[HEADER_SIZE:])

    def encode(self, schema: Any, record: Any) -> bytes:
        return schema.binary_encode(record)  # type: ignore[no-any-return]


def library_ceilings(blobs: list[bytes]) -> dict[str, dict[str, float]]:
    """Each Avro library's own decode and encode of the same records (dicts, writer schema only)."""
    n = len(blobs)
    rows = {}
    for name, library in ((CEILING, FastavroBodies()), (CAVRO_CEILING, CavroBodies())):
        library.decode(blobs[0])  # its schemas parsed outside the timing
        decode_s, decode_cpu, _ = timed(lambda library=library: decode_each(library, blobs))
        records = [library.decode(data) for data in blobs]
        encode = library.encode
        encode_s, encode_cpu, _ = timed(lambda encode=encode, records=records: [encode(*r) for r in records])
        del records
        rows[name] = {
            "decode_per_s": n / decode_s,
            "decode_per_cpu_s": n / decode_cpu,
            "encode_per_s": n / encode_s,
            "encode_per_cpu_s": n / encode_cpu,
        }
    return rows


async def main(n: int, workers: list[int]) -> dict[str, Any]:
    console = wide_console()
    codecs: dict[str, Callable[[], Any]] = {
        AVRO: lambda: EventCodec(toolsets=ToolSetCatalog()),
        BEFORE: FirstVersionsCodec,
        JSON: JsonEventCodec,
    }
    results: dict[str, Any] = {"events": n, "mix": MIX, "machine": machine_info()}
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        for index, (name, make_codec) in enumerate(codecs.items()):
            settings = load_settings(
                None, run_id=f"bench-{index}", kafka={"bootstrap_servers": broker.bootstrap_servers}
            )
            events = make_events(settings.run_id, n)
            writer, reader = make_codec(), make_codec()  # the reader has not seen what the writer wrote
            if isinstance(reader, EventCodec):  # as a reader process that read the run's tool sets
                reader.toolsets = writer.toolsets
            gc.freeze()  # the benchmark's fixtures: out of the collector's sight, like a service's start-up
            encode_s, encode_cpu, blobs = timed(lambda w=writer, events=events: [w.encode(e) for e in events])
            decode_s, decode_cpu, _ = timed(lambda r=reader, blobs=blobs: decode_each(r, blobs))
            kept_s, kept_cpu, decoded = timed(lambda r=reader, blobs=blobs: [r.decode(b) for b in blobs])
            # What a replay into the store reads: the flat form (schemas.flat), each event dropped.
            flat = FlatReader(reader) if isinstance(reader, EventCodec) else None
            if flat is not None:
                flat.decode(blobs[0])  # its readers compiled outside the timing, as the codec's are
            flat_s, flat_cpu, _ = timed(lambda f=flat, blobs=blobs: f is not None and decode_each(f, blobs))
            assert [e.payload for e in decoded] == [e.payload for e in events], f"{name} does not round-trip"
            await ensure_topics(settings.kafka, settings.run_id)
            definition_bytes = await produce(settings, events, blobs, writer)
            raw_rate = await raw_consume_rate(settings, n)
            replay_s, replay_cpu, replayed = await replay_into_store(
                settings, make_codec(), Path(tmp) / str(index)
            )
            assert replayed == n, f"{name}: replayed {replayed} of {n}"
            results[name] = {
                "encode_per_s": n / encode_s,
                "encode_per_cpu_s": n / encode_cpu,
                "decode_per_s": n / decode_s,
                "decode_per_cpu_s": n / decode_cpu,
                "decode_kept_per_s": n / kept_s,
                "decode_kept_per_cpu_s": n / kept_cpu,
                "flat_decode_per_s": n / flat_s if flat is not None else None,
                "flat_decode_per_cpu_s": n / flat_cpu if flat is not None else None,
                "mean_bytes": sum(map(len, blobs)) / n,
                "mean_bytes_with_definitions": (sum(map(len, blobs)) + definition_bytes) / n,
                "raw_consume_per_s": raw_rate,
                "replay_into_store_per_s": n / replay_s,
                "replay_into_store_per_cpu_s": n / replay_cpu,
                "replay_over_raw_consume": (n / replay_s) / raw_rate,
            }
            if name == AVRO:
                results.update(library_ceilings(blobs))
                for count in workers:
                    wall, cpu, replayed = await replay_into_store(
                        settings, None, Path(tmp) / f"{index}-{count}-workers", workers=count
                    )
                    assert replayed == n, f"{count} workers: replayed {replayed} of {n}"
                    results[name][f"rebuild_{count}_workers_per_s"] = n / wall
                    results[name][f"rebuild_{count}_workers_per_cpu_s"] = n / cpu
                    results[name][f"rebuild_{count}_workers_over_raw_consume"] = (n / wall) / raw_rate
                    results[name][f"rebuild_{count}_workers_over_one"] = (n / wall) / (n / replay_s)
    avro, json_, before = results[AVRO], results[JSON], results[BEFORE]
    for key in ("encode_per_s", "decode_per_s", "replay_into_store_per_s"):
        results[f"avro_over_json_{key}"] = avro[key] / json_[key]
        results[f"avro_over_before_{key}"] = avro[key] / before[key]
    results["avro_over_json_bytes"] = avro["mean_bytes"] / json_["mean_bytes"]
    results["avro_over_before_bytes"] = avro["mean_bytes"] / before["mean_bytes"]
    results["decode_over_ceiling"] = avro["decode_per_s"] / results[CEILING]["decode_per_s"]
    results["decode_over_cavro_ceiling"] = avro["decode_per_s"] / results[CAVRO_CEILING]["decode_per_s"]
    for key in ("decode_per_s", "encode_per_s"):
        results[f"cavro_over_fastavro_{key}"] = results[CAVRO_CEILING][key] / results[CEILING][key]

    table = Table(
        "codec",
        "encode ev/s (per CPU-s)",
        "decode ev/s (per CPU-s)",
        "decode, all kept ev/s",
        "bytes/event",
        "raw consume ev/s",
        "replay→store ev/s (per CPU-s)",
        "replay ÷ raw",
        title=f"{n:,} events ({MIX})",
    )
    for name in (AVRO, BEFORE, JSON):
        e = results[name]
        table.add_row(
            name,
            f"{e['encode_per_s']:,.0f} ({e['encode_per_cpu_s']:,.0f})",
            f"{e['decode_per_s']:,.0f} ({e['decode_per_cpu_s']:,.0f})",
            f"{e['decode_kept_per_s']:,.0f}",
            f"{e['mean_bytes']:.0f}" + (f" ({e['mean_bytes_with_definitions']:.0f})" if name == AVRO else ""),
            f"{e['raw_consume_per_s']:,.0f}",
            f"{e['replay_into_store_per_s']:,.0f} ({e['replay_into_store_per_cpu_s']:,.0f})",
            f"{e['replay_over_raw_consume']:.0%}",
        )
    table.add_row(
        "avro, flat (what a replay reads)",
        "",
        f"{results[AVRO]['flat_decode_per_s']:,.0f} ({results[AVRO]['flat_decode_per_cpu_s']:,.0f})",
        *[""] * 5,
    )
    for count in workers:
        e = results[AVRO]
        table.add_row(
            f"avro, rebuild in {count} workers",
            "",
            "",
            "",
            "",
            "",
            f"{e[f'rebuild_{count}_workers_per_s']:,.0f} ({e[f'rebuild_{count}_workers_per_cpu_s']:,.0f})",
            f"{e[f'rebuild_{count}_workers_over_raw_consume']:.0%}",
        )
    for library in (CAVRO_CEILING, CEILING):
        ceiling = results[library]
        table.add_row(
            library,
            f"{ceiling['encode_per_s']:,.0f} ({ceiling['encode_per_cpu_s']:,.0f})",
            f"{ceiling['decode_per_s']:,.0f} ({ceiling['decode_per_cpu_s']:,.0f})",
            "",
            "",
            "",
            "",
            "",
        )
    table.add_section()
    for other in (JSON, BEFORE):
        tag = "json" if other == JSON else "before"
        table.add_row(
            f"avro ÷ {other}",
            f"{results[f'avro_over_{tag}_encode_per_s']:.2f}×",
            f"{results[f'avro_over_{tag}_decode_per_s']:.2f}×",
            "",
            f"{results[f'avro_over_{tag}_bytes']:.2f}×",
            "",
            f"{results[f'avro_over_{tag}_replay_into_store_per_s']:.2f}×",
            "",
        )
    console.print(table)
    results["machine"] = finish_machine_info(results["machine"])
    machine = results["machine"]
    console.print(f"load average {machine['load_average_at_start']} → {machine['load_average_at_end']}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument(
        "--workers",
        type=int,
        nargs="*",
        default=[2],
        help="Also rebuild the avro run in this many worker processes (views.rebuild_share); each a row.",
    )
    add_output_arguments(parser, "codec_replay")
    args = parser.parse_args()
    save(asyncio.run(main(args.events, args.workers)), args)
