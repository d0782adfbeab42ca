"""Avro single-object encoding of events (magic ``C3 01`` + CRC-64-AVRO fingerprint + body).

Writers use the current schema of the event's type. Readers look the writer schema up by its
fingerprint in the registry of every released version and resolve it to the current one (Avro
schema evolution: fields added with a default read as that default).

The Avro records keep arbitrary JSON (tool arguments, JSON-Schema parameters, metadata) in string
fields named ``<field>_json``; the codec turns them into the Python object's ``<field>`` and back,
with canonical JSON so equal values always encode to equal bytes.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from functools import cache
from typing import Any

import fastavro
from pydantic import BaseModel

from schemas.events import PAYLOAD_TYPES, Event
from schemas.registry import RegisteredSchema, SchemaRegistry, default_registry
from toolcall.specs import ToolSpec

MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + 8
JSON_SUFFIX = "_json"


def _ordered_json(value: Any) -> str:
    """Compact JSON that keeps key order: the order of a tool's parameters and of a call's arguments is
    part of what a model is shown (prompts, training targets), so transport must not change it.
    Hashes use :func:`toolcall.canonical.canonical_json`, which sorts."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


Converter = Callable[[Any], Any]


class EventDecodeError(ValueError):
    """Bytes that are not a readable event. ``reason`` is short and machine-friendly."""

    reason = "undecodable"


class CorruptEventError(EventDecodeError):
    reason = "corrupt"


class UnknownSchemaError(EventDecodeError):
    reason = "unknown_schema"


def _identity(value: Any) -> Any:
    return value


def _record_fields(schema: Any, named: dict[str, Any]) -> Any:
    """Resolve a (possibly named-reference) schema node to its definition."""
    if isinstance(schema, str):
        return named.get(schema, schema)
    return schema


# Avro records decoded straight into their frozen pydantic model, validated once per distinct content:
# a sample's tool list rides on most of its events (samples, probes, verdicts, expansions, curation),
# and validating the same JSON-Schema parameters again on every read was the decoder's largest cost.
# Frozen models are immutable, so one validated instance may be shared; pydantic accepts an instance
# of the field's model as it is. Bounded: the cache is dropped whole when it reaches its size.
VALIDATED_ONCE: dict[str, type[BaseModel]] = {"looptool.types.ToolSpec": ToolSpec}
VALIDATED_ONCE_SIZE = 4096


def _build(schema: Any, named: dict[str, Any], to_avro: bool, validated_once: bool = False) -> Converter:
    """A converter for one schema node: Python-friendly dict <-> Avro-friendly dict.

    With ``validated_once`` (decoding only), records named in :data:`VALIDATED_ONCE` come out as
    validated model instances, cached by their Avro field values.
    """
    schema = _record_fields(schema, named)
    if isinstance(schema, list):  # union: convert with the first branch that applies
        branches = [_record_fields(branch, named) for branch in schema]
        record_branches = [b for b in branches if isinstance(b, dict) and b.get("type") == "record"]
        if not record_branches:
            return _identity
        convert = _build(record_branches[0], named, to_avro, validated_once)
        return lambda value: convert(value) if isinstance(value, dict) else value
    if not isinstance(schema, dict):
        return _identity
    kind = schema.get("type")
    if kind == "record":
        full_name = f"{schema.get('namespace', '')}.{schema['name']}".lstrip(".")
        named.setdefault(full_name, schema)
        steps: list[tuple[str, str, Converter, bool]] = []
        for field in schema["fields"]:
            avro_name = field["name"]
            is_json = avro_name.endswith(JSON_SUFFIX) and field["type"] == "string"
            py_name = avro_name[: -len(JSON_SUFFIX)] if is_json else avro_name
            steps.append((py_name, avro_name, _build(field["type"], named, to_avro, validated_once), is_json))
        if to_avro:

            def record_to_avro(value: dict[str, Any]) -> dict[str, Any]:
                out = {}
                for py_name, avro_name, convert, is_json in steps:
                    item = value.get(py_name)
                    out[avro_name] = _ordered_json(item) if is_json else convert(item)
                return out

            return record_to_avro

        def record_from_avro(value: dict[str, Any]) -> dict[str, Any]:
            out = {}
            for py_name, avro_name, convert, is_json in steps:
                item = value.get(avro_name)
                out[py_name] = json.loads(item) if is_json and item is not None else convert(item)
            return out

        model = VALIDATED_ONCE.get(full_name) if validated_once else None
        if model is None:
            return record_from_avro
        validated: dict[tuple[Any, ...], BaseModel] = {}
        names = [avro_name for _, avro_name, _, _ in steps]

        def model_from_avro(value: dict[str, Any]) -> Any:
            key = tuple(value.get(name) for name in names)
            try:
                instance = validated.get(key)
            except TypeError:  # a field that is not hashable (a nested record): validate every time
                return model.model_validate(record_from_avro(value))
            if instance is None:
                instance = model.model_validate(record_from_avro(value))
                if len(validated) >= VALIDATED_ONCE_SIZE:
                    validated.clear()
                validated[key] = instance
            return instance

        return model_from_avro
    if kind == "array":
        convert_item = _build(schema["items"], named, to_avro, validated_once)
        if convert_item is _identity:
            return _identity
        return lambda value: [convert_item(item) for item in value] if value is not None else value
    if kind == "map":
        convert_value = _build(schema["values"], named, to_avro, validated_once)
        if convert_value is _identity:
            return _identity
        return lambda value: {k: convert_value(v) for k, v in value.items()} if value is not None else value
    return _identity


