"""The same run written as it was before tool sets were interned (every event at its first schema
version: tools inline) and as it is written now (a digest, the sets once on the toolsets topic) reads
back to byte-identical replays, exports and lineage; readers learn the tool sets from the topic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import bus.kafka
from bus.broker import EmbeddedBroker
from bus.kafka import EventProducer, ensure_topics, replay
from bus.topics import topic_for_event, topic_name
from looptool.config import Settings
from schemas.codec import EventCodec
from schemas.events import Event
from schemas.interning import ToolSetCatalog
from schemas.registry import default_registry
from tests.analytics.conftest import LiveRun
from views.export import EXPORT_FORMATS, export_round
from views.lineage import build_lineage, index_from_topics, render_lineage
from views.replay import Cut, replay_to


def _files(path: Path) -> dict[str, bytes]:
    if path.is_dir():
        return {
            p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
        }
    return {"file": path.read_bytes()}


async def _publish_first_versions(settings: Settings, events: list[Event[Any]]) -> None:
    """``events`` as the first schema version of their type wrote them (tools inline), as raw records."""
    codec = EventCodec(toolsets=ToolSetCatalog())
    await ensure_topics(settings.kafka, settings.run_id)
    async with EventProducer(settings.kafka) as producer:
        for event in events:
            first = default_registry().versions(event.event_type)[0]
            await producer.send_raw(
                topic_for_event(settings.run_id, event.event_type),
                codec.encode_as(event, first),
                event.key.encode("utf-8"),
            )


def _rendered(lineage: Any) -> str:
    console = Console(width=160, record=True, color_system=None)
    console.print(render_lineage(lineage))
    return console.export_text()


async def _readings(settings: Settings, folder: Path, sample_ids: list[str]) -> dict[str, Any]:
    """What the views give for a run: each export format, the replayed store and D_J, lineage."""
    out: dict[str, Any] = {}
    for fmt in EXPORT_FORMATS:
        result = await export_round(settings, Cut(round=2), fmt, folder / f"d2.{fmt}")
        out[f"export {fmt}"] = _files(result.path)
    replayed = await replay_to(settings, Cut(round=2), store_path=folder / "replay")
    assert replayed.undecodable == 0
    out["replay counts"] = (replayed.records, replayed.included, replayed.excluded, replayed.by_type)
    out["replay dataset"] = replayed.dataset
    index = await index_from_topics(settings)
    out["lineage"] = [_rendered(build_lineage(index, sample_id)) for sample_id in sample_ids]
    return out


@pytest.fixture
def fresh_readers(monkeypatch: pytest.MonkeyPatch) -> ToolSetCatalog:
    """Readers in this test know no tool set: they must read them from the run's toolsets topic."""
    catalog = ToolSetCatalog()
    codec = EventCodec(toolsets=catalog)
    monkeypatch.setattr(bus.kafka, "default_codec", lambda: codec)
    return catalog


async def test_first_and_current_wire_versions_read_back_identically(
    live_run: LiveRun, tmp_path: Path, fresh_readers: ToolSetCatalog
) -> None:
    events = [event for phase in live_run.run.phases for event in phase]
    expanded = [e.payload.sample_id for e in events if e.event_type == "SampleAdded"][-3:]
    now = await _readings(live_run.settings, tmp_path / "current", expanded)
    assert len(fresh_readers) > 0  # the current run's readers learnt the sets from the topic

    # What was on the wire: digests where the tools were, each set defined once.
    definitions = []
    async for batch in replay(live_run.settings.kafka, live_run.settings.run_id, ["toolsets"]):
        definitions += [d.event for d in batch]
    digests = [d.payload.toolset for d in definitions]
    assert len(digests) == len(set(digests)) == len(fresh_readers)

    with EmbeddedBroker() as broker:
        before = live_run.settings.model_copy(
            update={
                "kafka": live_run.settings.kafka.model_copy(
                    update={"bootstrap_servers": broker.bootstrap_servers}
                )
            }
        )
        await _publish_first_versions(before, events)
        then = await _readings(before, tmp_path / "first", expanded)
        async for batch in replay(before.kafka, before.run_id, ["toolsets"]):
            assert not batch, "the first versions carried their tools inline"
    assert then.keys() == now.keys()
    for key in now:
        assert then[key] == now[key], key


