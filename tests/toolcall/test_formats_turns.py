"""How the chat readers read a turn: calls written in an assistant's text, role/content keys, calling
harnesses in system prompts, reasoning. Each case was once read silently wrong, or refused wrongly."""

from __future__ import annotations

import json
from typing import Any

import pytest

from toolcall.formats import NO_SUITABLE_TOOL, RecordError, convert_record, detect_format
from toolcall.match import tool_match
from toolcall.parsing import parse_output
from toolcall.rules import validate_action
from toolcall.types import Action, ToolCall

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "w",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}
PARIS = ToolCall(name="get_weather", arguments={"location": "Paris"})
TAGGED = '<tool_call>\n{"name": "get_weather", "arguments": {"location": "Paris"}}\n</tool_call>'


def _openai(*assistant: Any, tools: Any = None) -> dict[str, Any]:
    turns = [{"role": "user", "content": "Weather in Paris?"}, *assistant]
    return {"tools": [WEATHER] if tools is None else tools, "messages": turns}


# --- calls written in an assistant's text ----------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        TAGGED,  # Hermes / Qwen
        "Let me check.\n" + TAGGED,
        '{"name": "get_weather", "arguments": {"location": "Paris"}}',  # Llama's bare JSON
        '<TOOLCALL>[{"name": "get_weather", "arguments": {"location": "Paris"}}]</TOOLCALL>',  # When2Call
        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>"  # DeepSeek-V3.1
        '{"location": "Paris"}<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>',
    ],
)
def test_calls_in_an_openai_assistants_text_are_calls(content: str) -> None:
    record = _openai({"role": "assistant", "content": content})
    assert detect_format(record) == "openai"  # messages without a label: a whole dialogue
    [sample] = convert_record(record).samples
    assert sample.label == Action(calls=[PARIS])


# When2Call's preference file: BFCL-style tools ("dict", "str", "required" beside "parameters"), the
# user's question in "messages", the answer to learn in "chosen_response".
WHEN2CALL_COMPANY = {
    "name": "get_company_by_domain",
    "description": "Fetches company data using a given web domain.",
    "parameters": {
        "type": "dict",
        "properties": {"domain": {"description": "The web domain of the company to look up.", "type": "str"}},
    },
    "required": ["domain"],
}
WHEN2CALL_APPLE = (
    '<TOOLCALL>[{"name": "get_company_by_domain", "arguments": {"domain": "www.apple.com"}}]</TOOLCALL>'
)


WHEN2CALL_ASK = "To provide you with the company details, could you please specify the domain?"


@pytest.mark.parametrize(
    ("chosen", "label"),
    [
        (WHEN2CALL_ASK, Action(text=WHEN2CALL_ASK)),
        (
            WHEN2CALL_APPLE,
            Action(calls=[ToolCall(name="get_company_by_domain", arguments={"domain": "www.apple.com"})]),
        ),
    ],
    ids=["ask", "call"],
)
def test_a_when2call_preference_record_learns_its_chosen_response(chosen: str, label: Action) -> None:
    rejected = WHEN2CALL_APPLE if chosen != WHEN2CALL_APPLE else "Apple's domain is apple.com."
    record = {
        "tools": [WHEN2CALL_COMPANY],
        "messages": [{"role": "user", "content": "Fetch company details for Apple, apple.com."}],
        "chosen_response": {"role": "assistant", "content": chosen},
        "rejected_response": {"role": "assistant", "content": rejected},
    }
    conversion = convert_record(record)
    [sample] = conversion.samples
    assert sample.label == label
    assert sample.messages[-1].role == "user" and sample.tools[0].parameters.required == ("domain",)
    assert any("rejected_response not kept" in warning for warning in conversion.warnings)


def _fn_sharegpt(system: str, answer: str) -> dict[str, Any]:
    """A function-calling-sharegpt record (hypervariance's, as MathAndMagic's card documents it)."""
    turns = [{"from": "human", "value": "I need a new password, 42 characters long."}]
    record = {
        "conversations": [{"from": "system", "value": system}, *turns, {"from": "gpt", "value": answer}]
    }
    return {**record, "functions_enabled": "enabled" in system, "function_called": "fn_start" in answer}


def test_function_calling_sharegpt_fn_blocks_and_available_functions_are_read() -> None:
    password = {
        "name": "generate_password",
        "description": "Generate a random password",
        "parameters": {
            "type": "object",
            "properties": {"length": {"type": "integer", "description": "The length of the password"}},
            "required": ["length"],
        },
    }
    listing = json.dumps(password, indent=2) + "\n" + json.dumps(WEATHER["function"], indent=2)
    enabled = (
        f"## Configuration\n\nFunctions: enabled\n\n## Available Functions\n\n{listing}\n\n---\n\n"
        "You are a helpful assistant."
    )
    for arguments in ('"{\\"length\\": 42}"', '{"length": 42}'):  # a JSON string, or an object
        call = f'<|fn_start|>{{"name": "generate_password", "arguments": {arguments}}}<|fn_end|>'
        [sample] = convert_record(_fn_sharegpt(enabled, call)).samples
        assert [tool.name for tool in sample.tools] == ["generate_password", "get_weather"]
        assert [m.role for m in sample.messages] == ["user"]  # the harness prompt is no message
        assert sample.label == Action(calls=[ToolCall(name="generate_password", arguments={"length": 42})])
    disabled = "## Configuration\n\nFunctions: disabled\n\n---\n\nYou are a helpful assistant."
    [answer] = convert_record(_fn_sharegpt(disabled, "I can't generate passwords.")).samples
    assert answer.tools == [] and answer.messages[0].content == disabled


def test_text_calls_in_earlier_openai_turns_are_calls_in_the_context() -> None:
    record = _openai(
        {"role": "assistant", "content": TAGGED},
        {"role": "tool", "content": "<tool_response>\n15C\n</tool_response>"},
        {"role": "assistant", "content": "It is 15C."},
        {"role": "user", "content": "And Rome?"},
        {"role": "assistant", "content": TAGGED.replace("Paris", "Rome")},
    )
    first, second = convert_record(record).samples
    assert first.label == Action(calls=[PARIS])
    assert second.messages[1].tool_calls == [PARIS] and second.messages[1].content == ""
    assert second.label.calls == [ToolCall(name="get_weather", arguments={"location": "Rome"})]


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ('Sure: {"name": "get_weather", "arguments": {"location": "Paris"}} done', "amid text"),
        ("<tool_call>\n{not json}\n</tool_call>", "not valid JSON"),
        ("<TOOLCALL>[{not json}]</TOOLCALL>", "not valid JSON"),
        ("<TOOLCALL>[]</TOOLCALL>", "holds no call"),
        ('<TOOLCALL>[{"name": "get_weather", "arguments": {}}]', "<TOOLCALL>"),
    ],
)
def test_an_assistant_text_that_does_not_parse_is_refused_naming_the_turn(content: str, why: str) -> None:
    record = _openai({"role": "assistant", "content": content})
    with pytest.raises(RecordError, match=why) as refused:
        convert_record(record)
    assert "message 1 (assistant)" in str(refused.value)


def test_text_calls_beside_tool_calls_must_be_the_same_calls() -> None:
    structured = {
        "id": "1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
    }
    same = _openai({"role": "assistant", "content": TAGGED, "tool_calls": [structured]})
    assert convert_record(same).samples[0].label == Action(calls=[PARIS])  # one copy, not two
    other = _openai(
        {"role": "assistant", "content": TAGGED.replace("Paris", "Rome"), "tool_calls": [structured]}
    )
    with pytest.raises(RecordError, match="differ"):
        convert_record(other)


def test_a_paper_messages_record_reads_text_calls_as_the_openai_reader_does() -> None:
    record = {"tools": [WEATHER], "messages": [{"role": "user", "content": "Weather in Paris?"}]}
    bare = '{"name": "get_weather", "arguments": {"location": "Paris"}}'
    forced = convert_record(
        {**record, "messages": [*record["messages"], {"role": "assistant", "content": bare}]}, "paper"
    )
    assert forced.samples[0].label == Action(calls=[PARIS])


def test_a_paper_dialogue_without_a_label_keeps_its_time_when_read_as_openai() -> None:
    record = {**_openai({"role": "assistant", "content": TAGGED}), "current_time": "2025-03-01 10:00"}
    [sample] = convert_record(record).samples
    assert sample.conversation_time == "2025-03-01 10:00"


def test_a_llama_ipython_turn_is_a_tool_result() -> None:
    call = {"type": "function", "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'}}
    record = _openai(
        {"role": "assistant", "tool_calls": [call]},
        {"role": "ipython", "content": "15C"},
        {"role": "assistant", "content": "It is 15C."},
        {"role": "user", "content": "And Rome?"},
        {"role": "assistant", "content": TAGGED.replace("Paris", "Rome")},
    )
    first, second = convert_record(record).samples
    assert first.label == Action(calls=[PARIS])
    assert [m.role for m in second.messages] == ["user", "assistant", "tool", "assistant", "user"]
    assert second.messages[2].content == "15C"


# --- tool lists in system prompts ------------------------------------------------------------------


@pytest.mark.parametrize("listing", ["[]", "[ ]", "[]\n"])
def test_an_empty_tool_list_in_a_system_prompt_offers_no_tool(listing: str) -> None:
    toolace = (
        "You are an expert in composing functions.\nHere is a list of functions in JSON format that you "
        f"can invoke:\n{listing}\nShould you decide to return the function call(s), Put it in the format "
        "of [func1(params_name=params_value)]\nNO other text MUST be included."
    )
    turns = [{"from": "user", "value": "Tell me a joke"}, {"from": "assistant", "value": "Why not?"}]
    glaive = (
        "SYSTEM: You are a helpful assistant with access to the following functions. "
        f"Use them if required -\n{listing}"
    )
    for record in (
        {"system": toolace, "conversations": turns},
        {"system": glaive, "chat": "USER: hi\n\n\nASSISTANT: hello <|endoftext|>"},
    ):
        conversion = convert_record(record)
        [sample] = conversion.samples
        assert sample.tools == [] and [m.role for m in sample.messages] == ["user"]
        assert not sample.label.calls and sample.label.text


# --- sharegpt turns with role/content keys ---------------------------------------------------------


def test_sharegpt_role_content_turns_read_their_tool_calls() -> None:
    rome = {"type": "function", "function": {"name": "get_weather", "arguments": '{"location":"Rome"}'}}
    paris = {"type": "function", "function": {"name": "get_weather", "arguments": {"location": "Paris"}}}
    record = {
        "tools": json.dumps([WEATHER]),
        "conversations": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "", "tool_calls": [paris]},
            {"role": "tool", "content": "15C"},
            {"role": "assistant", "content": "It's 15C."},
            {"role": "user", "content": "Thanks, and Rome?"},
            {"role": "assistant", "content": None, "tool_calls": [rome]},
            {"role": "tool", "content": "20C"},
            {"role": "assistant", "content": "20C."},
            {"role": "user", "content": "And Oslo?"},
            {
                "role": "assistant",
                "content": "Let me check Oslo.",
                "tool_calls": [
                    rome | {"function": {"name": "get_weather", "arguments": '{"location": "Oslo"}'}}
                ],
            },
        ],
    }
    samples = convert_record(record).samples
    assert [s.label.calls for s in samples] == [
        [PARIS],
        [ToolCall(name="get_weather", arguments={"location": "Rome"})],
        [ToolCall(name="get_weather", arguments={"location": "Oslo"})],
    ]
    assert samples[2].messages[1].tool_calls == [PARIS]


