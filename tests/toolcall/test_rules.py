"""Rule-based verification (tier 1): every rule, with codes, paths and call indices."""

from __future__ import annotations

import pytest

from toolcall.match import values_equal
from toolcall.rules import empty_required_strings, repeated_calls, validate_action, validate_call
from toolcall.specs import ToolSpec, load_tools
from toolcall.types import Action, ToolCall

TOOLS = load_tools(
    [
        {
            "name": "search_hotels",
            "description": "Find hotels.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "nights": {"type": "integer"},
                    "max_price": {"type": "number"},
                    "currency": {"type": "string", "enum": ["EUR", "USD"], "default": "EUR"},
                    "breakfast": {"type": "boolean"},
                    "stars": {"type": "array", "items": {"type": "integer"}},
                    "guest": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                        "required": ["name"],
                    },
                    "note": {"type": "string", "default": None},
                    "room_code": {"type": ["string", "integer"]},
                },
                "required": ["city", "nights"],
            },
        },
        {"name": "ping", "parameters": {"type": "object", "properties": {}}},
    ]
)


def codes(arguments: dict, name: str = "search_hotels") -> list[tuple[str, str | None]]:
    return [(v.code, v.path) for v in validate_call(ToolCall(name=name, arguments=arguments), TOOLS)]


def test_valid_call_has_no_violation() -> None:
    assert codes({"city": "Rome", "nights": 2, "max_price": 120.5, "currency": "USD", "stars": [3, 4]}) == []


def test_integer_is_accepted_where_a_number_is_declared() -> None:
    assert codes({"city": "Rome", "nights": 2, "max_price": 120}) == []


def test_null_is_accepted_for_an_optional_parameter_whose_default_is_null() -> None:
    assert codes({"city": "Rome", "nights": 2, "note": None}) == []
    assert codes({"city": "Rome", "nights": 2, "breakfast": None}) == [("type_mismatch", "breakfast")]


def test_union_types() -> None:
    assert codes({"city": "Rome", "nights": 2, "room_code": "A1"}) == []
    assert codes({"city": "Rome", "nights": 2, "room_code": 12}) == []
    assert codes({"city": "Rome", "nights": 2, "room_code": 1.5}) == [("type_mismatch", "room_code")]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"nights": 2}, [("missing_required", "city")]),
        ({"city": "Rome", "nights": 2, "pets": True}, [("unknown_parameter", "pets")]),
        ({"city": "Rome", "nights": "2"}, [("type_mismatch", "nights")]),  # numeric string: not declared
        ({"city": "Rome", "nights": 2.0}, [("type_mismatch", "nights")]),  # float for integer
        ({"city": "Rome", "nights": True}, [("type_mismatch", "nights")]),  # bool is not an integer
        ({"city": "Rome", "nights": 2, "max_price": "100"}, [("type_mismatch", "max_price")]),
        ({"city": "Rome", "nights": 2, "currency": "GBP"}, [("enum_violation", "currency")]),
        ({"city": "Rome", "nights": 2, "stars": [3, "4"]}, [("type_mismatch", "stars[1]")]),
        ({"city": "Rome", "nights": 2, "guest": {"age": 30}}, [("missing_required", "guest.name")]),
        (
            {"city": "Rome", "nights": 2, "guest": {"name": "A", "vip": 1}},
            [("unknown_parameter", "guest.vip")],
        ),
        (
            {"city": 5, "nights": 2, "breakfast": "yes"},
            [("type_mismatch", "city"), ("type_mismatch", "breakfast")],
        ),
    ],
)
def test_each_rule(arguments: dict, expected: list) -> None:
    assert codes(arguments) == expected


def test_every_violation_is_reported_not_just_the_first() -> None:
    found = codes({"pets": 1, "currency": "JPY"})
    assert sorted(found) == sorted(
        [
            ("missing_required", "city"),
            ("missing_required", "nights"),
            ("unknown_parameter", "pets"),
            ("enum_violation", "currency"),
        ]
    )


def test_unknown_function() -> None:
    [violation] = validate_call(ToolCall(name="book_flight", arguments={}), TOOLS)
    assert violation.code == "unknown_function" and "search_hotels" in violation.message


def test_action_level_call_indices() -> None:
    action = Action(
        calls=[
            ToolCall(name="ping"),
            ToolCall(name="search_hotels", arguments={"city": "Rome"}),
            ToolCall(name="nope"),
        ]
    )
    found = [(v.code, v.call_index) for v in validate_action(action, TOOLS)]
    assert found == [("missing_required", 1), ("unknown_function", 2)]