async def test_an_event_whose_tool_set_was_never_defined_is_undecodable_not_lost(
    settings: Settings, fresh_readers: ToolSetCatalog
) -> None:
    """A record that refers to a set the run's topic does not hold: counted undecodable by replay, and
    dead-lettered with the reason by a consumer group, as any unreadable record."""
    from bus.kafka import GroupConsumer
    from schemas.events import Producer
    from tests.foundation.events_factory import event_of, sample_added

    await ensure_topics(settings.kafka, settings.run_id)
    orphan = event_of(sample_added("s_orphan"), settings.run_id)
    writer = EventCodec(toolsets=ToolSetCatalog())  # its definitions never reach the topic
    async with EventProducer(settings.kafka) as producer:
        await producer.send_raw(topic_name(settings.run_id, "samples"), writer.encode(orphan), b"s_orphan")
        stats = bus.kafka.ReplayStats()
        async for _ in replay(settings.kafka, settings.run_id, ["samples"], stats=stats):
            pass
        assert (stats.records, stats.undecodable) == (1, 1)
        async with GroupConsumer(
            settings.kafka,
            settings.run_id,
            ["samples"],
            "g-orphan",
            producer,
            Producer(stage="t", version="0"),
        ) as consumer:
            async for batch in consumer.batches(timeout_ms=300):
                if consumer.dead_lettered:
                    assert batch == []
                    break
    letters = []
    async for batch in replay(settings.kafka, settings.run_id, ["deadletter"]):
        letters += [d.event.payload for d in batch]
    assert [letter.reason.split(":")[0] for letter in letters] == ["unresolved_reference"]
    assert letters[0].raw == writer.encode(orphan)


async def test_stats_count_the_records_they_could_not_decode(settings: Settings) -> None:
    """During a rolling upgrade an older `stats` met a newer writer's events and left them out of
    every table without a word; the count is now part of the stats (and of their JSON)."""
    from tests.foundation.events_factory import event_of, sample_added
    from views.analytics.collect import stats_from_topics
    from views.analytics.tables import stats_document

    await ensure_topics(settings.kafka, settings.run_id)
    async with EventProducer(settings.kafka) as producer:
        await producer.send_all([event_of(sample_added("s_known"), settings.run_id)])
        await producer.send_raw(
            topic_name(settings.run_id, "verdicts"), b"\x00\x01 from a newer writer", b"s_x"
        )
    stats = await stats_from_topics(settings)
    assert (stats.events, stats.undecodable) == (1, 1)
    assert stats_document(stats, [], run_id=settings.run_id)["undecodable"] == 1


def test_lineage_from_the_topics_says_how_many_records_it_could_not_decode(settings: Settings) -> None:
    """A record `lineage` cannot decode (a newer writer's relabel of the sample, say) was left out of
    the history without a word, so the history read as whole; it now says how many, on stderr, as
    `stats` does (the history itself stays what could be read)."""
    import asyncio

    from typer.testing import CliRunner

    from common.logs import LogSettings, configure_logging
    from looptool.cli import app
    from tests.foundation.events_factory import event_of, sample_added

    async def publish() -> None:
        await ensure_topics(settings.kafka, settings.run_id)
        async with EventProducer(settings.kafka) as producer:
            await producer.send_all([event_of(sample_added("s_known"), settings.run_id)])
            await producer.send_raw(
                topic_name(settings.run_id, "labels"), b"\x00\x01 from a newer writer", b"s_known"
            )

    asyncio.run(publish())
    run = ["--bootstrap-servers", settings.kafka.bootstrap_servers or "", "--run-id", settings.run_id]
    try:
        for form in ([], ["--json"]):
            result = CliRunner().invoke(app, [*run, "lineage", "s_known", *form])
            assert result.exit_code == 0, result.output
            assert "s_known" in result.stdout
            warned = " ".join(result.stderr.split())
            assert "1 record(s) of the run could not be decoded and are left out of this history" in warned
    finally:
        configure_logging(LogSettings())  # the CLI bound logging to the runner's (now closed) stream