def test_sharegpt_turn_keys_and_speakers_are_read_alike_in_the_tool_scan() -> None:
    system = f"You are a function calling AI model.\n<tools>\n{json.dumps(WEATHER)}\n</tools>"
    turns = [
        {"role": "human", "content": "Weather?"},
        {"role": "model", "content": "Which city?"},
        {"role": "human", "content": "Paris"},
        {"role": "model", "content": TAGGED},
    ]
    for first in (
        {"role": "system", "content": system},
        {"from": "System", "value": system},
        {"role": "SYSTEM", "content": system},
    ):
        conversion = convert_record({"conversations": [first, *turns]})
        ask, call = conversion.samples
        assert [t.name for t in call.tools] == ["get_weather"]
        assert [m.role for m in call.messages] == ["user", "assistant", "user"]  # the harness is no message
        assert ask.label == Action(text="Which city?") and call.label == Action(calls=[PARIS])


def test_sharegpt_null_content_is_refused_unless_the_turn_calls() -> None:
    turns = [{"role": "user", "content": None}, {"role": "assistant", "content": "hi"}]
    with pytest.raises(RecordError, match=r"turn 0 .*null only beside tool_calls"):
        convert_record({"conversations": turns})
    called = [
        {"role": "user", "content": "hi"},
        {"role": "tool", "content": "x", "tool_calls": [{"name": "f"}]},
    ]
    with pytest.raises(RecordError, match="only assistant turns make calls"):
        convert_record({"conversations": called})


# --- reasoning ---------------------------------------------------------------------------------------


def test_reasoning_is_left_out_alike_by_the_sharegpt_and_openai_readers() -> None:
    dialogue = [
        ("user", "Weather?"),
        ("assistant", "<think>The user did not say where. I should ask.</think>Which city?"),
        ("user", "Paris"),
        ("assistant", "<think>Call it.</think>\n" + TAGGED),
    ]
    sharegpt = {
        "tools": json.dumps([WEATHER]),
        "conversations": [{"from": "human" if r == "user" else "gpt", "value": v} for r, v in dialogue],
    }
    openai = {"tools": [WEATHER], "messages": [{"role": r, "content": v} for r, v in dialogue]}
    read = [convert_record(record) for record in (sharegpt, openai)]
    for conversion in read:
        ask, call = conversion.samples
        assert ask.label == Action(text="Which city?") and call.label == Action(calls=[PARIS])
        assert call.messages[1].content == "Which city?"  # the trace is not kept in the context either
        assert sum("reasoning not kept" in w for w in conversion.warnings) == 2  # said, not silent
    assert read[0].samples == read[1].samples


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning", "thinking"])
def test_a_reasoning_field_beside_the_content_is_left_out_and_said(field: str) -> None:
    # DeepSeek-style exports (and vLLM's, OpenRouter's, gpt-oss templates') keep the trace in a field of
    # its own: it was dropped without a word, where a <think> trace or a reasoning part is named.
    record = {
        "tools": [WEATHER],
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                field: "The user wants Paris.",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": {"location": "Paris"}},
                    }
                ],
            },
        ],
    }
    conversion = convert_record(record)
    [sample] = conversion.samples
    assert sample.label == Action(calls=[PARIS]) and [m.role for m in sample.messages] == ["user"]
    assert [w for w in conversion.warnings if "reasoning" in w] == [
        "message 1 (assistant): reasoning field not kept (a step's label is its calls or its answer)"
    ]
    # An empty field (an Arrow column's null or "") is no reasoning.
    record["messages"][1][field] = ""
    assert not any("reasoning" in w for w in convert_record(record).warnings)


# --- other families' call syntaxes ---------------------------------------------------------------------

TOOLBENCH_SYSTEM = (
    "You are AutoGPT, you can use many tools(functions) to do the following task.\n"
    "Thought:\nAction\nAction Input:\n\nLet's Begin!\nTask description: You should use functions to "
    "help handle the real time user querys.\nSpecifically, you have access to the following APIs: "
    "[{'name': 'hotel_details_for_hotels_com_provider', 'description': 'x', 'parameters': {'type': "
    "'object', 'properties': {'hotel_id': {'type': 'number'}}, 'required': ['hotel_id'], 'optional': "
    "[]}}, {'name': 'hotel_reviews_for_hotels_com_provider', 'description': 'r', 'parameters': {'type': "
    "'object', 'properties': {'hotel_id': {'type': 'number', 'example_value': 1105156}, 'page': {'type': "
    "'number'}}, 'required': ['hotel_id'], 'optional': ['page']}}, {'name': 'Finish', 'description': "
    "'f', 'parameters': {'type': 'object', 'properties': {'return_type': {'type': 'string'}, "
    "'final_answer': {'type': 'string'}}, 'required': []}}]"
)
REACT_CALL = (
    "\nThought: I should fetch the hotel details.\nAction: hotel_details_for_hotels_com_provider\n"
    'Action Input: {\n  "hotel_id": 1105156\n}'
)
REACT_FINISH = (
    '\nThought: I have it.\nAction: Finish\nAction Input: {\n  "return_type": "give_answer",\n'
    '  "final_answer": "Hotel X"\n}'
)


HOTEL = ToolCall(name="hotel_details_for_hotels_com_provider", arguments={"hotel_id": 1105156})
REVIEWS = ToolCall(name="hotel_reviews_for_hotels_com_provider", arguments={"hotel_id": 1105156, "page": 1})
REACT_REVIEWS = (
    "\nThought: Now the reviews.\nAction: hotel_reviews_for_hotels_com_provider\n"
    'Action Input: {\n  "hotel_id": 1105156,\n  "page": 1\n}'
)


def _toolbench(*steps: tuple[str, str]) -> list[tuple[str, str]]:
    question = "\nGive me details of hotel 1105156 and its reviews.\nBegin!\n"
    return [("system", TOOLBENCH_SYSTEM), ("user", question), *steps]


@pytest.mark.parametrize("form", ["sharegpt", "openai"])
def test_toolbench_react_steps_are_one_call_each_and_finish_is_the_answer(form: str) -> None:
    # toolllama_G123_dfs_train's conversations were refused whole ("ToolBench ReAct format is not
    # supported"): each API step is a sample now, the APIs of the system prompt its tools (Finish, the
    # harness's way to answer, is none of them), the thought the step's text in later contexts.
    turns = _toolbench(
        ("assistant", REACT_CALL),
        ("function", '{"error": "", "response": "{\\"name\\": \\"Hotel X\\"}"}'),
        ("assistant", REACT_REVIEWS),
        ("function", '{"error": "", "response": "[{\\"score\\": 9}]"}'),
        ("assistant", REACT_FINISH),
    )
    if form == "sharegpt":
        record: dict[str, Any] = {"conversations": [{"from": r, "value": v} for r, v in turns]}
    else:
        record = {"messages": [{"role": r, "content": v} for r, v in turns]}
    first, second = convert_record(record).samples
    assert [t.name for t in first.tools] == [HOTEL.name, REVIEWS.name]
    assert first.tools[0].parameters.required == ("hotel_id",)
    assert [m.role for m in first.messages] == ["user"] and first.label == Action(calls=[HOTEL])
    assert [m.role for m in second.messages] == ["user", "assistant", "tool"]
    thought = second.messages[1]
    assert thought.content == "I should fetch the hotel details." and thought.tool_calls == [HOTEL]
    assert second.label == Action(calls=[REVIEWS])
    # The Finish answer after the results is a summary, no step; right after the question it is one.
    [answer] = convert_record(
        {"conversations": [{"from": r, "value": v} for r, v in _toolbench(("assistant", REACT_FINISH))]}
    ).samples
    assert answer.label == Action(text="Hotel X")


def test_a_toolbench_give_up_is_no_answer_to_learn_and_bad_steps_are_refused() -> None:
    give_up = (
        "\nThought: It keeps failing.\nAction: Finish\nAction Input: {\n"
        '  "return_type": "give_up_and_restart"\n}'
    )
    turns = _toolbench(
        ("assistant", REACT_CALL), ("function", '{"error": "timeout"}'), ("assistant", give_up)
    )
    conversion = convert_record({"conversations": [{"from": r, "value": v} for r, v in turns]})
    [call] = conversion.samples
    assert call.label == Action(calls=[HOTEL])
    assert any("give_up_and_restart" in warning for warning in conversion.warnings)
    for step in (
        REACT_CALL + "\n" + REACT_REVIEWS,  # two actions in one turn
        REACT_CALL.replace('{\n  "hotel_id": 1105156\n}', "hotel_id=1105156"),  # no JSON input
        REACT_FINISH.replace("give_answer", "answer"),  # no return type ToolBench knows
        "I will look it up.\n" + REACT_CALL.lstrip(),  # text before the step
    ):
        record = {"conversations": [{"from": r, "value": v} for r, v in _toolbench(("assistant", step))]}
        with pytest.raises(RecordError) as refused:
            convert_record(record)
        assert refused.value.reason == "ToolBench step does not parse", step


def test_a_glaive_functioncall_in_a_chat_turn_is_a_call() -> None:
    body = '<functioncall> {"name": "get_weather", "arguments": \'{"location": "Paris"}\'}'
    sharegpt = {
        "tools": json.dumps([WEATHER]),
        "conversations": [{"from": "human", "value": "Weather in Paris?"}, {"from": "gpt", "value": body}],
    }
    openai = _openai({"role": "assistant", "content": body})
    for record in (sharegpt, openai):
        [sample] = convert_record(record).samples
        assert sample.label == Action(calls=[PARIS])


# glaive-function-calling-v2: a system prompt listing the functions, calls as <functioncall> with the
# arguments a JSON object text in single quotes, <|endoftext|> after each assistant turn.
GLAIVE_FUNCTIONS = [
    {
        "name": "send_email",
        "description": "Send an email",
        "parameters": {
            "type": "object",
            "properties": {"recipient": {"type": "string"}, "message": {"type": "string"}},
            "required": ["recipient", "message"],
        },
    },
    {"name": "get_random_joke", "description": "Get a random joke", "parameters": {}},
]
GLAIVE_SYSTEM = (
    "You are a helpful assistant with access to the following functions. Use them if required -\n"
    + ("\n".join(json.dumps(function, indent=4) for function in GLAIVE_FUNCTIONS))
)
# (the arguments as glaive writes them inside the quotes, the object they are)
GLAIVE_ARGUMENTS = {
    "apostrophes": (
        '{"recipient": "pat.o\'brien@example.com", "message": "I\'m running late, tell O\'Brien it\'s fine"}',
        {"recipient": "pat.o'brien@example.com", "message": "I'm running late, tell O'Brien it's fine"},
    ),
    "nested, booleans and null": (
        '{"recipient": "team@example.com", "message": "Standup", "meta": {"cc": ["a@x.io", "b@x.io"], '
        '"urgent": true, "read_receipt": false, "reply_to": null, "retries": [1, 2.5]}}',
        {
            "recipient": "team@example.com",
            "message": "Standup",
            "meta": {
                "cc": ["a@x.io", "b@x.io"],
                "urgent": True,
                "read_receipt": False,
                "reply_to": None,
                "retries": [1, 2.5],
            },
        },
    ),
    "escaped double quotes": (
        '{"recipient": "ann@example.com", "message": "She said \\"don\'t wait\\" and left: \\\\o/"}',
        {"recipient": "ann@example.com", "message": 'She said "don\'t wait" and left: \\o/'},
    ),
    "unicode": (  # as written and as JSON escapes
        '{"recipient": "josé@example.com", "message": "Gr\\u00fc\\u00dfe aus Zürich — 東京へ 🚀"}',
        {"recipient": "josé@example.com", "message": "Grüße aus Zürich — 東京へ 🚀"},
    ),
    "quote and brace inside a string": (
        '{"recipient": "x@example.com", "message": "ends with \'} and a \' alone"}',
        {"recipient": "x@example.com", "message": "ends with '} and a ' alone"},
    ),
}


