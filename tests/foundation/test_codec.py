"""Avro single-object codec: round trips, schema evolution, corrupt and unknown input."""

from __future__ import annotations

import contextlib
import copy
import io
import itertools
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import (
    MAGIC,
    CorruptEventError,
    EventCodec,
    EventDecodeError,
    UnknownSchemaError,
    UnresolvedReferenceError,
)
from schemas.events import PAYLOAD_TYPES, Producer, ToolSetRegistered, derived_event_id, new_event_id
from schemas.interning import SCHEMA_REF, TOOLSET_REF, Reference, ToolSetCatalog, toolset_digest
from schemas.registry import (
    SchemaRegistry,
    compose_event_schema,
    default_registry,
    load_frozen,
    source_event_types,
    unfrozen_changes,
)
from tests.foundation.events_factory import FLUCTUATION, beyond_avro, event_of, one_of_each, sample_added


@pytest.fixture(scope="module")
def codec() -> EventCodec:
    return EventCodec()


@pytest.mark.parametrize("payload", one_of_each(), ids=lambda p: p.EVENT_TYPE)
def test_every_event_type_round_trips(codec: EventCodec, payload) -> None:
    event = event_of(payload, parent_ids=[new_event_id()], checkpoint_id="ckpt-0")
    data = codec.encode(event)
    assert data[:2] == MAGIC
    assert data[2:10] == default_registry().current(payload.EVENT_TYPE).fingerprint
    decoded = codec.decode(data)
    assert decoded == event
    assert type(decoded.payload) is type(payload)
    assert codec.encode(decoded) == data  # canonical: equal events encode to equal bytes


def test_every_payload_type_has_a_schema_with_matching_fields() -> None:
    assert sorted(PAYLOAD_TYPES) == source_event_types() == default_registry().event_types()
    for event_type, cls in PAYLOAD_TYPES.items():
        payload_schema = compose_event_schema(event_type)["fields"][-1]["type"]
        avro_fields = {f["name"].removesuffix("_json") for f in payload_schema["fields"]}
        assert avro_fields == set(cls.model_fields), event_type


def test_sources_are_frozen() -> None:
    """Editing a schema source without `looptool schemas freeze` must fail here."""
    assert unfrozen_changes() == []
    frozen = load_frozen()
    for event_type in source_event_types():
        versions = [entry["version"] for entry in frozen[event_type]]
        assert versions == list(range(1, len(versions) + 1))


def _registry_with_old_sample_added() -> tuple[SchemaRegistry, SchemaRegistry]:
    """(registry knowing only an older SampleAdded, registry knowing old + current)."""
    current = compose_event_schema("SampleAdded")
    old = copy.deepcopy(current)
    payload = old["fields"][-1]["type"]
    payload["fields"] = [f for f in payload["fields"] if f["name"] not in ("metadata_json", "seed_sample_id")]
    old_only = SchemaRegistry({})
    old_only.register("SampleAdded", 1, old)
    both = SchemaRegistry({})
    both.register("SampleAdded", 1, old)
    both.register("SampleAdded", 2, current)
    return old_only, both


