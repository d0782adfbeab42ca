"""ToolMatch: does a predicted action equal the reference action? The reward and the probe's test.

At least as strict and as fair as BFCL's AST checker:

- Function names must be equal.
- Argument values are compared after normalisation driven by the tool's schema: an integer equals
  the same number where a number is declared (a float where an integer is declared does not match,
  as in BFCL); two integers compare exactly, and a relative tolerance of 1e-6 applies only where a
  float is involved; strings compare after BFCL's
  normalisation (case, spaces and ``,./-_*^`` ignored, ``'`` read as ``"``); booleans exactly; arrays
  element by element in order (``prefixItems`` per position, then ``items``); objects key by key with
  their nested schemas (``additionalProperties`` for undeclared keys). Under ``anyOf``/``oneOf`` the
  values are compared under the first branch whose type both of them have.
- A parameter one side leaves out matches when the other side gives it its declared default, or
  ``null`` where it is optional; otherwise it is a missing or an extra argument.
- Parallel calls are compared as a multiset (order-insensitive) unless either action is marked
  ``ordered`` (sequential calls), which the label carries from the dataset.
- Two "no call" answers (clarification, "no suitable tool") match whatever their text says.

The result is the boolean and a structured diff (missing/extra call, wrong function, wrong/missing/
extra argument, call order, call made where none was expected and the reverse) for the judge
prompt and the analytics. The relation is reflexive and symmetric (tested).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from toolcall.rules import json_type_of
from toolcall.specs import ParamSchema, ToolSpec
from toolcall.types import Action, ToolCall

DiffKind = Literal[
    "missing_call",
    "extra_call",
    "wrong_function",
    "wrong_argument",
    "missing_argument",
    "extra_argument",
    "call_order",
    "no_call",
    "unexpected_call",
]
DIFF_KINDS: tuple[str, ...] = DiffKind.__args__  # type: ignore[attr-defined]
FLOAT_REL_TOLERANCE = 1e-6
_BFCL_IGNORED = re.compile(r"[ ,./\-_*^]")
_NUMBERS = frozenset({"integer", "number"})


class CallDiff(BaseModel):
    """One difference between prediction and label. ``path`` is ``function.param[.sub]``."""

    model_config = ConfigDict(frozen=True)

    kind: DiffKind
    path: str | None = None
    call_index: int | None = None  # the label's call (the prediction's for extra calls)
    expected: Any = None
    actual: Any = None


class MatchResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    matched: bool
    diffs: list[CallDiff] = Field(default_factory=list)


def counts_as_match(prediction: Action | None, matched: bool, *, truncated: bool) -> bool:
    """Whether an output that ToolMatched (``matched``) counts, for the reward, the probe and the
    held-out figure alike. Cut off at the token budget, only calls count: a text answer (or a
    reasoning trace read as one) is unfinished, and two no-call answers match whatever their text."""
    if not matched or prediction is None:
        return False
    return not truncated or bool(prediction.calls)


def normalise_string(text: str) -> str:
    """BFCL's string standardisation, after Unicode NFC: a label in decomposed form ("e" + U+0301)
    equals the composed "é" a tokenizer's NFC normaliser makes the model write."""
    return _BFCL_IGNORED.sub("", unicodedata.normalize("NFC", text)).lower().replace("'", '"')


def _branch_for(left: Any, right: Any, schema: ParamSchema | None) -> ParamSchema | None:
    """Under ``anyOf``/``oneOf``: the first branch both values conform to (symmetric); when none
    does, the branches' types together (``anyOf [integer, null]`` still refuses a float for an
    integer, as ``type: [integer, null]`` does), or None where a branch declares no type."""
    if schema is None or not schema.branches:
        return schema
    for branch in schema.branches:
        if _conforms(left, branch) and _conforms(right, branch):
            return _branch_for(left, right, branch)
    return ParamSchema(type=schema.types) if schema.types else None


def _numbers_equal(left: int | float, right: int | float) -> bool:
    """Two integers exactly (as BFCL); a tolerance only where a float is involved."""
    if isinstance(left, int) and isinstance(right, int):
        return left == right
    return math.isclose(left, right, rel_tol=FLOAT_REL_TOLERANCE, abs_tol=1e-12)