async def test_a_worker_of_an_older_release_reads_what_a_newer_one_wrote(settings: Settings) -> None:
    """Rolling upgrade: a newer release's producer writes its SampleAdded schema (one more field) to the
    run's schemas topic and then the event. A consumer group member of this release, which never froze
    that version, reads the definition and the event instead of dead-lettering it; a producer of this
    release writes each of its own writer schemas there once."""
    from bus.kafka import GroupConsumer
    from schemas.events import Producer
    from schemas.registry import SchemaRegistry, load_frozen
    from tests.foundation.events_factory import event_of, sample_added
    from tests.foundation.newer_release import newer_definition, newer_schema, written_by_newer_release

    await ensure_topics(settings.kafka, settings.run_id)
    catalog = ToolSetCatalog()
    newer = EventCodec(toolsets=catalog)
    event = event_of(sample_added("s_newer"), settings.run_id)
    schema = newer_schema(
        "SampleAdded",
        lambda fields: fields.append({"name": "ingest_note", "type": "string", "default": ""}),
    )
    async with EventProducer(settings.kafka, newer) as producer:
        await producer.send_all([event_of(sample_added("s_current"), settings.run_id)] * 2)
        await producer.send_all([event_of(newer_definition("SampleAdded", schema), settings.run_id)])
        await producer.send_raw(
            topic_name(settings.run_id, "samples"),
            written_by_newer_release(event, schema, {"ingest_note": "from a newer writer"}, newer),
            b"s_newer",
        )

    definitions = []
    async for batch in replay(settings.kafka, settings.run_id, ["schemas"]):
        definitions += [d.event.payload for d in batch]
    current = default_registry().current("SampleAdded")
    assert [(d.schema_event_type, d.version) for d in definitions] == [
        ("SampleAdded", current.version),  # once, though two events were written with it
        ("SampleAdded", current.version + 1),
    ]

    older = EventCodec(SchemaRegistry(load_frozen()), toolsets=catalog)
    read: list[Event[Any]] = []
    async with (
        EventProducer(settings.kafka, older) as producer,
        GroupConsumer(
            settings.kafka,
            settings.run_id,
            ["samples"],
            "g-older-release",
            producer,
            Producer(stage="t", version="0"),
            codec=older,
        ) as consumer,
    ):
        async for batch in consumer.batches(timeout_ms=300):
            read += [d.event for d in batch]
            if len(read) >= 3 or consumer.dead_lettered:
                break
    assert consumer.dead_lettered == 0
    assert sorted(e.payload.sample_id for e in read) == ["s_current", "s_current", "s_newer"]
    newer_read = next(e for e in read if e.payload.sample_id == "s_newer")
    assert newer_read.model_copy(update={"schema_version": current.version}) == event
    replayed = []
    older = EventCodec(SchemaRegistry(load_frozen()), toolsets=catalog)  # replay learns it too
    async for batch in replay(settings.kafka, settings.run_id, ["samples"], codec=older):
        replayed += [d.event for d in batch]
    assert sorted(replayed, key=lambda e: e.event_id) == sorted(read, key=lambda e: e.event_id)


async def test_an_event_only_a_newer_release_can_read_is_not_committed_past(settings: Settings) -> None:
    """The newer release dropped a field this one requires. A consumer group member of this release
    stops on it (incompatible schema) instead of dead-lettering it and committing past it; replay,
    which commits nothing, counts it undecodable and goes on."""
    from bus.kafka import GroupConsumer
    from schemas.codec import IncompatibleSchemaError
    from schemas.events import Producer
    from schemas.registry import SchemaRegistry, load_frozen
    from tests.foundation.events_factory import event_of, sample_added
    from tests.foundation.newer_release import newer_definition, newer_schema, written_by_newer_release

    await ensure_topics(settings.kafka, settings.run_id)
    catalog = ToolSetCatalog()
    newer = EventCodec(toolsets=catalog)
    schema = newer_schema(
        "SampleAdded",
        lambda fields: fields.__setitem__(slice(None), [f for f in fields if f["name"] != "content_hash"]),
    )
    async with EventProducer(settings.kafka, newer) as producer:
        await producer.send_all([event_of(newer_definition("SampleAdded", schema), settings.run_id)])
        event = event_of(sample_added("s_newer"), settings.run_id)
        await producer.send_raw(
            topic_name(settings.run_id, "samples"), written_by_newer_release(event, schema, {}, newer), b"s"
        )

    older = EventCodec(SchemaRegistry(load_frozen()), toolsets=catalog)
    async with EventProducer(settings.kafka, older) as producer:
        consumer = GroupConsumer(
            settings.kafka,
            settings.run_id,
            ["samples"],
            "g-older-release",
            producer,
            Producer(stage="t", version="0"),
            codec=older,
        )
        async with consumer:
            with pytest.raises(IncompatibleSchemaError, match="content_hash"):
                async for _batch in consumer.batches(timeout_ms=300):
                    pass
    assert consumer.dead_lettered == 0
    stats = bus.kafka.ReplayStats()
    async for _ in replay(settings.kafka, settings.run_id, ["samples"], stats=stats, codec=older):
        pass
    assert (stats.records, stats.undecodable) == (1, 1)
