"""Avro single-object encoding of events (magic ``C3 01`` + CRC-64-AVRO fingerprint + body).

Writers use the current schema of the event's type. Readers look the writer schema up by its
fingerprint in the registry of every released version and read the body with that schema alone;
the event's Python model fills what an older writer did not have with its defaults (fields are only
ever added with a default, so this is Avro schema evolution, without resolving schemas per read).
A newer release's writer schema is learnt from the run's ``SchemaRegistered`` definitions (see
:mod:`schemas.interning`); its fields this release does not have are dropped, and one this release
cannot be resolved from is refused as :class:`IncompatibleSchemaError`.

The Avro records keep arbitrary JSON (tool arguments, JSON-Schema parameters, metadata) in string
fields named ``<field>_json``; the codec turns them into the Python object's ``<field>`` and back,
with compact JSON in the value's own key order so equal values always encode to equal bytes. Fields
of the named type ``looptool.types.ToolSetRef`` hold a tool list by its digest
(:mod:`schemas.interning`).

Reading trusts what the writer schema guarantees. For each (writer schema, payload model) pair the
codec compiles a reader that builds the pydantic models straight from the decoded records, without
running validation again: Avro already guarantees strings, numbers, lists and nesting. What Avro
does not guarantee is still checked: ``Literal`` fields (a string must be one of the values), the
shape of JSON fields (an object where a dict is declared), field constraints, and models with
validators of their own (tool parameters, validated once per distinct spec: :data:`VALIDATED_ONCE`).
Validation of everything else stays at the edges where data comes from outside: ingest, HTTP answers,
CLI input. ``EventCodec(validate=True)`` validates every event in full (the reference the benchmark
compares with).

The compiled readers are one function per record type with lists and optionals inline; they set a
model's slots through their descriptors, share instances of frozen all-primitive records (producers),
and convert timestamps themselves (the bodies are read and written with them as plain longs: the same
bytes).

Bodies are read and written with cavro (a Cython Avro library): on the benchmark's event mix it
decodes ~1.7x and encodes ~2x as fast as fastavro, to the same records and the same bytes
(``benchmarks/codec_replay.py`` measures both). fastavro still parses the registry's schemas (canonical
form, fingerprints) and writes the archive's container files.
"""

from __future__ import annotations

import json
import json.encoder
import json.scanner
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Annotated, Any, Literal, Union

import cavro
from fastavro.logical_writers import LOGICAL_WRITERS
from pydantic import BaseModel, TypeAdapter

from schemas.events import PAYLOAD_TYPES, Event, SchemaRegistered, ToolSetRegistered
from schemas.interning import (
    DEFINITION_TYPES,
    SCHEMA_REF,
    TOOLSET_REF,
    Reference,
    ToolSetCatalog,
    default_catalog,
)
from schemas.registry import (
    RegisteredSchema,
    SchemaRegistry,
    SchemaRegistryError,
    default_registry,
    resolution_problem,
)
from toolcall.specs import ToolSpec

MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + 8
JSON_SUFFIX = "_json"
# Encoded bytes of recently encoded events, by identity (events are immutable): a stage checks that
# its outputs encode (streams.stage) and the producer then sends them, so each is encoded once.
ENCODED_MEMO_SIZE = 4096

Converter = Callable[[Any], Any]
NoneType = type(None)

# Records decode to dicts (what the compiled readers take); the compiled writers hand dicts back.
_BODY_OPTIONS = cavro.DEFAULT_OPTIONS.replace(record_decodes_to_dict=True)
# One byte more, read after the body: a body that ends where its record ends has none to give.
_ONE_BYTE = cavro.Schema({"type": "fixed", "name": "OneByte", "size": 1}, _BODY_OPTIONS)


def body_schema(schema: Any) -> cavro.Schema:
    """The schema event bodies are read and written with (cavro's parsed form of ``schema``)."""
    return cavro.Schema(schema, _BODY_OPTIONS)


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_json_encoder = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_jsonable
)
# json.dumps builds its C encoder on every call; this one is built once (same options: compact, key
# order kept, no NaN, no circularity check: event values are trees).
_c_encoder = getattr(json.encoder, "c_make_encoder", None)
_encode_json = (
    _c_encoder(None, _jsonable, json.encoder.encode_basestring, None, ":", ",", False, False, False)
    if _c_encoder is not None
    else None
)


def _ordered_json(value: Any) -> str:
    """Compact JSON that keeps key order: the order of a tool's parameters and of a call's arguments is
    part of what a model is shown (prompts, training targets), so transport must not change it.
    Hashes use :func:`toolcall.canonical.canonical_json`, which sorts."""
    if type(value) is dict and not value:
        return "{}"
    if _encode_json is None or isinstance(value, str):
        return _json_encoder.encode(value)
    return "".join(_encode_json(value, 0))


class EventDecodeError(ValueError):
    """Bytes that are not a readable event. ``reason`` is short and machine-friendly."""

    reason = "undecodable"


class CorruptEventError(EventDecodeError):
    reason = "corrupt"


