"""Typed tool (function) specifications with JSON-Schema parameters, loaded from common styles.

A :class:`ToolSpec` is a name, a description and a :class:`ParamSchema` of type ``object``. The
schema model keeps what tool definitions use and the rule checks and ToolMatch honour it: types (or a
union of types), ``enum``, ``const``, ``default``, nested ``properties`` with ``required``, array
``items`` and ``prefixItems``, ``additionalProperties`` (a flag or a schema), ``anyOf`` / ``oneOf``,
and the constraints (``minimum``, ``maximum``, their exclusive forms, ``multipleOf``, ``minLength``,
``maxLength``, ``pattern``, ``format``, ``minItems``, ``maxItems``, ``uniqueItems``,
``minProperties``, ``maxProperties``). Anything else is kept verbatim in :attr:`ParamSchema.extra`
(``title``, ``examples``, ``x-…`` keys…), so nothing a dataset wrote is lost; keywords that would
constrain a value but are not checked here (``not``, ``if``, ``patternProperties``…) are named in
the loader's warnings. The schema dumps to, and validates from, plain JSON Schema, so events and
prompts carry the standard form.

Loaders accept OpenAI (``{"type": "function", "function": {...}}`` or the bare function), MCP
(``inputSchema``), BFCL (``"type": "dict"``, Python-flavoured types, Java and JavaScript types such
as ``long``, ``HashMap``, ``ArrayList``: mapped to JSON types, the original kept as
``x-original-type``) and xLAM/APIGen (``parameters`` mapping each name to
``{"type": "List[Tuple[float, float]], optional", ...}``, read by :mod:`toolcall.pytypes`).
``$ref`` into the tool's own schema (``$defs``, ``definitions``) is resolved, ``allOf`` merged and
OpenAPI's ``nullable`` turned into a ``null`` type; what cannot be represented raises
:class:`ToolSpecError` with the reason.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

from toolcall.canonical import canonical_json, compact_json
from toolcall.pytypes import TypeExpressionError, parse_type_expression, python_literal, split_top_level

JSON_TYPES = ("string", "integer", "number", "boolean", "array", "object", "null")
ORIGINAL_TYPE_KEY = "x-original-type"

# JSON Schema's, Python's and BFCL's type names -> JSON Schema (None: no constraint).
_TYPE_ALIASES: dict[str, str | None] = {
    "string": "string",
    "str": "string",
    "integer": "integer",
    "int": "integer",
    "number": "number",
    "float": "number",
    "double": "number",
    "boolean": "boolean",
    "bool": "boolean",
    "array": "array",
    "list": "array",
    "tuple": "array",
    "object": "object",
    "dict": "object",
    "null": "null",
    "none": "null",
    "any": None,
}
# Java and JavaScript types (BFCL's simple_java / simple_javascript): mapped, the original kept.
_LANGUAGE_TYPES: dict[str, str | None] = {
    "": None,
    "byte": "integer",
    "short": "integer",
    "long": "integer",
    "bigint": "integer",
    "biginteger": "integer",
    "char": "string",
    "character": "string",
    "bigdecimal": "number",
    "arraylist": "array",
    "linkedlist": "array",
    "set": "array",
    "hashset": "array",
    "collection": "array",
    "hashmap": "object",
    "map": "object",
    "treemap": "object",
    "linkedhashmap": "object",
    "hashtable": "object",
}

# JSON Schema keyword -> ParamSchema field.
_FIELD_FOR_KEYWORD: dict[str, str] = {
    "type": "type",
    "description": "description",
    "enum": "enum",
    "const": "const",
    "default": "default",
    "properties": "properties",
    "required": "required",
    "items": "items",
    "prefixItems": "prefix_items",
    "additionalProperties": "additional_properties",
    "format": "format",
    "anyOf": "any_of",
    "oneOf": "one_of",
    "minimum": "minimum",
    "maximum": "maximum",
    "exclusiveMinimum": "exclusive_minimum",
    "exclusiveMaximum": "exclusive_maximum",
    "multipleOf": "multiple_of",
    "minLength": "min_length",
    "maxLength": "max_length",
    "pattern": "pattern",
    "minItems": "min_items",
    "maxItems": "max_items",
    "uniqueItems": "unique_items",
    "minProperties": "min_properties",
    "maxProperties": "max_properties",
    ORIGINAL_TYPE_KEY: "original_type",
}
_KEYWORD_FOR_FIELD = {name: keyword for keyword, name in _FIELD_FOR_KEYWORD.items()}
# Keywords that constrain a value but that the rule checks and ToolMatch do not evaluate.
UNCHECKED_KEYWORDS = frozenset(
    {
        "not",
        "if",
        "then",
        "else",
        "allOf",
        "patternProperties",
        "propertyNames",
        "dependentRequired",
        "dependentSchemas",
        "dependencies",
        "contains",
        "minContains",
        "maxContains",
        "unevaluatedProperties",
        "unevaluatedItems",
        "additionalItems",
        "contentSchema",
    }
)
# Keywords whose null is a value (the default, or the only value allowed), not an absent keyword.
_NULL_IS_A_VALUE = frozenset({"default", "const"})
# Document-level keywords that lose their meaning once every $ref is inlined.
_DOCUMENT_KEYWORDS = ("$defs", "definitions", "$schema", "$id", "$anchor", "$dynamicAnchor")


class ToolSpecError(ValueError):
    """A tool definition that cannot be read; the message says which and why.

    ``what`` is the message without the location (the tool and parameter path), for counting reasons.
    """

    def __init__(self, message: str, what: str | None = None):
        super().__init__(message)
        self.what = what if what is not None else message


def _error(where: str, what: str) -> ToolSpecError:
    return ToolSpecError(f"{where}: {what}", what)


class ParamSchema(BaseModel):
    """The JSON-Schema subset tool parameters use (see the module docstring)."""

    model_config = ConfigDict(frozen=True)

    type: str | tuple[str, ...] | None = None
    description: str = ""
    enum: tuple[Any, ...] | None = None
    const: Any = None
    has_const: bool = False
    default: Any = None
    has_default: bool = False  # distinguishes "default: null" from "no default"
    properties: dict[str, ParamSchema] = Field(default_factory=dict)
    required: tuple[str, ...] = ()
    items: ParamSchema | None = None
    prefix_items: tuple[ParamSchema, ...] | None = None
    additional_properties: bool | ParamSchema | None = None
    format: str | None = None
    any_of: tuple[ParamSchema, ...] | None = None
    one_of: tuple[ParamSchema, ...] | None = None
    minimum: int | float | None = None
    maximum: int | float | None = None
    exclusive_minimum: int | float | None = None
    exclusive_maximum: int | float | None = None
    multiple_of: int | float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    min_items: int | None = None
    max_items: int | None = None
    unique_items: bool | None = None
    min_properties: int | None = None
    max_properties: int | None = None
    original_type: str | None = None  # the type as the dataset wrote it, where ours maps it
    extra: dict[str, Any] = Field(default_factory=dict)  # every other keyword, verbatim

    @model_validator(mode="before")
    @classmethod
    def _from_json_schema(cls, data: Any) -> Any:
        """Accept plain JSON Schema: keywords become fields, unknown keywords go to ``extra``."""
        if not isinstance(data, dict) or "has_default" in data:
            return data
        out: dict[str, Any] = {"has_default": "default" in data, "has_const": "const" in data}
        extra: dict[str, Any] = dict(data.get("extra") or {})
        for key, value in data.items():
            if key in _FIELD_FOR_KEYWORD:
                out[_FIELD_FOR_KEYWORD[key]] = value
            elif key in cls.model_fields:
                out[key] = value
            else:
                extra[key] = value
        if isinstance(out.get("type"), list):
            out["type"] = tuple(out["type"])
        if extra:
            out["extra"] = extra
        return out

    @model_serializer(mode="plain")
    def _to_json_schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            if name in ("has_default", "has_const", "extra"):
                continue
            value = getattr(self, name)
            if name == "default":
                if self.has_default:
                    out["default"] = value
                continue
            if name == "const":
                if self.has_const:
                    out["const"] = value
                continue
            if value is None or (name == "description" and not value):
                continue
            if name in ("properties", "required") and not value:
                continue
            out[_KEYWORD_FOR_FIELD[name]] = _dump(value)
        out.update(self.extra)
        return out

    @property
    def types(self) -> tuple[str, ...]:
        """Declared JSON types (those of every branch for an ``anyOf``/``oneOf``); empty means any."""
        if self.type is not None:
            return self.type if isinstance(self.type, tuple) else (self.type,)
        branches = self.any_of or self.one_of
        if branches and all(branch.types for branch in branches):
            kinds: list[str] = []
            for branch in branches:
                kinds.extend(kind for kind in branch.types if kind not in kinds)
            return tuple(kinds)
        return ()

    @property
    def branches(self) -> tuple[ParamSchema, ...]:
        """The ``anyOf`` or ``oneOf`` alternatives (empty when there are none)."""
        return self.any_of or self.one_of or ()

    def to_json_schema(self) -> dict[str, Any]:
        return self._to_json_schema()


def _dump(value: Any) -> Any:
    if isinstance(value, ParamSchema):
        return value.to_json_schema()
    if isinstance(value, dict):
        return {key: _dump(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [_dump(item) for item in value]
    return value


class ToolSpec(BaseModel):
    """A function definition: name, description and an object schema of its parameters."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""
    parameters: ParamSchema = Field(default_factory=lambda: ParamSchema(type="object"))

    def to_openai(self) -> dict[str, Any]:
        """The bare OpenAI function form: ``{"name", "description", "parameters"}``."""
        return {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters.to_json_schema(),
        }

    @classmethod
    def from_openai(cls, data: dict[str, Any]) -> ToolSpec:
        """From ``{"type": "function", "function": {...}}`` or the bare function object."""
        function = data.get("function", data) if data.get("type") == "function" else data
        return _spec_from(function, _json_schema)


