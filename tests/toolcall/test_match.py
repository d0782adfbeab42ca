"""ToolMatch: hand-written cases, the paper's examples, the BFCL comparison table, properties."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.toolcall.strategies import call_actions, calls
from toolcall.match import tool_match, values_equal
from toolcall.specs import ParamSchema, load_tools
from toolcall.types import Action, ToolCall

COMPARISON = json.loads((Path(__file__).parent / "data" / "bfcl_comparison.json").read_text())


def action(value: Any, ordered: bool = False) -> Action:
    if isinstance(value, str):
        return Action(text=value)
    return Action(calls=[ToolCall(**call) for call in value], ordered=ordered)


@pytest.mark.parametrize("case", COMPARISON, ids=[case["id"] for case in COMPARISON])
def test_comparison_with_bfcl_rules(case: dict[str, Any]) -> None:
    """Our verdict on each hand-written pair; every difference from BFCL's verdict is explained."""
    tools = load_tools(case["tools"])
    result = tool_match(action(case["prediction"]), action(case["label"], case["ordered"]), tools)
    assert result.matched is case["ours"], result.diffs
    if case["ours"] != case["bfcl"]:
        assert case["note"], f"{case['id']}: a difference from BFCL needs an explanation"


def test_comparison_table_is_large_enough_and_documented() -> None:
    assert len(COMPARISON) >= 30
    from scripts.toolmatch_table import render_table

    docs = (Path(__file__).parents[2] / "docs" / "toolmatch.md").read_text()
    assert render_table(COMPARISON) in docs, "docs/toolmatch.md is stale: run scripts/toolmatch_table.py"


TOOLS = load_tools(
    [
        {
            "name": "fluctuation",
            "parameters": {
                "type": "object",
                "properties": {
                    "start_string": {"type": "string"},
                    "end_string": {"type": "string"},
                    "base": {"type": "string"},
                    "symbols": {"type": "string"},
                },
                "required": ["start_string", "end_string", "base", "symbols"],
            },
        },
        {
            "name": "ticket_login",
            "parameters": {"type": "object", "properties": {"username": {}, "password": {}}},
        },
        {
            "name": "get_user_tickets",
            "parameters": {"type": "object", "properties": {"status": {"type": "string"}}},
        },
    ]
)


def fluct(base: str, symbols: str) -> ToolCall:
    return ToolCall(
        name="fluctuation",
        arguments={
            "start_string": "2020-01-01",
            "end_string": "2021-01-01",
            "base": base,
            "symbols": symbols,
        },
    )


def test_figure_12_swapped_base_and_symbols() -> None:
    """The paper's LABEL_WRONG example: base/symbols reversed in both parallel calls."""
    label = Action(calls=[fluct("usd", "eur"), fluct("usd", "gbp")])
    prediction = Action(calls=[fluct("eur", "usd"), fluct("gbp", "usd")])
    result = tool_match(prediction, label, TOOLS)
    assert not result.matched
    kinds = sorted((d.kind, d.path) for d in result.diffs)
    assert kinds == [
        ("wrong_argument", "fluctuation.base"),
        ("wrong_argument", "fluctuation.base"),
        ("wrong_argument", "fluctuation.symbols"),
        ("wrong_argument", "fluctuation.symbols"),
    ]


def test_figure_15_duplicated_login_instead_of_tickets() -> None:
    login = ToolCall(
        name="ticket_login", arguments={"username": "Customer Support", "password": "P@ssw0rd2023"}
    )
    label = Action(calls=[login, ToolCall(name="get_user_tickets")])
    prediction = Action(calls=[login, login])
    result = tool_match(prediction, label, TOOLS)
    assert not result.matched
    assert [(d.kind, d.expected, d.actual) for d in result.diffs] == [
        ("wrong_function", "get_user_tickets", "ticket_login")
    ]


def test_figure_15_generated_sample_matches_itself_in_any_order() -> None:
    login = ToolCall(name="ticket_login", arguments={"username": "jane.doe", "password": "Secure#2024"})
    tickets = ToolCall(name="get_user_tickets", arguments={"status": "open"})
    assert tool_match(Action(calls=[tickets, login]), Action(calls=[login, tickets]), TOOLS).matched


def test_diffs_pair_same_function_calls_by_closeness() -> None:
    label = Action(calls=[fluct("eur", "usd"), fluct("gbp", "usd")])
    prediction = Action(calls=[fluct("gbp", "usd"), fluct("eur", "jpy")])
    result = tool_match(prediction, label, TOOLS)
    assert [(d.kind, d.path, d.expected, d.actual) for d in result.diffs] == [
        ("wrong_argument", "fluctuation.symbols", "usd", "jpy")
    ]