class UnknownSchemaError(EventDecodeError):
    """No schema this process knows wrote the event. ``fingerprint`` is the writer's, when the bytes
    name one: the run's schemas topic may define it (a newer release wrote the event)."""

    reason = "unknown_schema"

    def __init__(self, message: str, fingerprint: bytes | None = None):
        super().__init__(message)
        self.fingerprint = fingerprint


class IncompatibleSchemaError(UnknownSchemaError):
    """A newer release's schema (read from the run's schemas topic) that this release's version of the
    event cannot be resolved from: a changed type, a new field this version requires. Not corrupt: a
    worker of the newer release reads it."""

    reason = "incompatible_schema"


class UnresolvedReferenceError(EventDecodeError):
    """The event refers to an interned value (a tool set) this process has not read yet.

    Not corrupt: the run's definitions topic holds it (:mod:`bus.kafka` reads it and decodes again);
    only when that topic does not hold it either is the record undecodable.
    """

    reason = "unresolved_reference"

    def __init__(self, reference: Reference):
        super().__init__(f"unknown {reference.kind} {reference.hex}")
        self.reference = reference


# Avro records decoded straight into their frozen pydantic model, validated once per distinct content:
# a tool spec's JSON-Schema parameters are the one part of an event pydantic must check (its own
# validator reads them), and events written before tool sets were interned carry a sample's specs on
# most of its events. Frozen models are immutable, so one validated instance may be shared. Bounded:
# the cache is dropped whole when it reaches its size.
VALIDATED_ONCE: dict[str, type[BaseModel]] = {"looptool.types.ToolSpec": ToolSpec}
VALIDATED_ONCE_SIZE = 4096


# Frozen records of these fields alone are shared between events (a producer): their readers keep one
# instance per distinct value. Bounded like VALIDATED_ONCE.
_SHAREABLE_PRIMITIVES: dict[str, tuple[Any, ...]] = {
    "string": (str,),
    "int": (int,),
    "long": (int,),
    "boolean": (bool,),
}
SHARED_INSTANCES_SIZE = 4096

# The four slots of a pydantic model instance, set through their descriptors (what ``model_construct``
# sets, without ``object.__setattr__`` looking each one up by name).
_SLOT_SETTERS: dict[str, Callable[[Any, Any], None]] = {
    "_set_dict": BaseModel.__dict__["__dict__"].__set__,
    "_set_fields_set": BaseModel.__dict__["__pydantic_fields_set__"].__set__,
    "_set_extra": BaseModel.__dict__["__pydantic_extra__"].__set__,
    "_set_private": BaseModel.__dict__["__pydantic_private__"].__set__,
}


TIMESTAMP_MICROS = "timestamp-micros"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# A ULID: 26 upper-case Crockford base32 characters (its aliases O, I, L included), the first at
# most 7. Ids sort as strings wherever "which came first" is asked (labels, curation), so another
# form (a UUID, a lower-case ULID) would sort wrong for ever.
_ULID_TEXT = re.compile(r"[0-7][0-9A-TV-Z]{25}")
_MICROS_RANGE = range(
    (datetime.min.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1),
    (datetime.max.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1) + 1,
)


def _check_envelope(writer: RegisteredSchema, record: Mapping[str, Any]) -> None:
    """What the schema cannot say about an envelope another writer made: its type is the writer
    schema's, its ids are ULIDs, its time is a datetime. Both readers (models and flat) meet it."""
    if record.get("event_type") != writer.event_type:
        raise CorruptEventError(
            f"the envelope says {record.get('event_type')!r} but the body is a {writer.event_type}"
        )
    for name, value in (
        ("event_id", record.get("event_id")),
        *(("parent id", p) for p in record.get("parent_ids") or ()),
    ):
        if not isinstance(value, str) or _ULID_TEXT.fullmatch(value) is None:
            raise CorruptEventError(
                f"{name} {str(value)[:60]!r} is not a ULID (26 upper-case Crockford base32)"
            )
    produced_at = record.get("produced_at")
    if isinstance(produced_at, int) and produced_at not in _MICROS_RANGE:
        raise CorruptEventError(f"produced_at {produced_at} is out of range (microseconds since the epoch?)")


def _timestamp_from_micros(micros: int) -> datetime:
    """What fastavro's own timestamp-micros reader returns (the epoch plus a timedelta: exact)."""
    return _EPOCH + timedelta(microseconds=micros)


_ONE_MICROSECOND = timedelta(microseconds=1)
_fastavro_timestamp_micros = LOGICAL_WRITERS["long-timestamp-micros"]


def _timestamp_to_micros(value: Any) -> Any:
    """What fastavro's own timestamp-micros writer makes of ``value`` (it passes non-datetimes
    through, and reads a naive datetime as local time)."""
    if type(value) is datetime and value.tzinfo is not None:
        return (value - _EPOCH) // _ONE_MICROSECOND
    return _fastavro_timestamp_micros(value, None)


def _is_timestamp(node: Any) -> bool:
    return isinstance(node, dict) and node.get("logicalType") == TIMESTAMP_MICROS


def _raw_timestamps(schema: Any) -> Any:
    """``schema`` without its timestamp-micros annotations: the same bytes, read as plain longs.

    An Avro library converts each timestamp with a call of its own; the compiled readers convert them
    in their own code, which costs less (fastavro's conversion took 1.5 of its 15 us per event of the
    benchmark's mix)."""
    if isinstance(schema, list):
        return [_raw_timestamps(node) for node in schema]
    if not isinstance(schema, dict):
        return schema
    return {
        key: _raw_timestamps(value)
        for key, value in schema.items()
        if not (key == "logicalType" and value == TIMESTAMP_MICROS)
    }


