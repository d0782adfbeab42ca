"""Rule-based verification of calls against their tool list (the paper's first tier, Section 3.2).

A call is valid when its function exists, every required parameter is present, no unknown
parameter is passed, every value has a declared type, enum and const values are respected, the
value satisfies ``anyOf`` (at least one branch) or ``oneOf`` (exactly one), and the constraints
hold (``minimum``/``maximum`` and their exclusive forms, ``multipleOf``, ``minLength``/``maxLength``,
``pattern``, ``format`` for the formats listed in :data:`CHECKED_FORMATS`, ``minItems``/``maxItems``,
``uniqueItems``, ``minProperties``/``maxProperties``) — checked at every depth of nested objects,
arrays (``items`` and ``prefixItems``) and ``additionalProperties`` schemas. The coercions a user
would accept are accepted: an integer where a number is declared, and ``null`` for an optional
parameter whose default is ``null``. A numeric string is a string: it is accepted only where a
string is declared. Every violation is reported, each with a machine-readable ``code``, a message,
the call's index and the parameter's path (``city``, ``filters.max_price``, ``dates[1]``).
:func:`repeated_calls` finds, apart from these, a call an action makes twice with the same arguments,
and :func:`empty_required_strings` a required string given as ``""`` (which JSON Schema accepts).
A float where an integer is declared (``3.0``) is refused, though JSON Schema counts it an integer:
ToolMatch (:mod:`toolcall.match`, as BFCL) does not match 3.0 with 3 there, so a label holding 3.0
would fail the policy's correct ``3``.
"""

from __future__ import annotations

import ipaddress
import math
import re
import uuid
from collections.abc import Callable, Sequence
from datetime import date, datetime, time
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from toolcall.specs import ParamSchema, ToolSpec, compiled_pattern
from toolcall.types import Action, ToolCall

