"""Events as the sample store keeps them: envelope values and ordered JSON, without pydantic models.

A :class:`FlatEvent` holds what the store's rows are made of (:mod:`views.rows`): the envelope's
values, the payload's single-value fields (strings, numbers, booleans, None) and the compact JSON, in
the run's key order (:func:`ordered_json`), of each of its other fields and of the whole payload: the
order of a tool's parameters and of a call's arguments is part of what a model is shown, so the store
keeps it, as the export does (hashes never use this text: they sort, with
:func:`toolcall.canonical.canonical_json`). A replay into the store needs nothing else, so
:class:`FlatReader` reads it straight from the Avro record: per writer schema it compiles one
function that writes the JSON text from the record's values, where decoding to models and dumping
them again cost about twice as much (``benchmarks/codec_replay.py``).

The JSON is the same text, byte for byte, as ``ordered_json(payload.model_dump(mode="json"))`` (a
model's fields in their declared order, a dict's keys in theirs; a float that is not finite is null):
tests compare both ways on every event type and schema version, and on random content. What the
compiled readers do not cover (a writer schema with inline tool specs, whose validators must run;
bytes; unions of records; field constraints) is decoded to models and flattened from them
(:func:`flatten`), as is every event a process holds as a model. What a model read checks, the
compiled readers check too (``Literal`` values, the shape of JSON fields), so a record either
flattens to what its model would or is refused as corrupt.
"""

from __future__ import annotations

import json
import json.encoder
import math
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter

from schemas.codec import (
    _EPOCH,
    _ONE_MICROSECOND,
    JSON_SUFFIX,
    VALIDATED_ONCE,
    CorruptEventError,
    EventCodec,
    EventDecodeError,
    UnresolvedReferenceError,
    _Compiler,
    _full_name,
    _model_class,
    _ordered_json,
    _split_optional,
    _trusted,
    default_codec,
)
from schemas.events import PAYLOAD_TYPES, Event
from schemas.interning import TOOLSET_REF, Reference
from schemas.registry import RegisteredSchema
from toolcall.canonical import compact_json
from toolcall.specs import ToolSpec, tools_json


def ordered_json(value: Any) -> str:
    """Compact JSON keeping key order, as the codec writes ``*_json`` fields (its C encoder, built
    once), where a float that is not finite is written as null, as pydantic writes it in JSON: JSON has
    no such numbers, and a perplexity of inf or a NaN training loss must not stop the store. The form
    of the store's JSON."""
    try:
        return _ordered_json(value)
    except ValueError:  # a float that is not finite (the encoder's only ValueError)
        return compact_json(_finite(value))


def _finite(value: Any) -> Any:
    """``value`` with every float that is not finite replaced by None."""
    if type(value) is float:
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


json_string = json.encoder.encode_basestring  # JSON of a str (non-ASCII kept, as compact_json)
_SCALARS = (str, int, float, bool)
# Per JSON field of a compiled reader: the ordered JSON of recent short texts (memory stays small).
JSON_TEXTS_KEPT = 4096
JSON_TEXT_KEPT_CHARS = 256


@dataclass(slots=True)
class FlatEvent:
    """An event as the store's rows take it (see the module's doc)."""

    event_id: str
    event_type: str
    schema_version: int
    run_id: str
    produced_at: int  # microseconds since the epoch, UTC
    producer: str  # "stage@version"
    parent_ids: list[str]
    checkpoint_id: str | None
    fields: dict[str, Any]  # the payload's single-value fields (see :func:`scalar_fields`)
    json: dict[str, str]  # ordered JSON (:func:`ordered_json`) of each of the payload's other fields
    payload_json: str  # ordered JSON of the whole payload


def _is_scalar(annotation: Any) -> bool:
    inner, _optional = _split_optional(annotation)
    if typing.get_origin(inner) is Literal:
        return all(isinstance(value, str) for value in typing.get_args(inner))
    return inner in _SCALARS


def scalar_fields(model: type[BaseModel]) -> frozenset[str]:
    """The fields of ``model`` that hold one value (a string, number, boolean or None): a
    :class:`FlatEvent` has their values; it has every other field's JSON."""
    known = _SCALAR_FIELDS.get(model)
    if known is None:
        known = _SCALAR_FIELDS[model] = frozenset(
            name for name, field in model.model_fields.items() if _is_scalar(field.annotation)
        )
    return known