def test_missing_and_extra_calls_are_named() -> None:
    label = Action(calls=[fluct("eur", "usd")])
    prediction = Action(calls=[fluct("eur", "usd"), ToolCall(name="get_user_tickets")])
    assert [d.kind for d in tool_match(prediction, label, TOOLS).diffs] == ["extra_call"]
    assert [d.kind for d in tool_match(label, prediction, TOOLS).diffs] == ["missing_call"]


def test_call_order_diff_for_sequential_labels() -> None:
    login, tickets = ToolCall(name="ticket_login"), ToolCall(name="get_user_tickets")
    result = tool_match(Action(calls=[tickets, login]), Action(calls=[login, tickets], ordered=True), TOOLS)
    assert [d.kind for d in result.diffs] == ["call_order"]


def test_no_call_diffs() -> None:
    call = Action(calls=[fluct("eur", "usd")])
    text = Action(text="Which currencies?")
    assert [d.kind for d in tool_match(text, call, TOOLS).diffs] == ["no_call"]
    assert [d.kind for d in tool_match(call, text, TOOLS).diffs] == ["unexpected_call"]
    assert tool_match(Action(text="a"), Action(text="b"), TOOLS).matched


def test_unknown_tool_compares_generically() -> None:
    a = Action(calls=[ToolCall(name="mystery", arguments={"x": "Hello World", "n": 2})])
    b = Action(calls=[ToolCall(name="mystery", arguments={"x": "hello_world", "n": 2.0})])
    assert tool_match(a, b, TOOLS).matched


def test_values_equal_numeric_strings_only_where_declared() -> None:
    both = ParamSchema.model_validate({"type": ["string", "number"]})
    number = ParamSchema.model_validate({"type": "number"})
    assert values_equal("12.5", 12.5, both)
    assert not values_equal("12.5", 12.5, number)
    assert not values_equal("abc", 12.5, both)


@pytest.mark.parametrize(
    "union",
    [
        {"anyOf": [{"type": "integer"}, {"type": "null"}]},  # what pydantic writes for Optional[int]
        {"oneOf": [{"type": "integer"}, {"type": "null"}]},
        {"default": None, "anyOf": [{"type": "integer"}, {"type": "string"}]},
    ],
)
def test_a_union_of_declared_types_is_as_strict_as_the_type_list(union: dict[str, Any]) -> None:
    kinds = [branch["type"] for branch in union.get("anyOf") or union["oneOf"]]
    as_list = ParamSchema.model_validate({"type": kinds})
    schema = ParamSchema.model_validate(union)
    assert not values_equal(5, 5.0, schema) and not values_equal(5, 5.0, as_list)  # a float for an integer
    assert values_equal(5, "5", schema) is values_equal(5, "5", as_list) is ("string" in kinds)
    assert values_equal(5, 5, schema) and values_equal(None, None, schema)


def test_canonically_equivalent_strings_are_equal() -> None:
    composed, decomposed = "Montr\u00e9al", "Montre\u0301al"
    assert composed != decomposed
    assert values_equal(composed, decomposed, ParamSchema.model_validate({"type": "string"}))
    assert not values_equal("Montreal", "Montr\u00e9al")  # an accent is still a difference


def test_nan_is_reflexive() -> None:
    assert values_equal(float("nan"), float("nan"))
    assert not values_equal(float("nan"), 1.0)


@settings(max_examples=300, deadline=None)
@given(call_actions)
def test_reflexive(action_: Action) -> None:
    assert tool_match(action_, action_, TOOLS).matched


@settings(max_examples=300, deadline=None)
@given(call_actions, call_actions)
def test_symmetric(left: Action, right: Action) -> None:
    assert tool_match(left, right, TOOLS).matched == tool_match(right, left, TOOLS).matched


@settings(max_examples=200, deadline=None)
@given(st.lists(calls, min_size=1, max_size=5), st.randoms(use_true_random=False))
def test_unordered_permutation_invariant(call_list: list[ToolCall], rng: Any) -> None:
    shuffled = list(call_list)
    rng.shuffle(shuffled)
    assert tool_match(Action(calls=shuffled), Action(calls=call_list), TOOLS).matched


@settings(max_examples=200, deadline=None)
@given(st.lists(calls, min_size=1, max_size=4), calls)
def test_adding_a_call_breaks_the_match(call_list: list[ToolCall], extra: ToolCall) -> None:
    result = tool_match(Action(calls=[*call_list, extra]), Action(calls=call_list), TOOLS)
    assert not result.matched and result.diffs
