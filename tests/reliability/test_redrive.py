"""``looptool redrive``: dead-lettered events go back to their topic once they can be read, byte for
byte and under their own ids; what is not an event of the run stays, with the reason."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from typer.testing import CliRunner

from bus.kafka import EventProducer, GroupConsumer, ReplayStats, ensure_topics, replay
from bus.topics import topic_name
from common.logs import LogSettings, configure_logging
from looptool.cli import app
from looptool.config import Settings
from looptool.redrive import redrive
from schemas.codec import EventCodec
from schemas.events import DeadLetter, Event, Producer, make_event, new_event_id
from schemas.interning import ToolSetCatalog
from tests.foundation.events_factory import FLUCTUATION, event_of, one_of_each, sample_added
from views.deadletters import dead_letter_events

STAGE = Producer(stage="judge", version="0")


async def _read(settings: Settings, topic: str) -> tuple[list[Event[Any]], ReplayStats]:
    stats = ReplayStats()
    events: list[Event[Any]] = []
    async for batch in replay(settings.kafka, settings.run_id, [topic], stats=stats):
        events += [d.event for d in batch]
    return events, stats


async def _dead_letter_an_orphan(settings: Settings, orphan: Event[Any], writer: EventCodec) -> None:
    """A consumer met ``orphan`` before its tool set was defined on the run: dead-lettered."""
    async with EventProducer(settings.kafka) as producer:
        await producer.send_raw(topic_name(settings.run_id, "samples"), writer.encode(orphan), b"s_orphan")
        async with GroupConsumer(
            settings.kafka, settings.run_id, ["samples"], "g-redrive", producer, STAGE
        ) as consumer:
            async for _batch in consumer.batches(timeout_ms=300):
                if consumer.dead_lettered:
                    break


async def test_redrive_sends_back_what_can_now_be_read_and_keeps_the_rest(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bus.kafka

    reader_catalog = ToolSetCatalog()  # this process has not seen the orphan's tool set
    monkeypatch.setattr(bus.kafka, "default_codec", lambda: EventCodec(toolsets=reader_catalog))
    import looptool.redrive

    monkeypatch.setattr(looptool.redrive, "default_codec", lambda: EventCodec(toolsets=reader_catalog))
    await ensure_topics(settings.kafka, settings.run_id)
    writer = EventCodec(toolsets=ToolSetCatalog())  # its definitions reach the topic only later
    own_tools = [FLUCTUATION.model_copy(update={"description": "A tool set no other event here has."})]
    orphan = event_of(sample_added("s_orphan").model_copy(update={"tools": own_tools}), settings.run_id)
    await _dead_letter_an_orphan(settings, orphan, writer)

    probe = event_of(next(p for p in one_of_each() if p.EVENT_TYPE == "ProbeResult"), settings.run_id)
    failed_on = make_event(  # a stage's work failed on a readable event (an endpoint refused its input)
        DeadLetter(
            stage="judge",
            reason="input fault: content_filter",
            error_type="InputFault",
            source_ref=probe.event_id,
            key=probe.key.encode(),
            raw=EventCodec().encode(probe),
        ),
        run_id=settings.run_id,
        producer=STAGE,
    )
    answer = make_event(  # a judge's answer text: no event to send back
        DeadLetter(stage="judge", reason="unparseable", error_type="UnparseableVerdict", raw=b"RESPONSE 3"),
        run_id=settings.run_id,
        producer=STAGE,
    )
    record = make_event(
        DeadLetter(
            stage="ingest", reason="bad json", error_type="JSONDecodeError", source_ref="d.jsonl:3", raw=b"{"
        ),
        run_id=settings.run_id,
        producer=Producer(stage="ingest", version="0"),
    )
    async with EventProducer(settings.kafka) as producer:
        await producer.send_all([probe])  # on its topic, where the judge read it and failed
        await producer.send_all([failed_on, answer, record])
    letters = await dead_letter_events(settings)
    assert len(letters) == 4

    # Before the orphan's tool set is on the run, it stays; nothing is sent by a dry run.
    items = await redrive(settings, letters, dry_run=True)
    kept = {
        item.letter.payload.stage + ":" + item.kept_because.split(":")[0] for item in items if not item.sent
    }
    assert kept == {
        "judge:still unreadable",
        "judge:not an event (UnparseableVerdict)",
        "ingest:an ingest record",
    }
    assert [item.event.event_id for item in items if item.sent and item.event] == [probe.event_id]
    assert len((await _read(settings, "probes"))[0]) == 1

    # The definition arrives (the writer is started again); the orphan is sendable now.
    async with EventProducer(settings.kafka, writer) as producer:
        await producer.send_all([orphan.model_copy(update={"event_id": new_event_id()})])
    configure_logging(LogSettings())
    result = await asyncio.to_thread(  # the command runs its own event loop
        CliRunner().invoke,
        app,
        ["--run-id", settings.run_id, "redrive"],
        env={"LOOPTOOL_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers or "", "COLUMNS": "200"},
    )
    configure_logging(LogSettings())
    assert result.exit_code == 0, result.output
    assert "4 dead letters: sent 2, kept 2" in result.output

    samples, stats = await _read(settings, "samples")
    assert stats.undecodable == 0  # the first copy decodes too, now that its set is known
    assert [e.event_id for e in samples].count(orphan.event_id) == 2  # the original and the redriven copy
    assert next(e for e in samples if e.event_id == orphan.event_id) == orphan
    probes, _ = await _read(settings, "probes")
    assert probes == [probe, probe]  # read again by the judge's group, under its own id