def test_freeze_refuses_a_version_that_cannot_read_the_previous_ones_events(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The registry is append-only and docs/analytics.md tells consumers how resolution behaves:
    a change resolution cannot bridge is frozen only when asked for (as v3's tool-set digests were)."""
    import schemas.registry as registry

    current = compose_event_schema("SampleAdded")
    breaking = copy.deepcopy(current)
    payload = breaking["fields"][-1]["type"]
    payload["fields"].append({"name": "priority", "type": "int"})  # added without a default
    defaulted = copy.deepcopy(current)
    defaulted["fields"][-1]["type"]["fields"].append({"name": "priority", "type": "int", "default": 0})
    assert registry.resolution_problem(current, defaulted) is None
    assert "priority" in (registry.resolution_problem(current, breaking) or "")
    history = load_frozen()["SampleAdded"]  # v2 -> v3 replaced inline tools by a digest
    assert registry.resolution_problem(history[0]["schema"], history[1]["schema"]) is None
    assert registry.resolution_problem(history[1]["schema"], history[2]["schema"]) is not None

    monkeypatch.setattr(registry, "REGISTRY_FILE", tmp_path / "registry.json")
    (tmp_path / "registry.json").write_text(json.dumps({"SampleAdded": [history[-1]]}), encoding="utf-8")
    monkeypatch.setattr(registry, "unfrozen_changes", lambda: ["SampleAdded"])
    monkeypatch.setattr(registry, "compose_event_schema", lambda event_type: breaking)
    with pytest.raises(registry.SchemaRegistryError, match="--breaking"):
        registry.freeze()
    assert len(load_frozen()["SampleAdded"]) == 1  # nothing written
    assert registry.freeze(breaking=True) == ["SampleAdded"]
    assert len(load_frozen()["SampleAdded"]) == 2


def test_reader_resolves_an_older_writer_schema_with_defaults() -> None:
    old_only, both = _registry_with_old_sample_added()
    event = event_of(sample_added())
    written_with_old = EventCodec(old_only).encode(event)
    decoded = EventCodec(both).decode(written_with_old)
    assert decoded.schema_version == 1
    assert decoded.payload.metadata == {}  # field added later: its default
    assert decoded.payload.seed_sample_id is None
    assert decoded.payload.label == event.payload.label
    assert decoded.payload.tools == event.payload.tools
    # The current writer is used for new events, and old readers cannot read it.
    assert EventCodec(both).decode(EventCodec(both).encode(event)).schema_version == 2
    with pytest.raises(UnknownSchemaError):
        EventCodec(old_only).decode(EventCodec(both).encode(event))


def test_unknown_fingerprint_is_a_clear_error(codec: EventCodec) -> None:
    data = codec.encode(event_of(sample_added()))
    with pytest.raises(UnknownSchemaError, match="unknown writer schema fingerprint"):
        codec.decode(MAGIC + b"\x00" * 8 + data[10:])


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda d: b"", "bad magic"),
        (lambda d: b"{" + d[1:], "bad magic"),
        (lambda d: d[:10] + d[10:40], "corrupt"),
        (lambda d: d + b"\x00\x01", "trailing bytes"),
    ],
    ids=["empty", "json-not-avro", "truncated", "trailing"],
)
def test_corrupt_bytes_are_a_clear_error(codec: EventCodec, mangle, message: str) -> None:
    data = codec.encode(event_of(sample_added()))
    with pytest.raises(CorruptEventError, match=message):
        codec.decode(mangle(data))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_arbitrary_bytes_only_ever_raise_decode_errors(
    codec: EventCodec, blob: bytes, with_header: bool
) -> None:
    header = MAGIC + default_registry().current("SampleAdded").fingerprint if with_header else b""
    with contextlib.suppress(EventDecodeError):
        codec.decode(header + blob)


def test_json_fields_hold_compact_json_in_the_given_key_order(codec: EventCodec) -> None:
    event = event_of(sample_added())
    schema = default_registry().current("SampleAdded")
    record = fastavro.schemaless_reader(io.BytesIO(codec.encode(event)[10:]), schema.parsed)
    arguments = record["payload"]["label"]["calls"][0]["arguments_json"]
    assert arguments == json.dumps(event.payload.label.calls[0].arguments, separators=(",", ":"))


def test_derived_ids_are_deterministic_and_sort_after_their_parents() -> None:
    parents = [new_event_id(), new_event_id()]
    first = derived_event_id(parents, "probe", "ckpt-1")
    assert first == derived_event_id(list(reversed(parents)), "probe", "ckpt-1")
    assert first != derived_event_id(parents, "probe", "ckpt-2")
    assert first != derived_event_id(parents, "judge", "ckpt-1")
    assert all(first > parent for parent in parents)
    assert len(first) == 26
    with pytest.raises(ValueError):
        derived_event_id([], "probe")


