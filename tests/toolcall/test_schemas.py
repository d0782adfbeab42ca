"""JSON Schema kept as written: $ref/$defs resolved, anyOf/oneOf and constraints kept, honoured by the
rule checks and ToolMatch; what cannot be represented is refused or warned about, never dropped."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field

from toolcall.formats import RecordError, convert_record
from toolcall.match import tool_match, values_equal
from toolcall.pytypes import TypeExpressionError, parse_python_calls, parse_type_expression
from toolcall.rules import validate_call
from toolcall.specs import ParamSchema, ToolSpec, ToolSpecError, load_tool, load_tools
from toolcall.types import Action, ToolCall

# --- an MCP tool as FastMCP publishes it: pydantic's own JSON Schema of the arguments ---------------


class Address(BaseModel):
    street: str
    postcode: Annotated[str, Field(pattern=r"^\d{5}$")]


class BookingRequest(BaseModel):
    guest: Annotated[str, Field(max_length=20)]
    nights: Annotated[int, Field(ge=1, le=30)]
    budget: float | None = None
    tags: Annotated[list[str], Field(min_length=1, max_length=3)] = ["standard"]
    kind: Literal["hotel", "hostel"] = "hotel"
    address: Address
    check_in: Annotated[str, Field(json_schema_extra={"format": "date"})]


class BookingArguments(BaseModel):
    request: BookingRequest


def mcp_tool() -> dict[str, Any]:
    return {
        "name": "book",
        "description": "Book a room.",
        "inputSchema": BookingArguments.model_json_schema(),
    }


def test_pydantic_refs_are_resolved_and_structure_kept() -> None:
    notes: list[str] = []
    tool = load_tool(mcp_tool(), notes)
    schema = tool.parameters.to_json_schema()
    assert "$defs" not in json.dumps(schema) and "$ref" not in json.dumps(schema)
    request = schema["properties"]["request"]
    assert request["type"] == "object" and request["title"] == "BookingRequest"  # kept, not dropped
    assert request["required"] == ["guest", "nights", "address", "check_in"]
    assert request["properties"]["guest"]["maxLength"] == 20
    assert request["properties"]["nights"] | {} == {
        "type": "integer",
        "minimum": 1,
        "maximum": 30,
        "title": "Nights",
    }
    assert request["properties"]["budget"]["anyOf"] == [{"type": "number"}, {"type": "null"}]
    assert request["properties"]["tags"]["minItems"] == 1 and request["properties"]["tags"]["maxItems"] == 3
    assert request["properties"]["address"]["properties"]["postcode"]["pattern"] == r"^\d{5}$"
    assert request["properties"]["check_in"]["format"] == "date"
    assert notes == []  # nothing unrepresentable
    # The spec survives its own JSON Schema (what events carry).
    assert ToolSpec.model_validate(tool.model_dump(mode="json")) == tool


GOOD = {
    "guest": "Ada",
    "nights": 3,
    "address": {"street": "Main St 1", "postcode": "75001"},
    "check_in": "2026-05-01",
}


def codes(arguments: dict[str, Any]) -> list[tuple[str, str | None]]:
    tool = load_tool(mcp_tool())
    return [
        (v.code, v.path)
        for v in validate_call(ToolCall(name="book", arguments={"request": arguments}), [tool])
    ]


def test_rules_honour_the_kept_constraints_and_unions() -> None:
    assert codes(GOOD) == []
    assert codes({**GOOD, "budget": None}) == []  # anyOf [number, null]
    assert codes({**GOOD, "budget": 120}) == []  # an integer where a number is declared
    assert codes({**GOOD, "budget": "cheap"}) == [("union_mismatch", "request.budget")]
    assert codes({**GOOD, "nights": 31}) == [("constraint_violation", "request.nights")]
    assert codes({**GOOD, "guest": "x" * 21}) == [("constraint_violation", "request.guest")]
    assert codes({**GOOD, "tags": []}) == [("constraint_violation", "request.tags")]
    assert codes({**GOOD, "tags": ["a", "b", "c", "d"]}) == [("constraint_violation", "request.tags")]
    assert codes({**GOOD, "address": {"street": "x", "postcode": "7500"}}) == [
        ("constraint_violation", "request.address.postcode")
    ]
    assert codes({**GOOD, "check_in": "next monday"}) == [("constraint_violation", "request.check_in")]
    assert codes({**GOOD, "kind": "motel"}) == [("enum_violation", "request.kind")]


def test_one_of_const_unique_items_prefix_items_and_additional_properties() -> None:
    tool = load_tool(
        {
            "name": "f",
            "parameters": {
                "type": "object",
                "properties": {
                    "id": {"oneOf": [{"type": "integer"}, {"type": "number", "multipleOf": 0.5}]},
                    "mode": {"const": "fast"},
                    "ids": {"type": "array", "items": {"type": "integer"}, "uniqueItems": True},
                    "point": {"type": "array", "prefixItems": [{"type": "number"}, {"type": "string"}]},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
        }
    )

    def problems(arguments: dict[str, Any]) -> list[str]:
        return [v.code for v in validate_call(ToolCall(name="f", arguments=arguments), [tool])]

    assert (
        problems({"id": 2.5, "mode": "fast", "ids": [1, 2], "point": [1.5, "N"], "labels": {"a": "b"}}) == []
    )
    assert problems({"id": 2}) == ["union_mismatch"]  # 2 is an integer and a multiple of 0.5: two branches
    assert problems({"mode": "slow"}) == ["constraint_violation"]
    assert problems({"ids": [1, 1]}) == ["constraint_violation"]
    assert problems({"point": ["N", 1.5]}) == ["type_mismatch", "type_mismatch"]
    assert problems({"labels": {"a": 1}}) == ["type_mismatch"]


def test_toolmatch_compares_under_the_branch_and_position_schemas() -> None:
    tool = load_tool(mcp_tool())
    label = Action(calls=[ToolCall(name="book", arguments={"request": {**GOOD, "budget": 99.5}})])
    same = Action(calls=[ToolCall(name="book", arguments={"request": {**GOOD, "budget": 99.50000001}})])
    assert tool_match(same, label, [tool]).matched
    other = Action(calls=[ToolCall(name="book", arguments={"request": {**GOOD, "budget": None}})])
    assert not tool_match(other, label, [tool]).matched
    pair = ParamSchema.model_validate(
        {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}]}
    )
    assert values_equal([3, "New York"], [3, "new-york"], pair)
    assert not values_equal([3, "x"], [3.0, "x"], pair)  # a float where the first position is an integer


def test_integers_compare_exactly_and_floats_within_tolerance() -> None:
    integer = ParamSchema(type="integer")
    number = ParamSchema(type="number")
    assert not values_equal(50_000_000, 50_000_001, integer)
    assert not values_equal(50_000_000, 50_000_001, number)  # two integers, even where a number is declared
    assert not values_equal(50_000_000, 50_000_001)  # no schema known
    assert values_equal(50_000_000, 50_000_000.0, number)
    assert values_equal(0.3, 0.30000000000000004, number)
    assert values_equal(1e9, 1e9 + 1, number)  # a float is involved: relative tolerance 1e-6
    text_or_number = ParamSchema(type=("string", "integer"))
    assert values_equal("50000000", 50_000_000, text_or_number)
    assert not values_equal("50000001", 50_000_000, text_or_number)


def test_unrepresentable_schemas_are_refused_with_the_reason() -> None:
    external = {
        "name": "f",
        "parameters": {"type": "object", "properties": {"a": {"$ref": "https://x/y.json"}}},
    }
    with pytest.raises(ToolSpecError, match="points outside the tool's schema"):
        load_tool(external)
    clash = {
        "name": "f",
        "parameters": {
            "type": "object",
            "properties": {"a": {"allOf": [{"type": "string"}, {"type": "integer"}]}},
        },
    }
    with pytest.raises(ToolSpecError, match="allOf branches disagree on 'type'"):
        load_tool(clash)
    record = {"tools": [external], "messages": [{"role": "user", "content": "hi"}], "label": "ok"}
    with pytest.raises(RecordError) as caught:
        convert_record(record)
    assert (
        caught.value.reason
        == "invalid tools: $ref '…' points outside the tool's schema; it cannot be resolved"
    )


def test_what_is_kept_but_not_checked_is_warned_about() -> None:
    notes: list[str] = []
    node = {
        "type": "object",
        "properties": {"child": {"$ref": "#/$defs/Node"}, "name": {"type": "string", "not": {"const": ""}}},
        "$defs": {"Node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}}}},
    }
    tool = load_tool({"name": "tree", "parameters": node}, notes)
    assert any("recursive $ref #/$defs/Node" in note for note in notes)
    assert any("'not' is kept but not checked" in note for note in notes)
    schema = tool.parameters.to_json_schema()
    assert schema["properties"]["name"]["not"] == {"const": ""}  # kept verbatim
    assert schema["properties"]["child"]["properties"]["child"] == {"x-recursive-ref": "#/$defs/Node"}
    conversion = convert_record(
        {
            "tools": [{"name": "tree", "parameters": node}],
            "messages": [{"role": "user", "content": "?"}],
            "label": "no",
        }
    )
    assert conversion.warnings == notes  # the ingest report counts them


def test_openapi_nullable_and_draft4_forms() -> None:
    tool = load_tool(
        {
            "name": "f",
            "parameters": {
                "type": "object",
                "properties": {
                    "a": {"type": "string", "nullable": True},
                    "b": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
                    "c": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]},
                    "d": {"type": "string", "required": True},
                },
            },
        }
    )
    props = tool.parameters.to_json_schema()["properties"]
    assert props["a"]["type"] == ["string", "null"]
    assert props["b"] == {"type": "number", "exclusiveMinimum": 0}
    assert props["c"]["prefixItems"] == [{"type": "string"}, {"type": "integer"}]
    assert tool.parameters.required == ("d",)


def test_arrow_null_fill_is_dropped_not_read_as_schemas() -> None:
    # datasets/parquet merge the tools' struct types: each tool gains the others' parameters as null,
    # and every keyword any schema uses, null where this one has none.
    tool = load_tool(
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "w",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "location": {"type": "string", "enum": None, "items": None, "minimum": None},
                        "units": {"type": "string", "enum": ["c", "f"], "required": None},
                        "symbol": None,
                    },
                    "required": ["location", "symbol"],
                    "additionalProperties": None,
                },
            },
        }
    )
    assert tool.parameters.to_json_schema() == {
        "type": "object",
        "properties": {"location": {"type": "string"}, "units": {"type": "string", "enum": ["c", "f"]}},
        "required": ["location"],  # a null property is no parameter, so it is not required either
    }
    nothing_required = load_tool(
        {
            "name": "f",
            "parameters": {"type": "object", "properties": {"a": {"type": "string"}}, "required": None},
        }
    )
    assert nothing_required.parameters.required == ()
    xlam = load_tool({"name": "f", "parameters": {"a": {"type": "str", "description": None}, "b": None}})
    assert xlam.parameters.to_json_schema() == {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "required": ["a"],
    }
    # null stays a value where JSON Schema gives it one
    kept = load_tool({"name": "f", "parameters": {"type": "object", "properties": {"a": {"default": None}}}})
    assert kept.parameters.properties["a"].has_default


# --- xLAM type expressions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "schema", "optional", "default"),
    [
        (
            "List[Tuple[float, float]]",
            {
                "type": "array",
                "items": {
                    "type": "array",
                    "prefixItems": [{"type": "number"}, {"type": "number"}],
                    "minItems": 2,
                    "maxItems": 2,
                },
            },
            False,
            None,
        ),
        ("Union[int, float]", {"type": ["integer", "number"]}, False, None),
        ("Set[int]", {"type": "array", "uniqueItems": True, "items": {"type": "integer"}}, False, None),
        ("str, default='en'", {"type": "string"}, True, "en"),
        ("str, optional", {"type": "string"}, True, None),
        (
            "Optional[List[str]]",
            {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]},
            True,
            None,
        ),
        ("Dict[str, Any]", {"type": "object"}, False, None),
        ("Dict[str, int]", {"type": "object", "additionalProperties": {"type": "integer"}}, False, None),
        ("Literal['a', 'b']", {"type": "string", "enum": ["a", "b"]}, False, None),
        # The same type as Optional[int], so as optional (a dataset's writer means "may be left out").
        ("int | None", {"type": ["integer", "null"]}, True, None),
        ("Union[int, None]", {"type": ["integer", "null"]}, True, None),
        ("List[int | None]", {"type": "array", "items": {"type": ["integer", "null"]}}, False, None),
        ("Tuple[int, ...]", {"type": "array", "items": {"type": "integer"}}, False, None),
        ("float, default=0.5", {"type": "number"}, True, 0.5),
        # xLAM's math tools: the function travels as its source text ("lambda x: x**2").
        ("Callable[[float], float]", {"type": "string"}, False, None),
        ("Optional[Callable[..., Any]]", {"type": ["string", "null"]}, True, None),
        ("bool, optional, default=True", {"type": "boolean"}, True, True),
    ],
)
def test_type_expressions(text: str, schema: dict[str, Any], optional: bool, default: Any) -> None:
    expression = parse_type_expression(text)
    assert (expression.schema, expression.optional, expression.default) == (schema, optional, default)


@pytest.mark.parametrize(
    "text",
    ["Tuple[float", "List[int, str]", "Widget[[int], str]", "complex", "str, default=", "int, sometimes"],
)
def test_bad_type_expressions_say_why(text: str) -> None:
    with pytest.raises(TypeExpressionError):
        parse_type_expression(text)


def test_xlam_tools_with_nested_types_load() -> None:
    [tool] = load_tools(
        json.dumps(
            [
                {
                    "name": "polygon_area",
                    "description": "Area of a polygon.",
                    "parameters": {
                        "vertices": {"description": "Corners.", "type": "List[Tuple[float, float]]"},
                        "unit": {"description": "Unit.", "type": "str, default='m'"},
                    },
                }
            ]
        )
    )
    schema = tool.parameters.to_json_schema()
    assert schema["required"] == ["vertices"]
    assert schema["properties"]["vertices"]["x-original-type"] == "List[Tuple[float, float]]"
    assert schema["properties"]["unit"]["default"] == "m"
    assert not validate_call(
        ToolCall(name="polygon_area", arguments={"vertices": [[0, 0], [1, 0.5]]}), [tool]
    )
    assert [
        v.code for v in validate_call(ToolCall(name="polygon_area", arguments={"vertices": [[0]]}), [tool])
    ] == ["constraint_violation"]


# --- Python call syntax (ToolACE, BFCL multi-turn answers) ------------------------------------------


def test_python_calls_with_spaces_in_names_and_literal_values() -> None:
    calls = parse_python_calls(
        '[Market Trends API(trend_type="MARKET_INDEXES", country="us"), f(x=[1, -2], y=None)]'
    )
    assert [(c.name, c.keywords) for c in calls] == [
        ("Market Trends API", {"trend_type": "MARKET_INDEXES", "country": "us"}),
        ("f", {"x": [1, -2], "y": None}),
    ]
    with pytest.raises(TypeExpressionError, match="is not a literal"):
        parse_python_calls("[f(x=some_variable)]")


def test_python_call_keyword_names_are_read_as_written() -> None:
    """ToolACE and BFCL name parameters ``from``, ``class`` or ``league-id``; Python's parser refused
    those calls, and NFKC-normalised the names it read (``µ`` became ``μ``, ``ﬁ`` became ``fi``)."""
    calls = parse_python_calls(
        "[Currency Converter(from='USD', to='EUR', amount=10), "
        "Get League(league-id=7, class='A', µg=1, ﬁeld=\"x, y=(1)\", nested={'a': [1, 2]},)]"
    )
    assert [(c.name, c.keywords) for c in calls] == [
        ("Currency Converter", {"from": "USD", "to": "EUR", "amount": 10}),
        ("Get League", {"league-id": 7, "class": "A", "µg": 1, "ﬁeld": "x, y=(1)", "nested": {"a": [1, 2]}}),
    ]
    assert parse_python_calls("f('Paris', 2, unit='c')")[0].positional == ("Paris", 2)
    for bad, reason in (
        ("f(a=1, a=2)", "repeated"),
        ("f(a=1, 2)", "positional argument after"),
        ("f(**kw)", "'\\*\\*'"),
        ("f(a=)", "no value"),
        ("f(a b=1)", "do not parse"),
    ):
        with pytest.raises(TypeExpressionError, match=reason):
            parse_python_calls(bad)


def test_toolace_bracket_calls_in_assistant_turns() -> None:
    tools = [
        {
            "name": "Get Weather",
            "description": "Weather.",
            "parameters": {"type": "dict", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            "required": None,
        }
    ]
    record = {
        "system": "Here is a list of functions in JSON format that you can invoke:\n"
        + json.dumps(tools)
        + ". \nShould you decide to return the function call(s)...",
        "conversations": [
            {"from": "user", "value": "Weather in Oslo?"},
            {"from": "assistant", "value": '[Get Weather(city="Oslo")]'},
            {"from": "tool", "value": '[{"name": "Get Weather", "results": {"temp": 3}}]'},
            {"from": "assistant", "value": "It is 3 degrees."},
        ],
    }
    [sample] = convert_record(record).samples
    assert sample.tools[0].name == "Get Weather"
    assert sample.label == Action(calls=[ToolCall(name="Get Weather", arguments={"city": "Oslo"})])


def test_glaive_raw_transcript() -> None:
    function = {
        "name": "get_news_headlines",
        "description": "Get the latest news headlines",
        "parameters": {
            "type": "object",
            "properties": {"country": {"type": "string"}},
            "required": ["country"],
        },
    }
    call = '{"name": "get_news_headlines", "arguments": \'{"country": "United States"}\'}'
    record = {
        "system": "SYSTEM: You are a helpful assistant with access to the following functions. Use them if "
        f"required -\n{json.dumps(function, indent=4)}\n",
        "chat": "USER: Can you tell me the latest news headlines for the United States?\n\n\n"
        f"ASSISTANT: <functioncall> {call} <|endoftext|>\n\n\n"
        'FUNCTION RESPONSE: {"headlines": ["a"]}\n\n\nASSISTANT: Here they are. <|endoftext|>',
    }
    conversion = convert_record(record)
    assert conversion.format == "glaive"
    [sample] = conversion.samples
    assert sample.label == Action(
        calls=[ToolCall(name="get_news_headlines", arguments={"country": "United States"})]
    )


def test_glaive_raw_quoted_arguments_with_an_apostrophe_inside() -> None:
    function = {
        "name": "send_email",
        "parameters": {"type": "object", "properties": {"recipient": {"type": "string"}}},
    }
    call = (
        '{"name": "send_email", "arguments": \'{"recipient": "bob@x.com", "message": "I\'m late, '
        "O'Brien\"}'}"
    )
    record = {
        "system": "SYSTEM: You are a helpful assistant with access to the following functions. Use them if "
        f"required -\n{json.dumps(function, indent=4)}\n",
        "chat": f"USER: Email bob@x.com that I'm late\n\n\nASSISTANT: <functioncall> {call} <|endoftext|>\n",
    }
    [sample] = convert_record(record).samples
    assert sample.label == Action(
        calls=[
            ToolCall(name="send_email", arguments={"recipient": "bob@x.com", "message": "I'm late, O'Brien"})
        ]
    )


def test_a_nameless_tool_is_counted_under_one_reason_whatever_its_shape() -> None:
    from toolcall.formats import RecordError, record_to_samples

    reasons = set()
    for tool in ({"description": "x"}, {"name": "", "parameters": {"type": "object"}}, {"fn": 1}):
        record = {"tools": [tool], "messages": [{"role": "user", "content": "hi"}], "label": "hello"}
        with pytest.raises(RecordError) as refused:
            record_to_samples(record)
        assert "a tool needs a non-empty string name" in str(refused.value)
        reasons.add(refused.value.reason)
    assert reasons == {"invalid tools: a tool needs a non-empty string name"}