_SCALAR_FIELDS: dict[type[BaseModel], frozenset[str]] = {}


# --- from a model ------------------------------------------------------------------------------------

_WITHOUT_TOOLS = {"tools"}


def flatten(event: Event[Any]) -> FlatEvent:
    """The flat form of an event held as a model."""
    fields, pieces, payload_text = flat_payload(event.payload)
    produced_at = event.produced_at
    if produced_at.tzinfo is None:
        produced_at = produced_at.replace(tzinfo=UTC)
    return FlatEvent(
        event_id=event.event_id,
        event_type=event.event_type,
        schema_version=event.schema_version,
        run_id=event.run_id,
        produced_at=(produced_at - _EPOCH) // _ONE_MICROSECOND,
        producer=f"{event.producer.stage}@{event.producer.version}",
        parent_ids=list(event.parent_ids),
        checkpoint_id=event.checkpoint_id,
        fields=fields,
        json=pieces,
        payload_json=payload_text,
    )


def flat_payload(payload: BaseModel) -> tuple[dict[str, Any], dict[str, str], str]:
    """A payload model's single values, its other fields' ordered JSON, and its own."""
    model = type(payload)
    scalars = scalar_fields(model)
    values = payload.__dict__
    tools = values.get("tools")
    spliced = bool(tools) and type(tools) is list and type(tools[0]) is ToolSpec
    dumped = payload.model_dump(mode="json", exclude=_WITHOUT_TOOLS if spliced else None)
    pieces = {name: ordered_json(value) for name, value in dumped.items() if name not in scalars}
    if spliced:  # the tool list's JSON is made once per list (tools_json), at its declared place
        pieces["tools"] = tools_json(tools, ordered=True)
        names = list(model.model_fields)
        at = names.index("tools")
        before = {key: dumped[key] for key in names[:at]}
        after = {key: dumped[key] for key in names[at + 1 :]}
        head = ordered_json(before)[:-1] + ("," if before else "")
        tail = ("," if after else "") + ordered_json(after)[1:]
        payload_text = head + '"tools":' + pieces["tools"] + tail
    else:
        payload_text = ordered_json(dumped)
    return {name: values[name] for name in scalars}, pieces, payload_text


# --- from an Avro record -----------------------------------------------------------------------------


def _plain_json(annotation: Any) -> bool:
    """Whether values of ``annotation`` are JSON values as they are (their dump leaves them alone)."""
    if annotation is Any or annotation in _SCALARS or annotation in (dict, list):
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is dict:
        return args[0] is str and _plain_json(args[1])
    return origin is list and _plain_json(args[0])


class _Unsupported(Exception):
    """A part of a writer schema the compiled flat readers do not cover (its events go through models)."""


def _float_json(value: float) -> str:
    return float.__repr__(value) if math.isfinite(value) else "null"


def _bool_json(value: bool) -> str:
    return "true" if value else "false"


@dataclass
class _Field:
    """One model field in a compiled flat reader: lines that set its variables, the source of its
    ordered JSON, and the source of its value (single-value fields only)."""

    name: str
    lines: list[str]
    json: str
    value: str | None