def test_new_event_ids_are_unique_and_time_ordered() -> None:
    ids = [new_event_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert [i[:10] for i in ids] == sorted(i[:10] for i in ids)  # the time prefix never goes back


def test_transport_keeps_the_order_of_parameters_and_arguments() -> None:
    """A prompt and a training target must render the same after a trip through the topics: tokenizers
    and models see key order (sorted keys once turned ``flightNumber, date`` into ``date, flightNumber``)."""
    import asyncio

    from toolcall.parsing import render_action
    from toolcall.prompts import render_tools
    from world import World
    from world.seed import build_seed_set, seed_events

    seeds = asyncio.run(build_seed_set(World(0), 20, noise_rate=0.2))
    codec = EventCodec()
    reordered = 0
    for item, event in zip(seeds.samples, seed_events(seeds, "order"), strict=True):
        decoded = codec.decode(codec.encode(event)).payload
        assert render_tools(decoded.tools) == render_tools(item.sample.tools)
        assert render_action(decoded.label) == render_action(item.sample.label)
        names = [list(tool.to_openai()["parameters"]["properties"]) for tool in item.sample.tools]
        reordered += any(order != sorted(order) for order in names)
    assert reordered, "the world should have tools whose parameters are not in alphabetical order"


def test_tool_specs_are_validated_once_and_shared_between_events() -> None:
    codec, plain = EventCodec(), EventCodec(validated_once=False)
    first, second = event_of(sample_added("s_a")), event_of(sample_added("s_b"))
    a, b = (codec.decode(codec.encode(e)) for e in (first, second))
    assert a == first and b == second
    assert a.payload.tools[0] is b.payload.tools[0]  # one validated, immutable instance
    for payload in one_of_each():  # the same events with and without the cache
        data = codec.encode(event_of(payload))
        assert codec.decode(data) == plain.decode(data)


def _with_bad_parameters(data: bytes, schema, tools_path) -> bytes:
    """``data`` (written with ``schema``) with its first tool's parameters made invalid JSON Schema."""
    record = fastavro.schemaless_reader(io.BytesIO(data[10:]), schema.parsed)
    tools_path(record)[0]["parameters_json"] = json.dumps({"type": "object", "properties": []})
    body = io.BytesIO()
    fastavro.schemaless_writer(body, schema.parsed, record)
    return data[:10] + body.getvalue()


def test_an_invalid_tool_spec_is_rejected_on_every_read() -> None:
    """Avro-valid bytes whose parameters are not a JSON-Schema object: corrupt, each time (never cached),
    whether the tools travel inline (first versions) or in the run's tool-set definition."""
    codec = EventCodec(toolsets=ToolSetCatalog())
    event = event_of(sample_added())
    v1 = default_registry().versions("SampleAdded")[0]
    inline = _with_bad_parameters(codec.encode_as(event, v1), v1, lambda r: r["payload"]["tools"])
    definition = event_of(ToolSetRegistered(toolset=toolset_digest([FLUCTUATION]).hex(), tools=[FLUCTUATION]))
    schema = default_registry().current("ToolSetRegistered")
    defined = _with_bad_parameters(codec.encode(definition), schema, lambda r: r["payload"]["tools"])
    for data, event_type in ((inline, "SampleAdded"), (defined, "ToolSetRegistered")):
        for _ in range(2):
            with pytest.raises(CorruptEventError, match=f"invalid {event_type} content"):
                codec.decode(data)


def test_tool_sets_travel_once_and_events_refer_to_them_by_digest() -> None:
    """Current writers put a 16-byte digest where the tools were; the definition carries the tools and
    is checked against its digest; an unknown digest is an unresolved reference, not corruption."""
    writer = EventCodec(toolsets=ToolSetCatalog())
    event = event_of(sample_added())
    data = writer.encode(event)
    digest = toolset_digest(event.payload.tools)
    schema = default_registry().current("SampleAdded").fingerprint
    assert writer.references == (Reference(TOOLSET_REF, digest), Reference(SCHEMA_REF, schema))
    assert digest in data and FLUCTUATION.description.encode() not in data
    inline = writer.encode_as(event, default_registry().versions("SampleAdded")[0])
    assert len(data) < len(inline) - 100

    reader = EventCodec(toolsets=ToolSetCatalog())  # another process: has not read the definition
    with pytest.raises(UnresolvedReferenceError) as unresolved:
        reader.decode(data)
    assert unresolved.value.reference.digest == digest
    definition = writer.encode(event_of(writer.definition(unresolved.value.reference)))
    assert writer.references == ()
    reader.decode(definition)
    assert reader.decode(data) == event
    assert reader.decode(inline).payload == event.payload  # the first version (tools inline) too

    forged = event_of(ToolSetRegistered(toolset=digest.hex(), tools=[FLUCTUATION, FLUCTUATION]))
    with pytest.raises(CorruptEventError, match="digest"):
        EventCodec(toolsets=ToolSetCatalog()).decode(writer.encode(forged))


def test_tool_sets_that_share_a_tool_keep_one_copy_of_it() -> None:
    """A data set with a tool set per record (xLAM's rows draw a few of 3,673 APIs) kept every set's
    specs whole in every process: ~16 kB a set of three as models, a gigabyte for 60k rows. A tool is
    now kept once, whichever way its sets came (a definition read, or a list written), and events
    decode to the same tools as before."""
    from world import World

    tools = [tool.spec for tool in World(0).toolset]
    writer, catalog = EventCodec(toolsets=ToolSetCatalog()), ToolSetCatalog()
    reader = EventCodec(toolsets=catalog)
    events = [
        event_of(sample_added().model_copy(update={"tools": [tools[i], tools[i + 1]]})) for i in range(4)
    ]
    for event in events:
        data = writer.encode(event)
        for reference in writer.references:
            if reference.kind == TOOLSET_REF:  # a fresh copy of each spec, as read from the topic
                reader.decode(writer.encode(event_of(writer.definition(reference))))
        decoded = reader.decode(data)
        assert decoded == event
    sets = [catalog.tools(toolset_digest(event.payload.tools)) or () for event in events]
    assert all(a[1] is b[0] for a, b in itertools.pairwise(sets))  # tools[i + 1]: one object
    assert len({id(tool) for kept in sets for tool in kept}) == 5

    written = ToolSetCatalog()  # the writer's side: lists interned as they are encoded
    first = written.intern([tools[0].model_copy(), tools[1].model_copy()])
    second = written.intern([tools[1].model_copy(), tools[2].model_copy()])
    assert written.tools(first)[1] is written.tools(second)[0]  # type: ignore[index]


def test_the_fast_reader_builds_what_full_validation_builds() -> None:
    """Every event type at every frozen version: the trusting reader and full pydantic validation agree
    (values, types, and what they dump to)."""
    catalog = ToolSetCatalog()
    fast, full = EventCodec(toolsets=catalog), EventCodec(toolsets=catalog, validate=True)
    for payload in one_of_each():
        event = event_of(payload, parent_ids=[new_event_id()], checkpoint_id="c")
        for schema in default_registry().versions(payload.EVENT_TYPE):
            data = fast.encode_as(event, schema)
            mine, reference = fast.decode(data), full.decode(data)
            assert mine == reference
            assert type(mine.payload) is type(reference.payload)
            assert mine.model_dump(mode="json") == reference.model_dump(mode="json")
            assert mine.model_dump_json() == reference.model_dump_json()


def test_what_avro_does_not_guarantee_is_still_checked() -> None:
    """A Literal field outside its values, or a JSON field of the wrong shape: corrupt."""
    codec = EventCodec()
    for data in beyond_avro(codec):
        with pytest.raises(CorruptEventError, match="invalid SampleAdded content"):
            codec.decode(data)


def test_rich_tool_schemas_travel_whole_and_dead_letters_of_v1_still_decode(codec: EventCodec) -> None:
    """anyOf, constraints and kept keywords ride in parameters_json (no schema change for them); the
    DeadLetter v1 writer (before ``category``) still decodes, its category None."""
    from schemas.events import DeadLetter
    from toolcall.specs import load_tool
    from toolcall.types import Sample

    tool = load_tool(
        {
            "name": "book",
            "parameters": {
                "type": "object",
                "properties": {
                    "nights": {"type": "integer", "minimum": 1, "maximum": 30, "title": "Nights"},
                    "budget": {"anyOf": [{"type": "number"}, {"type": "null"}], "default": None},
                    "code": {"type": "string", "pattern": "^[A-Z]{3}$", "x-original-type": "String"},
                },
                "required": ["nights"],
            },
        }
    )
    base = sample_added()
    sample = Sample(tools=[tool], messages=base.messages, label=base.label)
    event = event_of(base.model_copy(update={"tools": [tool], "content_hash": sample.content_hash()}))
    decoded = codec.decode(codec.encode(event))
    assert decoded.payload.tools == [tool]
    assert decoded.payload.tools[0].parameters.to_json_schema() == tool.parameters.to_json_schema()
    v1 = next(entry for entry in load_frozen()["DeadLetter"] if entry["version"] == 1)["schema"]
    old_only = SchemaRegistry({})
    old_only.register("DeadLetter", 1, v1)
    letter = event_of(DeadLetter(stage="ingest", reason="line 3: bad", error_type="RecordError", raw=b"{"))
    old_bytes = EventCodec(old_only).encode(letter)
    read = codec.decode(old_bytes)
    assert read.schema_version == 1 and read.payload.category is None and read.payload.reason == "line 3: bad"
    current = codec.decode(codec.encode(event_of(letter.payload.model_copy(update={"category": "c"}))))
    assert current.schema_version == 2 and current.payload.category == "c"


@pytest.mark.parametrize(
    "produced_at",
    [
        datetime(2026, 12, 6, 1, 2, 3, 456789, tzinfo=UTC),
        datetime(1969, 7, 20, 20, 17, 40, 1, tzinfo=UTC),  # before the epoch
        datetime(2026, 1, 1, 9, 30, tzinfo=timezone(timedelta(hours=-5))),  # another offset
    ],
)
def test_timestamps_encode_and_decode_as_fastavro_converts_them(produced_at: datetime) -> None:
    """The codec converts timestamps itself (fastavro reads and writes them as plain longs): the bytes
    and the datetimes read back are those of fastavro's own timestamp-micros conversion."""
    codec = EventCodec(toolsets=ToolSetCatalog())
    event = event_of(sample_added("s_t"), produced_at=produced_at)
    data = codec.encode(event)
    schema = codec.registry.current(event.event_type)
    record = fastavro.schemaless_reader(io.BytesIO(data[10:]), schema.parsed)
    assert record["produced_at"] == produced_at
    body = io.BytesIO()
    fastavro.schemaless_writer(body, schema.parsed, record)
    assert data[10:] == body.getvalue()
    decoded = EventCodec(toolsets=codec.toolsets).decode(data)
    assert decoded == event
    assert decoded.produced_at == record["produced_at"] and decoded.produced_at.tzinfo == UTC


def test_producers_are_shared_between_decoded_events() -> None:
    """Frozen records of primitive fields alone (a producer) are built once per distinct value."""
    codec = EventCodec()
    first, second = event_of(sample_added("s_a")), event_of(sample_added("s_b"))
    a, b = (codec.decode(codec.encode(e)) for e in (first, second))
    assert a == first and b == second
    assert a.producer is b.producer
    other = event_of(sample_added("s_c")).model_copy(update={"producer": Producer(stage="x", version="2")})
    c = codec.decode(codec.encode(other))
    assert c.producer == Producer(stage="x", version="2") and c.producer is not a.producer


def _foreign_bytes(event: Any, **envelope: Any) -> bytes:
    """``event`` as another tool's producer might write it: valid Avro of its writer schema, with
    envelope fields of its own."""
    from schemas.codec import default_codec
    from schemas.registry import default_registry

    codec = default_codec()
    schema = default_registry().current(event.event_type)
    writer, write_schema = codec._writer(schema, type(event))
    record = writer(event)
    record["schema_version"] = schema.version
    record.update(envelope)
    return bytes(MAGIC + schema.fingerprint + write_schema.binary_encode(record))


@pytest.mark.parametrize(
    ("envelope", "says"),
    [
        # the body is a SampleAdded: the store's rows of a Verdict then failed with KeyError for ever
        ({"event_type": "Verdict"}, "envelope says 'Verdict' but the body is a SampleAdded"),
        ({"event_type": "SampleAddedV9"}, "envelope says 'SampleAddedV9'"),
        # a UUID sorted after every ULID: a foreign relabel stayed the current label for ever, and
        # curation stopped on it ("Encoded ULID has to be exactly 26 characters long")
        ({"event_id": "0b0f8a8e-6a51-4d8e-9c1e-5b0e5e7f2f0a"}, "event_id '0b0f8a8e"),
        ({"event_id": "01jgq3v2k8x9y0z1a2b3c4d5e6"}, "is not a ULID"),
        ({"parent_ids": ["not-a-ulid"]}, "parent id 'not-a-ulid'"),
        # nanoseconds where microseconds belong: the codec refused it, the flat reader took it
        ({"produced_at": 1_765_000_000_000_000_000}, "produced_at 1765000000000000000 is out of range"),
    ],
)
def test_an_envelope_the_schema_cannot_check_is_refused_by_both_readers(
    envelope: dict[str, Any], says: str
) -> None:
    from schemas.flat import FlatReader

    data = _foreign_bytes(event_of(sample_added("s_foreign"), "r"), **envelope)
    for reader in (EventCodec(), FlatReader()):
        with pytest.raises(CorruptEventError, match=re.escape(says)):
            reader.decode(data)


def test_golden_style_ids_with_crockford_aliases_still_decode_and_derive() -> None:
    event = event_of(sample_added("s"), "r", event_id="01JGOLDEN00000000000000012")
    decoded = EventCodec().decode(_foreign_bytes(event))
    assert decoded.event_id == "01JGOLDEN00000000000000012"
    derived = derived_event_id([decoded.event_id], "curate")  # its time part read through the aliases
    assert derived[:10] == "01JG01DEN1" and len(derived) == 26


def _with_confidence(fields: list[dict[str, Any]]) -> None:
    fields.append({"name": "judge_confidence", "type": ["null", "double"], "default": None})


def test_an_event_a_newer_release_wrote_reads_once_its_schema_is_defined() -> None:
    """Rolling upgrade: a newer release added a field to SampleAdded. This release's reader does not
    know the fingerprint until it reads the newer schema's definition; then it reads the event into
    its own version (the new field dropped, the rest as written), through models and flat alike."""
    from schemas.flat import FlatReader, flatten
    from tests.foundation.newer_release import newer_definition, newer_schema, written_by_newer_release

    catalog = ToolSetCatalog()
    writer = EventCodec(toolsets=catalog)
    event = event_of(sample_added(), parent_ids=[new_event_id()], checkpoint_id="c")
    schema = newer_schema("SampleAdded", _with_confidence)
    data = written_by_newer_release(event, schema, {"judge_confidence": 0.75}, writer)

    reader = EventCodec(SchemaRegistry(load_frozen()), toolsets=catalog)  # an older release's worker
    with pytest.raises(UnknownSchemaError) as unknown:
        reader.decode(data)
    assert unknown.value.fingerprint == data[2:10]

    definition = writer.encode(event_of(newer_definition("SampleAdded", schema)))
    assert writer.references == ()  # a definition names no schema of its own: every release reads it
    reader.decode(definition)
    read = reader.decode(data)
    assert read.schema_version == event.schema_version + 1
    assert read.model_copy(update={"schema_version": event.schema_version}) == event
    flat = FlatReader(reader).decode(data)
    assert flat == flatten(read)
    assert default_registry().versions("SampleAdded")[-1].version == event.schema_version  # untouched


def test_a_newer_schema_this_release_cannot_resolve_is_refused_with_the_reason() -> None:
    """A newer release dropped a field this release requires: not corrupt, not silently defaulted;
    refused as incompatible (a worker of that release reads it). A definition whose schema does not
    have its fingerprint is corrupt, and teaches the reader nothing."""
    from schemas.codec import IncompatibleSchemaError
    from tests.foundation.newer_release import newer_definition, newer_schema, written_by_newer_release

    catalog = ToolSetCatalog()
    writer = EventCodec(toolsets=catalog)
    event = event_of(sample_added())
    reader = EventCodec(SchemaRegistry(load_frozen()), toolsets=catalog)

    def drop_sample_id(fields: list[dict[str, Any]]) -> None:
        fields[:] = [field for field in fields if field["name"] != "sample_id"]

    schema = newer_schema("SampleAdded", drop_sample_id)
    data = written_by_newer_release(event, schema, {}, writer)
    reader.decode(writer.encode(event_of(newer_definition("SampleAdded", schema))))
    for _ in range(2):  # checked once, refused every time
        with pytest.raises(IncompatibleSchemaError, match="sample_id") as refused:
            reader.decode(data)
        assert refused.value.reason == "incompatible_schema"

    confident = newer_schema("SampleAdded", _with_confidence)
    forged = newer_definition("SampleAdded", confident).model_copy(update={"fingerprint": "00" * 8})
    with pytest.raises(CorruptEventError, match="fingerprint"):
        reader.decode(writer.encode(event_of(forged)))
    with pytest.raises(UnknownSchemaError):
        reader.decode(written_by_newer_release(event, confident, {"judge_confidence": 1.0}, writer))
