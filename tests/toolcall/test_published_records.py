"""Real published records, as their publishers ship them, converted field by field.

The records live in ``tests/toolcall/data/published/`` (sources and licences in its README): BFCL as
``bfcl-eval`` ships it (question files beside ``possible_answer/`` and ``multi_turn_func_doc/``),
LLaMA-Factory's demo files, the Hermes function-calling v1 and xLAM dataset cards, a ToolACE
conversation republished in LLaMA-Factory's ShareGPT layout, and glaive-function-calling-v2 records in
their raw ``system``/``chat`` form. Every expected value below was read off
the record itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streams.sources import iter_records
from toolcall.formats import NO_SUITABLE_TOOL, RecordError, convert_record
from toolcall.formats.bfcl import ADDED_FUNCTIONS_MESSAGE
from toolcall.rules import validate_action
from toolcall.types import Action, Message, ToolCall

DATA = Path(__file__).parent / "data" / "published"


def records(relative: str) -> list[Any]:
    """Each record of a published file, parsed with the context its folder gives (BFCL answers, docs)."""
    return [source for source in iter_records(DATA / relative)]


def only(relative: str, index: int = 0) -> Any:
    source = records(relative)[index]
    assert source.error is None, source.error
    return convert_record(source.value, "auto", source.context)


def schema(conversion: Any, tool: str, sample: int = 0) -> dict[str, Any]:
    spec = next(t for t in conversion.samples[sample].tools if t.name == tool)
    return spec.parameters.to_json_schema()


# --- BFCL, as bfcl-eval ships it ----------------------------------------------------------------------


def test_bfcl_answers_are_joined_from_the_possible_answer_folder() -> None:
    conversion = only("bfcl/BFCL_v4_simple_python.json")
    [sample] = conversion.samples
    assert conversion.format == "bfcl"
    assert sample.messages == [
        Message(
            role="user", content="Find the area of a triangle with a base of 10 units and height of 5 units."
        )
    ]
    # possible answer: {"calculate_triangle_area": {"base": [10], "height": [5], "unit": ["units", ""]}}
    assert sample.label == Action(
        calls=[ToolCall(name="calculate_triangle_area", arguments={"base": 10, "height": 5, "unit": "units"})]
    )
    [tool] = sample.tools
    assert tool.description == "Calculate the area of a triangle given its base and height."
    assert schema(conversion, "calculate_triangle_area") == {
        "type": "object",
        "properties": {
            "base": {"type": "integer", "description": "The base of the triangle."},
            "height": {"type": "integer", "description": "The height of the triangle."},
            "unit": {
                "type": "string",
                "description": "The unit of measure (defaults to 'units' if not specified)",
            },
        },
        "required": ["base", "height"],
    }


def test_bfcl_java_types_are_mapped_and_the_original_type_kept() -> None:
    hashmap, arraylist, long = (only("bfcl/BFCL_v4_simple_java.json", i) for i in range(3))
    params = schema(hashmap, "SQLCompletionAnalyzer.makeProposalsFromObject")["properties"]
    assert params["object"] == {"description": "The database object for which to generate proposals."}  # any
    assert params["params"]["type"] == "object" and params["params"]["x-original-type"] == "HashMap"
    assert hashmap.samples[0].label.calls == [
        ToolCall(
            name="SQLCompletionAnalyzer.makeProposalsFromObject",
            arguments={
                "object": "Customers",
                "useShortName": True,
                "params": {"limit": 50, "schemaFilter": "public"},
            },
        )
    ]
    ids = schema(arraylist, "PmsProductServiceImpl.updateNewStatus")["properties"]["ids"]
    assert ids["type"] == "array" and ids["x-original-type"] == "ArrayList"
    assert ids["items"] == {"type": "integer", "x-original-type": "long"}
    assert arraylist.samples[0].label.calls[0].arguments == {"ids": [101, 202, 303], "newStatus": 2}
    identifier = schema(long, "SmsHomeRecommendSubjectController.updateSort")["properties"]["id"]
    assert identifier["type"] == "integer" and identifier["x-original-type"] == "long"
    for conversion in (hashmap, arraylist, long):
        assert not validate_action(conversion.samples[0].label, conversion.samples[0].tools)


def test_bfcl_javascript_empty_and_capitalised_types() -> None:
    validate, token = (only("bfcl/BFCL_v4_simple_javascript.json", i) for i in range(2))
    props = schema(validate, "validateUserInput")["properties"]
    assert props["inputField"]["type"] == "string" and props["isComplete"]["type"] == "boolean"
    options = schema(token, "createAuthToken")["properties"]["options"]
    assert options["properties"]["issuer"] == {
        "description": "The entity that issued the token.",
        "x-original-type": "",  # BFCL wrote "type": "" here: no constraint, the original kept
    }
    assert token.samples[0].label.calls == [
        ToolCall(
            name="createAuthToken",
            arguments={
                "username": "johndoe",
                "validity": 3600,
                "options": {"issuer": "myapp.net", "role": "admin", "algorithm": "HS256"},
            },
        )
    ]


def test_bfcl_irrelevance_and_no_function_records_are_no_call_samples() -> None:
    irrelevance = only("bfcl/BFCL_v4_irrelevance.json")
    [sample] = irrelevance.samples
    assert [t.name for t in sample.tools] == ["determine_body_mass_index"]
    assert not sample.label.calls and sample.label.text == NO_SUITABLE_TOOL
    no_function = only("bfcl/BFCL_v4_live_irrelevance.json")
    [sample] = no_function.samples
    assert sample.tools == [] and not sample.label.calls
    assert sample.messages[0].content.startswith("Could you tell me the current weather in Boston, MA")


def test_bfcl_multi_turn_base_is_one_sample_per_turn_with_the_class_docs() -> None:
    conversion = only("bfcl/BFCL_v4_multi_turn_base.json")
    samples = conversion.samples
    assert len(samples) == 4  # four user turns
    names = {t.name for t in samples[0].tools}
    assert {
        "cd",
        "mkdir",
        "mv",
        "grep",
        "sort",
        "diff",
        "post_tweet",
    } <= names  # GorillaFileSystem + TwitterAPI
    # Every function of both classes' docs but "cp", which the record lists in "excluded_function".
    assert len(names) == 18 + 14 - 1 and "cp" not in names
    assert samples[0].label == Action(
        calls=[
            ToolCall(name="cd", arguments={"folder": "document"}),
            ToolCall(name="mkdir", arguments={"dir_name": "temp"}),
            ToolCall(name="mv", arguments={"source": "final_report.pdf", "destination": "temp"}),
        ],
        ordered=True,
    )
    # "sort('final_report.pdf')": the positional argument takes the first declared parameter.
    assert samples[2].label == Action(
        calls=[ToolCall(name="sort", arguments={"file_name": "final_report.pdf"})]
    )
    # Later turns see the earlier turns and the calls that answered them.
    third = samples[2].messages
    assert [m.role for m in third] == ["user", "assistant", "user", "assistant", "user"]
    assert third[1].tool_calls == samples[0].label.calls and third[3].tool_calls == samples[1].label.calls
    assert samples[3].label.calls[-1] == ToolCall(
        name="diff", arguments={"file_name1": "final_report.pdf", "file_name2": "previous_report.pdf"}
    )
    for sample in samples:
        assert not validate_action(sample.label, sample.tools)


def test_bfcl_multi_turn_missing_function_is_held_back_until_its_turn() -> None:
    samples = only("bfcl/BFCL_v4_multi_turn_miss_func.json").samples
    assert len(samples) == 5
    assert "sort" not in {t.name for s in samples[:3] for t in s.tools}  # missed_function {"3": ["sort"]}
    assert "sort" in {t.name for t in samples[3].tools} and "sort" in {t.name for t in samples[4].tools}
    assert not samples[2].label.calls  # asked to sort while sort is missing: no call is right
    assert samples[3].messages[-1] == Message(role="user", content=ADDED_FUNCTIONS_MESSAGE)
    assert samples[3].label.calls == [ToolCall(name="sort", arguments={"file_name": "final_report.pdf"})]


def test_bfcl_multi_turn_missing_parameter_turn_is_a_no_call_step() -> None:
    samples = only("bfcl/BFCL_v4_multi_turn_miss_param.json").samples
    assert len(samples) == 5 and not samples[3].label.calls
    assert samples[4].messages[-1].content == "The specific file is previous_report.pdf."
    assert samples[4].label.calls[1] == ToolCall(
        name="mv", arguments={"source": "previous_report.pdf", "destination": "temp"}
    )


@pytest.mark.parametrize(
    ("relative", "reason"),
    [
        ("bfcl/BFCL_v4_memory.json", "bfcl agentic record: no call to learn"),
        ("bfcl/BFCL_v4_live_relevance.json", "bfcl relevance record: no reference call"),
    ],
)
def test_bfcl_records_without_a_call_to_learn_are_refused_with_that_reason(
    relative: str, reason: str
) -> None:
    [source] = records(relative)
    with pytest.raises(RecordError) as caught:
        convert_record(source.value, "auto", source.context)
    assert caught.value.reason == reason


def test_bfcl_question_without_its_answers_says_where_they_should_be() -> None:
    [source] = records("bfcl/BFCL_v4_simple_python.json")[:1]
    with pytest.raises(RecordError, match="possible_answer/") as caught:
        convert_record(source.value)  # no context: the answers are not joined
    assert caught.value.reason == "bfcl record has no ground truth"


# --- LLaMA-Factory (glaive in ShareGPT form; its reasoning tool-use demo) ------------------------------


def test_llamafactory_glaive_demo_function_call_and_observation_turns() -> None:
    demo = json.loads((DATA / "llamafactory" / "glaive_toolcall_en_demo.json").read_text())
    recipes = convert_record(demo[0])
    assert recipes.format == "sharegpt"
    [tool] = recipes.samples[0].tools
    assert tool.name == "search_recipes" and tool.parameters.required == ("ingredients",)
    first, second, third = recipes.samples
    assert first.label.text and first.label.text.startswith("Of course! I can help you with that.")
    assert second.label == Action(
        calls=[
            ToolCall(name="search_recipes", arguments={"ingredients": ["chicken", "bell peppers", "rice"]})
        ]
    )
    assert [m.role for m in third.messages] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]
    assert third.messages[4].content == demo[0]["conversations"][4]["value"]  # the observation, verbatim
    assert third.label.text == demo[0]["conversations"][7]["value"]
    # "tools": "[]": a conversation that offers no tool is no-call samples, one per answer after a user turn.
    chat = convert_record(demo[1])
    assert len(chat.samples) == 5 and all(s.tools == [] and not s.label.calls for s in chat.samples)
    area = convert_record(demo[2])
    assert [s.label.calls[0].arguments for s in area.samples] == [
        {"shape": "rectangle", "dimensions": [5, 3]},
        {"shape": "circle", "dimensions": [4]},
        {"shape": "square", "dimensions": [7]},
    ]
    assert {t.name for t in area.samples[0].tools} == {"calculate_area", "calculate_discount"}
    refusal = convert_record(demo[3])
    [sample] = refusal.samples
    assert sample.tools[0].name == "create_calendar_event" and sample.label.text.startswith("I'm sorry")


def test_llamafactory_content_parts_with_tool_call_parts_and_xlam_types() -> None:
    lines = (DATA / "llamafactory" / "reason_tool_use_demo_50.jsonl").read_text().splitlines()
    refusal = convert_record(json.loads(lines[0]))
    assert refusal.format == "openai"
    [sample] = refusal.samples
    assert [m.role for m in sample.messages] == ["system", "user"]
    assert sample.label.text.startswith("I'm sorry, but the available tools don't seem to have a function")
    assert any("reasoning part not kept" in w for w in refusal.warnings)  # said, not silently dropped
    # The required list sits beside "parameters" in this file: it is moved inside.
    device = schema(refusal, "get_device_asset_by_identifier")
    assert device["required"] == ["identifier"] and device["properties"]["identifier"]["type"] == "string"
    parallel = convert_record(json.loads(lines[1]))
    [sample] = parallel.samples
    assert sample.label.calls == [
        ToolCall(name="pagesjaunes", arguments={"pjpage": 1, "pjlocation": "Lyon", "pjkeyword": "bakeries"}),
        ToolCall(name="links_finder", arguments={"query": "music festivals"}),
        ToolCall(name="search", arguments={"q": "concerts"}),
    ]
    search = schema(parallel, "search")["properties"]
    assert search["number"] == {
        "type": "integer",
        "description": "The number of search results to return. Defaults to 10.",
        "default": "10",  # as published: a string default for an integer
    }
    assert "required" not in schema(parallel, "search")  # every parameter has a default: none required


# --- Hermes function-calling v1 (dataset card) ---------------------------------------------------------


def hermes(index: int) -> dict[str, Any]:
    lines = (DATA / "hermes" / "hermes-function-calling-v1.card.jsonl").read_text().splitlines()
    return json.loads(lines[index])


def test_hermes_python_literal_tools_and_calls() -> None:
    record = hermes(0)
    conversion = convert_record(record)
    [sample] = conversion.samples
    [tool] = sample.tools
    assert tool.name == "search_flights"
    flight = tool.parameters.to_json_schema()
    assert flight["required"] == [
        "departure_city",
        "destination_city",
        "departure_date",
        "return_date",
        "class",
    ]
    assert flight["properties"]["departure_date"] == {
        "type": "string",
        "description": "The departure date for the flight.",
        "format": "date",
    }
    assert flight["properties"]["class"]["enum"] == ["economy", "business", "first"]
    assert sample.messages == [Message(role="user", content=record["conversations"][1]["value"])]
    assert sample.label == Action(
        calls=[
            ToolCall(
                name="search_flights",
                arguments={
                    "departure_city": "Los Angeles",
                    "destination_city": "Auckland",
                    "departure_date": "2023-07-10",
                    "return_date": "2023-07-24",
                    "class": "economy",
                    "flexible_cancellation": True,
                },
            )
        ]
    )
    assert not validate_action(sample.label, sample.tools)  # format "date" checked, and met
    assert any("system prompt carrying the tool list" in w for w in conversion.warnings)


def test_hermes_structured_extraction_record_is_refused_with_its_true_reason() -> None:
    # As published, the call block holds literal "\n" characters around a body whose name sits inside
    # "arguments": it is not a call.
    with pytest.raises(RecordError) as caught:
        convert_record(hermes(1))
    assert caught.value.reason == "assistant turn does not parse"
    assert "not valid JSON" in str(caught.value)


@pytest.mark.parametrize("index", [2, 3])
def test_hermes_json_mode_records_offer_no_tool_and_answer_in_text(index: int) -> None:
    record = hermes(index)
    [sample] = convert_record(record).samples
    assert sample.tools == []
    assert sample.messages[0] == Message(role="system", content=record["conversations"][0]["value"])
    assert sample.label == Action(text=record["conversations"][2]["value"])


# --- xLAM (dataset card) --------------------------------------------------------------------------


def test_xlam_card_example_with_required_flags() -> None:
    record = json.loads((DATA / "xlam" / "xlam-function-calling-60k.card.json").read_text())
    conversion = convert_record(record)
    assert conversion.format == "xlam"
    [sample] = conversion.samples
    assert sample.messages == [Message(role="user", content=record["query"])]
    multiples = schema(conversion, "math_toolkit.sum_of_multiples")
    assert multiples == {
        "type": "object",
        "properties": {
            "lower_limit": {"type": "integer", "description": "The start of the range (inclusive)."},
            "upper_limit": {"type": "integer", "description": "The end of the range (inclusive)."},
            "multiples": {"type": "array", "description": "The numbers to find multiples of."},
        },
        "required": ["lower_limit", "upper_limit", "multiples"],
    }
    assert sample.label == Action(
        calls=[
            ToolCall(
                name="math_toolkit.sum_of_multiples",
                arguments={"lower_limit": 1, "upper_limit": 1000, "multiples": [3, 5]},
            ),
            ToolCall(name="math_toolkit.product_of_primes", arguments={"count": 5}),
        ]
    )
    assert not validate_action(sample.label, sample.tools)


# --- ToolACE (republished in LLaMA-Factory's ShareGPT layout) -------------------------------------


def test_toolace_tools_come_from_the_system_prompt_listing() -> None:
    [record] = json.loads((DATA / "toolace" / "sharegpt_func_fixed.subset.json").read_text())
    conversion = convert_record(record)
    first, second, third = conversion.samples
    assert [t.name for t in first.tools] == [
        "GetCompetitions",
        "Get Manager Placeholder Image",
        "Search Competition API",
        "Get Category Image",
    ]
    image = schema(conversion, "Get Manager Placeholder Image")
    assert image["required"] == ["sport"] and image["properties"]["sport"]["type"] == "string"  # "dict" read
    assert first.label == Action(calls=[ToolCall(name="GetCompetitions", arguments={})])
    assert second.label.text and second.label.text.startswith("Manager images are quite significant")
    # As republished, the second call names "Image", which no tool is: kept, and the rule check says so.
    assert third.label == Action(calls=[ToolCall(name="Image", arguments={"sport": "football"})])
    assert [v.code for v in validate_action(third.label, third.tools)] == ["unknown_function"]
    assert first.messages[0].role == "user"  # the harness system prompt is not a message


# --- glaive-function-calling-v2, raw system/chat transcripts ---------------------------------------


def glaive(index: int) -> dict[str, Any]:
    lines = (DATA / "glaive" / "chat_data.jsonl").read_text().splitlines()
    return json.loads(lines[index])


def test_glaive_raw_refusal_keeps_the_listed_tool_and_answers_in_text() -> None:
    conversion = convert_record(glaive(0))
    assert conversion.format == "glaive"
    [sample] = conversion.samples
    assert sample.messages == [
        Message(role="user", content="Can you book a flight for me from New York to London?")
    ]
    [tool] = sample.tools
    assert tool.name == "get_exchange_rate"
    assert tool.description == "Get the exchange rate between two currencies"
    assert tool.parameters.to_json_schema() == {
        "type": "object",
        "properties": {
            "base_currency": {"type": "string", "description": "The currency to convert from"},
            "target_currency": {"type": "string", "description": "The currency to convert to"},
        },
        "required": ["base_currency", "target_currency"],
    }
    # "<|endoftext|>" and the blank lines after it are the transcript's separators, not the answer.
    assert sample.label == Action(
        text="I'm sorry, but I don't have the capability to book flights. My current function allows me"
        " to get the exchange rate between two currencies. If you need help with that, feel free to ask!"
    )
    assert any("system prompt carrying the tool list" in w for w in conversion.warnings)


def test_glaive_raw_quoted_arguments_and_function_responses_across_two_rounds() -> None:
    first, second = convert_record(glaive(1)).samples
    # The arguments are a single-quoted JSON string inside the call object: read as an object.
    assert first.label == Action(
        calls=[ToolCall(name="get_news_headlines", arguments={"country": "United States"})]
    )
    france = ToolCall(name="get_news_headlines", arguments={"country": "France"})
    assert second.label == Action(calls=[france])
    assert second.messages == [
        Message(role="user", content="Can you tell me the latest news headlines for the United States?"),
        Message(role="assistant", content="", tool_calls=first.label.calls),
        Message(
            role="tool",
            content='{"headlines": ["Biden announces new vaccine mandates", "Hurricane Ida devastates'
            ' Louisiana", "Apple unveils new iPhone", "NASA\'s Perseverance rover collects first Mars rock'
            ' sample"]}',
        ),
        Message(
            role="assistant",
            content="Here are the latest news headlines for the United States:\n"
            "1. Biden announces new vaccine mandates\n2. Hurricane Ida devastates Louisiana\n"
            "3. Apple unveils new iPhone\n4. NASA's Perseverance rover collects first Mars rock sample",
        ),
        Message(role="user", content="That's interesting. What about the news in France?"),
    ]
    assert schema(convert_record(glaive(1)), "get_news_headlines")["required"] == ["country"]


def test_glaive_raw_two_listed_functions_with_format_and_enum() -> None:
    conversion = convert_record(glaive(2))
    ask, call = conversion.samples
    assert [t.name for t in ask.tools] == ["generate_password", "create_task"]
    assert ask.label == Action(
        text="Of course. How long would you like your password to be?"
        " And would you like it to include symbols?"
    )
    assert call.messages[-1] == Message(
        role="user", content="I would like it to be 12 characters long and yes, please include symbols."
    )
    assert call.label == Action(
        calls=[ToolCall(name="generate_password", arguments={"length": 12, "include_symbols": True})]
    )
    task = schema(conversion, "create_task")
    assert task["properties"]["due_date"] == {
        "type": "string",
        "description": "The due date of the task",
        "format": "date",
    }
    assert task["properties"]["priority"]["enum"] == ["low", "medium", "high"]
    assert task["required"] == ["title", "due_date", "priority"]
    assert schema(conversion, "generate_password")["required"] == ["length"]
    assert not validate_action(call.label, call.tools)


@pytest.mark.parametrize(
    ("index", "name", "arguments"),
    [
        (3, "generate_password", {"length": 12, "include_numbers": True, "include_special_characters": True}),
        (4, "calculate_median", {"numbers": [5, 2, 9, 1, 7, 4, 6, 3, 8]}),
    ],
)
def test_glaive_raw_ask_then_call(index: int, name: str, arguments: dict[str, Any]) -> None:
    ask, call = convert_record(glaive(index)).samples
    assert ask.label.text and ask.label.text.startswith("Of course")
    assert [m.role for m in call.messages] == ["user", "assistant", "user"]
    assert call.label == Action(calls=[ToolCall(name=name, arguments=arguments)])
    assert not validate_action(call.label, call.tools)
    if name == "calculate_median":
        numbers = call.tools[0].parameters.to_json_schema()["properties"]["numbers"]
        assert numbers == {"type": "array", "description": "A list of numbers", "items": {"type": "number"}}