class _FlatCompiler:
    """Writes, for one writer schema, a function from its Avro record to a :class:`FlatEvent`."""

    def __init__(self, writer: RegisteredSchema, codec: EventCodec):
        self.writer = writer
        self.codec = codec
        self.avro = _Compiler(writer.schema, codec, raw_timestamps=True)  # named types, JSON-field readers
        self.env: dict[str, Any] = {
            "_string": json_string,
            "_int": int.__repr__,
            "_float": _float_json,
            "_bool": _bool_json,
            "_FlatEvent": FlatEvent,
        }
        self._counter = 0

    def _constant(self, value: Any, prefix: str) -> str:
        """A name for ``value`` in the compiled functions' globals."""
        self._counter += 1
        name = f"{prefix}{self._counter}"
        self.env[name] = value
        return name

    def _variable(self) -> str:
        self._counter += 1
        return f"_v{self._counter}"

    def compile(self) -> Callable[[dict[str, Any]], FlatEvent]:
        schema = self.writer.schema
        envelope = {field["name"]: field for field in schema["fields"]}
        payload_node = self.avro.resolve(envelope["payload"]["type"])
        model = PAYLOAD_TYPES[self.writer.event_type]
        if not (isinstance(payload_node, dict) and payload_node.get("type") == "record"):
            raise _Unsupported("the payload is not a record")
        fields = self._fields(payload_node, model, "p")
        lines = [line for f in fields for line in f.lines]
        pieces = []
        for f in fields:
            if f.value is None:  # its JSON is kept, and spliced into the payload's
                variable = self._variable()
                lines.append(f"    {variable} = {f.json}\n")
                pieces.append(f"{f.name!r}: {variable}")
                f.json = variable
        values = ", ".join(f"{f.name!r}: {f.value}" for f in fields if f.value is not None)
        source = (  # the envelope's fields are plain (timestamps read as microseconds)
            "def flat(r):\n"
            "    p = r['payload']\n" + "".join(lines) + "    producer = r['producer']\n"
            "    return _FlatEvent(r['event_id'], r['event_type'], r['schema_version'], r['run_id'],\n"
            "        r['produced_at'], producer['stage'] + '@' + producer['version'], r['parent_ids'],\n"
            f"        r['checkpoint_id'], {{{values}}}, {{{', '.join(pieces)}}}, {self._object(fields)})\n"
        )
        name = f"<flat reader of {self.writer.event_type} v{self.writer.version}>"
        exec(compile(source, name, "exec"), self.env)
        return self.env["flat"]  # type: ignore[no-any-return]

    @staticmethod
    def _object(fields: list[_Field]) -> str:
        """Source of a JSON object's text from its fields (in the model's declared order)."""
        if not fields:
            return "'{}'"
        parts = []
        for index, f in enumerate(fields):
            parts.append(repr(("{" if index == 0 else ",") + json_string(f.name) + ":"))
            parts.append(f.json)
        return f"''.join(({', '.join(parts)}, '}}'))"

    def _check_model(self, model: type[BaseModel]) -> None:
        decorators = model.__pydantic_decorators__
        if not _trusted(model) or decorators.field_serializers or decorators.model_serializers:
            raise _Unsupported(f"{model.__name__} validates or serialises with code of its own")
        if decorators.computed_fields or any(field.exclude for field in model.model_fields.values()):
            raise _Unsupported(f"{model.__name__} dumps fields it does not hold, or leaves some out")
        if any(field.metadata for field in model.model_fields.values()):
            raise _Unsupported(f"{model.__name__} has field constraints")

    def _fields(self, node: dict[str, Any], model: type[BaseModel], record: str) -> list[_Field]:
        """The model's fields, in their declared order (as its dump writes them), read from ``record``."""
        self._check_model(model)
        avro_fields = {field["name"]: field for field in node["fields"]}
        out = []
        for name in model.model_fields:
            field = model.model_fields[name]
            annotation = field.annotation
            if name in avro_fields:
                avro_type = avro_fields[name]["type"]
                if _is_scalar(annotation):
                    variable = self._variable()
                    lines = [
                        f"    {variable} = {self._scalar(avro_type, annotation, f'{record}[{name!r}]')}\n"
                    ]
                    out.append(_Field(name, lines, self._scalar_json(annotation, variable), variable))
                else:
                    out.append(
                        _Field(name, [], self._json(avro_type, annotation, f"{record}[{name!r}]"), None)
                    )
            elif name + JSON_SUFFIX in avro_fields and avro_fields[name + JSON_SUFFIX]["type"] == "string":
                if _is_scalar(annotation):
                    raise _Unsupported(f"a single value {model.__name__}.{name} kept as JSON")
                out.append(
                    _Field(name, [], self._json_field(annotation, f"{record}[{name + JSON_SUFFIX!r}]"), None)
                )
            elif not field.is_required():  # a field this writer did not have: its default
                default = field.get_default(call_default_factory=True)
                text = repr(ordered_json(TypeAdapter(annotation).dump_python(default, mode="json")))
                value = self._constant(default, "_default") if _is_scalar(annotation) else None
                out.append(_Field(name, [], text, value))
            else:
                raise _Unsupported(f"the writer has no field for required {model.__name__}.{name}")
        return out

    def _scalar(self, node: Any, annotation: Any, value: str) -> str:
        """Source of the value the model would hold, checked as its reader checks it."""
        node = self.avro.resolve(node)
        inner, optional = _split_optional(annotation)
        if isinstance(node, list):
            branches = [branch for branch in node if branch != "null"]
            if len(branches) != 1 or len(node) != 2 or not optional:
                raise _Unsupported(f"a union {node!r} for {annotation!r}")
            read = self._scalar(branches[0], inner, "v")
            if read == "v":
                return value
            check = self._function(f"check {annotation!r}", "v", [], read)
            return f"(None if ({value}) is None else {check}({value}))"
        kind = node.get("type") if isinstance(node, dict) else node
        if isinstance(node, dict) and ("logicalType" in node or kind != "enum"):
            raise _Unsupported(f"{node!r} for a single value")
        if typing.get_origin(inner) is Literal:
            if kind not in ("string", "enum"):
                raise _Unsupported(f"{kind} for {annotation!r}")
            allowed = frozenset(typing.get_args(inner))

            def literal(item: Any) -> Any:
                if item not in allowed:
                    raise ValueError(f"{item!r} is not one of {sorted(map(str, allowed))}")
                return item

            return f"{self._constant(literal, '_literal')}({value})"
        plain = {"string": str, "int": int, "long": int, "double": float, "float": float, "boolean": bool}
        if plain.get(kind) is inner:
            return value
        if inner is float and kind in ("int", "long"):
            return f"float({value})"
        raise _Unsupported(f"{kind} for {annotation!r}")

    @staticmethod
    def _scalar_json(annotation: Any, variable: str) -> str:
        inner, optional = _split_optional(annotation)
        if typing.get_origin(inner) is Literal or inner is str:
            text = f"_string({variable})"
        elif inner is bool:
            text = f"_bool({variable})"
        elif inner is int:
            text = f"_int({variable})"
        else:
            text = f"_float({variable})"
        return f"('null' if {variable} is None else {text})" if optional else text

    def _json(self, node: Any, annotation: Any, value: str) -> str:
        """Source of the ordered JSON of what the model would hold, from the Avro ``value``."""
        node = self.avro.resolve(node)
        inner, optional = _split_optional(annotation)
        if typing.get_origin(inner) is typing.Annotated:
            raise _Unsupported(f"constraints on {annotation!r}")
        if isinstance(node, list):
            branches = [branch for branch in node if branch != "null"]
            if len(branches) != 1 or len(node) != 2 or not optional:
                raise _Unsupported(f"a union {node!r} for {annotation!r}")
            variable = self._variable()
            read = self._json(branches[0], inner, variable)
            return f"('null' if ({variable} := {value}) is None else {read})"
        if _is_scalar(annotation):  # an item of a list of single values
            read = self._scalar(node, annotation, "v")
            item = self._function(
                f"item {annotation!r}", "v", ["    v = " + read + "\n"], self._scalar_json(annotation, "v")
            )
            return f"{item}({value})"
        if not isinstance(node, dict):
            raise _Unsupported(f"{node!r} for {annotation!r}")
        kind = node.get("type")
        if kind == "record":
            model = _model_class(inner)
            if model is None:
                raise _Unsupported(f"a record for {annotation!r}")
            return f"{self._record(node, model)}({value})"
        if kind == "array":
            if typing.get_origin(inner) is not list:
                raise _Unsupported(f"an array for {annotation!r}")
            variable = self._variable()
            read = self._json(node["items"], typing.get_args(inner)[0], variable)
            return f"('[' + ','.join([{read} for {variable} in {value}]) + ']')"
        if kind == "map":
            if typing.get_origin(inner) is not dict:
                raise _Unsupported(f"a map for {annotation!r}")
            variable, key = self._variable(), self._variable()
            read = self._json(node["values"], typing.get_args(inner)[1], variable)
            pairs = "_string(" + key + ") + ':' + " + read + " for " + key + ", " + variable + " in m.items()"
            mapping = self._function(f"map {annotation!r}", "m", [], "'{' + ','.join([" + pairs + "]) + '}'")
            return f"{mapping}({value})"
        if kind == "fixed" and _full_name(node, self.avro.named) == TOOLSET_REF:
            if inner != list[ToolSpec]:
                raise _Unsupported(f"a tool-set reference for {annotation!r}")
            return f"{self._constant(self._toolset_json(), '_tools')}({value})"
        raise _Unsupported(f"{kind} for {annotation!r}")

    def _record(self, node: dict[str, Any], model: type[BaseModel]) -> str:
        """The name of a compiled function from one Avro record to its model's ordered JSON."""
        if _full_name(node, self.avro.named) in VALIDATED_ONCE:
            raise _Unsupported(f"{model.__name__} is validated when read (inline tool specs)")
        fields = self._fields(node, model, "r")
        return self._function(
            model.__name__, "r", [line for f in fields for line in f.lines], self._object(fields)
        )

    def _function(self, what: str, parameter: str, lines: list[str], result: str) -> str:
        """The name of a compiled function of ``parameter``: ``lines``, then ``return result``."""
        source = f"def function({parameter}):\n{''.join(lines)}    return {result}\n"
        local: dict[str, Any] = {}
        exec(compile(source, f"<flat {what}>", "exec"), self.env, local)
        return self._constant(local["function"], "_function")

    def _json_field(self, annotation: Any, value: str) -> str:
        """JSON kept in a ``<field>_json`` string: read (and checked) as the model's reader reads it,
        written as :func:`ordered_json` writes the model's dump (the live store's text, whoever wrote
        the record: another writer may space or escape differently). Kept per short text: a sample's
        label and arguments come back on each of its probes, verdicts and curations, and most metadata
        is ``{}``."""
        read = self.avro._json_reader(annotation)
        dump = None if _plain_json(annotation) else TypeAdapter(annotation).dump_python
        known: dict[str, str] = {}

        def json_field(text: str) -> str:
            found = known.get(text)
            if found is None:
                value = read(text)
                found = ordered_json(value if dump is None else dump(value, mode="json"))
                if len(text) <= JSON_TEXT_KEPT_CHARS:
                    if len(known) >= JSON_TEXTS_KEPT:
                        known.clear()
                    known[text] = found
            return found

        return f"{self._constant(json_field, '_json_field')}({value})"

    def _toolset_json(self) -> Callable[[bytes], str]:
        resolve = self.codec.toolsets.resolve

        def toolset(digest: bytes) -> str:
            tools = resolve(digest)
            if tools is None:
                raise UnresolvedReferenceError(Reference(TOOLSET_REF, digest))
            return tools_json(tools, ordered=True)

        return toolset