def _glaive_forms(call: str) -> dict[str, dict[str, Any]]:
    """One glaive exchange (ask, call, result, answer) in the raw chat form and in the two chat forms
    exports republish it in, each keeping glaive's <|endoftext|> after the assistant's turns."""
    ask, result = "Please send that email for me.", '{"status": "success"}'
    turn = f"<functioncall> {call} <|endoftext|>"
    return {
        "glaive chat": {
            "system": f"SYSTEM: {GLAIVE_SYSTEM}",
            "chat": f"USER: {ask}\n\n\nASSISTANT: {turn}\n\n\nFUNCTION RESPONSE: {result}\n\n\n"
            "ASSISTANT: Done. <|endoftext|>\n\n\n",
        },
        "sharegpt conversations": {
            "conversations": [
                {"from": "system", "value": GLAIVE_SYSTEM},
                {"from": "human", "value": ask},
                {"from": "gpt", "value": turn},
                {"from": "function_response", "value": result},
                {"from": "gpt", "value": "Done. <|endoftext|>"},
            ]
        },
        "openai messages": {
            "messages": [
                {"role": "system", "content": GLAIVE_SYSTEM},
                {"role": "user", "content": ask},
                {"role": "assistant", "content": turn},
                {"role": "tool", "content": result},
                {"role": "assistant", "content": "Done. <|endoftext|>"},
            ]
        },
    }


@pytest.mark.parametrize("form", ["glaive chat", "sharegpt conversations", "openai messages"])
@pytest.mark.parametrize("case", sorted(GLAIVE_ARGUMENTS))
def test_a_glaive_call_reads_its_quoted_arguments_exactly_in_every_form(case: str, form: str) -> None:
    quoted, arguments = GLAIVE_ARGUMENTS[case]
    record = _glaive_forms(f'{{"name": "send_email", "arguments": \'{quoted}\'}}')[form]
    [sample] = convert_record(record).samples
    assert sample.label == Action(calls=[ToolCall(name="send_email", arguments=arguments)])
    assert [tool.name for tool in sample.tools] == ["send_email", "get_random_joke"]


@pytest.mark.parametrize("form", ["glaive chat", "sharegpt conversations", "openai messages"])
def test_a_glaive_call_with_empty_arguments_is_a_call_without_arguments(form: str) -> None:
    record = _glaive_forms('{"name": "get_random_joke", "arguments": \'{}\'}')[form]
    [sample] = convert_record(record).samples
    assert sample.label == Action(calls=[ToolCall(name="get_random_joke", arguments={})])


def test_a_glaive_conversation_with_several_functioncall_turns_reads_each_call() -> None:
    def call(name: str, quoted: str) -> str:
        return f'<functioncall> {{"name": "{name}", "arguments": \'{quoted}\'}} <|endoftext|>'

    record = {
        "conversations": [
            {"from": "system", "value": GLAIVE_SYSTEM},
            {"from": "human", "value": "Tell me a joke."},
            {"from": "gpt", "value": call("get_random_joke", "{}")},
            {"from": "function_response", "value": '{"joke": "Why don\'t scientists trust atoms?"}'},
            {"from": "gpt", "value": "Why don't scientists trust atoms? <|endoftext|>"},
            {"from": "human", "value": "Email it to O'Neil at o@x.com."},
            {
                "from": "gpt",
                "value": call("send_email", '{"recipient": "o@x.com", "message": "Why don\'t ..."}'),
            },
            {"from": "function_response", "value": '{"status": "sent"}'},
            {"from": "gpt", "value": "Sent! <|endoftext|>"},
        ]
    }
    joke, email = convert_record(record).samples
    assert joke.label == Action(calls=[ToolCall(name="get_random_joke", arguments={})])
    assert email.label == Action(
        calls=[ToolCall(name="send_email", arguments={"recipient": "o@x.com", "message": "Why don't ..."})]
    )
    # The earlier call stays in the context as a call; the end token is in no message.
    assert email.messages[1].tool_calls == joke.label.calls
    assert email.messages[3].content == "Why don't scientists trust atoms?"
    assert all("<|endoftext|>" not in message.content for message in email.messages)


def test_several_functioncalls_in_one_turn_and_text_around_them_are_read() -> None:
    turn = (
        "Sure, I'll do both.\n"
        '<functioncall> {"name": "get_random_joke", "arguments": \'{}\'} <|endoftext|>\n'
        '<functioncall> {"name": "send_email", '
        '"arguments": \'{"recipient": "a@x.io", "message": "it\'s on"}\'}</functioncall> <|endoftext|>'
    )
    record = {
        "conversations": [
            {"from": "system", "value": GLAIVE_SYSTEM},
            {"from": "human", "value": "A joke, and email a@x.io that it's on."},
            {"from": "gpt", "value": turn},
        ]
    }
    [sample] = convert_record(record).samples
    assert sample.label.calls == [
        ToolCall(name="get_random_joke", arguments={}),
        ToolCall(name="send_email", arguments={"recipient": "a@x.io", "message": "it's on"}),
    ]


def test_glaive_chatml_conversion_with_hyphenated_speakers_reads_its_calls() -> None:
    # function-calling-chatml (glaive in ShareGPT form): "function-call" turns holding glaive's call
    # object, arguments in single quotes (an apostrophe inside), "function-response" results.
    call = (
        '{"name": "send_email", "arguments": \'{"recipient": "o.neil@example.com", "message": "I\'m late"}\'}'
    )
    record = {
        "system_message": "You are a helpful assistant with access to the following functions. "
        "Use them if required -",
        "function_description": json.dumps(GLAIVE_FUNCTIONS[0], indent=4),
        "conversations": [
            {"from": "system", "value": GLAIVE_SYSTEM},
            {"from": "human", "value": "Email O'Neil at o.neil@example.com that I'm late."},
            {"from": "function-call", "value": call},
            {"from": "function-response", "value": '{"status": "success"}'},
            {"from": "gpt", "value": "I have emailed O'Neil that you're running late."},
        ],
    }
    [sample] = convert_record(record).samples
    assert [tool.name for tool in sample.tools] == ["send_email", "get_random_joke"]
    assert sample.label == Action(
        calls=[
            ToolCall(name="send_email", arguments={"recipient": "o.neil@example.com", "message": "I'm late"})
        ]
    )


def test_glaive_messages_with_function_call_and_function_response_roles_are_read() -> None:
    # glaive parsed into "messages" (a JSON string) with roles system, user, assistant, function_call,
    # function_response, and its functions in "functions": the two glaive roles were refused.
    call = (
        '{"name": "send_email", "arguments": \'{"recipient": "o.neil@example.com", "message": "I\'m late"}\'}'
    )
    messages = [
        {"role": "system", "content": GLAIVE_SYSTEM},
        {"role": "user", "content": "Email O'Neil at o.neil@example.com that I'm late."},
        {"role": "function_call", "content": call},
        {"role": "function_response", "content": '{"status": "success"}'},
        {"role": "assistant", "content": "Done, O'Neil knows you're running late."},
        {"role": "user", "content": "Thanks! Tell me a joke."},
        {"role": "function_call", "content": '{"name": "get_random_joke", "arguments": {}}'},
    ]
    record = {"messages": json.dumps(messages), "functions": json.dumps(GLAIVE_FUNCTIONS)}
    email, joke = convert_record(record).samples
    assert email.label == Action(
        calls=[
            ToolCall(name="send_email", arguments={"recipient": "o.neil@example.com", "message": "I'm late"})
        ]
    )
    assert [m.role for m in joke.messages] == ["user", "assistant", "tool", "assistant", "user"]
    assert joke.messages[2].content == '{"status": "success"}'
    assert joke.label == Action(calls=[ToolCall(name="get_random_joke", arguments={})])
    # A call turn that is neither JSON nor glaive's call object is refused with the JSON error.
    broken = [*messages[:2], {"role": "function_call", "content": '{"name": "send_email", arguments: {}}'}]
    with pytest.raises(RecordError, match="is not valid JSON"):
        convert_record({"messages": broken, "functions": GLAIVE_FUNCTIONS})


@pytest.mark.parametrize("form", ["messages", "conversations"])
def test_consecutive_tool_call_turns_are_one_step_of_parallel_calls(form: str) -> None:
    # ModelScope's function-calling-chatml (as NeMo's agent-chat loader reads it): roles tool_call and
    # tool_response, a step's parallel calls one tool_call turn each, then their results.
    turns = [
        {"role": "user", "content": "What's the weather in Paris and in Rome?"},
        {"role": "tool_call", "content": '{"name": "get_weather", "arguments": {"location": "Paris"}}'},
        {"role": "tool_call", "content": '{"name": "get_weather", "arguments": {"location": "Rome"}}'},
        {"role": "tool_response", "content": '{"temperature": 18}'},
        {"role": "tool_response", "content": '{"temperature": 24}'},
        {"role": "assistant", "content": "Paris is at 18 °C and Rome at 24 °C."},
        {"role": "user", "content": "And Paris again?"},
        {"role": "tool_call", "content": '{"name": "get_weather", "arguments": {"location": "Paris"}}'},
    ]
    record = {"tools": json.dumps([WEATHER]), form: turns}
    both, again = convert_record(record).samples
    assert both.label == Action(calls=[PARIS, ToolCall(name="get_weather", arguments={"location": "Rome"})])
    assert [m.role for m in again.messages] == ["user", "assistant", "tool", "tool", "assistant", "user"]
    assert again.label == Action(calls=[PARIS])


@pytest.mark.parametrize("form", ["glaive chat", "sharegpt conversations", "openai messages"])
def test_a_glaive_call_with_backslash_escaped_apostrophes_and_text_after_it_is_read(form: str) -> None:
    # glaive writes some apostrophes inside the single-quoted arguments as Python does, \', which is
    # no JSON escape; with the assistant's words after the call neither JSON nor Python reads the body.
    quoted = r'{"recipient": "o\'neil@example.com", "message": "I\'m late, don\'t wait \\ start"}'
    call = f'{{"name": "send_email", "arguments": \'{quoted}\'}} I\'ll send it right away.'
    [sample] = convert_record(_glaive_forms(call)[form]).samples
    assert sample.label == Action(
        calls=[
            ToolCall(
                name="send_email",
                arguments={"recipient": "o'neil@example.com", "message": "I'm late, don't wait \\ start"},
            )
        ]
    )


@pytest.mark.parametrize(
    ("call", "why"),
    [
        # Single quotes inside single quotes: no one reading says where the arguments end.
        ("{\"name\": \"send_email\", \"arguments\": '{'recipient': 'a@x.io'}'}", "not a JSON object"),
        ('{"name": "send_email", "arguments": \'{recipient: a@x.io}\'}', "not a JSON object"),
        ('{"name": "send_email", "arguments": \'{"recipient": "a@x', "not a JSON object"),  # cut off
        ('{"name": "send_email", "arguments": \'{"recipient": "a@x.io"}\'', "around its quoted arguments"),
        ("", "holds no call"),
        ('{"name": "send_email", "arguments": \'{}\'} and more</functioncall>', "text after the call"),
        ('{"name": "send_email", "arguments": \'[1, 2]\'}', "must be an object"),
    ],
)
def test_an_unreadable_glaive_call_is_refused_with_its_reason(call: str, why: str) -> None:
    for form in ("sharegpt conversations", "openai messages"):
        with pytest.raises(RecordError, match=why) as refused:
            convert_record(_glaive_forms(call)[form])
        assert "<functioncall>" in str(refused.value)