# The canonical JSON of a tool list, by the identity of its specs (kept alive by the entry, and frozen):
# decoded events and samples share spec instances (tool sets are interned, schemas.interning), and a
# list's JSON is the costly part of hashing or storing a sample (the serializer walks every parameter).
# Bounded by entries and by JSON characters (the specs it keeps alive are of about that size): ingesting
# a dataset whose samples each bring their own spec instances fills it with lists asked for once or twice.
_TOOLS_JSON: dict[tuple[bool, tuple[int, ...]], tuple[str, tuple[ToolSpec, ...]]] = {}
_TOOLS_JSON_SIZE = 16_384
_TOOLS_JSON_CHARS = 8_000_000
_tools_json_chars = 0


def tools_json(tools: Sequence[ToolSpec], *, ordered: bool = False) -> str:
    """``canonical_json`` of the tool list's dump (for hashes), made once per list of spec instances;
    with ``ordered``, its compact JSON in the specs' own order (each tool's parameters as the run gave
    them: what a model is shown, and what the sample store keeps)."""
    global _tools_json_chars
    key = (ordered, tuple(map(id, tools)))
    known = _TOOLS_JSON.get(key)
    if known is not None:
        return known[0]
    dumped = [tool.model_dump(mode="json") for tool in tools]
    text = compact_json(dumped) if ordered else canonical_json(dumped)
    if len(_TOOLS_JSON) >= _TOOLS_JSON_SIZE or _tools_json_chars + len(text) > _TOOLS_JSON_CHARS:
        _TOOLS_JSON.clear()
        _tools_json_chars = 0
    _TOOLS_JSON[key] = (text, tuple(tools))
    _tools_json_chars += len(text)
    return text


