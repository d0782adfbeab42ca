"""redrive: send dead-lettered events back to their topic, once this release can read them.

A stage dead-letters what it could not read or process: bytes it could not decode (a schema it did
not know, a tool set whose definition had not arrived, another run's event) and events its work
failed on (an endpoint that refused the input, a bug). Once the cause is gone (an upgraded worker, a
fixed setting or bug), ``looptool redrive`` publishes those events again, on the topic they belong
to, under their own ids: the stage reads them as any other record. Nothing is deleted; the dead
letters stay as the record of what happened.

Rules:

- only a dead letter whose raw record is an event of this run is sent, after it decodes now (with
  the run's definitions) and belongs on its topic; the rest is kept with the reason: a judge's or
  verifier's answer text, an ingest record (run ``looptool ingest`` on the file again: its ids are
  deterministic, so records already in are not added twice), a record kept only as a prefix;
- each event is sent once per redrive, however many dead letters name it;
- sending one twice (two redrives) duplicates no result: a stage's outputs take ids derived from
  their inputs, and every reader keeps the first copy of an id; it costs the stage's work again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bus.kafka import DefinitionReader, EventProducer, placed
from bus.topics import TopicError, topic_for_event
from common.logs import get_logger
from looptool.config import Settings
from schemas.codec import MAGIC, EventDecodeError, default_codec
from schemas.events import RAW_IS_A_PREFIX, DeadLetter, Event

log = get_logger(__name__)


@dataclass(frozen=True)
class RedriveItem:
    """What redriving one dead letter means: the event to send to ``topic``, or why it is kept."""

    letter: Event[DeadLetter]
    event: Event[Any] | None = None
    topic: str | None = None
    kept_because: str = ""

    @property
    def sent(self) -> bool:
        return self.event is not None


def _kept(letter: Event[DeadLetter], why: str) -> RedriveItem:
    return RedriveItem(letter, kept_because=why)


async def plan_redrive(settings: Settings, letters: Sequence[Event[DeadLetter]]) -> list[RedriveItem]:
    """One item per dead letter: the event it holds, readable now and on its topic, or why not."""
    definitions = DefinitionReader(settings.kafka, settings.run_id, default_codec())
    items: list[RedriveItem] = []
    chosen: set[str] = set()
    try:
        for letter in letters:
            payload = letter.payload
            if RAW_IS_A_PREFIX in payload.reason:
                items.append(_kept(letter, "only a prefix of the record was kept"))
                continue
            if payload.stage == "ingest":
                items.append(
                    _kept(letter, f"an ingest record: run `looptool ingest` on {payload.source_ref} again")
                )
                continue
            try:
                event = await definitions.decode(payload.raw)
            except EventDecodeError as error:
                if not payload.raw.startswith(MAGIC):
                    items.append(_kept(letter, f"not an event ({payload.error_type}): nothing to send back"))
                else:
                    items.append(_kept(letter, f"still unreadable: {error.reason}: {error}"))
                continue
            try:
                topic = payload.source_topic or topic_for_event(settings.run_id, event.event_type)
                placed(event, settings.run_id, topic)
            except (TopicError, EventDecodeError) as error:
                items.append(_kept(letter, str(error)))
                continue
            if event.event_id in chosen:
                items.append(_kept(letter, f"{event.event_id} is sent for an earlier dead letter"))
                continue
            chosen.add(event.event_id)
            items.append(RedriveItem(letter, event=event, topic=topic))
    finally:
        await definitions.close()
    return items


async def redrive(
    settings: Settings, letters: Sequence[Event[DeadLetter]], *, dry_run: bool
) -> list[RedriveItem]:
    """Plan, and unless ``dry_run`` publish each sendable event's raw bytes on its topic, acknowledged."""
    items = await plan_redrive(settings, letters)
    to_send = [item for item in items if item.sent]
    if dry_run or not to_send:
        return items
    async with EventProducer(settings.kafka) as producer:
        for item in to_send:
            assert item.event is not None and item.topic is not None
            await producer.send_raw(item.topic, item.letter.payload.raw, item.event.key.encode("utf-8"))
    log.info("redrive.sent", run_id=settings.run_id, events=len(to_send), kept=len(items) - len(to_send))
    return items