# Gorilla OpenFunctions v2 answers with its calls alone: "<<function>>" before each Python call (its own
# evaluation reads "<<function>>f(...)<<function>>g(...)" as the list [f(...), g(...)]).
@pytest.mark.parametrize("form", ["openai messages", "sharegpt conversations"])
def test_openfunctions_v2_function_tags_are_calls_not_a_text_answer(form: str) -> None:
    # Was kept as the text answer '<<function>>get_weather(location="Paris")': a call learnt as text.
    def record(answer: str) -> dict[str, Any]:
        if form == "openai messages":
            return _openai({"role": "assistant", "content": answer})
        turns = [{"from": "human", "value": "Weather in Paris?"}, {"from": "gpt", "value": answer}]
        return {"tools": [WEATHER], "conversations": turns}

    [sample] = convert_record(record('<<function>>get_weather(location="Paris")')).samples
    assert sample.label == Action(calls=[PARIS])
    # Several calls, a positional argument in the declared order.
    [sample] = convert_record(
        record('<<function>>get_weather("Paris")\n<<function>>get_weather("Rome")')
    ).samples
    assert sample.label == Action(calls=[PARIS, ToolCall(name="get_weather", arguments={"location": "Rome"})])
    # Text before the first tag, or after a call, is neither a call nor an answer: refused.
    for answer in ['Here: <<function>>get_weather(location="Paris")', '<<function>>get_weather("Paris") ok']:
        with pytest.raises(RecordError) as refused:
            convert_record(record(answer))
        assert refused.value.reason == "<<function>> calls do not parse"


def test_a_closing_functioncall_tag_alone_is_refused() -> None:
    record = _openai({"role": "assistant", "content": "No call here.</functioncall>"})
    with pytest.raises(RecordError, match="without its <functioncall>"):
        convert_record(record)


def test_a_toolbench_system_prompt_offers_its_apis_but_not_finish() -> None:
    turns = [{"from": "system", "value": TOOLBENCH_SYSTEM}, {"from": "user", "value": "Hotel 1105156?"}]
    record = {"conversations": [*turns, {"from": "assistant", "value": "Which city?"}]}
    conversion = convert_record(record)
    [sample] = conversion.samples
    assert [t.name for t in sample.tools] == [HOTEL.name, REVIEWS.name]
    assert [m.role for m in sample.messages] == ["user"] and sample.label == Action(text="Which city?")
    unreadable = TOOLBENCH_SYSTEM.replace("[{'name'", "[{'name")
    with pytest.raises(RecordError) as refused:
        convert_record(
            {"conversations": [{"from": "system", "value": unreadable}, *record["conversations"][1:]]}
        )
    assert refused.value.reason == "tools in the system prompt do not parse"


# ModelScope swift's ToolBench prompt (its "toolbench" tools prompt): the tools joined by blank lines after
# "Specifically, you have access to the following APIs:", each as the dataset gives it (a Python dict's
# text in swift's own example), the Finish pseudo-API among them.
SWIFT_TOOLBENCH_HEAD = (
    "You can use many tools(functions) to do the following task.\nFirst I will give you the task "
    "description, and your task start.\n...\nLet's Begin!\nTask description: You should use functions to "
    'help handle the real time user queries. Remember:\n1.ALWAYS call "Finish" function at the end of the '
    "task.\n2.Do not use origin tool names, use only subfunctions' names.\n"
    "Specifically, you have access to the following APIs: "
)
SWIFT_WEATHER_API = (
    "{'name': 'get_current_weather', 'description': 'Get the current weather in a given location', "
    "'parameters': {'type': 'object', 'properties': {'location': {'type': 'string', 'description': "
    "'The city and state, e.g. San Francisco, CA'}, 'unit': {'type': 'string', 'enum': ['celsius', "
    "'fahrenheit']}}, 'required': ['location']}}"
)
SWIFT_FINISH_API = (
    "{'name': 'Finish', 'description': 'If you believe that you have obtained a result that can answer "
    "the task, please call this function to provide the final answer.', 'parameters': {'type': 'object', "
    "'properties': {'return_type': {'type': 'string', 'enum': ['give_answer', 'give_up_and_restart']}, "
    "'final_answer': {'type': 'string'}}, 'required': ['return_type']}}"
)


def test_a_toolbench_prompt_with_one_python_dict_api_a_paragraph_offers_them() -> None:
    # Was refused: "the API list of the ToolBench system prompt is neither JSON nor a Python literal".
    system = SWIFT_TOOLBENCH_HEAD + SWIFT_WEATHER_API + "\n\n" + SWIFT_FINISH_API
    step = "Thought: I need the weather in Boston.\nAction: get_current_weather\n"
    step += 'Action Input: {"location": "Boston, MA"}'
    turns = [
        {"role": "system", "content": system},
        {"role": "user", "content": "What's the weather like in Boston today?"},
        {"role": "assistant", "content": step},
    ]
    [sample] = convert_record({"messages": turns}).samples
    assert [tool.name for tool in sample.tools] == ["get_current_weather"]
    assert sample.tools[0].parameters.required == ("location",)
    assert [m.role for m in sample.messages] == ["user"]
    assert sample.label == Action(
        calls=[ToolCall(name="get_current_weather", arguments={"location": "Boston, MA"})]
    )
    # One paragraph that reads as no literal still refuses the whole listing.
    broken = SWIFT_TOOLBENCH_HEAD + SWIFT_WEATHER_API + "\n\n" + SWIFT_FINISH_API.replace("{'name'", "{'name")
    with pytest.raises(RecordError) as refused:
        convert_record({"messages": [{"role": "system", "content": broken}, *turns[1:]]})
    assert refused.value.reason == "tools in the system prompt do not parse"


# --- the calling harness in a system prompt ------------------------------------------------------------


def test_a_kimi_tool_declaration_system_turn_is_the_harness_offering_its_tools() -> None:
    # Toucan-1.5M's messages (a JSON string): Kimi K2's tool_declare turn kept verbatim as the system
    # message, legacy function_call / function turns; its tools were read as no tool and the
    # declaration kept as the conversation's system message.
    live_temp = {
        "type": "function",
        "function": {
            "name": "weather-mcp-get_live_temp",
            "description": "Live temperature at a place",
            "parameters": {
                "type": "object",
                "properties": {"latitude": {"type": "number"}, "longitude": {"type": "number"}},
                "required": ["latitude", "longitude"],
                "additionalProperties": False,
                "$schema": "http://json-schema.org/draft-07/schema#",
            },
        },
    }
    declaration = "<|im_system|>tool_declare<|im_middle|>" + json.dumps([live_temp], separators=(",", ":"))
    messages = [
        {"role": "system", "content": declaration + "<|im_end|>"},
        {"role": "user", "content": "What is the temperature in New York right now (40.7128, -74.006)?"},
        {
            "role": "assistant",
            "content": "",
            "function_call": {
                "name": "weather-mcp-get_live_temp",
                "arguments": '{"latitude": 40.7128, "longitude": -74.006}',
            },
        },
        {"role": "function", "name": "weather-mcp-get_live_temp", "content": '{"temperature": 21.4}'},
        {"role": "assistant", "content": "It is 21.4 °C in New York right now."},
    ]
    record = {"uuid": "ac0907b0", "subset_name": "single-turn-original", "messages": json.dumps(messages)}
    [sample] = convert_record(record).samples
    assert [tool.name for tool in sample.tools] == ["weather-mcp-get_live_temp"]
    assert sample.tools[0].parameters.required == ("latitude", "longitude")
    assert [m.role for m in sample.messages] == ["user"]  # the declaration is no message
    assert sample.label == Action(
        calls=[
            ToolCall(name="weather-mcp-get_live_temp", arguments={"latitude": 40.7128, "longitude": -74.006})
        ]
    )


def test_toucans_available_tools_column_gives_the_tools_where_the_messages_list_none() -> None:
    # Toucan-1.5M keeps the tools in an "available_tools" string column beside "messages" (a JSON string);
    # where the messages carry no tool declaration, the calls were kept against no tool, with a warning.
    search = {
        "type": "function",
        "function": {
            "name": "exa-search-web_search_exa",
            "description": "Search the web using Exa AI.",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}, "numResults": {"type": "number"}},
                "required": ["query"],
            },
        },
    }
    call = {"name": "exa-search-web_search_exa", "arguments": '{"query": "StellarPay Series B fintech"}'}
    messages = [
        {"role": "user", "content": "What does the fintech startup StellarPay do?"},
        {"role": "assistant", "content": "", "function_call": call},
    ]
    record = {
        "uuid": "ac0907b0",
        "subset_name": "single-turn-original",
        "messages": json.dumps(messages),
        "question": "What does the fintech startup StellarPay do?",
        "available_tools": json.dumps([search]),
        "target_tools": "exa-search-web_search_exa",
    }
    conversion = convert_record(record)
    [sample] = conversion.samples
    assert [tool.name for tool in sample.tools] == ["exa-search-web_search_exa"]
    assert sample.tools[0].parameters.required == ("query",)
    assert not any("offers none" in warning for warning in conversion.warnings)
    # Where the messages declare the tools (the Kimi-K2 config), the declaration is what is read.
    declared = {
        "uuid": "x",
        "messages": json.dumps(
            [{"role": "system", "content": "<|im_system|>tool_declare<|im_middle|>[]<|im_end|>"}, *messages]
        ),
        "available_tools": json.dumps([search]),
    }
    assert convert_record(declared).samples[0].tools == []


def _chatml(chat: list[dict[str, str]]) -> str:
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in chat)


def _figure_7(tools: list[Any], own_system: str | None = None) -> list[dict[str, str]]:
    from toolcall.prompts import build_chat
    from toolcall.specs import load_tools
    from toolcall.types import Message

    context = [Message(role="system", content=own_system)] if own_system else []
    context.append(Message(role="user", content="Weather in Paris?"))
    return build_chat(load_tools(tools), context, current_time="2024-05-01 10:00")


def _prompt_of(sample: Any) -> str:
    from toolcall.prompts import build_chat

    return build_chat(sample.tools, sample.messages, sample.conversation_time)[0]["content"]


@pytest.mark.parametrize("form", ["input", "messages", "dialogue"])
@pytest.mark.parametrize("tools_field", [True, False])
def test_the_projects_own_figure_7_prompt_is_read_as_the_harness(form: str, tools_field: bool) -> None:
    chat = _figure_7([WEATHER])
    if form == "input":
        record: dict[str, Any] = {"input": _chatml(chat), "label": TAGGED}
    elif form == "messages":
        record = {"messages": chat, "label": TAGGED}
    else:  # a whole dialogue: read by the openai reader
        record = {"messages": [*chat, {"role": "assistant", "content": TAGGED}]}
    if tools_field:
        record["tools"] = [WEATHER]
    [sample] = convert_record(record).samples
    assert [t.name for t in sample.tools] == ["get_weather"]
    assert [m.role for m in sample.messages] == ["user"] and sample.label == Action(calls=[PARIS])
    assert sample.conversation_time == "2024-05-01 10:00"
    prompt = _prompt_of(sample)
    assert prompt.count("# Tools") == 1 and prompt.count("You are an expert") == 1
    assert prompt == chat[0]["content"]  # built again, the prompt is the one the record shows


def test_a_records_own_system_message_after_the_harness_is_kept() -> None:
    chat = _figure_7([WEATHER], own_system="Answer in French.")
    [sample] = convert_record({"input": _chatml(chat), "label": TAGGED}).samples
    assert [(m.role, m.content) for m in sample.messages] == [
        ("system", "Answer in French."),
        ("user", "Weather in Paris?"),
    ]
    assert _prompt_of(sample) == chat[0]["content"]


