"""Rule-based verification of calls against their tool list (the paper's first tier, Section 3.2).

A call is valid when its function exists, every required parameter is present, no unknown
parameter is passed, every value has a declared type, and enum values are respected — checked at
every depth of nested objects and arrays. The coercions a user would accept are accepted: an
integer where a number is declared, and ``null`` for an optional parameter whose default is
``null``. A numeric string is a string: it is accepted only where a string is declared. Every
violation is reported, each with a machine-readable ``code``, a message, the call's index and the
parameter's path (``city``, ``filters.max_price``, ``dates[1]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from toolcall.specs import ParamSchema, ToolSpec
from toolcall.types import Action, ToolCall

VIOLATION_CODES = (
    "empty_action",
    "unknown_function",
    "missing_required",
    "unknown_parameter",
    "type_mismatch",
    "enum_violation",
)


class Violation(BaseModel):
    """One broken rule."""

    model_config = ConfigDict(frozen=True)

    code: str
    message: str
    call_index: int | None = None
    path: str | None = None


def json_type_of(value: Any) -> str:
    """The JSON type name of a Python value decoded from JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def type_accepts(declared: Sequence[str], value: Any) -> bool:
    """Whether a value of this JSON type may stand where ``declared`` types are (empty = any)."""
    if not declared:
        return True
    actual = json_type_of(value)
    return actual in declared or (actual == "integer" and "number" in declared)


def json_equal(left: Any, right: Any) -> bool:
    """Equality of decoded JSON values: 1 == 1.0, but True is not 1 and "1" is not 1."""
    kinds = {json_type_of(left), json_type_of(right)}
    if kinds <= {"integer", "number"}:
        return bool(left == right)
    return json_type_of(left) == json_type_of(right) and bool(left == right)


def enum_contains(enum: Sequence[Any], value: Any) -> bool:
    """Enum membership by JSON equality."""
    return any(json_equal(option, value) for option in enum)


def _null_allowed(schema: ParamSchema) -> bool:
    return "null" in schema.types or (schema.has_default and schema.default is None)


def check_value(value: Any, schema: ParamSchema, path: str, call_index: int | None = None) -> list[Violation]:
    """Every violation of ``value`` against ``schema`` (recursing into objects and arrays)."""
    if value is None and _null_allowed(schema):
        return []
    if not type_accepts(schema.types, value):
        expected = " or ".join(schema.types)
        return [
            Violation(
                code="type_mismatch",
                message=f"{path} must be {expected}, got {json_type_of(value)} {_short(value)}",
                call_index=call_index,
                path=path,
            )
        ]
    if schema.enum is not None and not enum_contains(schema.enum, value):
        return [
            Violation(
                code="enum_violation",
                message=f"{path} must be one of {list(schema.enum)}, got {_short(value)}",
                call_index=call_index,
                path=path,
            )
        ]
    if isinstance(value, dict) and (schema.properties or "object" in schema.types):
        return check_object(value, schema, path, call_index)
    if isinstance(value, list | tuple) and schema.items is not None:
        problems: list[Violation] = []
        for position, item in enumerate(value):
            problems.extend(check_value(item, schema.items, f"{path}[{position}]", call_index))
        return problems
    return []


def check_object(
    value: dict[str, Any],
    schema: ParamSchema,
    path: str,
    call_index: int | None = None,
    *,
    top_level: bool = False,
) -> list[Violation]:
    """Required, unknown and per-property checks of an object value."""
    problems: list[Violation] = []
    prefix = f"{path}." if path else ""
    for name in schema.required:
        if name not in value:
            problems.append(
                Violation(
                    code="missing_required",
                    message=f"required parameter {prefix}{name} is missing",
                    call_index=call_index,
                    path=prefix + name,
                )
            )
    # Unknown keys: refused wherever properties are declared, unless the schema opens the object up.
    closed = schema.additional_properties is not True and (bool(schema.properties) or top_level)
    for name, item in value.items():
        sub = schema.properties.get(name)
        if sub is None:
            if closed:
                problems.append(
                    Violation(
                        code="unknown_parameter",
                        message=f"unknown parameter {prefix}{name}",
                        call_index=call_index,
                        path=prefix + name,
                    )
                )
            continue
        problems.extend(check_value(item, sub, prefix + name, call_index))
    return problems


def validate_call(
    call: ToolCall, tools: Sequence[ToolSpec], call_index: int | None = None
) -> list[Violation]:
    """Every rule ``call`` breaks against ``tools``."""
    spec = next((tool for tool in tools if tool.name == call.name), None)
    if spec is None:
        known = ", ".join(tool.name for tool in tools) or "none"
        return [
            Violation(
                code="unknown_function",
                message=f"function {call.name!r} is not among the available tools ({known})",
                call_index=call_index,
            )
        ]
    return check_object(call.arguments, spec.parameters, "", call_index, top_level=True)


def validate_action(action: Action, tools: Sequence[ToolSpec]) -> list[Violation]:
    """Every rule the action's calls break; a plain-text answer breaks none, an empty action one."""
    if not action.calls:
        if action.text is None or not action.text.strip():
            return [Violation(code="empty_action", message="the action has neither tool calls nor text")]
        return []
    problems: list[Violation] = []
    for index, call in enumerate(action.calls):
        problems.extend(validate_call(call, tools, index))
    return problems


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