def values_equal(left: Any, right: Any, schema: ParamSchema | None = None) -> bool:
    """Equality of two argument values under ``schema`` (None: no schema known)."""
    schema = _branch_for(left, right, schema)
    declared = set(schema.types) if schema is not None else set()
    left_type, right_type = json_type_of(left), json_type_of(right)
    if left_type == "null" or right_type == "null":
        return left_type == right_type
    if left_type in _NUMBERS and right_type in _NUMBERS:
        if math.isnan(left) or math.isnan(right):
            return math.isnan(left) and math.isnan(right)
        if declared & _NUMBERS == {"integer"} and left_type != right_type:
            return False  # a float where an integer is declared (BFCL refuses it too)
        return _numbers_equal(left, right)
    if {left_type, right_type} in ({"string", "integer"}, {"string", "number"}):
        # A numeric string equals a number only where the schema declares both a string and a number.
        if "string" not in declared or not declared & _NUMBERS:
            return False
        number, text = (left, right) if right_type == "string" else (right, left)
        parsed = _as_number(text)
        return parsed is not None and _numbers_equal(number, parsed)
    if left_type != right_type:
        return False
    if left_type == "string":
        return normalise_string(left) == normalise_string(right)
    if left_type == "array":
        return len(left) == len(right) and all(
            values_equal(a, b, _item_schema(schema, position))
            for position, (a, b) in enumerate(zip(left, right, strict=True))
        )
    if left_type == "object":
        return not _object_diffs(left, right, schema, "", None)
    return bool(left == right)


def _item_schema(schema: ParamSchema | None, position: int) -> ParamSchema | None:
    if schema is None:
        return None
    prefix = schema.prefix_items or ()
    return prefix[position] if position < len(prefix) else schema.items


def _as_number(text: str) -> int | float | None:
    stripped = text.strip()
    if re.fullmatch(r"[-+]?\d+", stripped):
        return int(stripped)  # an integer written as text stays exact
    try:
        value = float(stripped)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _omission_ok(value: Any, schema: ParamSchema | None, required: bool) -> bool:
    """Leaving a parameter out is the same as giving it ``value``."""
    if required:
        return False  # a required parameter must be given, whatever default its docs mention
    if value is None:
        return True
    return (
        schema is not None
        and schema.has_default
        and _conforms(value, schema)
        and values_equal(value, schema.default, schema)
    )


def _conforms(value: Any, schema: ParamSchema) -> bool:
    """``value`` has one of the declared types (an integer where a number is declared counts)."""
    declared = set(schema.types)
    kind = json_type_of(value)
    if schema.branches and not schema.type:
        return any(_conforms(value, branch) for branch in schema.branches)
    return not declared or kind in declared or (kind == "integer" and "number" in declared)


def _object_diffs(
    expected: dict[str, Any],
    actual: dict[str, Any],
    schema: ParamSchema | None,
    prefix: str,
    call_index: int | None,
) -> list[CallDiff]:
    """Argument differences between two objects (the label's ``expected``, the prediction's ``actual``)."""
    diffs: list[CallDiff] = []
    properties = schema.properties if schema is not None else {}
    required = set(schema.required) if schema is not None else set()
    extra = schema.additional_properties if schema is not None else None
    for name in sorted(set(expected) | set(actual), key=str):
        sub = properties.get(name, extra if isinstance(extra, ParamSchema) else None)
        path = f"{prefix}.{name}" if prefix else name
        if name in expected and name in actual:
            if not values_equal(expected[name], actual[name], sub):
                diffs.append(
                    CallDiff(
                        kind="wrong_argument",
                        path=path,
                        call_index=call_index,
                        expected=expected[name],
                        actual=actual[name],
                    )
                )
        elif name in expected:
            if not _omission_ok(expected[name], sub, name in required):
                diffs.append(
                    CallDiff(
                        kind="missing_argument", path=path, call_index=call_index, expected=expected[name]
                    )
                )
        elif not _omission_ok(actual[name], sub, name in required):
            diffs.append(
                CallDiff(kind="extra_argument", path=path, call_index=call_index, actual=actual[name])
            )
    return diffs


def _spec(tools: Sequence[ToolSpec], name: str) -> ParamSchema | None:
    return next((tool.parameters for tool in tools if tool.name == name), None)


def call_diffs(
    label: ToolCall, prediction: ToolCall, tools: Sequence[ToolSpec], call_index: int | None = None
) -> list[CallDiff]:
    """Differences between one predicted call and one label call."""
    if label.name != prediction.name:
        return [
            CallDiff(
                kind="wrong_function",
                path=label.name,
                call_index=call_index,
                expected=label.name,
                actual=prediction.name,
            )
        ]
    return _object_diffs(
        label.arguments, prediction.arguments, _spec(tools, label.name), label.name, call_index
    )


def calls_equal(label: ToolCall, prediction: ToolCall, tools: Sequence[ToolSpec]) -> bool:
    return not call_diffs(label, prediction, tools)