def test_a_figure_7_prompt_listing_no_tool_offers_none() -> None:
    [sample] = convert_record({"input": _chatml(_figure_7([])), "label": "Which city?"}).samples
    assert sample.tools == [] and [m.role for m in sample.messages] == ["user"]


def test_qwens_tools_section_is_the_harness_and_its_system_text_stays() -> None:
    system = (
        "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n# Tools\n\nYou may call "
        "one or more functions to assist with the user query.\n\nYou are provided with function "
        f"signatures within <tools></tools> XML tags:\n<tools>\n{json.dumps(WEATHER)}\n</tools>\n\n"
        "For each function call, return a json object with function name and arguments within "
        '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": '
        "<args-json-object>}\n</tool_call>"
    )
    chat = [{"role": "system", "content": system}, {"role": "user", "content": "Weather in Paris?"}]
    [sample] = convert_record({"input": _chatml(chat), "label": TAGGED}).samples
    assert [t.name for t in sample.tools] == ["get_weather"]
    assert (
        sample.messages[0].content == "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    )
    assert _prompt_of(sample).count("# Tools") == 1


def test_tools_that_differ_from_the_harness_listing_are_refused() -> None:
    other = {"type": "function", "function": {"name": "get_time", "description": "t", "parameters": {}}}
    chat = _figure_7([WEATHER])
    for record in (
        {"input": _chatml(chat), "label": TAGGED, "tools": [other]},
        {"messages": [*chat, {"role": "assistant", "content": TAGGED}], "tools": [other]},
        {
            "tools": json.dumps([other]),
            "conversations": [{"from": m["role"], "value": m["content"]} for m in chat]
            + [{"from": "gpt", "value": TAGGED}],
        },
    ):
        with pytest.raises(RecordError, match="differ") as refused:
            convert_record(record)
        assert refused.value.reason == "tools field and system prompt tools differ"


# argilla-warehouse/apigen-synth-trl (the SFT set of argilla/Llama-3.2-1B-Instruct-APIGen-FC-v0.1): the
# system prompt holds the output format only; the tools open the user's turn, before the query.
APIGEN_SYSTEM = (
    "You are an expert in composing functions. You are given a question and a set of possible functions. "
    "\nBased on the question, you will need to make one or more function/tool calls to achieve the purpose. "
    "\nIf none of the functions can be used, point it out and refuse to answer. \nIf the given question "
    "lacks the parameters required by the function, also point it out.\n\nThe output MUST strictly adhere "
    "to the following format, and NO other text MUST be included.\nThe example format is as follows. Please "
    "make sure the parameter type is correct. If no function call is needed, please make the tool calls an "
    'empty list \'[]\'.\n```\n<tool_call>[\n{"name": "func_name1", "arguments": {"argument1": '
    '"value1", "argument2": "value2"}},\n... (more tool calls as required)\n]</tool_call>\n```'
)
APIGEN_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "celsius_to_fahrenheit",
            "description": "Converts a temperature from Celsius to Fahrenheit.",
            "parameters": {
                "type": "object",
                "properties": {"celsius": {"type": "number", "description": "The temperature in Celsius."}},
                "required": ["celsius"],
            },
        },
    }
]


def _apigen_user(tools: str, tagged: bool = True) -> str:
    listing = f"<tools>{tools}</tools>\n" if tagged else f"{tools}\n"
    return (
        f"You have access to the following tools:\n{listing}\nPlease answer the following query:\n"
        "What is 25 degrees Celsius in Fahrenheit?\n"
    )


@pytest.mark.parametrize("tagged", [True, False])  # its first release wrote the list without <tools>
@pytest.mark.parametrize("form", ["openai", "sharegpt", "paper"])
def test_apigen_sft_tools_that_open_the_user_turn_are_the_records_tools(tagged: bool, form: str) -> None:
    # Were kept as the user's text, the sample offering no tool while its label calls one.
    user = _apigen_user(json.dumps(APIGEN_TOOLS), tagged)
    answer = '<tool_call>[{"name": "celsius_to_fahrenheit", "arguments": {"celsius": 25}}]</tool_call>'
    chat = [{"role": "system", "content": APIGEN_SYSTEM}, {"role": "user", "content": user}]
    if form == "openai":
        record: dict[str, Any] = {"messages": [*chat, {"role": "assistant", "content": answer}]}
    elif form == "sharegpt":
        turns = [*chat, {"role": "assistant", "content": answer}]
        record = {"conversations": [{"from": m["role"], "value": m["content"]} for m in turns]}
    else:
        record = {"input": _chatml(chat), "label": answer}
    conversion = convert_record(record)
    [sample] = conversion.samples
    assert [tool.name for tool in sample.tools] == ["celsius_to_fahrenheit"]
    assert sample.tools[0].parameters.required == ("celsius",)
    assert [(m.role, m.content) for m in sample.messages] == [
        ("system", APIGEN_SYSTEM),
        ("user", "What is 25 degrees Celsius in Fahrenheit?"),
    ]
    assert sample.label == Action(calls=[ToolCall(name="celsius_to_fahrenheit", arguments={"celsius": 25})])
    assert any("tool list a user turn opens with" in warning for warning in conversion.warnings)
    assert not any("offers none" in warning for warning in conversion.warnings)


def test_apigen_sft_user_turn_tools_are_checked_like_a_system_prompts() -> None:
    answer = {"role": "assistant", "content": "The query cannot be answered, no tools were provided."}
    empty = {"messages": [{"role": "user", "content": _apigen_user("[]")}, answer]}
    [sample] = convert_record(empty).samples  # an empty list offers no tool
    assert sample.tools == [] and sample.messages[0].content == "What is 25 degrees Celsius in Fahrenheit?"
    broken = {"messages": [{"role": "user", "content": _apigen_user("[{'name': ")}, answer]}
    with pytest.raises(RecordError) as refused:
        convert_record(broken)
    assert refused.value.reason == "tools in the user turn do not parse"
    other = {"type": "function", "function": {"name": "get_time", "description": "t", "parameters": {}}}
    listed = {"messages": [{"role": "user", "content": _apigen_user(json.dumps(APIGEN_TOOLS))}, answer]}
    with pytest.raises(RecordError) as refused:
        convert_record({**listed, "tools": [other]})
    assert refused.value.reason == "tools field and user turn tools differ"
    # A user's own text that only mentions tools is the user's message, as it is.
    own = "You have access to the following tools: a hammer. Which one for a nail?"
    [sample] = convert_record({"messages": [{"role": "user", "content": own}, answer]}).samples
    assert sample.messages[0].content == own


@pytest.mark.parametrize(
    "prompt_end", ["<|im_start|>assistant\n", "<|im_start|>assistant", "<|im_start|>assistant\n\n"]
)
def test_a_chatml_input_ending_in_the_generation_prompt_is_read(prompt_end: str) -> None:
    question = "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
    [sample] = convert_record({"tools": [WEATHER], "input": question + prompt_end, "label": TAGGED}).samples
    assert [m.role for m in sample.messages] == ["user"] and sample.label == Action(calls=[PARIS])
    empty_inside = question + "<|im_start|>assistant\n<|im_end|>\n" + question
    with pytest.raises(RecordError, match="assistant turn is empty"):
        convert_record({"tools": [WEATHER], "input": empty_inside, "label": TAGGED})


def test_a_sharegpt_turn_with_weight_0_is_context_not_a_label() -> None:
    """ShareGPT exports mark the turns not to train on with "weight": 0, as OpenAI's format does: the
    openai reader honoured it, the sharegpt reader made such a turn a label."""
    record = {
        "conversations": [
            {"from": "human", "value": "Hi"},
            {"from": "gpt", "value": "Hello! How can I help?", "weight": 0},
            {"from": "human", "value": "Which city is the Eiffel tower in?"},
            {"from": "gpt", "value": "Paris.", "weight": 1},
        ]
    }
    [sample] = convert_record(record).samples
    assert sample.label.text == "Paris."
    assert [m.content for m in sample.messages if m.role == "assistant"] == ["Hello! How can I help?"]
    with pytest.raises(RecordError, match="weight must be 0 or 1"):
        convert_record(
            {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo", "weight": 2}]}
        )


# nvidia/Nemotron-Post-Training-Dataset-v1, split tool_calling: OpenAI messages (every turn with a
# "tool_calls" list, arguments as JSON text), the tools in the "metadata" column, a JSON string.
NEMOTRON_TOOL_CALLING: dict[str, Any] = {
    "uuid": "5b1f0c2e-8a51-4f0e-9d0c-2f7e1d7a9c11",
    "license": "CC BY 4.0",
    "generator": "Qwen3-235B-A22B",
    "version": "v1",
    "category": "tool_calling",
    "reasoning": "off",
    "messages": [
        {"role": "system", "content": "", "tool_calls": []},
        {"role": "user", "content": "Convert 250 EUR to USD, please.", "tool_calls": []},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "chatcmpl-tool-1",
                    "type": "function",
                    "function": {
                        "name": "convert_currency",
                        "arguments": '{"amount": 250, "from_currency": "EUR", "to_currency": "USD"}',
                    },
                }
            ],
        },
        {"role": "tool", "content": '{"converted_amount": 271.5}', "tool_calls": []},
        {"role": "assistant", "content": "250 EUR is about 271.50 USD.", "tool_calls": []},
    ],
    "metadata": json.dumps(
        {
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "convert_currency",
                        "description": "Convert an amount between currencies",
                        "parameters": {
                            "type": "object",
                            "properties": {
                                "amount": {"type": "number"},
                                "from_currency": {"type": "string"},
                                "to_currency": {"type": "string"},
                            },
                            "required": ["amount", "from_currency", "to_currency"],
                        },
                    },
                }
            ]
        }
    ),
}


def test_nemotron_tool_calling_records_take_their_tools_from_the_metadata_column() -> None:
    conversion = convert_record(NEMOTRON_TOOL_CALLING)
    [sample] = conversion.samples
    assert [tool.name for tool in sample.tools] == ["convert_currency"]
    assert sample.tools[0].parameters.required == ("amount", "from_currency", "to_currency")
    assert sample.label == Action(
        calls=[
            ToolCall(
                name="convert_currency",
                arguments={"amount": 250, "from_currency": "EUR", "to_currency": "USD"},
            )
        ]
    )
    assert not any("offers none" in warning for warning in conversion.warnings)
    # Metadata that is no JSON object (a note, a source name) is not a tool list: no tools, as before.
    noted = {**NEMOTRON_TOOL_CALLING, "metadata": "synthetic, judged"}
    assert convert_record(noted).samples[0].tools == []
    # A tools column stays the record's tools.
    own = {**NEMOTRON_TOOL_CALLING, "tools": [{"name": "convert_currency", "parameters": {"type": "object"}}]}
    assert convert_record(own).samples[0].tools[0].parameters.required == ()


# tuandunghcmut/apigen-function-calling (APIGen converted to OpenAI's layout): two string columns,
# "messages" (JSON: the user's query, the assistant's tool_calls) and "tools_json" (JSON: the tools).
APIGEN_OPENAI: dict[str, Any] = {
    "messages": json.dumps(
        [
            {"role": "user", "content": "Is 153 the sum of the cubes of its digits?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "type": "function",
                        "function": {"name": "is_sum_of_cubes", "arguments": json.dumps({"num": 153})},
                    }
                ],
            },
        ]
    ),
    "tools_json": json.dumps(
        [
            {
                "type": "function",
                "function": {
                    "name": "is_sum_of_cubes",
                    "description": "Checks if a number is the sum of the cubes of its digits.",
                    "parameters": {
                        "type": "object",
                        "properties": {"num": {"type": "integer", "description": "The number to check."}},
                        "required": ["num"],
                    },
                },
            }
        ]
    ),
}