# --- reading JSON Schema ---------------------------------------------------------------------------


def _normalise_type(value: Any, where: str) -> tuple[str | tuple[str, ...] | None, str | None]:
    """(JSON type(s), the original name where it was a Java/JavaScript type)."""
    if value is None:
        return None, None
    if isinstance(value, list | tuple):
        kinds: list[str] = []
        originals: list[str] = []
        for item in value:
            kind, original = _normalise_type(item, where)
            if kind is None:
                return None, None  # "any" among the options: no constraint
            for one in kind if isinstance(kind, tuple) else (kind,):
                if one not in kinds:
                    kinds.append(one)
            if original is not None:
                originals.append(original)
        original_text = ", ".join(originals) if originals else None
        if not kinds:
            return None, original_text
        return (tuple(kinds) if len(kinds) > 1 else kinds[0]), original_text
    if not isinstance(value, str):
        raise _error(where, f"type must be a string, got {value!r}")
    key = value.strip().lower()
    if key in _TYPE_ALIASES:
        return _TYPE_ALIASES[key], None
    if key in _LANGUAGE_TYPES:
        return _LANGUAGE_TYPES[key], value
    raise _error(where, f"unknown type {value!r}")


def _is_expression(text: str) -> bool:
    """A type string that is a Python type expression (``List[int]``, ``str, optional``), no plain name."""
    key = text.strip().lower()
    return key not in _TYPE_ALIASES and key not in _LANGUAGE_TYPES and bool(re.search(r"[\[\],|]", text))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class _Reader:
    """Normalises one tool's parameter schema: ``$ref`` inlined, ``allOf`` merged, types mapped."""

    def __init__(self, root: Any, notes: list[str]):
        self.root = root
        self.notes = notes

    def pointer(self, ref: str, where: str) -> Any:
        if not ref.startswith("#"):
            raise _error(where, f"$ref {ref!r} points outside the tool's schema; it cannot be resolved")
        node = self.root
        for raw in (part for part in ref[1:].split("/") if part):
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise _error(where, f"$ref {ref!r} names nothing in the tool's schema")
        return node

    def read(self, schema: Any, where: str, refs: tuple[str, ...] = ()) -> dict[str, Any]:
        if schema is True:
            return {}
        if not isinstance(schema, dict):
            raise _error(where, f"a schema must be an object, got {type(schema).__name__}")
        # Arrow (datasets, parquet) gives each struct its siblings' keys too, null where absent: a null
        # keyword says nothing. Null is a value only for default and const.
        out = {key: value for key, value in schema.items() if value is not None or key in _NULL_IS_A_VALUE}
        if "$ref" in out:
            ref = out.pop("$ref")
            if not isinstance(ref, str):
                raise _error(where, "$ref must be a string")
            if ref in refs:
                self.notes.append(f"{where}: recursive $ref {ref}: levels below this one are not checked")
                return {
                    **{k: v for k, v in out.items() if k not in _DOCUMENT_KEYWORDS},
                    "x-recursive-ref": ref,
                }
            target = self.pointer(ref, where)
            if not isinstance(target, dict):
                raise _error(where, f"$ref {ref!r} is not a schema")
            # Keywords beside $ref (description, default) refine the referenced schema.
            return self.read({**target, **out}, where, (*refs, ref))
        for key in _DOCUMENT_KEYWORDS:
            out.pop(key, None)
        if "allOf" in out:
            out = self._merge_all_of(out, where, refs)
        if out.get("nullable") is True:
            out.pop("nullable")
            kind = out.get("type")
            if kind is not None:
                kinds = list(kind) if isinstance(kind, list) else [kind]
                out["type"] = [*kinds, "null"] if "null" not in kinds else kinds
        elif out.get("nullable") is False:
            out.pop("nullable")
        if isinstance(out.get("type"), str) and _is_expression(out["type"]):
            out = self._expression_type(out, where)
        if "type" in out:
            kind, original = _normalise_type(out["type"], where)
            if kind is None:
                del out["type"]
            else:
                out["type"] = list(kind) if isinstance(kind, tuple) else kind
            if original is not None:
                out.setdefault(ORIGINAL_TYPE_KEY, original)
        if "properties" in out:
            out["properties"] = self._properties(out, where, refs)
        if "prefixItems" in out:
            prefix = out["prefixItems"]
            if not isinstance(prefix, list):
                raise _error(where, "prefixItems must be a list of schemas")
            out["prefixItems"] = [self.read(s, f"{where}[{i}]", refs) for i, s in enumerate(prefix)]
        if "items" in out:
            items = out.pop("items")
            if isinstance(items, list):  # draft-4 tuple form: one schema per position
                out["prefixItems"] = [self.read(s, f"{where}[{i}]", refs) for i, s in enumerate(items)]
            elif items is False:  # nothing beyond the prefix
                out["maxItems"] = len(out.get("prefixItems") or [])
            else:
                out["items"] = self.read(items, f"{where}[]", refs)
        for key in ("anyOf", "oneOf"):
            if key in out:
                branches = out[key]
                if not isinstance(branches, list) or not branches:
                    raise _error(where, f"{key} must be a non-empty list of schemas")
                out[key] = [self.read(b, f"{where}<{key} {i}>", refs) for i, b in enumerate(branches)]
        if "additionalProperties" in out and not isinstance(out["additionalProperties"], bool):
            out["additionalProperties"] = self.read(out["additionalProperties"], f"{where}{{*}}", refs)
        if "required" in out:
            required = out["required"]
            if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
                raise _error(where, "required must be a list of names")
        if "enum" in out and not isinstance(out["enum"], list):
            raise _error(where, "enum must be a list")
        self._check_constraints(out, where)
        for key in sorted(UNCHECKED_KEYWORDS & set(out)):
            self.notes.append(f"{where}: '{key}' is kept but not checked")
        return out

    def _expression_type(self, out: dict[str, Any], where: str) -> dict[str, Any]:
        """A Python type expression where JSON Schema expects a type name (xLAM tools in OpenAI form)."""
        written = out.pop("type")
        try:
            expression = parse_type_expression(written)
        except TypeExpressionError as error:
            raise _error(where, str(error)) from error
        self.notes.extend(f"{where}: {note}" for note in expression.notes)
        merged = {**expression.schema, **out}
        merged.setdefault(ORIGINAL_TYPE_KEY, written)
        if expression.has_default and "default" not in merged:
            merged["default"] = expression.default
        return merged

    def _properties(self, out: dict[str, Any], where: str, refs: tuple[str, ...]) -> dict[str, Any]:
        properties = out["properties"]
        if not isinstance(properties, dict):
            raise _error(where, "properties must be an object")
        read: dict[str, Any] = {}
        absent: set[str] = set()
        for name, sub in properties.items():
            if sub is None:  # Arrow's fill for a sibling tool's parameter: not a parameter of this one
                absent.add(name)
                continue
            if isinstance(sub, dict) and isinstance(sub.get("required"), bool):
                # Draft-3 style: "required": true on the property itself means the parent requires it.
                sub = {k: v for k, v in sub.items() if k != "required"}
                if properties[name]["required"]:
                    required = out.setdefault("required", [])
                    if isinstance(required, list) and name not in required:
                        out["required"] = [*required, name]
            read[name] = self.read(sub, f"{where}.{name}", refs)
        required = out.get("required")
        if absent and isinstance(required, list):
            out["required"] = [name for name in required if name not in absent]
        return read

    def _merge_all_of(self, out: dict[str, Any], where: str, refs: tuple[str, ...]) -> dict[str, Any]:
        branches = out.pop("allOf")
        if not isinstance(branches, list):
            raise _error(where, "allOf must be a list of schemas")
        merged = dict(out)
        for index, branch in enumerate(branches):
            resolved = self.read(branch, f"{where}<allOf {index}>", refs)
            for key, value in resolved.items():
                if key not in merged:
                    merged[key] = value
                elif key == "properties":
                    merged[key] = {**value, **merged[key]}
                elif key == "required":
                    merged[key] = [*merged[key], *(r for r in value if r not in merged[key])]
                elif key in ("description", "title", "examples", ORIGINAL_TYPE_KEY) or merged[key] == value:
                    continue  # the outer annotation wins
                else:
                    raise _error(
                        where,
                        f"allOf branches disagree on '{key}' ({merged[key]!r} vs {value!r}); "
                        "their intersection cannot be represented",
                    )
        return merged

    def _check_constraints(self, out: dict[str, Any], where: str) -> None:
        for key in ("exclusiveMinimum", "exclusiveMaximum"):  # draft-4 booleans qualify minimum/maximum
            if isinstance(out.get(key), bool):
                bound = "minimum" if key == "exclusiveMinimum" else "maximum"
                if out.pop(key) and bound in out:
                    out[key] = out.pop(bound)
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"):
            if key in out and not _is_number(out[key]):
                raise _error(where, f"{key} must be a number, got {out[key]!r}")
        if "multipleOf" in out and out["multipleOf"] <= 0:
            raise _error(where, "multipleOf must be positive")
        for key in ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"):
            if key in out:
                value = out[key]
                if isinstance(value, float) and value.is_integer():
                    out[key] = value = int(value)
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise _error(where, f"{key} must be a non-negative integer, got {value!r}")
        if "uniqueItems" in out and not isinstance(out["uniqueItems"], bool):
            raise _error(where, "uniqueItems must be true or false")
        if "format" in out and not isinstance(out["format"], str):
            raise _error(where, "format must be a string")
        if "pattern" in out:
            if not isinstance(out["pattern"], str):
                raise _error(where, "pattern must be a string")
            if compiled_pattern(out["pattern"]) is None:
                self.notes.append(
                    f"{where}: pattern {out['pattern']!r} is not a Python regular expression; not checked"
                )