def _identity(value: Any) -> Any:
    return value


_scan_json = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[attr-defined]


def _loads(text: str) -> Any:
    """``json.loads`` without its wrapper's per-call work, for the compact JSON writers produce."""
    try:
        value, end = _scan_json(text, 0)
    except (StopIteration, ValueError, TypeError):
        return json.loads(text)  # whitespace first, or not JSON: json.loads says what is wrong
    if end != len(text):
        return json.loads(text)
    return value


def _split_optional(annotation: Any) -> tuple[Any, bool]:
    """(the annotation without ``None``, whether ``None`` was allowed)."""
    if typing.get_origin(annotation) in (Union, types.UnionType):
        args = typing.get_args(annotation)
        rest = [arg for arg in args if arg is not NoneType]
        inner = rest[0] if len(rest) == 1 else Union[tuple(rest)]  # noqa: UP007 (a runtime-built union)
        return inner, len(rest) < len(args)
    return annotation, False


def _model_class(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _trusted(model: type[BaseModel]) -> bool:
    """Whether instances may be built without validation: nothing of the model's own runs on input."""
    decorators = model.__pydantic_decorators__
    return not (
        decorators.validators
        or decorators.field_validators
        or decorators.model_validators
        or decorators.root_validators
        or model.__pydantic_post_init__
        or model.__private_attributes__
        or model.__pydantic_root_model__
        or model.model_config.get("extra") == "allow"
    )


def _named_types(schema: Any) -> dict[str, Any]:
    """Every named type a schema defines, by full name (namespaces inherited as Avro says)."""
    found: dict[str, Any] = {}

    def walk(node: Any, namespace: str) -> None:
        if isinstance(node, list):
            for branch in node:
                walk(branch, namespace)
            return
        if not isinstance(node, dict):
            return
        kind = node.get("type")
        if kind in ("record", "enum", "fixed"):
            name = node["name"]
            space = node.get("namespace", namespace) if "." not in name else name.rpartition(".")[0]
            full = name if "." in name else f"{space}.{name}".lstrip(".")
            found[full] = node
            if kind == "record":
                for field in node["fields"]:
                    walk(field["type"], space)
        elif kind == "array":
            walk(node["items"], namespace)
        elif kind == "map":
            walk(node["values"], namespace)
        elif isinstance(kind, dict | list):
            walk(kind, namespace)

    walk(schema, "")
    return found


def _full_name(node: dict[str, Any], named: dict[str, Any]) -> str:
    return next((name for name, definition in named.items() if definition is node), node.get("name", ""))


class _Compiler:
    """Builds readers (Avro record -> Python) and writers (Python -> Avro record) for one schema.

    A reader or writer is a function of one value; :func:`_identity` where nothing needs doing, so
    records of plain fields cost one dict access per field.
    """

    def __init__(
        self, schema: dict[str, Any], codec: EventCodec, *, plain: bool = False, raw_timestamps: bool = False
    ):
        self.named = _named_types(schema)
        self.codec = codec
        self.plain = plain  # build dicts instead of models (the full-validation reference reads them)
        # Records come from :func:`_raw_timestamps` schemas: timestamps as microseconds, to convert here.
        self.raw_timestamps = raw_timestamps
        self._counter = 0

    def resolve(self, node: Any) -> Any:
        if isinstance(node, str):
            return self.named.get(node, node)
        if isinstance(node, dict) and isinstance(node.get("type"), dict | list) and len(node) == 1:
            return self.resolve(node["type"])
        return node

    # --- reading -------------------------------------------------------------------------------------

    def reader(self, node: Any, annotation: Any) -> Converter:
        node = self.resolve(node)
        inner, _optional = _split_optional(annotation)
        if self.plain:
            return self.plain_reader(node, annotation)
        if typing.get_origin(inner) is Annotated:
            return self._validating_reader(node, annotation)
        if isinstance(node, list):  # a union: ["null", X] is an optional X
            branches = [branch for branch in node if branch != "null"]
            if len(branches) != 1:
                return self._validating_reader(node, annotation)
            convert = self.reader(branches[0], inner)
            if convert is _identity:
                return _identity
            return lambda value: None if value is None else convert(value)
        if isinstance(node, str):
            return self._primitive_reader(node, {}, inner)
        kind = node.get("type")
        if kind == "record":
            model = _model_class(inner)
            if model is None:
                return self.plain_reader(node) if inner is Any else self._validating_reader(node, annotation)
            return self._record_reader(node, model)
        if kind == "array":
            if typing.get_origin(inner) is not list and inner is not Any:
                return self._validating_reader(node, annotation)
            item = typing.get_args(inner)[0] if typing.get_args(inner) else Any
            convert = self.reader(node["items"], item)
            if convert is _identity:
                return _identity
            return lambda value: [convert(element) for element in value]
        if kind == "map":
            if typing.get_origin(inner) is not dict and inner is not Any:
                return self._validating_reader(node, annotation)
            value_type = typing.get_args(inner)[1] if typing.get_args(inner) else Any
            convert = self.reader(node["values"], value_type)
            if convert is _identity:
                return _identity
            return lambda value: {key: convert(item) for key, item in value.items()}
        if kind == "fixed" and _full_name(node, self.named) == TOOLSET_REF:
            if inner is str:
                return lambda value: value.hex()
            return self._toolset_reader()
        if kind == "enum":
            return self._primitive_reader("string", {}, inner)
        if isinstance(kind, str):
            return self._primitive_reader(kind, node, inner)
        return self._validating_reader(node, annotation)

    def _primitive_reader(self, kind: str, node: dict[str, Any], annotation: Any) -> Converter:
        logical = node.get("logicalType")
        if logical is not None:
            if annotation is datetime and logical.startswith("timestamp"):
                return (
                    _timestamp_from_micros
                    if self.raw_timestamps and logical == TIMESTAMP_MICROS
                    else _identity
                )
            return self._validating_reader(node, annotation)
        if annotation is Any:
            return _identity
        if typing.get_origin(annotation) is Literal:
            allowed = frozenset(typing.get_args(annotation))

            def literal(value: Any) -> Any:
                if value not in allowed:
                    raise ValueError(f"{value!r} is not one of {sorted(map(str, allowed))}")
                return value

            return literal
        accepted = {
            "string": (str,),
            "bytes": (bytes,),
            "int": (int,),
            "long": (int,),
            "double": (float,),
            "float": (float,),
            "boolean": (bool,),
            "null": (NoneType,),
        }.get(kind, ())
        if annotation in accepted:
            return _identity
        if annotation is float and kind in ("int", "long"):
            return float
        return self._validating_reader(kind, annotation)

    def _validating_reader(self, node: Any, annotation: Any) -> Converter:
        """What the fast path does not cover: read plainly, then validate as pydantic would."""
        plain = self.plain_reader(node, annotation)
        adapter = TypeAdapter(annotation)
        return lambda value: adapter.validate_python(plain(value))

    def _json_reader(self, annotation: Any) -> Converter:
        inner, optional = _split_optional(annotation)
        origin = typing.get_origin(inner)
        args = typing.get_args(inner)
        loads = _loads
        if inner is Any:
            return loads
        if (inner is dict or origin is dict) and (not args or args[1] is Any) and not optional:

            def json_object(text: str) -> Any:
                if text == "{}":
                    return {}
                value = loads(text)
                if type(value) is not dict:
                    raise ValueError(f"expected a JSON object, got {type(value).__name__}")
                return value

            return json_object
        if (inner is list or origin is list) and (not args or args[0] is Any) and not optional:

            def json_array(text: str) -> Any:
                value = loads(text)
                if type(value) is not list:
                    raise ValueError(f"expected a JSON array, got {type(value).__name__}")
                return value

            return json_array
        adapter = TypeAdapter(annotation)
        return lambda text: adapter.validate_python(loads(text))

    def _toolset_reader(self) -> Converter:
        resolve = self.codec.toolsets.resolve

        def toolset(digest: bytes) -> Any:
            tools = resolve(digest)
            if tools is None:
                raise UnresolvedReferenceError(Reference(TOOLSET_REF, digest))
            return tools

        return toolset

    def plain_reader(self, node: Any, annotation: Any = Any) -> Converter:
        """Avro -> plain Python (dicts with the model's field names, JSON fields parsed); ``annotation``
        says what a tool-set digest stands for (the tools, or the digest itself as hex)."""
        node = self.resolve(node)
        inner, _optional = _split_optional(annotation)
        if typing.get_origin(inner) is Annotated:
            inner = typing.get_args(inner)[0]
        if isinstance(node, list):
            branches = [branch for branch in node if branch != "null"]
            if len(branches) == 1:
                convert = self.plain_reader(branches[0], inner)
                return _identity if convert is _identity else (lambda v: None if v is None else convert(v))
            records = [
                self.plain_reader(branch)
                for branch in branches
                if isinstance(self.resolve(branch), dict) and self.resolve(branch).get("type") == "record"
            ]
            if not records:
                return _identity
            first = records[0]
            return lambda value: first(value) if isinstance(value, dict) else value
        if not isinstance(node, dict):
            return _identity
        kind = node.get("type")
        if kind == "record":
            model = _model_class(inner)
            fields = model.model_fields if model is not None else {}
            steps = []
            for field in node["fields"]:
                avro_name = field["name"]
                is_json = avro_name.endswith(JSON_SUFFIX) and field["type"] == "string"
                py_name = avro_name[: -len(JSON_SUFFIX)] if is_json else avro_name
                declared = fields[py_name].annotation if py_name in fields else Any
                steps.append(
                    (py_name, avro_name, _loads if is_json else self.plain_reader(field["type"], declared))
                )

            def record(value: dict[str, Any]) -> dict[str, Any]:
                return {py: convert(value[avro]) for py, avro, convert in steps}

            once = VALIDATED_ONCE.get(_full_name(node, self.named))
            if once is not None and self.codec.validated_once:
                return self._validated_once(node, once, record)
            return record
        if kind in ("array", "map"):
            args = typing.get_args(inner)
            declared = (args[0] if kind == "array" else args[1]) if args else Any
            convert = self.plain_reader(node["items"] if kind == "array" else node["values"], declared)
            if convert is _identity:
                return _identity
            if kind == "array":
                return lambda value: [convert(v) for v in value]
            return lambda value: {k: convert(v) for k, v in value.items()}
        if kind == "fixed" and _full_name(node, self.named) == TOOLSET_REF:
            return (lambda value: value.hex()) if inner is str else self._toolset_reader()
        if self.raw_timestamps and node.get("logicalType") == TIMESTAMP_MICROS:
            return _timestamp_from_micros
        return _identity

    def _validated_once(self, node: dict[str, Any], model: type[BaseModel], plain: Converter) -> Converter:
        validated: dict[tuple[Any, ...], BaseModel] = {}
        names = [field["name"] for field in node["fields"]]

        def once(value: dict[str, Any]) -> Any:
            key = tuple(value[name] for name in names)
            try:
                instance = validated.get(key)
            except TypeError:  # a field that is not hashable (a nested record): validate every time
                return model.model_validate(plain(value))
            if instance is None:
                instance = model.model_validate(plain(value))
                if len(validated) >= VALIDATED_ONCE_SIZE:
                    validated.clear()
                validated[key] = instance
            return instance

        return once

    def _record_reader(self, node: dict[str, Any], model: type[BaseModel]) -> Converter:
        full_name = _full_name(node, self.named)
        if full_name in VALIDATED_ONCE and self.codec.validated_once:
            return self._validated_once(node, VALIDATED_ONCE[full_name], self.plain_reader(node, model))
        if not _trusted(model):
            plain = self.plain_reader(node, model)
            return lambda value: model.model_validate(plain(value))
        avro_fields = {field["name"]: field for field in node["fields"]}
        env: dict[str, Any] = {
            "_new": model.__new__,
            "_cls": model,
            # One set per model, shared: every field is set, and pydantic copies it before changing it.
            "_fields": set(model.model_fields),
            **_SLOT_SETTERS,
        }
        items = []
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if field.metadata:  # constraints (ge=, max_length=...) are checked, as validation would
                annotation = Annotated[annotation, *field.metadata]
            slot = self._slot()
            if name in avro_fields:
                read = self._expression(avro_fields[name]["type"], annotation, f"r[{name!r}]", env)
                items.append(f"{name!r}: {read}")
                continue
            if name + JSON_SUFFIX in avro_fields and avro_fields[name + JSON_SUFFIX]["type"] == "string":
                convert = self._json_reader(annotation)
                expression = f"r[{name + JSON_SUFFIX!r}]"
            elif not field.is_required():  # a field this writer did not have: its default
                if field.default_factory is not None:
                    env[slot] = field.default_factory
                    items.append(f"{name!r}: {slot}()")
                else:
                    default = field.default
                    if isinstance(default, list | dict | set):
                        env[slot] = lambda default=default: type(default)(default)
                        items.append(f"{name!r}: {slot}()")
                    else:
                        env[slot] = default
                        items.append(f"{name!r}: {slot}")
                continue
            else:
                missing = f"{model.__name__}.{name}"

                def absent(_record: Any, missing: str = missing) -> Any:
                    raise ValueError(f"the writer schema has no field for required {missing}")

                env[slot] = absent
                items.append(f"{name!r}: {slot}(r)")
                continue
            if convert is _identity:
                items.append(f"{name!r}: {expression}")
            else:
                env[slot] = convert
                items.append(f"{name!r}: {slot}({expression})")
        build = (
            "    o = _new(_cls)\n"
            f"    _set_dict(o, {{{', '.join(items)}}})\n"
            "    _set_fields_set(o, _fields)\n"
            "    _set_extra(o, None)\n"
            "    _set_private(o, None)\n"
        )
        shared = self._shared_key(node, model)
        if shared is None:
            source = f"def read(r):\n{build}    return o\n"
        else:
            # Immutable through and through (frozen, primitive fields): one instance per distinct value.
            env["_shared"] = {}
            env["_shared_size"] = SHARED_INSTANCES_SIZE
            source = (
                "def read(r):\n"
                f"    k = ({shared})\n"
                "    o = _shared.get(k)\n"
                "    if o is not None:\n"
                "        return o\n"
                f"{build}"
                "    if len(_shared) >= _shared_size:\n"
                "        _shared.clear()\n"
                "    _shared[k] = o\n"
                "    return o\n"
            )
        exec(compile(source, f"<reader of {full_name} as {model.__name__}>", "exec"), env)
        return env["read"]  # type: ignore[no-any-return]

    def _expression(self, node: Any, annotation: Any, value: str, env: dict[str, Any]) -> str:
        """Python source reading the Avro value ``value`` as ``annotation``, as :meth:`reader` would,
        with lists and optionals written inline: a record's reader then makes no call per list or
        optional field, only per nested record and JSON field."""
        resolved = self.resolve(node)
        inner, _optional = _split_optional(annotation)
        if typing.get_origin(inner) is not Annotated:
            if isinstance(resolved, list):
                branches = [branch for branch in resolved if branch != "null"]
                if len(branches) == 1:
                    variable = self._variable()
                    read = self._expression(branches[0], inner, variable, env)
                    if read == variable:
                        return value
                    return f"(None if ({variable} := {value}) is None else {read})"
            elif (
                isinstance(resolved, dict)
                and resolved.get("type") == "array"
                and (typing.get_origin(inner) is list or inner is Any)
            ):
                item = typing.get_args(inner)[0] if typing.get_args(inner) else Any
                variable = self._variable()
                read = self._expression(resolved["items"], item, variable, env)
                return value if read == variable else f"[{read} for {variable} in {value}]"
        convert = self.reader(node, annotation)
        if convert is _identity:
            return value
        slot = self._slot()
        env[slot] = convert
        return f"{slot}({value})"

    def _shared_key(self, node: dict[str, Any], model: type[BaseModel]) -> str | None:
        """The key expression of a record whose instances may be shared: a frozen model whose every
        field is a primitive the writer schema holds as is (a producer); None for any other."""
        if not model.model_config.get("frozen"):
            return None
        avro_fields = {field["name"]: field for field in node["fields"]}
        if set(avro_fields) != set(model.model_fields):
            return None
        for name, field in model.model_fields.items():
            avro_type = self.resolve(avro_fields[name]["type"])
            if field.metadata or not isinstance(avro_type, str) or avro_type not in _SHAREABLE_PRIMITIVES:
                return None
            if field.annotation not in _SHAREABLE_PRIMITIVES[avro_type]:
                return None
        return "".join(f"r[{name!r}], " for name in model.model_fields)

    # --- writing -------------------------------------------------------------------------------------

    def writer(self, node: Any, annotation: Any) -> Converter:
        node = self.resolve(node)
        inner, _optional = _split_optional(annotation)
        if typing.get_origin(inner) is Annotated:
            inner = typing.get_args(inner)[0]
        if isinstance(node, list):
            branches = [branch for branch in node if branch != "null"]
            if len(branches) != 1:
                return self.plain_writer(node)
            convert = self.writer(branches[0], inner)
            if convert is _identity:
                return _identity
            return lambda value: None if value is None else convert(value)
        if not isinstance(node, dict):
            return _identity
        if self.raw_timestamps and node.get("logicalType") == TIMESTAMP_MICROS:
            return _timestamp_to_micros
        kind = node.get("type")
        if kind == "record":
            model = _model_class(inner)
            return self._record_writer(node, model) if model is not None else self.plain_writer(node)
        if kind == "array":
            item = typing.get_args(inner)[0] if typing.get_args(inner) else Any
            convert = self.writer(node["items"], item)
            return _identity if convert is _identity else (lambda value: [convert(v) for v in value])
        if kind == "map":
            value_type = typing.get_args(inner)[1] if typing.get_args(inner) else Any
            convert = self.writer(node["values"], value_type)
            return (
                _identity
                if convert is _identity
                else (lambda value: {k: convert(v) for k, v in value.items()})
            )
        if kind == "fixed" and _full_name(node, self.named) == TOOLSET_REF:
            return self._toolset_writer()
        return _identity

    def _toolset_writer(self) -> Converter:
        intern = self.codec.toolsets.intern
        codec = self.codec

        def toolset(value: Any) -> bytes:
            if isinstance(value, str):  # a digest (the definition event's own key)
                return bytes.fromhex(value)
            digest = intern(value)
            codec._references.append(Reference(TOOLSET_REF, digest))
            return digest

        return toolset

    def plain_writer(self, node: Any) -> Converter:
        """Plain Python (dicts by field name) -> Avro."""
        node = self.resolve(node)
        if isinstance(node, list):
            if self.raw_timestamps and any(_is_timestamp(self.resolve(branch)) for branch in node):
                return _timestamp_to_micros  # it passes every other value through
            records = [
                self.plain_writer(branch)
                for branch in node
                if isinstance(self.resolve(branch), dict) and self.resolve(branch).get("type") == "record"
            ]
            if not records:
                return _identity
            convert = records[0]
            return lambda value: convert(value) if isinstance(value, dict | BaseModel) else value
        if not isinstance(node, dict):
            return _identity
        if self.raw_timestamps and _is_timestamp(node):
            return _timestamp_to_micros
        kind = node.get("type")
        if kind == "record":
            steps = []
            for field in node["fields"]:
                avro_name = field["name"]
                is_json = avro_name.endswith(JSON_SUFFIX) and field["type"] == "string"
                py_name = avro_name[: -len(JSON_SUFFIX)] if is_json else avro_name
                steps.append(
                    (py_name, avro_name, _ordered_json if is_json else self.plain_writer(field["type"]))
                )

            def record(value: Any) -> dict[str, Any]:
                if isinstance(value, BaseModel):
                    value = value.__dict__
                return {avro: convert(value.get(py)) for py, avro, convert in steps}

            return record
        if kind == "array":
            convert = self.plain_writer(node["items"])
            return _identity if convert is _identity else (lambda value: [convert(v) for v in value])
        if kind == "map":
            convert = self.plain_writer(node["values"])
            return (
                _identity
                if convert is _identity
                else (lambda value: {k: convert(v) for k, v in value.items()})
            )
        if kind == "fixed" and _full_name(node, self.named) == TOOLSET_REF:
            return self._toolset_writer()
        return _identity

    def _record_writer(self, node: dict[str, Any], model: type[BaseModel]) -> Converter:
        fields = model.model_fields
        env: dict[str, Any] = {}
        items = []
        for avro in node["fields"]:
            avro_name = avro["name"]
            slot = self._slot()
            is_json = avro_name.endswith(JSON_SUFFIX) and avro["type"] == "string"
            py_name = avro_name[: -len(JSON_SUFFIX)] if is_json and avro_name not in fields else avro_name
            if py_name in fields:
                if is_json and py_name != avro_name:
                    env[slot] = _ordered_json
                    items.append(f"{avro_name!r}: {slot}(d[{py_name!r}])")
                    continue
                convert = self.writer(avro["type"], fields[py_name].annotation)
                if convert is _identity:
                    items.append(f"{avro_name!r}: d[{py_name!r}]")
                else:
                    env[slot] = convert
                    items.append(f"{avro_name!r}: {slot}(d[{py_name!r}])")
            elif "default" in avro:  # a field the model does not know: the schema's default
                env[slot] = avro["default"]
                items.append(f"{avro_name!r}: {slot}")
            else:
                raise ValueError(f"{model.__name__} has no field for {avro_name!r} of {node.get('name')}")
        source = f"def write(o):\n    d = o.__dict__\n    return {{{', '.join(items)}}}\n"
        exec(compile(source, f"<writer of {model.__name__}>", "exec"), env)
        return env["write"]  # type: ignore[no-any-return]

    def _slot(self) -> str:
        self._counter += 1
        return f"_c{self._counter}"

    def _variable(self) -> str:
        self._counter += 1
        return f"_v{self._counter}"


class EventCodec:
    """Encode events to Avro single-object bytes and decode them back, across schema versions."""

    def __init__(
        self,
        registry: SchemaRegistry | None = None,
        *,
        validated_once: bool = True,
        validate: bool = False,
        toolsets: ToolSetCatalog | None = None,
    ):
        self.registry = registry or default_registry()
        self.validated_once = validated_once  # off only to measure what it saves (benchmarks)
        self.validate = validate  # full pydantic validation of every event read (the reference)
        self.toolsets = toolsets if toolsets is not None else default_catalog()
        self._readers: dict[bytes, tuple[RegisteredSchema, Any, Converter]] = {}
        self._unresolvable: dict[bytes, str] = {}  # learned writer schemas: why this version cannot read them
        self._writers: dict[tuple[bytes, type], tuple[Converter, Any]] = {}
        self._references: list[Reference] = []
        self._encoded: dict[int, tuple[Event[Any], bytes, tuple[Reference, ...]]] = {}

    # --- writing -------------------------------------------------------------------------------------

    def _writer(self, schema: RegisteredSchema, event_class: type) -> tuple[Converter, Any]:
        """(the compiled writer, the schema its records are written with)."""
        key = (schema.fingerprint, event_class)
        known = self._writers.get(key)
        if known is None:
            writer = _Compiler(schema.schema, self, raw_timestamps=True).writer(schema.schema, event_class)
            known = (writer, body_schema(_raw_timestamps(schema.schema)))
            self._writers[key] = known
        return known

    def encode(self, event: Event[Any]) -> bytes:
        """The event's bytes with the current schema of its type; :attr:`references` then lists the
        interned values (tool sets) they refer to."""
        known = self._encoded.get(id(event))
        if known is not None and known[0] is event:
            self.references = known[2]
            return known[1]
        data = self.encode_as(event, self.registry.current(event.event_type))
        if len(self._encoded) >= ENCODED_MEMO_SIZE:
            self._encoded.clear()
        self._encoded[id(event)] = (event, data, self.references)
        return data

    def encode_as(self, event: Event[Any], schema: RegisteredSchema) -> bytes:
        """``event`` in the layout of ``schema`` (any registered version of its type)."""
        self._references = []
        writer, write_schema = self._writer(schema, type(event))
        record = writer(event)
        record["schema_version"] = schema.version
        body = write_schema.binary_encode(record)
        if event.event_type not in DEFINITION_TYPES:  # definitions stay readable by every release
            self._references.append(_schema_reference(schema.fingerprint))
        self.references: tuple[Reference, ...] = tuple(dict.fromkeys(self._references))
        return MAGIC + schema.fingerprint + body

    def definition(self, reference: Reference) -> ToolSetRegistered | SchemaRegistered:
        """The payload that defines ``reference`` (the tool set or writer schema it stands for) for the
        run's log."""
        if reference.kind == SCHEMA_REF:
            schema = self.registry.by_fingerprint(reference.digest)
            if schema is None:
                raise LookupError(f"no writer schema {reference.hex} in this process")
            return schema_definition(schema)
        tools = self.toolsets.tools(reference.digest)
        if reference.kind != TOOLSET_REF or tools is None:
            raise LookupError(f"no {reference.kind} {reference.hex} in this process")
        return ToolSetRegistered(toolset=reference.hex, tools=list(tools))

    # --- reading -------------------------------------------------------------------------------------

    def _reader(self, writer: RegisteredSchema) -> tuple[RegisteredSchema, Any, Converter]:
        """(the writer schema, the schema its bodies are read with, the compiled reader)."""
        known = self._readers.get(writer.fingerprint)
        if known is None:
            payload_cls = PAYLOAD_TYPES.get(writer.event_type)
            if payload_cls is None:
                raise UnknownSchemaError(f"no payload type for event type {writer.event_type!r}")
            if writer.learned:
                self._check_resolvable(writer)
            event_class = Event[payload_cls]  # type: ignore[valid-type]
            if self.validate:
                plain = _Compiler(writer.schema, self, plain=True).plain_reader(writer.schema, event_class)
                reader = lambda record: event_class.model_validate(plain(record))  # noqa: E731
                known = (writer, body_schema(writer.schema), reader)
            else:
                compiler = _Compiler(writer.schema, self, raw_timestamps=True)
                read_schema = body_schema(_raw_timestamps(writer.schema))
                known = (writer, read_schema, compiler.reader(writer.schema, event_class))
            self._readers[writer.fingerprint] = known
        return known

    def _check_resolvable(self, writer: RegisteredSchema) -> None:
        """Refuse a learned writer schema this release's version of its type cannot be resolved from
        (checked once per schema, as Avro schema resolution would, on generated records)."""
        current = self.registry.current(writer.event_type)
        problem = self._unresolvable.get(writer.fingerprint)
        if problem is None:  # "" once checked and resolvable
            problem = self._unresolvable[writer.fingerprint] = (
                resolution_problem(writer.schema, current.schema) or ""
            )
        if problem:
            raise IncompatibleSchemaError(
                f"{writer.event_type} v{writer.version} (another release's, fingerprint "
                f"{writer.fingerprint.hex()}) cannot be read as this release's v{current.version}: "
                f"{problem}; a worker of that release reads it",
                writer.fingerprint,
            )

    def _learn(self, definition: SchemaRegistered) -> None:
        try:
            fp = bytes.fromhex(definition.fingerprint)
            self.registry.learn(fp, definition.schema_event_type, definition.version, definition.definition)
        except (ValueError, SchemaRegistryError) as error:
            raise CorruptEventError(f"invalid SchemaRegistered content: {error}") from error

    def read_record(self, data: bytes) -> tuple[RegisteredSchema, dict[str, Any]]:
        """The writer schema of ``data`` and its body as an Avro record (timestamps as microseconds),
        with the checks :meth:`decode` makes of the bytes themselves."""
        writer, _reader, record = self._read(data)
        return writer, record

    def _read(self, data: bytes) -> tuple[RegisteredSchema, Converter, dict[str, Any]]:
        if type(data) is not bytes:
            if not isinstance(data, bytes | bytearray | memoryview):
                raise CorruptEventError(f"expected bytes, got {type(data).__name__}")
            data = bytes(data)
        if len(data) < HEADER_SIZE or data[:2] != MAGIC:
            raise CorruptEventError("not Avro single-object encoding (bad magic bytes or too short)")
        known = self._readers.get(data[2:HEADER_SIZE])
        if known is None:
            found = self.registry.by_fingerprint(data[2:HEADER_SIZE])
            if found is None:
                raise UnknownSchemaError(
                    f"unknown writer schema fingerprint {data[2:HEADER_SIZE].hex()}", data[2:HEADER_SIZE]
                )
            known = self._reader(found)
        writer, read_schema, reader = known
        body = cavro.MemoryReader(data[HEADER_SIZE:])
        try:
            record = read_schema.binary_read(body)
        except Exception as exc:  # garbage bodies raise many types (EOFError, ValueError, ...)
            raise CorruptEventError(f"corrupt {writer.event_type} body: {exc!r}") from exc
        try:
            _ONE_BYTE.binary_read(body)
        except EOFError:
            pass
        else:
            raise CorruptEventError("trailing bytes after the event")
        _check_envelope(writer, record)
        return writer, reader, record

    def decode(self, data: bytes) -> Event[Any]:
        writer, reader, record = self._read(data)
        try:
            event = reader(record)
        except EventDecodeError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise CorruptEventError(f"invalid {writer.event_type} content: {exc}") from exc
        if type(event.payload) is ToolSetRegistered:
            digest = bytes.fromhex(event.payload.toolset)
            try:
                self.toolsets.add(digest, event.payload.tools)
            except ValueError as exc:
                raise CorruptEventError(f"invalid {writer.event_type} content: {exc}") from exc
            self.toolsets.mark_on_log(event.run_id, digest)
        elif type(event.payload) is SchemaRegistered:
            self._learn(event.payload)
        return event

    def decode_many(self, blobs: Sequence[bytes]) -> list[Event[Any]]:
        return [self.decode(blob) for blob in blobs]


@cache
def _schema_reference(fingerprint: bytes) -> Reference:
    return Reference(SCHEMA_REF, fingerprint)


def schema_definition(schema: RegisteredSchema) -> SchemaRegistered:
    """The definition of a writer schema, as the run's schemas topic carries it."""
    return SchemaRegistered(
        fingerprint=schema.fingerprint.hex(),
        schema_event_type=schema.event_type,
        version=schema.version,
        definition=schema.schema,
    )


@cache
def default_codec() -> EventCodec:
    return EventCodec()