def test_a_tools_json_column_is_the_records_tool_list() -> None:
    # Was read as offering no tool: the call kept against none, only the "offers none" warning.
    conversion = convert_record(APIGEN_OPENAI)
    [sample] = conversion.samples
    assert [tool.name for tool in sample.tools] == ["is_sum_of_cubes"]
    assert sample.tools[0].parameters.required == ("num",)
    assert sample.label == Action(calls=[ToolCall(name="is_sum_of_cubes", arguments={"num": 153})])
    assert not any("offers none" in warning for warning in conversion.warnings)
    # A tools column, where a record has one, stays the one read.
    own = {**APIGEN_OPENAI, "tools": [{"name": "is_sum_of_cubes", "parameters": {"type": "object"}}]}
    assert convert_record(own).samples[0].tools[0].parameters.required == ()


# GasaiAI/Tool-Reasoning-31K: "messages" a JSON string whose first turn has the role "available_tools",
# its content one text part holding the tools as a JSON list (the "text" column renders the same turn
# as "<|im_start|>available_tools\n[...]").
LINKEDIN_TOOL = {
    "name": "extract",
    "description": "Extracts data from a LinkedIn URL (profile or company page).",
    "parameters": {
        "type": "object",
        "properties": {
            "url": {"type": "string", "description": "The LinkedIn URL to extract data from"},
            "html": {"type": "boolean", "description": "Whether to output raw HTML"},
        },
        "required": ["url"],
    },
}


def _tool_reasoning(listing: str) -> dict[str, Any]:
    turns = [
        {"role": "available_tools", "content": [{"type": "text", "text": listing}]},
        {"role": "user", "content": "Pull the company page https://www.linkedin.com/company/abc-corp"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "type": "function",
                    "function": {
                        "name": "extract",
                        "arguments": '{"url": "https://www.linkedin.com/company/abc-corp"}',
                    },
                }
            ],
        },
    ]
    return {
        "messages": json.dumps(turns),
        "decision_type": "single_tool",
        "has_tool_call": True,
        "num_tool_calls": 1,
        "source": "ToolAce",
    }


def test_an_available_tools_turn_is_the_records_tool_list_not_a_message() -> None:
    # Was refused whole: "unknown message role 'available_tools'".
    conversion = convert_record(_tool_reasoning(json.dumps([LINKEDIN_TOOL], separators=(",", ":"))))
    [sample] = conversion.samples
    assert [tool.name for tool in sample.tools] == ["extract"]
    assert sample.tools[0].parameters.required == ("url",)
    assert [m.role for m in sample.messages] == ["user"]
    assert sample.label == Action(
        calls=[ToolCall(name="extract", arguments={"url": "https://www.linkedin.com/company/abc-corp"})]
    )
    assert any("available_tools turn not kept" in warning for warning in conversion.warnings)
    # "[]": no tool offered; a turn with no JSON list in it is refused, not read as offering none.
    assert convert_record(_tool_reasoning("[]")).samples[0].tools == []
    with pytest.raises(RecordError, match="available_tools turn holds no JSON tool list"):
        convert_record(_tool_reasoning("extract: pulls a LinkedIn page"))


# ToolsGen's records (atasoglu/nano-tool-calling-v1): OpenAI "tools", "messages" holding the user's request
# alone, and "assistant_calls", the OpenAI tool_calls entries that answer it, beside judge metadata.
TOOLSGEN_RECORD: dict[str, Any] = {
    "id": "record_000042",
    "language": "english",
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "celsius_to_fahrenheit",
                "description": "Converts a temperature from Celsius to Fahrenheit.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "celsius": {"type": "number", "description": "The temperature in Celsius."}
                    },
                    "required": ["celsius"],
                },
            },
        }
    ],
    "messages": [{"role": "user", "content": "What is 37.5 degrees Celsius in Fahrenheit?"}],
    "assistant_calls": [
        {
            "id": "call_8f2a",
            "type": "function",
            "function": {"name": "celsius_to_fahrenheit", "arguments": '{"celsius": 37.5}'},
        }
    ],
    "problem_metadata": {"difficulty": "easy"},
    "judge": {"score": 0.93, "verdict": "accept"},
    "quality_tags": [],
    "tools_metadata": {"num_tools": 1},
}


def test_toolsgen_assistant_calls_are_the_answer_to_the_users_request() -> None:
    # Was refused: "openai record has no assistant step to learn from" (the answer was never read).
    [sample] = convert_record(TOOLSGEN_RECORD).samples
    assert [m.role for m in sample.messages] == ["user"]
    assert sample.label == Action(calls=[ToolCall(name="celsius_to_fahrenheit", arguments={"celsius": 37.5})])
    # No calls: nothing to learn, refused as before; anything but a list of calls is refused.
    with pytest.raises(RecordError, match="no assistant step"):
        convert_record({**TOOLSGEN_RECORD, "assistant_calls": []})
    with pytest.raises(RecordError, match="assistant_calls"):
        convert_record({**TOOLSGEN_RECORD, "assistant_calls": "celsius_to_fahrenheit(37.5)"})


# HuggingFaceTB/smoltalk2's SFT config: "messages" of role/content, the tools in "chat_template_kwargs"
# ({custom_instructions, enable_thinking, python_tools, xml_tools}); its xlam_traces_no_think and
# hermes_function_calling_v1_no_think splits write one xml_tools entry, a "<tools>" block holding a
# Python literal list of xlam or OpenAI tools.
GIVEAWAYS_TOOL = (
    "{'name': 'live_giveaways_by_type', 'description': 'Retrieve live giveaways from the GamerPower API "
    "based on the specified type.', 'parameters': {'type': {'description': 'The type of giveaways to "
    "retrieve (e.g., game, loot, beta).', 'type': 'str', 'default': 'game'}}}"
)
SMOLTALK2_XLAM: dict[str, Any] = {
    "messages": [
        {"role": "user", "content": "Where can I find live giveaways for beta access and games?"},
        {
            "role": "assistant",
            "content": '<tool_call>\n{"name": "live_giveaways_by_type", "arguments": {"type": "beta"}}\n'
            '</tool_call>\n<tool_call>\n{"name": "live_giveaways_by_type", "arguments": {"type": "game"}}'
            "\n</tool_call>",
        },
    ],
    "chat_template_kwargs": {
        "custom_instructions": "",
        "enable_thinking": False,
        "python_tools": [],
        "xml_tools": [f"<tools>[{GIVEAWAYS_TOOL}]</tools>"],
    },
    "source": "xlam-traces",
}


def _with_kwargs(**changes: Any) -> dict[str, Any]:
    return {**SMOLTALK2_XLAM, "chat_template_kwargs": {**SMOLTALK2_XLAM["chat_template_kwargs"], **changes}}


def test_smoltalk2_records_take_their_tools_and_system_text_from_chat_template_kwargs() -> None:
    # Were read as offering no tool (the calls kept against none, with a warning), custom_instructions lost.
    conversion = convert_record(SMOLTALK2_XLAM)
    [sample] = conversion.samples
    assert [tool.name for tool in sample.tools] == ["live_giveaways_by_type"]
    assert sample.tools[0].parameters.to_json_schema()["properties"]["type"]["default"] == "game"
    beta, game = ({"type": kind} for kind in ("beta", "game"))
    assert sample.label == Action(
        calls=[ToolCall(name="live_giveaways_by_type", arguments=args) for args in (beta, game)]
    )
    assert not any("offers none" in warning for warning in conversion.warnings)
    # One tool a line (smolagents traces), a listing as the entry itself: read alike.
    for entry in (GIVEAWAYS_TOOL + "\n" + GIVEAWAYS_TOOL.replace("live_", "all_"), f"[{GIVEAWAYS_TOOL}]"):
        [sample] = convert_record(_with_kwargs(xml_tools=[entry])).samples
        assert sample.tools[0].name == "live_giveaways_by_type"
    # The record's own instructions are its system message, unless its messages hold one.
    record = _with_kwargs(custom_instructions="Answer briefly.")
    [sample] = convert_record(record).samples
    question = "Where can I find live giveaways for beta access and games?"
    assert [(m.role, m.content) for m in sample.messages] == [
        ("system", "Answer briefly."),
        ("user", question),
    ]
    own = {**record, "messages": [{"role": "system", "content": "Be terse."}, *record["messages"]]}
    [sample] = convert_record(own).samples
    assert [(m.role, m.content) for m in sample.messages] == [("system", "Be terse."), ("user", question)]
    # An entry that lists no tool offers none, said; a listing that does not read is refused.
    conversion = convert_record(_with_kwargs(xml_tools=["You have no access to tools."]))
    assert conversion.samples[0].tools == [] and any("lists no tool" in w for w in conversion.warnings)
    with pytest.raises(RecordError) as refused:
        convert_record(_with_kwargs(xml_tools=[f"<tools>[{GIVEAWAYS_TOOL}</tools>"]))
    assert "xml_tools" in refused.value.reason and "do not parse" in refused.value.reason


# --- Anthropic Messages content blocks -------------------------------------------------------------

# The Messages API's layout (docs.anthropic.com, "Tool use"): tools with "input_schema", a top-level
# "system" (text or text blocks), calls as "tool_use" blocks of the assistant, results as "tool_result"
# blocks of the next user turn, paired by "tool_use_id"; extended thinking as "thinking" blocks.
ANTHROPIC_WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
}
ANTHROPIC_RECORD: dict[str, Any] = {
    "system": [{"type": "text", "text": "You are a travel assistant."}],
    "tools": [ANTHROPIC_WEATHER, {"name": "get_time", "input_schema": {"type": "object"}}],
    "messages": [
        {"role": "user", "content": "Weather in Paris, time in Rome?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Two questions: two calls.", "signature": "EqQB"},
                {"type": "text", "text": "Let me check both."},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"location": "Paris"}},
                {"type": "tool_use", "id": "toolu_02", "name": "get_time", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_02", "content": "14:05"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01",
                    "content": [{"type": "text", "text": "15C, rain"}],
                },
                {"type": "text", "text": "And what about Oslo?"},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_03", "name": "get_weather", "input": {"location": "Oslo"}}
            ],
        },
    ],
}


def test_anthropic_tool_use_and_tool_result_blocks_are_calls_and_results() -> None:
    conversion = convert_record(ANTHROPIC_RECORD)
    assert conversion.format == "openai"
    first, second = conversion.samples
    assert [tool.name for tool in first.tools] == ["get_weather", "get_time"]
    assert first.tools[0].parameters.required == ("location",)
    assert [(m.role, m.content) for m in first.messages] == [
        ("system", "You are a travel assistant."),
        ("user", "Weather in Paris, time in Rome?"),
    ]
    paris = ToolCall(name="get_weather", arguments={"location": "Paris"})
    assert first.label == Action(calls=[paris, ToolCall(name="get_time", arguments={"city": "Rome"})])
    # The results in the order given, each named by the call its tool_use_id points to; the text
    # beside them stays the user's message, after them.
    context = [(m.role, m.content, m.name) for m in second.messages[2:]]
    assert context == [
        ("assistant", "Let me check both.", None),
        ("tool", "14:05", "get_time"),
        ("tool", "15C, rain", "get_weather"),
        ("user", "And what about Oslo?", None),
    ]
    assert second.label == Action(calls=[ToolCall(name="get_weather", arguments={"location": "Oslo"})])
    assert any("reasoning part not kept" in warning for warning in conversion.warnings)