def compiled_pattern(pattern: str) -> re.Pattern[str] | None:
    """The pattern compiled, or None where Python's ``re`` cannot read it (ECMA-only syntax)."""
    return _compiled(pattern)


_PATTERNS: dict[str, re.Pattern[str] | None] = {}


def _compiled(pattern: str) -> re.Pattern[str] | None:
    if pattern not in _PATTERNS:
        try:
            _PATTERNS[pattern] = re.compile(pattern)
        except (re.error, RecursionError, OverflowError):
            _PATTERNS[pattern] = None
        if len(_PATTERNS) > 4096:
            _PATTERNS.clear()
    return _PATTERNS.get(pattern)


# --- xLAM / APIGen parameter maps ------------------------------------------------------------------


def _xlam_parameters(params: dict[str, Any], where: str, notes: list[str]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    reader = _Reader({}, notes)
    for name, info in params.items():
        if info is None:  # Arrow's fill for a sibling tool's parameter (see _Reader.read)
            continue
        if not isinstance(info, dict):
            raise _error(f"{where}.{name}", "parameter must be an object")
        written = info.get("type", "any")
        if not isinstance(written, str):
            raise _error(f"{where}.{name}", f"type must be a string, got {written!r}")
        try:
            expression = parse_type_expression(written)
        except TypeExpressionError as error:
            raise _error(f"{where}.{name}", f"{error}") from error
        notes.extend(f"{where}.{name}: {note}" for note in expression.notes)
        schema = reader.read(expression.schema, f"{where}.{name}")
        if split_top_level(written)[0].strip().lower() not in _TYPE_ALIASES:  # keep what JSON cannot say
            schema[ORIGINAL_TYPE_KEY] = written
        optional = expression.optional
        if expression.has_default:
            schema["default"] = expression.default
        for key, value in info.items():
            if key == "type" or (value is None and key not in _NULL_IS_A_VALUE):
                continue
            if key == "required":
                if not isinstance(value, bool):
                    raise _error(f"{where}.{name}", "required must be true or false")
                optional = not value
            elif key == "description":
                schema["description"] = "" if value is None else str(value)
            elif key == "default":
                schema["default"] = value
                optional = True
            else:
                schema[key] = value
        properties[name] = schema
        if not optional:
            required.append(name)
    return {"type": "object", "properties": properties, "required": required}


# --- tools -----------------------------------------------------------------------------------------

# Keys a tool definition may carry beside name, description and parameters without loss of meaning.
_WRAPPER_KEYS = {"name", "description", "parameters", "inputSchema", "input_schema", "type", "function"}


def _spec_from(function: Any, normalise: Any, notes: list[str] | None = None) -> ToolSpec:
    notes = notes if notes is not None else []
    if not isinstance(function, dict):
        raise ToolSpecError(f"a tool must be an object, got {type(function).__name__}")
    name = function.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ToolSpecError(
            f"a tool needs a non-empty string name: {json.dumps(function, default=str)[:120]}",
            "a tool needs a non-empty string name",  # the reason's class, without the record's shape
        )
    name = name.strip()
    parameters: Any = None
    for key in ("parameters", "inputSchema", "input_schema"):
        if function.get(key) is not None:
            parameters = function[key]
            break
    if parameters is None:
        parameters = {"type": "object"}
    description = function.get("description") or ""
    if not isinstance(description, str):
        raise _error(name, "description must be a string")
    outer_required = function.get("required")
    if isinstance(outer_required, list) and isinstance(parameters, dict) and "required" not in parameters:
        # Some datasets put the required list beside the parameters instead of inside them.
        parameters = {**parameters, "required": outer_required}
        outer_required = None
    for key in sorted(set(function) - _WRAPPER_KEYS):
        if function[key] is not None and not (key == "required" and outer_required is None):
            notes.append(
                f"tool {name!r}: key {key} is not kept (a tool is its name, description and parameters)"
            )
    schema = normalise(parameters, name, notes)
    schema.setdefault("type", "object")
    if schema.get("type") != "object":
        raise _error(name, f"parameters must be an object schema, got type {schema.get('type')!r}")
    try:
        return ToolSpec(name=name, description=description, parameters=ParamSchema.model_validate(schema))
    except ValueError as error:
        raise _error(name, f"{error}") from error


def _is_xlam(function: dict[str, Any]) -> bool:
    params = function.get("parameters")
    # xLAM maps each parameter name to {"type": "str, optional", ...}; a JSON Schema object has a string
    # "type" of its own (so a parameter literally named "type" still reads as xLAM).
    if not isinstance(params, dict):
        return False
    given = [v for v in params.values() if v is not None]  # null: Arrow's fill (see _Reader.read)
    return bool(given) and all(isinstance(v, dict) and isinstance(v.get("type"), str) for v in given)


def _json_schema(parameters: Any, where: str, notes: list[str]) -> dict[str, Any]:
    return _Reader(parameters, notes).read(parameters, where)


def _json_text(text: str, what: str) -> Any:
    """A tool list or schema written as text: JSON, or else a Python literal (datasets write them with
    single quotes)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        try:
            return python_literal(text, what)
        except TypeExpressionError:
            raise ToolSpecError(f"{what} are not valid JSON: {error.msg}") from error


def _arguments_as_parameters(function: dict[str, Any]) -> dict[str, Any]:
    """The tool with its ``arguments`` as its ``parameters`` where it declares its inputs only there
    (Nanbeige/ToolMind's augmented xLAM tools: ``"arguments": {"radius": {"type": "str", ...}}``);
    any other tool as it is."""
    if any(function.get(key) is not None for key in ("parameters", "inputSchema", "input_schema")):
        return function
    if not isinstance(function.get("arguments"), dict | str):
        return function
    renamed = {key: value for key, value in function.items() if key != "arguments"}
    return {**renamed, "parameters": function["arguments"]}


def _schema_text_read(function: dict[str, Any]) -> dict[str, Any]:
    """The tool with its schema read where a dataset wrote it as a JSON string (table exports keep
    ``parameters`` as a string column, Anthropic-style exports ``input_schema``)."""
    for key in ("parameters", "inputSchema", "input_schema"):
        value = function.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            return function
        where = str(function.get("name", "tool"))[:80]
        try:
            schema = _json_text(value, key)
        except ToolSpecError as error:
            raise _error(where, f"{key} is a string that is not JSON") from error
        if not isinstance(schema, dict):
            raise _error(where, f"{key} is a string that holds no object, got {type(schema).__name__}")
        return {**function, key: schema}
    return function


def load_tool(obj: Any, notes: list[str] | None = None) -> ToolSpec:
    """One tool in any supported style (detected from its shape); ``notes`` collects warnings."""
    if not isinstance(obj, dict):
        raise ToolSpecError(f"a tool must be an object, got {type(obj).__name__}")
    function = obj.get("function", obj) if obj.get("type") == "function" else obj
    if isinstance(function, dict):
        function = _schema_text_read(_arguments_as_parameters(function))
    if isinstance(function, dict) and _is_xlam(function):
        return _spec_from(function, _xlam_parameters, notes)
    return _spec_from(function, _json_schema, notes)


def load_tools(obj: Any, notes: list[str] | None = None) -> list[ToolSpec]:
    """A list of tools (or a JSON string of one, or a single tool) in any supported style.

    A string is read as JSON, or else as a Python literal (datasets write tools with single quotes).
    ``notes`` collects what was kept but is not checked, or not kept at all, one line each.
    """
    if isinstance(obj, str):
        obj = _json_text(obj, "tools")
    if isinstance(obj, dict):
        obj = [obj]
    if not isinstance(obj, list):
        raise ToolSpecError(f"tools must be a list, got {type(obj).__name__}")
    tools = [load_tool(item, notes) for item in obj]
    names = [t.name for t in tools]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ToolSpecError(f"duplicate tool names: {duplicates}")
    return tools


def walk(schema: ParamSchema, path: str = "") -> Iterator[tuple[str, ParamSchema]]:
    """Every node of ``schema`` (depth first) with its path."""
    yield path, schema
    for name, sub in schema.properties.items():
        yield from walk(sub, f"{path}.{name}" if path else name)
    if schema.items is not None:
        yield from walk(schema.items, f"{path}[]")
    for index, sub in enumerate(schema.prefix_items or ()):
        yield from walk(sub, f"{path}[{index}]")
    for index, sub in enumerate(schema.branches):
        yield from walk(sub, f"{path}<{index}>")
    if isinstance(schema.additional_properties, ParamSchema):
        yield from walk(schema.additional_properties, f"{path}{{*}}")