def _max_matching(compatible: list[list[bool]], predictions: int) -> dict[int, int]:
    """Maximum bipartite matching label index -> prediction index (Kuhn's augmenting paths)."""
    owner: dict[int, int] = {}  # prediction -> label

    def augment(label: int, visited: set[int]) -> bool:
        for prediction in range(predictions):
            if compatible[label][prediction] and prediction not in visited:
                visited.add(prediction)
                if prediction not in owner or augment(owner[prediction], visited):
                    owner[prediction] = label
                    return True
        return False

    for label in range(len(compatible)):
        augment(label, set())
    return {label: prediction for prediction, label in owner.items()}


def tool_match(prediction: Action, label: Action, tools: Sequence[ToolSpec]) -> MatchResult:
    """Compare a predicted action with the reference action under the tools' schemas."""
    tools = list(tools)
    if not label.calls and not prediction.calls:
        return MatchResult(matched=True)
    if not prediction.calls:
        return MatchResult(
            matched=False,
            diffs=[
                CallDiff(
                    kind="no_call",
                    path=call.name,
                    call_index=index,
                    expected=call.model_dump(),
                    actual=prediction.text,
                )
                for index, call in enumerate(label.calls)
            ],
        )
    if not label.calls:
        return MatchResult(
            matched=False,
            diffs=[
                CallDiff(
                    kind="unexpected_call",
                    path=call.name,
                    call_index=index,
                    expected=label.text,
                    actual=call.model_dump(),
                )
                for index, call in enumerate(prediction.calls)
            ],
        )
    if label.ordered or prediction.ordered:
        return _ordered_match(prediction, label, tools)
    return _multiset_match(prediction, label, tools)


def _multiset_match(prediction: Action, label: Action, tools: list[ToolSpec]) -> MatchResult:
    expected, actual = label.calls, prediction.calls
    compatible = [[calls_equal(e, a, tools) for a in actual] for e in expected]
    matching = _max_matching(compatible, len(actual))
    if len(matching) == len(expected) == len(actual):
        return MatchResult(matched=True)
    return MatchResult(matched=False, diffs=_explain(expected, actual, matching, tools))


def _explain(
    expected: Sequence[ToolCall], actual: Sequence[ToolCall], matching: dict[int, int], tools: list[ToolSpec]
) -> list[CallDiff]:
    """Pair the unmatched calls as plausibly as possible and report what differs."""
    left = [i for i in range(len(expected)) if i not in matching]
    right = [j for j in range(len(actual)) if j not in matching.values()]
    diffs: list[CallDiff] = []
    # Same function first, closest arguments first: that is the pairing a reader would make.
    candidates = sorted(
        (len(call_diffs(expected[i], actual[j], tools, i)), i, j)
        for i in left
        for j in right
        if expected[i].name == actual[j].name
    )
    for _, i, j in candidates:
        if i in left and j in right:
            diffs.extend(call_diffs(expected[i], actual[j], tools, i))
            left.remove(i)
            right.remove(j)
    for i, j in zip(list(left), list(right), strict=False):
        diffs.extend(call_diffs(expected[i], actual[j], tools, i))
        left.remove(i)
        right.remove(j)
    diffs.extend(
        CallDiff(kind="missing_call", path=expected[i].name, call_index=i, expected=expected[i].model_dump())
        for i in left
    )
    diffs.extend(
        CallDiff(kind="extra_call", path=actual[j].name, call_index=j, actual=actual[j].model_dump())
        for j in right
    )
    return diffs


def _ordered_match(prediction: Action, label: Action, tools: list[ToolSpec]) -> MatchResult:
    expected, actual = label.calls, prediction.calls
    if len(expected) == len(actual) and all(
        calls_equal(e, a, tools) for e, a in zip(expected, actual, strict=True)
    ):
        return MatchResult(matched=True)
    if _multiset_match(prediction, label, tools).matched:
        return MatchResult(
            matched=False,
            diffs=[
                CallDiff(
                    kind="call_order",
                    expected=[c.name for c in expected],
                    actual=[c.name for c in actual],
                )
            ],
        )
    diffs: list[CallDiff] = []
    for index, (e, a) in enumerate(zip(expected, actual, strict=False)):
        diffs.extend(call_diffs(e, a, tools, index))
    diffs.extend(
        CallDiff(kind="missing_call", path=e.name, call_index=i, expected=e.model_dump())
        for i, e in enumerate(expected)
        if i >= len(actual)
    )
    diffs.extend(
        CallDiff(kind="extra_call", path=a.name, call_index=i, actual=a.model_dump())
        for i, a in enumerate(actual)
        if i >= len(expected)
    )
    return MatchResult(matched=False, diffs=diffs)
