"""Bytes as a newer release of looptool would write them: a schema version this release never froze.

A rolling upgrade has workers of two releases on one run. The newer release's writers frame events
with a fingerprint the older release does not know; these helpers make such a schema (from this
release's current one) and such bytes, the way that release's codec would.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable
from typing import Any

import fastavro

from schemas.codec import MAGIC, EventCodec
from schemas.events import Event, SchemaRegistered
from schemas.registry import default_registry, fingerprint


def newer_schema(event_type: str, change: Callable[[list[dict[str, Any]]], None]) -> dict[str, Any]:
    """This release's current schema of ``event_type`` with ``change`` made to its payload's fields."""
    schema = copy.deepcopy(default_registry().current(event_type).schema)
    payload = next(field for field in schema["fields"] if field["name"] == "payload")
    change(payload["type"]["fields"])
    return schema


def newer_definition(event_type: str, schema: dict[str, Any]) -> SchemaRegistered:
    """What the newer release's producer writes to the run's schemas topic."""
    return SchemaRegistered(
        fingerprint=fingerprint(schema)[0].hex(),
        schema_event_type=event_type,
        version=default_registry().current(event_type).version + 1,
        definition=schema,
    )


def written_by_newer_release(
    event: Event[Any], schema: dict[str, Any], extra: dict[str, Any], codec: EventCodec
) -> bytes:
    """``event`` framed and written with ``schema``, its new payload fields set from ``extra``."""
    _writer, record = codec.read_record(codec.encode(event))
    record = {**record, "schema_version": record["schema_version"] + 1}
    payload = {**record["payload"], **extra}
    fields = next(f for f in schema["fields"] if f["name"] == "payload")["type"]["fields"]
    record["payload"] = {f["name"]: payload[f["name"]] for f in fields}
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(copy.deepcopy(schema)), record)
    return MAGIC + fingerprint(schema)[0] + body.getvalue()
