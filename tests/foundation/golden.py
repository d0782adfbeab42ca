"""Golden bytes: one event of every type at every frozen schema version, as written on the day it was frozen.

``tests/foundation/golden/<EventType>.v<N>.bin`` holds the event's Avro single-object bytes written
with version N's schema; ``.json`` beside it holds what the codec read from those bytes then. The
files are written once per frozen version and never rewritten: an event written today must decode,
to the same values, after every future change of schemas or codec (test_golden.py checks it).

After ``looptool schemas freeze``, write the new version's golden files with
``python -m tests.foundation.golden`` (it writes only the missing ones).
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro

from schemas.codec import MAGIC, EventCodec
from schemas.events import Event
from schemas.registry import RegisteredSchema, default_registry
from tests.foundation.events_factory import event_of, one_of_each

GOLDEN_DIR = Path(__file__).with_name("golden")
WRITTEN_AT = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def golden_paths(event_type: str, version: int) -> tuple[Path, Path]:
    stem = f"{event_type}.v{version}"
    return GOLDEN_DIR / f"{stem}.bin", GOLDEN_DIR / f"{stem}.json"


def sample_event(event_type: str) -> Event[Any]:
    """The factory's event of ``event_type``, with a fixed envelope (id, time) so its bytes are stable."""
    for index, payload in enumerate(one_of_each()):
        event = event_of(payload, event_id=f"01JGOLDEN{index:017d}", checkpoint_id="ckpt-golden")
        if event.event_type == event_type:
            return event.model_copy(update={"produced_at": WRITTEN_AT})
    raise LookupError(f"tests/foundation/events_factory.one_of_each() has no {event_type}: add one")


def encode_as(event: Event[Any], schema: RegisteredSchema, codec: EventCodec) -> bytes:
    """``event`` in version ``schema``'s layout (fields a later version added are left out)."""
    record = codec._convert(schema, True)(event.model_dump(mode="python"))
    record["schema_version"] = schema.version
    buffer = io.BytesIO()
    buffer.write(MAGIC)
    buffer.write(schema.fingerprint)
    fastavro.schemaless_writer(buffer, schema.parsed, record)
    return buffer.getvalue()


def write_missing() -> list[Path]:
    """Golden files for every frozen (event type, version) that has none yet."""
    codec = EventCodec()
    registry = default_registry()
    GOLDEN_DIR.mkdir(exist_ok=True)
    written = []
    for event_type in registry.event_types():
        for schema in registry.versions(event_type):
            binary, expected = golden_paths(event_type, schema.version)
            if binary.exists():
                continue
            data = encode_as(sample_event(event_type), schema, codec)
            decoded = codec.decode(data).model_dump(mode="json")
            binary.write_bytes(data)
            expected.write_text(json.dumps(decoded, indent=1, sort_keys=True) + "\n", encoding="utf-8")
            written += [binary, expected]
    return written


if __name__ == "__main__":
    for path in write_missing():
        print(f"wrote {path}")