def test_anthropic_text_before_tool_results_stays_before_them() -> None:
    record = json.loads(json.dumps(ANTHROPIC_RECORD))
    blocks = record["messages"][2]["content"]
    record["messages"][2]["content"] = [blocks[2], blocks[0], blocks[1]]
    second = convert_record(record).samples[1]
    assert [m.role for m in second.messages[3:]] == ["user", "tool", "tool"]
    del record["messages"][2]["content"][1]["tool_use_id"]
    with pytest.raises(RecordError, match="needs a string 'tool_use_id'"):
        convert_record(record)


def test_anthropic_tool_result_blocks_in_sharegpt_conversations_are_tool_results() -> None:
    # Exports that keep Anthropic's content blocks but name the dialogue "conversations" (with a tools
    # column): the result blocks of a user turn are read as in a Messages record, not refused.
    record = {
        "tools": json.dumps(ANTHROPIC_RECORD["tools"]),
        "conversations": [
            {"from": "human" if m["role"] == "user" else "gpt", "value": m["content"]}
            for m in json.loads(json.dumps(ANTHROPIC_RECORD["messages"]))
        ],
    }
    assert detect_format(record) == "sharegpt"
    conversion = convert_record(record)
    first, second = conversion.samples
    assert first.label == convert_record(ANTHROPIC_RECORD).samples[0].label
    assert [(m.role, m.content, m.name) for m in second.messages[1:]] == [
        ("assistant", "Let me check both.", None),
        ("tool", "14:05", "get_time"),
        ("tool", "15C, rain", "get_weather"),
        ("user", "And what about Oslo?", None),
    ]
    assert second.label == Action(calls=[ToolCall(name="get_weather", arguments={"location": "Oslo"})])
    del record["conversations"][2]["value"][0]["tool_use_id"]
    with pytest.raises(RecordError, match=r"turn 2: a tool_result part needs a string 'tool_use_id'"):
        convert_record(record)


def test_lilac_glaive_sharegpt_records_read_speakers_written_with_a_space() -> None:
    # lilacai/glaive-function-calling-v2-sharegpt keeps glaive's raw "system" and "chat" columns beside
    # "conversations", and its card lists the speaker "function call" (a space, not a hyphen).
    call = '{"name": "send_email", "arguments": \'{"recipient": "o.neil@example.com", "message": "late"}\'}'
    record = {
        "system": "SYSTEM: " + GLAIVE_SYSTEM,
        "chat": f"USER: Email O'Neil that I'm late.\n\n\nASSISTANT: <functioncall> {call} <|endoftext|>\n",
        "conversations": [
            {"from": "system", "value": GLAIVE_SYSTEM},
            {"from": "human", "value": "Email O'Neil that I'm late."},
            {"from": "function call", "value": call},
            {"from": "function response", "value": '{"status": "success"}'},
            {"from": "gpt", "value": "Done: O'Neil knows you're late."},
        ],
    }
    assert detect_format(record) == "sharegpt"  # the conversations, not the raw transcript
    [sample] = convert_record(record).samples
    assert [tool.name for tool in sample.tools] == ["send_email", "get_random_joke"]
    assert [m.role for m in sample.messages] == ["user"]  # the harness system prompt is read, not kept
    assert sample.label == Action(
        calls=[ToolCall(name="send_email", arguments={"recipient": "o.neil@example.com", "message": "late"})]
    )
    hyphenated = json.loads(json.dumps(record).replace('"function call"', '"function-call"'))
    hyphenated = json.loads(json.dumps(hyphenated).replace('"function response"', '"function-response"'))
    assert convert_record(hyphenated).samples == [sample]


# --- XML-argument calls in dataset turns (Qwen3-Coder, GLM-4.5 chat templates) -------------------------

# Data rendered by these templates writes every value as text; only the record's tools say which are
# numbers or booleans, so each reader types them by the record's own tools, as for a model output.
SET_TIMER = {
    "type": "function",
    "function": {
        "name": "set_timer",
        "description": "Start a kitchen timer.",
        "parameters": {
            "type": "object",
            "properties": {
                "minutes": {"type": "integer"},
                "label": {"type": "string"},
                "loud": {"type": "boolean"},
            },
            "required": ["minutes"],
        },
    },
}
QWEN3_CODER_CALL = (
    "<tool_call>\n<function=set_timer>\n<parameter=minutes>\n5\n</parameter>\n"
    "<parameter=label>\n10\n</parameter>\n<parameter=loud>\nTrue\n</parameter>\n</function>\n</tool_call>"
)
GLM_CALL = (
    "<tool_call>set_timer\n<arg_key>minutes</arg_key>\n<arg_value>5</arg_value>\n"
    "<arg_key>label</arg_key>\n<arg_value>10</arg_value>\n<arg_key>loud</arg_key>\n"
    "<arg_value>true</arg_value>\n</tool_call>"
)
TYPED_TIMER = Action(
    calls=[ToolCall(name="set_timer", arguments={"minutes": 5, "label": "10", "loud": True})]
)


@pytest.mark.parametrize("call", [QWEN3_CODER_CALL, GLM_CALL], ids=["qwen3-coder", "glm"])
def test_xml_argument_calls_in_dataset_turns_are_typed_by_the_records_tools(call: str) -> None:
    hermes_system = f"You are a function calling AI model.\n<tools>\n{json.dumps(SET_TIMER)}\n</tools>"
    records = {
        "openai": {
            "tools": [SET_TIMER],
            "messages": [
                {"role": "user", "content": "Timer, 5 minutes."},
                {"role": "assistant", "content": call},
            ],
        },
        "openai, tools in the system prompt": {
            "messages": [
                {"role": "system", "content": hermes_system},
                {"role": "user", "content": "Timer, 5 minutes."},
                {"role": "assistant", "content": call},
            ],
        },
        "sharegpt": {
            "tools": json.dumps([SET_TIMER]),
            "conversations": [
                {"from": "human", "value": "Timer, 5 minutes."},
                {"from": "gpt", "value": call},
            ],
        },
        "paper, ChatML input": {
            "tools": [SET_TIMER],
            "input": "<|im_start|>user\nTimer, 5 minutes.<|im_end|>\n"
            f"<|im_start|>assistant\n{call}<|im_end|>\n"
            "<|im_start|>user\nAnother one.<|im_end|>\n<|im_start|>assistant\n",
            "label": call,
        },
    }
    for name, record in records.items():
        samples = convert_record(record).samples
        assert samples[0].label == TYPED_TIMER, name
    paper = convert_record(records["paper, ChatML input"]).samples[0]
    assert paper.messages[1].tool_calls == TYPED_TIMER.calls  # the context's call, typed too
    # A whole ChatML dialogue (no label) whose last turn is the assistant's call: its step, typed.
    dialogue = {
        "tools": [SET_TIMER],
        "input": f"<|im_start|>user\nTimer, 5 minutes.<|im_end|>\n<|im_start|>assistant\n{call}<|im_end|>\n",
    }
    assert convert_record(dialogue).samples[0].label == TYPED_TIMER


def test_toolmind_tools_that_declare_their_inputs_as_arguments_keep_their_schema() -> None:
    # Nanbeige/ToolMind: "conversations" of role/content turns (calls in tool_calls, arguments as
    # objects) beside a "tools" list; its augmented xLAM tools declare their inputs under "arguments"
    # (xLAM's per-parameter form), not "parameters".
    record = {
        "conversations": [
            {"role": "user", "content": "Grid points 1 km apart around 40.71,-74.01, please."},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "function": {
                            "name": "calculate_grid_coordinate_points",
                            "arguments": {"radius": "1", "lat": "40.71", "lng": "-74.01"},
                        }
                    }
                ],
            },
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "calculate_grid_coordinate_points",
                    "description": "Calculate all grid coordinate points around a center point.",
                    "arguments": {
                        "radius": {"description": "The distance between coordinate points.", "type": "str"},
                        "lat": {"description": "Latitude of the center.", "type": "str"},
                        "lng": {"description": "Longitude of the center.", "type": "str"},
                        "radius_units": {
                            "description": "km or mi.",
                            "type": "str, optional",
                            "default": "km",
                        },
                    },
                },
            }
        ],
    }
    conversion = convert_record(record)
    [sample] = conversion.samples
    [tool] = sample.tools
    assert set(tool.parameters.properties) == {"radius", "lat", "lng", "radius_units"}
    assert tool.parameters.required == ("radius", "lat", "lng")
    assert tool.parameters.properties["radius"].types == ("string",)
    assert not any("is not kept" in warning for warning in conversion.warnings)
    # A tool that declares parameters keeps them; its "arguments" (an example, say) is not its schema.
    both = json.loads(json.dumps(record))
    both["tools"][0]["function"]["parameters"] = {"type": "object", "properties": {"lat": {"type": "number"}}}
    assert set(convert_record(both).samples[0].tools[0].parameters.properties) == {"lat"}


def test_a_tool_result_written_as_a_json_object_is_its_json_text() -> None:
    """Agentic datasets write a structured tool result as an object (``"content": {"time": "10:00"}``):
    it was refused ("content must be text or a list of parts"); it is the result's JSON text. A
    ShareGPT tool turn is named by the OpenAI call its ``tool_call_id`` answers, as in ``messages``."""
    tools = [{"name": "clock", "parameters": {"type": "object", "properties": {}}}]
    call = {"id": "c1", "type": "function", "function": {"name": "clock", "arguments": {}}}
    result = {"time": "10:00", "zone": "Europe/Paris"}
    record = {
        "tools": tools,
        "messages": [
            {"role": "user", "content": "What time is it?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": result},
            {"role": "assistant", "content": "It is 10:00."},
            {"role": "user", "content": "And in Tokyo?"},
            {"role": "assistant", "content": "Which time zone name should I use?"},
        ],
    }
    conversations = {
        "tools": tools,
        "conversations": [
            {"from": "human", "value": "What time is it?"},
            {"from": "gpt", "value": None, "tool_calls": [call]},
            {"from": "tool", "tool_call_id": "c1", "value": result},
            {"from": "gpt", "value": "It is 10:00."},
            {"from": "human", "value": "And in Tokyo?"},
            {"from": "gpt", "value": "Which time zone name should I use?"},
        ],
    }
    for source in (record, conversations):
        last = convert_record(source).samples[-1]
        [tool_turn] = [m for m in last.messages if m.role == "tool"]
        assert json.loads(tool_turn.content) == result
        assert tool_turn.name == "clock"  # named by the call its tool_call_id answers
        assert last.label == Action(text="Which time zone name should I use?")


def test_tool_response_blocks_in_an_openai_tool_turn_are_its_results_as_in_sharegpt() -> None:
    # smoltalk2's hermes_function_calling_v1_no_think split: role/content messages, a step's results in
    # one "tool" message, each in a <tool_response> block. The openai reader kept the blocks, tags and
    # all, as one result; the sharegpt reader of the same turns gave one result per block.
    results = (
        '<tool_response>\n{"name": "get_weather", "content": {"temperature": 18}}\n</tool_response>\n'
        '<tool_response>\n{"name": "get_weather", "content": {"temperature": 24}}\n</tool_response>'
    )
    rome = TAGGED.replace("Paris", "Rome")
    turns = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": TAGGED + "\n" + rome},
        {"role": "tool", "content": results},
        {"role": "assistant", "content": "Paris 18C, Rome 24C."},
        {"role": "user", "content": "And Oslo?"},
        {"role": "assistant", "content": TAGGED.replace("Paris", "Oslo")},
    ]
    read = [
        convert_record({"tools": [WEATHER], "messages": turns}),
        convert_record({"tools": [WEATHER], "conversations": turns}),
    ]
    _, oslo = read[0].samples
    assert [(m.role, m.content) for m in oslo.messages if m.role == "tool"] == [
        ("tool", '{"name": "get_weather", "content": {"temperature": 18}}'),
        ("tool", '{"name": "get_weather", "content": {"temperature": 24}}'),
    ]
    assert read[0].samples == read[1].samples


