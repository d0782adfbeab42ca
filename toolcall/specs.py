"""Typed tool (function) specifications with JSON-Schema parameters, loaded from common styles.

A :class:`ToolSpec` is a name, a description and a :class:`ParamSchema` of type ``object``. The
schema model covers what tool definitions use: types (or a union of types), description, enum,
default, nested object properties with ``required``, array ``items``, ``additionalProperties`` and
``format``. It dumps to, and validates from, plain JSON Schema, so events and prompts carry the
standard form.

Loaders accept OpenAI (``{"type": "function", "function": {...}}`` or the bare function), BFCL
(``"type": "dict"`` and Python-flavoured types ``dict``, ``float``, ``tuple``, ``any``) and
xLAM/APIGen (``parameters`` mapping each name to ``{"type": "str, optional", ...}``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

JSON_TYPES = ("string", "integer", "number", "boolean", "array", "object", "null")

# BFCL's and Python's type names -> JSON Schema (None: no constraint).
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


class ToolSpecError(ValueError):
    """A tool definition that cannot be read; the message says which and why."""


class ParamSchema(BaseModel):
    """The JSON-Schema subset tool parameters use."""

    model_config = ConfigDict(frozen=True)

    type: str | tuple[str, ...] | None = None
    description: str = ""
    enum: tuple[Any, ...] | None = None
    default: Any = None
    has_default: bool = False  # distinguishes "default: null" from "no default"
    properties: dict[str, ParamSchema] = Field(default_factory=dict)
    required: tuple[str, ...] = ()
    items: ParamSchema | None = None
    additional_properties: bool | None = None
    format: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_json_schema(cls, data: Any) -> Any:
        """Accept plain JSON Schema (``default`` present or not, ``additionalProperties``)."""
        if not isinstance(data, dict) or "has_default" in data:
            return data
        data = dict(data)
        data["has_default"] = "default" in data
        if "additionalProperties" in data:
            extra = data.pop("additionalProperties")
            data["additional_properties"] = extra if isinstance(extra, bool) else True
        if isinstance(data.get("type"), list):
            data["type"] = tuple(data["type"])
        for key in ("title", "examples", "minimum", "maximum", "minItems", "maxItems", "pattern", "$schema"):
            data.pop(key, None)  # accepted and not modelled: they never decide a call's validity here
        return data

    @model_serializer(mode="plain")
    def _to_json_schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.type is not None:
            out["type"] = list(self.type) if isinstance(self.type, tuple) else self.type
        if self.description:
            out["description"] = self.description
        if self.enum is not None:
            out["enum"] = list(self.enum)
        if self.has_default:
            out["default"] = self.default
        if self.properties:
            out["properties"] = {name: schema._to_json_schema() for name, schema in self.properties.items()}
        if self.required:
            out["required"] = list(self.required)
        if self.items is not None:
            out["items"] = self.items._to_json_schema()
        if self.additional_properties is not None:
            out["additionalProperties"] = self.additional_properties
        if self.format is not None:
            out["format"] = self.format
        return out

    @property
    def types(self) -> tuple[str, ...]:
        """Declared JSON types; empty means any."""
        if self.type is None:
            return ()
        return self.type if isinstance(self.type, tuple) else (self.type,)

    def to_json_schema(self) -> dict[str, Any]:
        return self._to_json_schema()


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
        return _spec_from(function, _normalise_json_schema)


def _normalise_type(value: Any, where: str) -> str | tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, list | tuple):
        kinds = tuple(k for k in (_normalise_type(v, where) for v in value) if k is not None)
        return kinds if len(kinds) > 1 else (kinds[0] if kinds else None)
    if not isinstance(value, str):
        raise ToolSpecError(f"{where}: type must be a string, got {value!r}")
    key = value.strip().lower()
    if key not in _TYPE_ALIASES:
        raise ToolSpecError(f"{where}: unknown type {value!r}")
    return _TYPE_ALIASES[key]


def _normalise_json_schema(schema: Any, where: str) -> dict[str, Any]:
    """JSON Schema or BFCL-flavoured schema -> JSON Schema our model reads."""
    if not isinstance(schema, dict):
        raise ToolSpecError(f"{where}: a schema must be an object, got {type(schema).__name__}")
    out = dict(schema)
    if "type" in out:
        out["type"] = _normalise_type(out["type"], where)
        if out["type"] is None:
            del out["type"]
    if "properties" in out:
        if not isinstance(out["properties"], dict):
            raise ToolSpecError(f"{where}: properties must be an object")
        out["properties"] = {
            name: _normalise_json_schema(sub, f"{where}.{name}") for name, sub in out["properties"].items()
        }
    if "items" in out:
        items = out["items"]
        if isinstance(items, list):  # tuple-style items: keep the first as the element schema
            items = items[0] if items else {}
        out["items"] = _normalise_json_schema(items, f"{where}[]")
    if "required" in out:
        required = out["required"]
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise ToolSpecError(f"{where}: required must be a list of names")
    if "enum" in out and not isinstance(out["enum"], list):
        raise ToolSpecError(f"{where}: enum must be a list")
    return out


_XLAM_GENERIC = re.compile(r"^(list|dict|tuple|optional|union)\[(.*)\]$", re.IGNORECASE)


def _xlam_type(text: str, where: str) -> tuple[dict[str, Any], bool]:
    """An xLAM type string -> (JSON Schema, optional?). E.g. "List[int], optional"."""
    text = text.strip()
    optional = False
    if text.lower().endswith(", optional"):
        text, optional = text[: -len(", optional")].strip(), True
    match = _XLAM_GENERIC.match(text)
    if match:
        kind, inner = match.group(1).lower(), match.group(2)
        if kind == "optional":
            schema, _ = _xlam_type(inner, where)
            return schema, True
        if kind == "union":
            options = [_xlam_type(part, where)[0] for part in inner.split(",")]
            types = [o["type"] for o in options if "type" in o]
            return ({"type": types} if types else {}), optional
        if kind in ("list", "tuple"):
            items, _ = _xlam_type(inner.split(",")[0], where)
            return {"type": "array", "items": items}, optional
        return {"type": "object"}, optional
    kind = _normalise_type(text, where)
    return ({"type": kind} if kind else {}), optional


def _xlam_parameters(params: dict[str, Any], where: str) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, info in params.items():
        if not isinstance(info, dict):
            raise ToolSpecError(f"{where}.{name}: parameter must be an object")
        schema, optional = _xlam_type(str(info.get("type", "any")), f"{where}.{name}")
        if info.get("description"):
            schema["description"] = str(info["description"])
        if "default" in info:
            schema["default"] = info["default"]
            optional = True
        if "enum" in info:
            schema["enum"] = info["enum"]
        properties[name] = schema
        if not optional:
            required.append(name)
    return {"type": "object", "properties": properties, "required": required}


def _spec_from(function: Any, normalise: Any) -> ToolSpec:
    if not isinstance(function, dict):
        raise ToolSpecError(f"a tool must be an object, got {type(function).__name__}")
    name = function.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ToolSpecError(f"a tool needs a non-empty string name: {json.dumps(function)[:120]}")
    parameters = function.get("parameters", {"type": "object"})
    if parameters is None:
        parameters = {"type": "object"}
    description = function.get("description") or ""
    if not isinstance(description, str):
        raise ToolSpecError(f"{name}: description must be a string")
    schema = normalise(parameters, name)
    schema.setdefault("type", "object")
    if schema.get("type") != "object":
        raise ToolSpecError(f"{name}: parameters must be an object schema, got type {schema.get('type')!r}")
    try:
        return ToolSpec(
            name=name.strip(), description=description, parameters=ParamSchema.model_validate(schema)
        )
    except ValueError as exc:
        raise ToolSpecError(f"{name}: {exc}") from exc


def _is_xlam(function: dict[str, Any]) -> bool:
    params = function.get("parameters")
    # xLAM maps each parameter name to {"type": "str, optional", ...}; a JSON Schema object has a string
    # "type" of its own (so a parameter literally named "type" still reads as xLAM).
    return (
        isinstance(params, dict)
        and bool(params)
        and all(isinstance(v, dict) and isinstance(v.get("type"), str) for v in params.values())
    )


def load_tool(obj: Any) -> ToolSpec:
    """One tool in any supported style (detected from its shape)."""
    if not isinstance(obj, dict):
        raise ToolSpecError(f"a tool must be an object, got {type(obj).__name__}")
    function = obj.get("function", obj) if obj.get("type") == "function" else obj
    if isinstance(function, dict) and _is_xlam(function):
        return _spec_from(function, lambda params, where: _xlam_parameters(params, where))
    return _spec_from(function, _normalise_json_schema)


def load_tools(obj: Any) -> list[ToolSpec]:
    """A list of tools (or a JSON string of one, or a single tool) in any supported style."""
    if isinstance(obj, str):
        try:
            obj = json.loads(obj)
        except json.JSONDecodeError as exc:
            raise ToolSpecError(f"tools are not valid JSON: {exc.msg}") from exc
    if isinstance(obj, dict):
        obj = [obj]
    if not isinstance(obj, list):
        raise ToolSpecError(f"tools must be a list, got {type(obj).__name__}")
    tools = [load_tool(item) for item in obj]
    names = [t.name for t in tools]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ToolSpecError(f"duplicate tool names: {duplicates}")
    return tools