class EventCodec:
    """Encode events to Avro single-object bytes and decode them back, across schema versions."""

    def __init__(self, registry: SchemaRegistry | None = None, *, validated_once: bool = True):
        self.registry = registry or default_registry()
        self.validated_once = validated_once  # off only to measure what it saves (benchmarks/codec.py)
        self._converters: dict[bytes, tuple[Converter, Converter]] = {}

    def _convert(self, schema: RegisteredSchema, to_avro: bool) -> Converter:
        pair = self._converters.get(schema.fingerprint)
        if pair is None:
            pair = (
                _build(schema.schema, {}, True),
                _build(schema.schema, {}, False, self.validated_once),
            )
            self._converters[schema.fingerprint] = pair
        return pair[0] if to_avro else pair[1]

    def encode(self, event: Event[Any]) -> bytes:
        schema = self.registry.current(event.event_type)
        record = self._convert(schema, True)(event.model_dump(mode="python"))
        record["schema_version"] = schema.version
        buffer = io.BytesIO()
        buffer.write(MAGIC)
        buffer.write(schema.fingerprint)
        fastavro.schemaless_writer(buffer, schema.parsed, record)
        return buffer.getvalue()

    def decode(self, data: bytes) -> Event[Any]:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise CorruptEventError(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
        if len(data) < HEADER_SIZE or data[:2] != MAGIC:
            raise CorruptEventError("not Avro single-object encoding (bad magic bytes or too short)")
        writer = self.registry.by_fingerprint(data[2:HEADER_SIZE])
        if writer is None:
            raise UnknownSchemaError(f"unknown writer schema fingerprint {data[2:HEADER_SIZE].hex()}")
        reader = self.registry.current(writer.event_type)
        body = io.BytesIO(data[HEADER_SIZE:])
        try:
            record = fastavro.schemaless_reader(
                body, writer.parsed, reader.parsed if reader is not writer else None
            )
        except Exception as exc:  # fastavro raises many types on garbage bodies
            raise CorruptEventError(f"corrupt {writer.event_type} body: {exc!r}") from exc
        if body.tell() != len(data) - HEADER_SIZE:
            raise CorruptEventError(f"{len(data) - HEADER_SIZE - body.tell()} trailing bytes after the event")
        payload_cls = PAYLOAD_TYPES.get(writer.event_type)
        if payload_cls is None:
            raise UnknownSchemaError(f"no payload type for event type {writer.event_type!r}")
        try:
            values = self._convert(reader, False)(record)
            return Event[payload_cls].model_validate(values)  # type: ignore[valid-type]
        except (ValueError, TypeError) as exc:
            raise CorruptEventError(f"invalid {writer.event_type} content: {exc}") from exc


@cache
def default_codec() -> EventCodec:
    return EventCodec()