class FlatReader:
    """Decodes event bytes to :class:`FlatEvent` (compiled per writer schema; models where not covered).

    Raises what :meth:`schemas.codec.EventCodec.decode` raises for the same bytes (its catalog of tool
    sets is the codec's).
    """

    def __init__(self, codec: EventCodec | None = None):
        self.codec = codec or default_codec()
        self._compiled: dict[bytes, Callable[[dict[str, Any]], FlatEvent] | None] = {}
        # A validating codec (the reference) reads timestamps as datetimes, and a codec of another
        # kind (a benchmark's JSON) has no Avro records: their events all go through models.
        self._records = isinstance(self.codec, EventCodec) and not self.codec.validate

    def compiled(self, writer: RegisteredSchema) -> Callable[[dict[str, Any]], FlatEvent] | None:
        """The compiled reader of ``writer``'s records, or None where its events go through models."""
        if writer.fingerprint not in self._compiled:
            covered = writer.event_type in PAYLOAD_TYPES and self._records
            try:
                flat = _FlatCompiler(writer, self.codec).compile() if covered else None
            except _Unsupported:
                flat = None
            self._compiled[writer.fingerprint] = flat
        return self._compiled[writer.fingerprint]

    def decode(self, data: bytes) -> FlatEvent:
        if not self._records:
            return flatten(self.codec.decode(data))
        writer, record = self.codec.read_record(data)
        flat = self.compiled(writer)
        if flat is None:
            return flatten(self.codec.decode(data))
        try:
            return flat(record)
        except EventDecodeError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise CorruptEventError(f"invalid {writer.event_type} content: {exc}") from exc

    def decode_many(self, blobs: Sequence[bytes]) -> list[FlatEvent]:
        return [self.decode(blob) for blob in blobs]
