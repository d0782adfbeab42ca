"""Seed formats -> samples: every supported format, dialogue expansion, and clear errors."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolcall.formats import RecordError, convert_record, detect_format, record_to_samples
from toolcall.types import Action, ToolCall

EXAMPLES = Path(__file__).parents[2] / "examples" / "seeds"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.jsonl")), ids=lambda p: p.name)
def test_every_shipped_example_reads(path: Path) -> None:
    for line in path.read_text().splitlines():
        record = json.loads(line)
        samples = record_to_samples(record)
        assert detect_format(record) == path.stem
        assert samples and all(any(m.role == "user" for m in s.messages) for s in samples)


def test_paper_chatml_input_figure_9() -> None:
    record = {
        "tools": [WEATHER_TOOL],
        "input": (
            "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n"
            '{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n'
            '<|im_start|>user\n<tool_response>\n{"forecast": "sun"}\n</tool_response><|im_end|>\n'
            "<|im_start|>assistant\nSunny.<|im_end|>\n<|im_start|>user\nAnd in Rome?<|im_end|>"
        ),
        "label": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>',
    }
    [sample] = record_to_samples(record)
    assert [m.role for m in sample.messages] == ["user", "assistant", "tool", "assistant", "user"]
    assert sample.messages[1].tool_calls == [ToolCall(name="get_weather", arguments={"city": "Paris"})]
    assert sample.label == Action(calls=[ToolCall(name="get_weather", arguments={"city": "Rome"})])


def test_openai_dialogue_expands_into_one_sample_per_step() -> None:
    record = {
        "tools": [WEATHER_TOOL],
        "messages": [
            {"role": "user", "content": "Weather please."},
            {"role": "assistant", "content": "Which city?"},
            {"role": "user", "content": "Paris."},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "1", "content": "sun"},
            {"role": "assistant", "content": "It is sunny."},
        ],
    }
    samples = record_to_samples(record)
    assert [s.label for s in samples] == [
        Action(text="Which city?"),
        Action(calls=[ToolCall(name="get_weather", arguments={"city": "Paris"})]),
    ]  # the summary after the tool result is not a step to learn
    assert samples[1].messages[-1].content == "Paris."


def test_bfcl_ground_truth_takes_first_acceptable_value_and_skips_optional() -> None:
    record = {
        "question": [[{"role": "user", "content": "Area of a triangle with base 10 and height 5?"}]],
        "function": [
            {
                "name": "area",
                "parameters": {
                    "type": "dict",
                    "properties": {
                        "base": {"type": "integer"},
                        "height": {"type": "integer"},
                        "unit": {"type": "string"},
                    },
                    "required": ["base", "height"],
                },
            }
        ],
        "ground_truth": [{"area": {"base": [10], "height": [5], "unit": ["", "units"]}}],
    }
    [sample] = record_to_samples(record)
    assert sample.label == Action(calls=[ToolCall(name="area", arguments={"base": 10, "height": 5})])
    irrelevant = {**record, "ground_truth": []}
    assert not record_to_samples(irrelevant)[0].label.calls


def test_xlam_and_hermes() -> None:
    xlam = {
        "query": "Is 153 an Armstrong number?",
        "tools": json.dumps(
            [{"name": "is_armstrong", "description": "", "parameters": {"num": {"type": "int"}}}]
        ),
        "answers": json.dumps([{"name": "is_armstrong", "arguments": {"num": 153}}]),
    }
    [sample] = record_to_samples(xlam)
    assert sample.tools[0].parameters.properties["num"].type == "integer"
    hermes = {
        "conversations": [
            {"from": "system", "value": f"You have tools <tools>{json.dumps(WEATHER_TOOL)}</tools>"},
            {"from": "human", "value": "Weather in Oslo?"},
            {
                "from": "gpt",
                "value": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>',
            },
        ]
    }
    [sample] = record_to_samples(hermes)
    assert sample.tools[0].name == "get_weather" and sample.label.calls[0].arguments == {"city": "Oslo"}


# argilla/Synth-APIGen-v0.1 (and argilla/apigen-function-calling, which merges it with xLAM): xLAM's
# columns, the tools in OpenAI's layout; a query its tools cannot serve is answered in words, not with a
# list (its TRL conversion keeps such an answer as the assistant's text).
SYNTH_APIGEN_REFUSAL = {
    "func_name": "complex_to_polar",
    "func_desc": "Converts a complex number to its polar coordinate representation.",
    "tools": json.dumps(
        [
            {
                "type": "function",
                "function": {
                    "name": "complex_to_polar",
                    "description": "Converts a complex number to its polar coordinate representation.",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "complex_number": {"type": "object", "description": "A complex number."}
                        },
                        "required": ["complex_number"],
                    },
                },
            }
        ]
    ),
    "query": "What is the square root of 2 to ten decimal places?",
    "answers": "The query cannot be answered with the provided tools: they convert complex numbers to polar "
    "coordinates only.",
    "model_name": "Qwen/Qwen2.5-72B-Instruct",
    "hash_id": "9a1c0f3e",
}


def test_a_synth_apigen_answer_in_words_is_the_no_call_answer() -> None:
    # Was refused: "answers is not valid JSON: Expecting value at char 0".
    [sample] = record_to_samples(SYNTH_APIGEN_REFUSAL)
    assert [tool.name for tool in sample.tools] == ["complex_to_polar"]
    assert sample.label == Action(text=SYNTH_APIGEN_REFUSAL["answers"])
    # An answer that starts as JSON must still read as calls: a cut-off list is refused, not kept as text.
    with pytest.raises(RecordError, match="answers is not valid JSON"):
        record_to_samples({**SYNTH_APIGEN_REFUSAL, "answers": '[{"name": "complex_to_polar", "argu'})


def test_a_record_offering_no_tool_is_a_no_call_sample() -> None:
    record = {"tools": [], "messages": [{"role": "user", "content": "hi"}], "label": "Hello!"}
    [paper] = record_to_samples(record)
    assert paper.tools == [] and paper.label == Action(text="Hello!")
    bfcl = {"question": [[{"role": "user", "content": "Weather in Boston?"}]], "function": []}
    [sample] = record_to_samples(bfcl)  # no function and no possible answer: no call is right
    assert sample.tools == [] and not sample.label.calls


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ([1, 2], "must be a JSON object"),
        ({"foo": 1}, "unrecognised record format"),
        (
            {
                "tools": [WEATHER_TOOL],
                "messages": [{"role": "user", "content": "hi"}],
                "label": "<tool_call>{x",
            },
            "label does not parse",
        ),
        (
            {"tools": [WEATHER_TOOL], "messages": [{"role": "wizard", "content": "hi"}], "label": "ok"},
            "unknown message role",
        ),
        (
            {"tools": [WEATHER_TOOL], "messages": [{"role": "assistant", "content": "hi"}], "label": "ok"},
            "no user turn",
        ),
        ({"query": "q", "tools": "[{bad", "answers": "[]"}, "tools is not valid JSON"),
        (
            {
                "tools": [WEATHER_TOOL, WEATHER_TOOL],
                "messages": [{"role": "user", "content": "q"}],
                "label": "x",
            },
            "duplicate tool",
        ),
        ({"tools": [WEATHER_TOOL], "messages": [{"role": "user", "content": "q"}]}, "no assistant step"),
    ],
)
def test_invalid_records_raise_record_error_with_reason(record: Any, reason: str) -> None:
    with pytest.raises(RecordError, match=reason):
        record_to_samples(record)


json_records = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
keys = st.sampled_from(
    [
        "tools",
        "messages",
        "label",
        "input",
        "question",
        "function",
        "ground_truth",
        "query",
        "answers",
        "conversations",
        "system",
        "chat",
        "involved_classes",
    ]
)


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(keys, json_records, max_size=5),
    st.sampled_from(["auto", "paper", "bfcl", "xlam", "openai", "sharegpt", "hermes", "glaive"]),
)
def test_arbitrary_records_only_ever_raise_record_error(record: dict[str, Any], fmt: str) -> None:
    with contextlib.suppress(RecordError):
        record_to_samples(record, fmt)


def test_a_paper_record_keeps_its_conversation_time() -> None:
    tools = [
        {"name": "get_weather", "parameters": {"type": "object", "properties": {"day": {"type": "string"}}}}
    ]
    label = '<tool_call>\n{"name": "get_weather", "arguments": {"day": "2025-03-02"}}\n</tool_call>'
    record = {"tools": tools, "messages": [{"role": "user", "content": "Weather tomorrow?"}], "label": label}
    assert record_to_samples(record)[0].conversation_time is None  # none given: the run's default applies
    [dated] = record_to_samples({**record, "current_time": "2025-03-01 10:00:00"})
    assert dated.conversation_time == "2025-03-01 10:00:00"
    assert dated.content_hash() == record_to_samples(record)[0].content_hash()  # context, not content
    chatml = (
        "<|im_start|>system\nYou are an expert in composing functions.\n"
        "The current time is 2025-03-01 10:00:00.\n<|im_end|>\n"
        "<|im_start|>user\nWeather tomorrow?<|im_end|>\n"
    )
    [stated] = record_to_samples({"tools": tools, "input": chatml, "label": label})
    assert stated.conversation_time == "2025-03-01 10:00:00"
    with pytest.raises(RecordError, match="current_time"):
        record_to_samples({**record, "current_time": 20250301})


# --- strict fields ---------------------------------------------------------------------------------

CALL_TEXT = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
USER_ONLY = [{"role": "user", "content": "Weather in Paris?"}]


@pytest.mark.parametrize("given_value", ["false", "true", 0, 1, "no", [], {}])
def test_ordered_must_be_a_json_boolean(given_value: Any) -> None:
    paper = {"tools": [WEATHER_TOOL], "messages": USER_ONLY, "label": CALL_TEXT, "ordered": given_value}
    openai = {
        "tools": [WEATHER_TOOL],
        "messages": [
            *USER_ONLY,
            {"role": "assistant", "tool_calls": [{"function": {"name": "get_weather", "arguments": "{}"}}]},
        ],
        "ordered": given_value,
    }
    for record in (paper, openai):
        with pytest.raises(RecordError) as refused:
            record_to_samples(record)
        assert "'ordered' must be true or false" in str(refused.value)
        assert refused.value.reason == "'ordered' is not a boolean"  # the dead letter names the field
    # A label object is validated strictly too: its "ordered": "false" is no boolean.
    label = {"calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}], "ordered": given_value}
    with pytest.raises(RecordError, match="label is not an action"):
        record_to_samples({"tools": [WEATHER_TOOL], "messages": USER_ONLY, "label": label})


def test_ordered_booleans_and_absence_are_read_as_given() -> None:
    base = {"tools": [WEATHER_TOOL], "messages": USER_ONLY, "label": CALL_TEXT}
    assert record_to_samples({**base, "ordered": True})[0].label.ordered is True
    assert record_to_samples({**base, "ordered": False})[0].label.ordered is False
    assert record_to_samples({**base, "ordered": None})[0].label.ordered is False
    assert record_to_samples(base)[0].label.ordered is False


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_call_arguments_nested_too_deep_are_refused_with_the_reason() -> None:
    from toolcall.formats.common import MAX_ARGUMENT_DEPTH, nesting_depth

    def record(depth: int) -> dict[str, Any]:
        call = {"name": "get_weather", "arguments": {"city": _nested(depth - 1)}}
        return {"tools": [WEATHER_TOOL], "messages": USER_ONLY, "label": [call]}

    assert nesting_depth(_nested(10), 64) == 10 and nesting_depth(_nested(300), 64) == 65
    assert record_to_samples(record(MAX_ARGUMENT_DEPTH))  # as deep as allowed: read
    for depth in (MAX_ARGUMENT_DEPTH + 1, 300, 900):  # 300: "Maximum serialization depth exceeded"
        with pytest.raises(RecordError) as refused:
            record_to_samples(record(depth))
        assert refused.value.reason == "call arguments nested too deeply"
    # The same limit whichever way a format writes its calls: OpenAI tool_calls (arguments as a JSON
    # string) and Hermes <tool_call> text were once read at any depth.
    deep = json.dumps({"city": _nested(MAX_ARGUMENT_DEPTH + 1)})
    openai_call = {"id": "1", "type": "function", "function": {"name": "get_weather", "arguments": deep}}
    hermes_call = '<tool_call>{"name": "get_weather", "arguments": ' + deep + "}</tool_call>"
    records = (
        {
            "tools": [WEATHER_TOOL],
            "messages": [*USER_ONLY, {"role": "assistant", "tool_calls": [openai_call]}],
        },
        {
            "tools": json.dumps([WEATHER_TOOL]),
            "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": hermes_call}],
        },
    )
    for deep_record in records:
        with pytest.raises(RecordError) as refused:
            record_to_samples(deep_record)
        assert refused.value.reason == "call arguments nested too deeply"
    with pytest.raises(RecordError, match="'tool_calls' must be a list"):
        turns = [*USER_ONLY, {"role": "assistant", "tool_calls": "get_weather"}, *USER_ONLY]
        record_to_samples({"tools": [WEATHER_TOOL], "messages": turns, "label": CALL_TEXT})  # paper


def test_openai_assistant_turns_of_weight_zero_are_context_never_labels() -> None:
    call = {
        "id": "c",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
    }
    record = {
        "tools": [WEATHER_TOOL],
        "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "I don't know", "weight": 0},
            {"role": "user", "content": "Use the tool, Oslo."},
            {"role": "assistant", "tool_calls": [call], "weight": 1},
        ],
    }
    [sample] = record_to_samples(record)
    assert sample.label == Action(calls=[ToolCall(name="get_weather", arguments={"city": "Oslo"})])
    assert [m.content for m in sample.messages] == ["Weather?", "I don't know", "Use the tool, Oslo."]
    record["messages"][1]["weight"] = "0"
    with pytest.raises(RecordError, match="weight must be 0 or 1"):
        record_to_samples(record)


def test_a_label_field_selects_paper_only_when_it_is_a_samples_label() -> None:
    dialogue = [
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}],
        },
        {"role": "tool", "content": "sun"},
        {"role": "assistant", "content": "It is sunny."},
    ]
    metadata = {"tools": [WEATHER_TOOL], "messages": dialogue, "label": "tool_call"}
    assert detect_format(metadata) == "openai"
    [sample] = record_to_samples(metadata)
    assert sample.label == Action(calls=[ToolCall(name="get_weather", arguments={"city": "Oslo"})])
    assert detect_format({**metadata, "label": 1}) == "openai"
    assert detect_format({**metadata, "label": ["easy", "weather"]}) == "openai"
    context = {"tools": [WEATHER_TOOL], "messages": dialogue[:1]}
    assert detect_format({**context, "label": "Which day?"}) == "paper"
    assert detect_format({**context, "label": CALL_TEXT}) == "paper"
    assert detect_format({**metadata, "label": {"calls": [], "text": "no"}}) == "paper"


def test_tool_calls_whose_arguments_are_a_python_literal_string_are_read_as_that_object() -> None:
    # As glaive-derived Mistral fine-tuning exports publish it: messages and tools as JSON strings, the
    # arguments as glaive's Python dict text, "parameters": null beside them.
    news = {
        "type": "function",
        "function": {
            "name": "get_news_headlines",
            "description": "Get the latest news headlines",
            "parameters": {
                "type": "object",
                "properties": {"country": {"type": "string", "description": "The country"}},
                "required": ["country"],
            },
        },
    }
    call = {
        "function": {
            "arguments": "{'country': 'Côte d\\'Ivoire', 'top': True}",
            "name": "get_news_headlines",
        },
        "id": "e98i3koxj",
        "type": "function",
    }
    call["function"]["parameters"] = None
    messages = [
        {"content": "Can you tell me the latest news headlines for Côte d'Ivoire?", "role": "user"},
        {"role": "assistant", "tool_calls": [call]},
        {
            "content": '{"headlines": ["Election results announced"]}',
            "role": "tool",
            "tool_call_id": "e98i3koxj",
        },
        {"content": "Here are the latest headlines: Election results announced.", "role": "assistant"},
    ]
    record = {
        "system_message": "You are a helpful assistant with access to the following functions. "
        "Use them if required -",
        "messages": json.dumps(messages),
        "tools": json.dumps([news]),
    }
    expected = Action(
        calls=[ToolCall(name="get_news_headlines", arguments={"country": "Côte d'Ivoire", "top": True})]
    )
    [sample] = record_to_samples(record)
    assert sample.label == expected
    # The same turn in ShareGPT role/content form is read the same way.
    [turn] = record_to_samples({"conversations": messages, "tools": [news]})
    assert turn.label == expected


# When2Call's multiple-choice test file, as published: each tool a JSON string, BFCL's "dict" type.
WHEN2CALL_SERVICE = json.dumps(
    {
        "name": "get_service_id",
        "description": "Retrieve the unique identifier for a specific service within a given province.",
        "parameters": {
            "type": "dict",
            "required": ["service_id", "province_id"],
            "properties": {
                "service_id": {"type": "integer", "description": "1 cleaning, 2 ironing", "enum": ["1", "2"]},
                "province_id": {
                    "type": "integer",
                    "description": "1 Bangkok, 2 Chiang Mai",
                    "enum": ["1", "2"],
                },
            },
        },
    }
)


def _when2call(correct: str, tools: list[str]) -> dict[str, Any]:
    return {
        "uuid": "1f8221f0-7906-4e11-80f3-6cbe38ce49c8",
        "source": "BFCL v2 Live Simple",
        "source_id": "live_simple_179-104-0",
        "question": "get unique identifier for an ironing service within Chiang Mai?",
        "correct_answer": correct,
        "answers": {
            "direct": "You can find it on their official website.",
            "tool_call": '{"name": "get_service_id", "arguments": {"service_id": 2, "province_id": 2}}',
            "request_for_info": "Could you specify which ironing service you mean?",
            "cannot_answer": "Apologies, I'm unable to look up business details.",
        },
        "target_tool": WHEN2CALL_SERVICE if correct == "tool_call" else None,
        "tools": tools,
        "orig_tools": [WHEN2CALL_SERVICE],
        "held_out_param": None,
    }


def test_a_when2call_multiple_choice_record_learns_its_correct_answer() -> None:
    record = _when2call("tool_call", [WHEN2CALL_SERVICE])
    assert detect_format(record) == "when2call"
    [sample] = record_to_samples(record)
    assert [tool.name for tool in sample.tools] == ["get_service_id"]
    assert sample.tools[0].parameters.required == ("service_id", "province_id")
    assert [m.content for m in sample.messages] == [record["question"]]
    assert sample.label == Action(
        calls=[ToolCall(name="get_service_id", arguments={"service_id": 2, "province_id": 2})]
    )
    # No tool offered: the right answer is a text, the other choices are not kept.
    [refusal] = record_to_samples(_when2call("cannot_answer", []))
    assert refusal.tools == [] and refusal.label == Action(
        text="Apologies, I'm unable to look up business details."
    )
    with pytest.raises(RecordError, match="correct_answer"):
        record_to_samples(_when2call("maybe", []))


def test_bfcl_executable_records_take_their_python_ground_truth_as_the_label() -> None:
    # BFCL v3's exec_* and rest records carry their ground truth inline, each call written as Python.
    binomial = {
        "name": "calc_binomial_probability",
        "description": "Calculates the probability of getting k successes in n trials.",
        "parameters": {
            "type": "dict",
            "properties": {
                "n": {"type": "integer", "description": "The number of trials."},
                "k": {"type": "integer", "description": "The number of successes."},
                "p": {"type": "float", "description": "The probability of success."},
            },
            "required": ["n", "k", "p"],
        },
    }
    record = {
        "id": "exec_parallel_0",
        "question": [
            [{"role": "user", "content": "Odds of 5 successes in 20 trials at p=0.6, and of 3 in 10?"}]
        ],
        "function": [binomial],
        "execution_result_type": ["exact_match", "exact_match"],
        "ground_truth": [
            "calc_binomial_probability(n=20, k=5, p=0.6)",
            "calc_binomial_probability(10, 3, 0.6)",
        ],
    }
    [sample] = record_to_samples(record)
    assert sample.label == Action(
        calls=[
            ToolCall(name="calc_binomial_probability", arguments={"n": 20, "k": 5, "p": 0.6}),
            ToolCall(
                name="calc_binomial_probability", arguments={"n": 10, "k": 3, "p": 0.6}
            ),  # declared order
        ]
    )


def test_bfcl_v1_and_openfunctions_v1_records_read_their_inline_python_answer() -> None:
    # The leaderboard's first release (gorilla_openfunctions_v1_test_*.json) and OpenFunctions v1's test
    # set write the question as text and the answer inline as Python (human_eval_answer, model_answer);
    # OpenFunctions v1 titles each function ("name") and calls it by "api_call". Both were refused:
    # "bfcl 'question' must be a non-empty list of turns".
    triangle = {
        "name": "math.triangle_area_heron",
        "description": "Calculates the area of a triangle using Heron's formula.",
        "parameters": {
            "type": "object",
            "properties": {
                s: {"type": "number", "description": f"Side {s}."} for s in ("side1", "side2", "side3")
            },
            "required": ["side1", "side2", "side3"],
        },
    }
    circle = {
        "name": "math.circle_area",
        "description": "Calculates the area of a circle given its radius.",
        "parameters": {
            "type": "object",
            "properties": {"radius": {"type": "number"}},
            "required": ["radius"],
        },
    }
    leaderboard_v1 = {
        "question": "Calculate the area of a triangle, given the lengths of its three sides: 3, 4, and 5.",
        "function": [triangle, circle],
        "human_eval_answer": "math.triangle_area_heron(side1=3, side2=4, side3=5),",
    }
    [sample] = record_to_samples(leaderboard_v1)
    assert [(m.role, m.content) for m in sample.messages] == [("user", leaderboard_v1["question"])]
    assert [tool.name for tool in sample.tools] == ["math.triangle_area_heron", "math.circle_area"]
    heron = {"side1": 3, "side2": 4, "side3": 5}
    assert sample.label == Action(calls=[ToolCall(name="math.triangle_area_heron", arguments=heron)])
    openfunctions_v1 = {
        "question": "Get weather information for Paris, France for the next 5 days.",
        "function": {
            "name": "Weather Forecast",
            "api_call": "weather.forecast",
            "description": "Retrieve a weather forecast for a specific location and time frame.",
            "parameters": {
                "type": "object",
                "properties": {"location": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["location", "days"],
            },
        },
        "model_answer": 'weather.forecast(location="Paris, France", days=5)',
    }
    conversion = convert_record(openfunctions_v1)
    [sample] = conversion.samples
    assert [tool.name for tool in sample.tools] == ["weather.forecast"]
    assert sample.tools[0].description.startswith("Retrieve a weather forecast")
    forecast = {"location": "Paris, France", "days": 5}
    assert sample.label == Action(calls=[ToolCall(name="weather.forecast", arguments=forecast)])
    assert not conversion.warnings  # api_call is the name, no key left over
    # An answer that is no Python call is refused, never kept as a text answer.
    with pytest.raises(RecordError):
        convert_record({**openfunctions_v1, "model_answer": "weather.forecast(location=Paris"})


def test_calls_in_a_record_that_offers_no_tool_are_kept_with_a_warning() -> None:
    # An export whose tool list sits in a column no reader knows ("tool_catalog"): the calls land against
    # no tool at all, so the conversion says so instead of passing silently.
    weather = json.dumps([WEATHER_TOOL])
    record = {
        "uuid": "e96ea105",
        "messages": json.dumps(
            [
                {"role": "user", "content": "Weather in Lyon?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": {"city": "Lyon"}},
                        }
                    ],
                },
            ]
        ),
        "tool_catalog": weather,
    }
    conversion = convert_record(record)
    [sample] = conversion.samples
    assert sample.tools == [] and sample.label == Action(
        calls=[ToolCall(name="get_weather", arguments={"city": "Lyon"})]
    )
    [warning] = conversion.warnings
    assert "offers none" in warning and "tool_catalog" in warning
    # A record that lists its tools gets no such warning.
    assert not convert_record({**record, "tools": weather}).warnings


def test_a_trl_prompt_completion_record_learns_its_completion_only() -> None:
    # TRL's conversational prompt-completion type with a tools column (as tool-calling SFT sets on the
    # Hub publish it): the prompt is context, its assistant turn too; the completion is the step.
    record = {
        "prompt": [
            {"role": "system", "content": "You are a travel assistant."},
            {"role": "user", "content": "Hi!"},
            {"role": "assistant", "content": "Hello! Where are you headed?"},
            {"role": "user", "content": "Oslo. What's the weather there?"},
        ],
        "completion": [
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call_0",
                        "index": 0,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                    }
                ],
            }
        ],
        "tools": json.dumps([WEATHER_TOOL]),
    }
    assert detect_format(record) == "openai"
    [sample] = record_to_samples(record)
    assert [m.role for m in sample.messages] == ["system", "user", "assistant", "user"]
    assert sample.label == Action(calls=[ToolCall(name="get_weather", arguments={"city": "Oslo"})])
    # The preference type: "chosen" is the completion, "rejected" is not kept.
    preference = {
        "prompt": [{"role": "user", "content": "What's the weather?"}],
        "chosen": [{"role": "assistant", "content": "Which city do you mean?"}],
        "rejected": [{"role": "assistant", "content": "It is sunny."}],
        "tools": [WEATHER_TOOL],
    }
    conversion = convert_record(preference)
    assert [s.label for s in conversion.samples] == [Action(text="Which city do you mean?")]
    assert any("rejected not kept" in w for w in conversion.warnings)


def test_a_system_field_beside_messages_is_the_conversations_system_message() -> None:
    # Structured glaive exports keep the system prompt in a column of its own beside "messages".
    system = "You are a helpful AI assistant. Answer in the user's language."
    messages = [
        {"role": "user", "content": "Quel temps fait-il à Lyon ?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Lyon"}'}}
            ],
        },
    ]
    record = {"system": system, "messages": messages, "tools": [WEATHER_TOOL["function"]], "num_tools": 1}
    [sample] = record_to_samples(record)
    assert [(m.role, m.content) for m in sample.messages] == [
        ("system", system),
        ("user", "Quel temps fait-il à Lyon ?"),
    ]
    assert sample.label == Action(calls=[ToolCall(name="get_weather", arguments={"city": "Lyon"})])
    # Given twice (the field and the first message), it is one message.
    [once] = record_to_samples({**record, "messages": [{"role": "system", "content": system}, *messages]})
    assert [m.role for m in once.messages] == ["system", "user"]


def test_a_tool_schema_written_as_a_json_string_is_read_as_that_schema() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    call = {"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    dialogue = [{"role": "user", "content": "Weather in Oslo?"}, {"role": "assistant", "tool_calls": [call]}]
    openai_tool = {"type": "function", "function": {"name": "get_weather", "parameters": json.dumps(schema)}}
    anthropic_tool = {"name": "get_weather", "description": "Weather.", "input_schema": json.dumps(schema)}
    for tool in (openai_tool, anthropic_tool):
        [sample] = record_to_samples({"messages": dialogue, "tools": [tool]})
        [spec] = sample.tools
        assert spec.parameters.required == ("city",)
        assert spec.parameters.properties["city"].type == "string"
    for text, reason in (("[1, 2]", "holds no object"), ("{'type': ", "is not JSON")):
        with pytest.raises(RecordError, match=reason):
            record_to_samples({"messages": dialogue, "tools": [{"name": "get_weather", "parameters": text}]})


def test_a_list_of_messages_in_input_is_refused_naming_that_layout() -> None:
    # Llama-Nemotron's post-training sets: "input" a list of messages, "output" the answer, beside
    # "system_prompt" and "reasoning"; the refusal asked for an 'input' string, as if none were given.
    record = {
        "input": [{"role": "user", "content": "Weather in Oslo?"}],
        "output": '<TOOLCALL>[{"name": "get_weather", "arguments": {"city": "Oslo"}}]</TOOLCALL>',
        "system_prompt": "detailed thinking off",
        "reasoning": "off",
    }
    assert detect_format(record) == "paper"
    with pytest.raises(RecordError, match="Llama-Nemotron's post-training layout") as refused:
        convert_record(record)
    assert refused.value.reason == "'input' is a list of messages, not ChatML text"
    assert "needs 'messages' or an 'input' string" not in str(refused.value)