VIOLATION_CODES = (
    "empty_action",
    "unknown_function",
    "missing_required",
    "unknown_parameter",
    "type_mismatch",
    "enum_violation",
    "union_mismatch",
    "constraint_violation",
    "repeated_call",
    "empty_required_string",
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
    """Equality of decoded JSON values, at any depth: 1 == 1.0, but True is not 1 and "1" is not 1
    (Python's own == says {"a": True} == {"a": 1})."""
    kinds = {json_type_of(left), json_type_of(right)}
    if kinds <= {"integer", "number"}:
        return bool(left == right)
    if len(kinds) > 1:
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(json_equal(left[key], right[key]) for key in left)
    if isinstance(left, list | tuple):
        return len(left) == len(right) and all(json_equal(a, b) for a, b in zip(left, right, strict=True))
    return bool(left == right)


def enum_contains(enum: Sequence[Any], value: Any) -> bool:
    """Enum membership by JSON equality."""
    return any(json_equal(option, value) for option in enum)


def _null_allowed(schema: ParamSchema) -> bool:
    return "null" in schema.types or (schema.has_default and schema.default is None)


def _violation(code: str, message: str, path: str, call_index: int | None) -> Violation:
    return Violation(code=code, message=message, call_index=call_index, path=path)


def _is_date(text: str) -> bool:
    return bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", text)) and _parses(date.fromisoformat, text)


def _is_date_time(text: str) -> bool:
    return bool(re.match(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}", text)) and _parses(
        datetime.fromisoformat, re.sub(r"[Zz]$", "+00:00", text)
    )


def _is_time(text: str) -> bool:
    return bool(re.match(r"\d{2}:\d{2}", text)) and _parses(
        time.fromisoformat, re.sub(r"[Zz]$", "+00:00", text)
    )


def _is_uri(text: str) -> bool:
    parts = urlsplit(text)
    return bool(re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", parts.scheme)) and bool(parts.netloc or parts.path)


def _parses(parse: Callable[[str], Any], text: str) -> bool:
    try:
        parse(text)
    except ValueError:
        return False
    return True


# Formats whose syntax is checked; any other format is an annotation (JSON Schema's default).
CHECKED_FORMATS: dict[str, Callable[[str], bool]] = {
    "date": _is_date,
    "date-time": _is_date_time,
    "time": _is_time,
    "email": lambda text: bool(re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", text)),
    "uri": _is_uri,
    "url": _is_uri,
    "uuid": lambda text: _parses(uuid.UUID, text) and len(text.replace("-", "")) == 32,
    "ipv4": lambda text: _parses(ipaddress.IPv4Address, text),
    "ipv6": lambda text: _parses(ipaddress.IPv6Address, text),
}


def _constraint_problems(value: Any, schema: ParamSchema) -> list[str]:
    """Each constraint ``value`` breaks, as a short phrase (type and enum are checked before)."""
    problems: list[str] = []
    kind = json_type_of(value)
    if schema.has_const and not json_equal(schema.const, value):
        problems.append(f"must equal {_short(schema.const)}")
    if kind in ("integer", "number"):
        if schema.minimum is not None and value < schema.minimum:
            problems.append(f"must be >= {schema.minimum}")
        if schema.maximum is not None and value > schema.maximum:
            problems.append(f"must be <= {schema.maximum}")
        if schema.exclusive_minimum is not None and value <= schema.exclusive_minimum:
            problems.append(f"must be > {schema.exclusive_minimum}")
        if schema.exclusive_maximum is not None and value >= schema.exclusive_maximum:
            problems.append(f"must be < {schema.exclusive_maximum}")
        if schema.multiple_of is not None and not _multiple(value, schema.multiple_of):
            problems.append(f"must be a multiple of {schema.multiple_of}")
    elif kind == "string":
        if schema.min_length is not None and len(value) < schema.min_length:
            problems.append(f"must be at least {schema.min_length} characters long")
        if schema.max_length is not None and len(value) > schema.max_length:
            problems.append(f"must be at most {schema.max_length} characters long")
        if schema.pattern is not None:
            pattern = compiled_pattern(schema.pattern)
            if pattern is not None and pattern.search(value) is None:
                problems.append(f"must match the pattern {schema.pattern!r}")
        check = CHECKED_FORMATS.get((schema.format or "").lower())
        if check is not None and not check(value):
            problems.append(f"must be a valid {schema.format}")
    elif kind == "array":
        if schema.min_items is not None and len(value) < schema.min_items:
            problems.append(f"must hold at least {schema.min_items} items")
        if schema.max_items is not None and len(value) > schema.max_items:
            problems.append(f"must hold at most {schema.max_items} items")
        if schema.unique_items and any(json_equal(a, b) for i, a in enumerate(value) for b in value[i + 1 :]):
            problems.append("must hold no item twice")
    elif kind == "object":
        if schema.min_properties is not None and len(value) < schema.min_properties:
            problems.append(f"must hold at least {schema.min_properties} keys")
        if schema.max_properties is not None and len(value) > schema.max_properties:
            problems.append(f"must hold at most {schema.max_properties} keys")
    return problems


def _multiple(value: int | float, step: int | float) -> bool:
    if isinstance(value, int) and isinstance(step, int):
        return value % step == 0
    quotient = value / step
    return math.isfinite(quotient) and math.isclose(quotient, round(quotient), rel_tol=1e-9, abs_tol=1e-9)


def check_value(value: Any, schema: ParamSchema, path: str, call_index: int | None = None) -> list[Violation]:
    """Every violation of ``value`` against ``schema`` (recursing into objects, arrays and branches)."""
    if value is None and _null_allowed(schema):
        return []
    if schema.type is not None and not type_accepts(schema.types, value):
        expected = " or ".join(schema.types)
        return [
            _violation(
                "type_mismatch",
                f"{path} must be {expected}, got {json_type_of(value)} {_short(value)}",
                path,
                call_index,
            )
        ]
    if schema.enum is not None and not enum_contains(schema.enum, value):
        return [
            _violation(
                "enum_violation",
                f"{path} must be one of {list(schema.enum)}, got {_short(value)}",
                path,
                call_index,
            )
        ]
    problems = [
        _violation("constraint_violation", f"{path} {phrase}, got {_short(value)}", path, call_index)
        for phrase in _constraint_problems(value, schema)
    ]
    if schema.branches:
        problems.extend(_branch_problems(value, schema, path, call_index))
    if isinstance(value, dict) and (
        schema.properties or "object" in schema.types or schema.additional_properties is not None
    ):
        problems.extend(check_object(value, schema, path, call_index))
    elif isinstance(value, list | tuple):
        prefix = schema.prefix_items or ()
        for position, item in enumerate(value):
            if position < len(prefix):
                problems.extend(check_value(item, prefix[position], f"{path}[{position}]", call_index))
            elif schema.items is not None:
                problems.extend(check_value(item, schema.items, f"{path}[{position}]", call_index))
    return problems


def branch_matches(value: Any, schema: ParamSchema) -> list[int]:
    """Indices of the ``anyOf``/``oneOf`` branches ``value`` satisfies."""
    return [index for index, branch in enumerate(schema.branches) if not check_value(value, branch, "", None)]


def _branch_problems(value: Any, schema: ParamSchema, path: str, call_index: int | None) -> list[Violation]:
    matching = branch_matches(value, schema)
    keyword = "anyOf" if schema.any_of else "oneOf"
    if not matching:
        options = " | ".join(_describe(branch) for branch in schema.branches)
        return [
            _violation(
                "union_mismatch",
                f"{path} matches none of its {keyword} options ({options}), got {_short(value)}",
                path,
                call_index,
            )
        ]
    if schema.one_of and len(matching) > 1:
        return [
            _violation(
                "union_mismatch",
                f"{path} matches {len(matching)} of its oneOf options (exactly one is allowed), "
                f"got {_short(value)}",
                path,
                call_index,
            )
        ]
    return []


def _describe(schema: ParamSchema) -> str:
    if schema.types:
        return "/".join(schema.types)
    if schema.enum is not None:
        return f"one of {list(schema.enum)}"
    if schema.has_const:
        return f"= {_short(schema.const)}"
    return "any"


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
    # Unknown keys: refused wherever properties are declared, unless the schema opens the object up
    # (additionalProperties true, or a schema every other key's value must satisfy).
    extra_schema = (
        schema.additional_properties if isinstance(schema.additional_properties, ParamSchema) else None
    )
    closed = schema.additional_properties is False or (
        schema.additional_properties is None and (bool(schema.properties) or top_level)
    )
    for name, item in value.items():
        sub = schema.properties.get(name)
        if sub is None and extra_schema is not None:
            problems.extend(check_value(item, extra_schema, prefix + name, call_index))
            continue
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


def repeated_calls(action: Action) -> list[Violation]:
    """Each call of the action that repeats an earlier one exactly (same function, JSON-equal
    arguments). Parallel calls differ in their arguments; the same call again is a degenerate
    generation looping (the paper's Figure 15), never a step to learn. Not part of
    :func:`validate_action`: a dataset's label or a policy's prediction is judged, not refused for it."""
    problems: list[Violation] = []
    for index, call in enumerate(action.calls):
        first = next(
            (
                earlier
                for earlier, other in enumerate(action.calls[:index])
                if other.name == call.name and json_equal(other.arguments, call.arguments)
            ),
            None,
        )
        if first is not None:
            problems.append(
                Violation(
                    code="repeated_call",
                    message=f"call {index + 1} repeats call {first + 1}: {call.name} with the same arguments",
                    call_index=index,
                )
            )
    return problems


def empty_required_strings(action: Action, tools: Sequence[ToolSpec]) -> list[Violation]:
    """Each required string parameter an action's calls give as ``""`` (or only spaces), at any depth,
    unless its enum lists that value: JSON Schema accepts it, but ``get_weather(city="")`` names no
    city, a call no user's request is answered by, so a generated sample with it is no valid sample.
    Not part of :func:`validate_action`, as :func:`repeated_calls` is not: a dataset's label or a
    policy's prediction is judged, not refused for it."""
    problems: list[Violation] = []
    for index, call in enumerate(action.calls):
        spec = next((tool for tool in tools if tool.name == call.name), None)
        if spec is None:
            continue  # validate_action reports the unknown function
        for path in _empty_required_paths(call.arguments, spec.parameters, ""):
            problems.append(
                Violation(
                    code="empty_required_string",
                    message=f"required parameter {path} is an empty string",
                    call_index=index,
                    path=path,
                )
            )
    return problems


def _empty_required_paths(value: dict[str, Any], schema: ParamSchema, prefix: str) -> list[str]:
    """The paths of ``value``'s required strings that are empty, in nested objects and arrays too."""
    paths: list[str] = []
    for name, item in value.items():
        sub = schema.properties.get(name)
        if sub is None:
            continue
        path = prefix + name
        if isinstance(item, str) and not item.strip():
            listed = sub.enum is not None and enum_contains(sub.enum, item)
            if name in schema.required and "string" in sub.types and not listed:
                paths.append(path)
        elif isinstance(item, dict):
            paths.extend(_empty_required_paths(item, sub, f"{path}."))
        elif isinstance(item, list | tuple) and sub.items is not None:
            for position, element in enumerate(item):
                if isinstance(element, dict):
                    paths.extend(_empty_required_paths(element, sub.items, f"{path}[{position}]."))
    return paths


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