# The "no call" answer APIGen/xLAM's and SmolLM's tool prompts ask for when no tool fits: an empty call
# list, alone or in a <tool_call> block.
NO_CALL_TURNS = ["[]", "<tool_call>[]</tool_call>", "<tool_call>\n[]\n</tool_call>"]


@pytest.mark.parametrize("content", NO_CALL_TURNS)
def test_an_empty_call_list_turn_is_a_no_call_step_that_rewards_only_no_call(content: str) -> None:
    # Was refused: "no assistant step to learn from" (the turn read as saying nothing).
    question = {"role": "user", "content": "Tell me a joke about umbrellas."}
    read = [
        convert_record(
            {"tools": [WEATHER], "messages": [question, {"role": "assistant", "content": content}]}
        ),
        convert_record(
            {
                "tools": [WEATHER],
                "conversations": [
                    {"from": "human", "value": question["content"]},
                    {"from": "gpt", "value": content},
                ],
            }
        ),
        convert_record({"tools": [WEATHER], "messages": [question], "label": content}),  # paper
    ]
    for conversion in read:
        [sample] = conversion.samples
        assert sample.label == Action(text=NO_SUITABLE_TOOL)
        assert validate_action(sample.label, sample.tools) == []  # a label, not an empty action
        # ToolMatch: any no-call answer is right (the same "[]" included), a call never is.
        for answer in ("[]", "I can only look up the weather."):
            assert tool_match(parse_output(answer).action, sample.label, sample.tools).matched
        assert not tool_match(Action(calls=[PARIS]), sample.label, sample.tools).matched


def test_an_empty_call_list_earlier_in_a_dialogue_is_that_no_call_answer_in_later_contexts() -> None:
    turns = [
        {"role": "user", "content": "Tell me a joke."},
        {"role": "assistant", "content": "[]"},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": TAGGED},
    ]
    first, second = convert_record({"tools": [WEATHER], "messages": turns}).samples
    assert first.label == Action(text=NO_SUITABLE_TOOL)
    assert [(m.role, m.content) for m in second.messages[:2]] == [
        ("user", "Tell me a joke."),
        ("assistant", NO_SUITABLE_TOOL),
    ]
    assert second.label == Action(calls=[PARIS])
    # Words beside the empty list are the answer; an empty block still says nothing and is refused.
    [said] = convert_record(
        _openai({"role": "assistant", "content": "No tool fits that.\n<tool_call>[]</tool_call>"})
    ).samples
    assert said.label == Action(text="No tool fits that.")
    with pytest.raises(RecordError):
        convert_record(_openai({"role": "assistant", "content": "<tool_call></tool_call>"}))


# AmanPriyanshu's tool-reasoning-sft sets (e.g. tool-reasoning-sft-TOOLS-ToolMind-data-cleaned-rectified):
# a "messages" column of JSON text, roles system (the protocol and the tools), user, reasoning
# (<think>…</think>), tool_call (one <tool_call> block), tool_output (<tool_response>) and answer
# (<answer>…</answer>), beside a "split" column.
TOOL_REASONING_PROTOCOL = (
    "## Tool-Use Protocol\n\n1. Reason inside <think>...</think> tags.\n2. Invoke one tool per turn using "
    '<tool_call> with JSON (keys: "name", "arguments").\n3. Environment returns results inside '
    "<tool_response>...</tool_response>.\n4. Reason again before the next action.\n5. When done or no tool "
    "applies, answer inside <answer>...</answer>.\n\n## Available Tools\n\n<tools>\n"
    + json.dumps(WEATHER)
    + "\n</tools>"
)
TOOL_REASONING_TURNS = [
    {"role": "system", "content": TOOL_REASONING_PROTOCOL},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "reasoning", "content": "<think>get_weather takes a location: Paris.</think>"},
    {
        "role": "tool_call",
        "content": '<tool_call>{"name": "get_weather", "arguments": {"location": "Paris"}}</tool_call>',
    },
    {"role": "tool_output", "content": '<tool_response>{"temperature": 22}</tool_response>'},
    {"role": "reasoning", "content": "<think>22 degrees.</think>"},
    {"role": "answer", "content": "<answer>It is 22 C in Paris.</answer>"},
    {"role": "user", "content": "Thanks! A joke about rain?"},
    {"role": "reasoning", "content": "<think>No tool for jokes.</think>"},
    {"role": "answer", "content": "<answer>Rain jokes are drizzly.</answer>"},
]


def test_tool_reasoning_sft_roles_are_calls_results_and_answers_and_reasoning_is_left_out() -> None:
    # Was refused: "unknown message role 'reasoning'".
    record = {"messages": json.dumps(TOOL_REASONING_TURNS), "split": "synthetic"}
    conversion = convert_record(record)
    call_step, joke_step = conversion.samples
    assert [tool.name for tool in call_step.tools] == ["get_weather"]  # from the system prompt
    assert [(m.role, m.content) for m in call_step.messages] == [("user", "Weather in Paris?")]
    assert call_step.label == Action(calls=[PARIS])
    assert [(m.role, m.content, m.tool_calls) for m in joke_step.messages] == [
        ("user", "Weather in Paris?", []),
        ("assistant", "", [PARIS]),
        ("tool", '{"temperature": 22}', []),
        ("assistant", "It is 22 C in Paris.", []),  # a summary after a result: context, no step
        ("user", "Thanks! A joke about rain?", []),
    ]
    assert joke_step.label == Action(text="Rain jokes are drizzly.")
    assert sum("reasoning not kept" in warning for warning in conversion.warnings) == 3


@pytest.mark.parametrize(
    "content",
    [
        'Checking.\n<tool_call>{"name": "get_weather", "arguments": {"location": "Paris"}}</tool_call>',
        "<tool_call>[]</tool_call>",
        '<tool_call>{"name": "get_weather", "arguments": {"location": "Par</tool_call>',
    ],
)
def test_a_tool_call_turn_holding_more_or_less_than_its_calls_is_refused(content: str) -> None:
    turns = [*TOOL_REASONING_TURNS[:3], {"role": "tool_call", "content": content}, *TOOL_REASONING_TURNS[4:7]]
    with pytest.raises(RecordError, match="call turn"):
        convert_record({"messages": turns})


# THUDM/AgentInstruct: "conversations" of {from, loss, value}; the task prompt, its "OK." and a worked
# example are "loss": false (not trained on), the trajectory's own actions "loss": true.
AGENTINSTRUCT_OS = {
    "conversations": [
        {
            "from": "human",
            "loss": False,
            "value": "You are an assistant that will act like a person, I will play the role of "
            "linux(ubuntu) operating system. Take one of the actions bash, finish or answer.",
        },
        {"from": "gpt", "loss": False, "value": "OK."},
        {"from": "human", "loss": False, "value": 'tell me how many files are in the directory "/etc"?'},
        {
            "from": "gpt",
            "loss": False,
            "value": "Think: I print the files.\n\nAct: bash\n\n```bash\nls /etc\n```",
        },
        {"from": "human", "loss": False, "value": "The output of the OS:\ncpi cron.hourly fuse.conf"},
        {"from": "gpt", "loss": False, "value": "Think: There are 3 files.\n\nAct: answer(3)"},
        {
            "from": "human",
            "loss": False,
            "value": "Now, I will start a new problem. How many users are in group sudo?",
        },
        {
            "from": "gpt",
            "loss": True,
            "value": "Think: I list group sudo.\n\nAct: bash\n\n```bash\ngetent group sudo\n```",
        },
        {"from": "human", "loss": False, "value": "The output of the OS:\n\nsudo:x:27:alice,bob"},
        {"from": "gpt", "loss": True, "value": "Think: alice and bob.\n\nAct: answer(2)"},
    ],
    "id": "os_7",
}


def test_agentinstruct_turns_with_loss_false_are_context_never_labels() -> None:
    # Were labels: the prompt's "OK." and the worked example's steps became samples of their own.
    samples = convert_record(AGENTINSTRUCT_OS).samples
    trained = [turn["value"] for turn in AGENTINSTRUCT_OS["conversations"] if turn["loss"]]
    assert [sample.label for sample in samples] == [Action(text=text) for text in trained]
    assert next(m.content for m in samples[0].messages if m.role == "assistant") == "OK."  # context
    turns = AGENTINSTRUCT_OS["conversations"]
    with pytest.raises(RecordError, match="'loss' must be true or false"):
        convert_record({"conversations": [*turns[:-1], {**turns[-1], "loss": "false"}]})
    with pytest.raises(RecordError, match="disagree"):
        convert_record({"conversations": [*turns[:-1], {**turns[-1], "weight": 0}]})


# Layouts surveyed and read as they are (hand-written records following each published layout):
# Salesforce/APIGen-MT-5k (ShareGPT function_call / observation turns, "tools" JSON text, the domain
# policy as "system"), Jofthomas/hermes-function-calling-thinking-V1 (role/content turns, speakers human /
# model / tool, a Python-literal <tools> list, <think> before each call) and
# interstellarninja/hermes_reasoning_tool_use (from/value turns, <tools> in the system prompt and a
# "tools" column listing the same tools).
WEATHER_LITERAL = (
    "[{'type': 'function', 'function': {'name': 'get_weather', 'description': 'w', 'parameters': "
    "{'type': 'object', 'properties': {'location': {'type': 'string'}}, 'required': ['location']}}}]"
)
SURVEYED_LAYOUTS = {
    "apigen-mt-5k": {
        "conversations": [
            {"from": "human", "value": "Weather in Paris?"},
            {"from": "function_call", "value": '{"name": "get_weather", "arguments": {"location": "Paris"}}'},
            {"from": "observation", "value": '{"temperature": 22}'},
            {"from": "gpt", "value": "It is 22 C."},
        ],
        "system": "# Weather agent policy\nAnswer only from the tools' results.",
        "tools": json.dumps([WEATHER["function"]]),
    },
    "hermes-function-calling-thinking": {
        "conversations": [
            {
                "role": "system",
                "content": f"You are a function calling AI model. <tools> {WEATHER_LITERAL} </tools>",
            },
            {"role": "human", "content": "Weather in Paris?"},
            {"role": "model", "content": "<think>The user wants Paris.</think>" + TAGGED.replace('"', "'")},
            {"role": "tool", "content": "<tool_response>\n{'temperature': 22}\n</tool_response>"},
            {"role": "model", "content": "It is 22 C."},
        ]
    },
    "hermes_reasoning_tool_use": {
        "conversations": [
            {
                "from": "system",
                "value": f"You are a deep thinking AI.\n<tools>\n[{json.dumps(WEATHER)}]\n</tools>",
            },
            {"from": "human", "value": "Weather in Paris?"},
            {"from": "gpt", "value": "<think>\nget_weather for Paris.\n</think>\n" + TAGGED},
            {"from": "tool", "value": '<tool_response>\n{"temperature": 22}\n</tool_response>'},
            {"from": "gpt", "value": "<think>22.</think>\nIt is 22 C."},
        ],
        "tools": json.dumps([WEATHER]),
    },
}


@pytest.mark.parametrize("layout", sorted(SURVEYED_LAYOUTS))
def test_surveyed_published_layouts_read_their_call_as_the_label(layout: str) -> None:
    [sample] = convert_record(SURVEYED_LAYOUTS[layout]).samples
    assert [tool.name for tool in sample.tools] == ["get_weather"]
    assert [m.role for m in sample.messages if m.role != "system"] == ["user"]
    assert sample.label == Action(calls=[PARIS])