def test_text_actions() -> None:
    assert validate_action(Action(text="Which city?"), TOOLS) == []
    assert [v.code for v in validate_action(Action(), TOOLS)] == ["empty_action"]


def test_messages_are_readable() -> None:
    [violation] = validate_call(
        ToolCall(name="search_hotels", arguments={"city": "Rome", "nights": "two"}), TOOLS
    )
    assert violation.message == "nights must be integer, got string 'two'"


def test_bfcl_style_types_load_and_check() -> None:
    tools = load_tools(
        [
            {
                "name": "calc_area",
                "parameters": {
                    "type": "dict",
                    "properties": {
                        "base": {"type": "float"},
                        "dims": {"type": "tuple", "items": {"type": "integer"}},
                    },
                    "required": ["base"],
                },
            }
        ]
    )
    assert validate_call(ToolCall(name="calc_area", arguments={"base": 3, "dims": [1, 2]}), tools) == []
    assert [v.code for v in validate_call(ToolCall(name="calc_area", arguments={"base": "3"}), tools)] == [
        "type_mismatch"
    ]


def test_a_call_made_again_with_the_same_arguments_is_a_repeat() -> None:
    tools = [
        ToolSpec.from_openai({"name": "get_tickets", "parameters": {"type": "object", "properties": {}}})
    ]
    same = ToolCall(name="get_tickets", arguments={"status": "open", "limit": 5})
    reordered = ToolCall(name="get_tickets", arguments={"limit": 5.0, "status": "open"})  # JSON-equal
    other = ToolCall(name="get_tickets", arguments={"status": "closed", "limit": 5})
    repeats = repeated_calls(Action(calls=[same, other, reordered, same]))
    assert [(v.code, v.call_index) for v in repeats] == [("repeated_call", 2), ("repeated_call", 3)]
    assert repeats[0].message == "call 3 repeats call 1: get_tickets with the same arguments"
    assert repeated_calls(Action(calls=[same, other])) == []  # parallel calls differ in their arguments
    assert repeated_calls(Action(text="Which status?")) == []
    # true is not 1 at any depth: these are two calls, not one made twice.
    flagged = [ToolCall(name="get_tickets", arguments={"filter": {"mine": v}}) for v in (True, 1)]
    assert repeated_calls(Action(calls=flagged)) == []
    # Judging a label or a prediction is not refusing it: the schema rules leave repeats alone.
    assert all(v.code != "repeated_call" for v in validate_action(Action(calls=[same, same]), tools))


def test_a_required_string_given_empty_is_refused_by_its_own_rule() -> None:
    """get_weather(city="") passed the rule tier (JSON Schema accepts ""), and a verifier's CORRECT
    could make a call that names no city a training sample."""
    tools = load_tools(
        [
            {
                "name": "book",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string"},
                        "note": {"type": "string"},
                        "room": {"type": "string", "enum": ["", "suite"]},
                        "guests": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {"name": {"type": "string"}},
                                "required": ["name"],
                            },
                        },
                    },
                    "required": ["city", "room"],
                },
            }
        ]
    )
    empty = Action(
        calls=[
            ToolCall(name="book", arguments={"city": " ", "note": "", "room": "", "guests": [{"name": ""}]})
        ]
    )
    problems = empty_required_strings(empty, tools)
    assert [(v.code, v.path, v.call_index) for v in problems] == [
        ("empty_required_string", "city", 0),
        ("empty_required_string", "guests[0].name", 0),
    ]
    assert problems[0].message == "required parameter city is an empty string"
    named = Action(calls=[ToolCall(name="book", arguments={"city": "Rome", "room": ""})])
    assert empty_required_strings(named, tools) == []
    # Judging a label or a prediction is not refusing it: the schema rules leave "" alone.
    assert validate_action(empty, tools) == []


def test_a_float_for_an_integer_is_refused_as_toolmatch_does_not_match_it() -> None:
    """JSON Schema counts 3.0 an integer; the rule tier refuses it, as ToolMatch does not match 3.0
    with 3 where an integer is declared: a label holding 3.0 would fail the policy's correct 3."""
    schema = TOOLS[0].parameters.properties["nights"]
    call = ToolCall(name="search_hotels", arguments={"city": "Rome", "nights": 3.0})
    assert [v.code for v in validate_call(call, TOOLS)] == ["type_mismatch"]
    assert not values_equal(3.0, 3, schema)
