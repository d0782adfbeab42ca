"""Parsing model output: the paper's format, tolerated slips (reported), failures with reasons."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.toolcall.strategies import call_actions
from toolcall.parsing import (
    CallFormatError,
    parse_openai_tool_calls,
    parse_output,
    render_action,
    render_call,
)
from toolcall.types import Action, ToolCall

WEATHER = '{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}'
WEATHER_CALL = ToolCall(name="get_weather", arguments={"city": "Paris", "days": 3})


def test_think_and_one_call() -> None:
    parsed = parse_output(f"<think>The user wants weather.</think>\n<tool_call>\n{WEATHER}\n</tool_call>")
    assert parsed.kind == "calls"
    assert parsed.action == Action(calls=[WEATHER_CALL])
    assert parsed.think == "The user wants weather."
    assert parsed.repairs == [] and parsed.error is None and parsed.text is None


def test_parallel_calls_keep_their_order() -> None:
    second = '{"name": "get_time", "arguments": {"zone": "CET"}}'
    parsed = parse_output(f"<tool_call>{WEATHER}</tool_call>\n\n  <tool_call>\n{second}\n</tool_call>")
    assert [c.name for c in parsed.action.calls] == ["get_weather", "get_time"]


def test_figure_8_sample_label() -> None:
    """The paper's single-turn label: two calls, whitespace around the JSON."""
    label = (
        '<tool_call>\n {"name": "getAudienceSize", "arguments": {"age_range": "25-30", "gender": "male", '
        '"location": "New York"}} \n </tool_call>\n<tool_call>\n {"name": "getMediaPlan", "arguments": '
        '{"campaign_id": "CAM12345"}} \n</tool_call>'
    )
    parsed = parse_output(label)
    assert parsed.action.calls == [
        ToolCall(
            name="getAudienceSize", arguments={"age_range": "25-30", "gender": "male", "location": "New York"}
        ),
        ToolCall(name="getMediaPlan", arguments={"campaign_id": "CAM12345"}),
    ]


@pytest.mark.parametrize(
    ("text", "repair"),
    [
        (f"<tool_call>\n{WEATHER}", "unclosed_tool_call"),
        (f"<tool_call>\n```json\n{WEATHER}\n```\n</tool_call>", "code_fence"),
        (
            '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris", "days": 3,},}</tool_call>',
            "trailing_comma",
        ),
        (
            "<tool_call>{'name': 'get_weather', 'arguments': {'city': 'Paris', 'days': 3}}</tool_call>",
            "python_literal",
        ),
        (
            '<tool_call>{"name": "get_weather", "arguments": '
            '"{\\"city\\": \\"Paris\\", \\"days\\": 3}"}</tool_call>',
            "arguments_as_string",
        ),
        (
            '<tool_call>{"name": "get_weather", "parameters": {"city": "Paris", "days": 3}}</tool_call>',
            "parameters_key",
        ),
        (f"<think>never closed <tool_call>{WEATHER}</tool_call>", "unclosed_think"),
    ],
)
def test_unambiguous_slips_are_repaired_and_reported(text: str, repair: str) -> None:
    parsed = parse_output(text)
    assert parsed.error is None, parsed.error
    assert parsed.action == Action(calls=[WEATHER_CALL])
    assert repair in parsed.repairs


def test_two_objects_in_one_block_are_two_calls() -> None:
    parsed = parse_output(f"<tool_call>\n{WEATHER}\n{WEATHER}\n</tool_call>")
    assert parsed.action.calls == [WEATHER_CALL, WEATHER_CALL]
    assert "several_calls_in_one_block" in parsed.repairs


def test_python_literals_true_none() -> None:
    parsed = parse_output("<tool_call>{'name': 'f', 'arguments': {'a': True, 'b': None}}</tool_call>")
    assert parsed.action.calls == [ToolCall(name="f", arguments={"a": True, "b": None})]


def test_a_python_literal_is_read_as_the_json_it_spells_and_never_crashes_the_parser() -> None:
    """A tuple is an array (a tuple argument matched no array label); a key that is not a string made
    parse_output raise (pydantic's ValidationError), though it never raises on any text."""
    parsed = parse_output(
        "<tool_call>{'name': 'f', 'arguments': {'a': (1, 2), 'b': {'c': (3,)}}}</tool_call>"
    )
    assert parsed.action == Action(calls=[ToolCall(name="f", arguments={"a": [1, 2], "b": {"c": [3]}})])
    for output in (
        "<tool_call>{'name': 'f', 'arguments': {1: 2}}</tool_call>",
        "<tool_call>{'name': 'f', 'arguments': {'a': {True: 2}}}</tool_call>",
        f"{DS_BEGIN}{DS_CALL}f{DS_SEP}{{1: 2}}{DS_CALL_END}{DS_END}",
    ):
        failed = parse_output(output)
        assert failed.kind == "error" and "key that is not a string" in (failed.error or "")


def test_python_literal_never_evaluates_code() -> None:
    parsed = parse_output("<tool_call>{'name': __import__('os').getcwd(), 'arguments': {}}</tool_call>")
    assert parsed.kind == "error" and "not valid JSON" in parsed.error


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty output"),
        ("   \n ", "empty output"),
        ("<tool_call></tool_call>", "empty block"),
        ("<tool_call>{not json}</tool_call>", "not valid JSON"),
        ('<tool_call>{"arguments": {}}</tool_call>', "non-empty string 'name'"),
        ('<tool_call>{"name": "f", "arguments": [1, 2]}</tool_call>', "must be an object"),
        ('<tool_call>{"name": "f", "arguments": {}, "extra": 1}</tool_call>', "unexpected keys"),
        ('</tool_call>{"name": "f"}', "without its opening"),
        ('<tool_call>{"name": "f"}<tool_call>{"name": "g"}</tool_call>', "not closed before the next"),
        ('<tool_call>"just a string"</tool_call>', "must be a JSON object"),
        ('<tool_call>{"name": "f", "arguments": "not json"}</tool_call>', "string that is not JSON"),
    ],
)
def test_failures_carry_a_reason(text: str, reason: str) -> None:
    parsed = parse_output(text)
    assert parsed.kind == "error" and parsed.action is None
    assert reason in parsed.error


def test_free_text_is_a_no_call_answer() -> None:
    parsed = parse_output("<think>No tool fits.</think>\nNone of the available functions can do that.")
    assert parsed.kind == "text"
    assert parsed.action == Action(text="None of the available functions can do that.")
    assert parsed.think == "No tool fits."


def test_text_around_calls_is_kept_apart() -> None:
    parsed = parse_output(f"Let me check.\n<tool_call>{WEATHER}</tool_call>\nOne moment.")
    assert parsed.action == Action(calls=[WEATHER_CALL])
    assert parsed.text == "Let me check.\nOne moment."


def test_chat_template_end_token_is_dropped() -> None:
    parsed = parse_output(f"<tool_call>{WEATHER}</tool_call><|im_end|>")
    assert parsed.action == Action(calls=[WEATHER_CALL]) and parsed.repairs == []


def test_template_opened_think_in_the_prompt() -> None:
    parsed = parse_output(f"reasoning here</think>\n<tool_call>{WEATHER}</tool_call>")
    assert parsed.think == "reasoning here" and parsed.action.calls == [WEATHER_CALL]


def test_openai_tool_calls_json() -> None:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris", "days": 3})},
            }
        ],
    }
    parsed = parse_output(json.dumps(message))
    assert parsed.action == Action(calls=[WEATHER_CALL])
    assert parse_openai_tool_calls(message["tool_calls"]) == Action(calls=[WEATHER_CALL])
    # A bare list of tool_calls entries reads the same.
    assert parse_output(json.dumps(message["tool_calls"])).action == Action(calls=[WEATHER_CALL])


def test_openai_tool_calls_errors() -> None:
    with pytest.raises(CallFormatError, match="non-empty list"):
        parse_openai_tool_calls([])
    with pytest.raises(CallFormatError, match=r"tool_calls\[0\]"):
        parse_openai_tool_calls([{"function": {"name": "", "arguments": "{}"}}])
    assert parse_output('{"tool_calls": [{"function": 3}]}').kind == "error"


def test_json_that_is_not_a_call_is_text() -> None:
    assert parse_output('{"answer": 42}').kind == "text"


PARIS = ToolCall(name="get_weather", arguments={"city": "Paris"})
TIME = ToolCall(name="get_time", arguments={"zone": "CET"})


@pytest.mark.parametrize(
    "text, calls, repair",
    [
        ('{"name": "get_weather", "parameters": {"city": "Paris"}}', [PARIS], "untagged_calls"),  # Llama 3.x
        (
            '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}<|eom_id|>',
            [PARIS],
            "untagged_calls",
        ),
        (
            '{"name": "get_weather", "parameters": {"city": "Paris"}}; '
            '{"name": "get_time", "parameters": {"zone": "CET"}}',
            [PARIS, TIME],
            "untagged_calls",
        ),
        (
            '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}}]</s>',
            [PARIS],
            "untagged_calls",
        ),
        (
            '[{"name": "get_weather", "arguments": {"city": "Paris"}}]',
            [PARIS],
            "untagged_calls",
        ),  # Mistral, stripped
        ('```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```', [PARIS], "untagged_calls"),
        (
            '[get_weather(city="Paris"), get_time(zone="CET")]',
            [PARIS, TIME],
            "pythonic_calls",
        ),  # BFCL, Llama 3.2
        ('```tool_code\nget_weather(city="Paris")\n```', [PARIS], "pythonic_calls"),  # Gemma
        (
            "[convert(from='USD', to='EUR', league-id=7, µg=1)]",
            [ToolCall(name="convert", arguments={"from": "USD", "to": "EUR", "league-id": 7, "µg": 1})],
            "pythonic_calls",
        ),  # names as written: Python keywords, hyphens, no NFKC (µ is not μ)
        ('get_weather(city="Paris")', [PARIS], "pythonic_calls"),  # Gemma, unfenced
        (
            "tools.get_time(zone='CET')\n",
            [ToolCall(name="tools.get_time", arguments={"zone": "CET"})],
            "pythonic_calls",
        ),
        (
            '<|tool_call|>[{"name": "get_weather", "arguments": {"city": "Paris"}}]<|/tool_call|>',
            [PARIS],
            "untagged_calls",
        ),  # Phi-4-mini
        (
            '<|tool_call|>[{"name": "get_weather", "arguments": {"city": "Paris"}}, '
            '{"name": "get_time", "arguments": {"zone": "CET"}}]',
            [PARIS, TIME],
            "untagged_calls",
        ),  # Granite
        (
            'functools[{"name": "get_weather", "arguments": {"city": "Paris"}}, '
            '{"name": "get_time", "parameters": {"zone": "CET"}}]',
            [PARIS, TIME],
            "untagged_calls",
        ),  # Phi-4-mini, as vLLM's phi4_mini_json parser reads it
    ],
)
def test_calls_in_other_families_untagged_forms_are_calls_never_text(
    text: str, calls: list[ToolCall], repair: str
) -> None:
    parsed = parse_output(text)
    assert parsed.kind == "calls" and parsed.action.calls == calls
    assert repair in parsed.repairs
    # The slips of the call itself are reported too, as in a tagged block (Llama's "parameters").
    assert ("parameters_key" in parsed.repairs) is ('"parameters"' in text)


@pytest.mark.parametrize(
    ("output", "repair"),
    [
        ('<|python_start|>[get_weather(city="Paris"), get_time(zone="CET")]<|python_end|>', "pythonic_calls"),
        (
            '<|python_start|>[get_weather(city="Paris"), get_time(zone="CET")]<|python_end|><|eot|>',
            "pythonic_calls",
        ),
        (
            '<|python_start|>{"name": "get_weather", "parameters": {"city": "Paris"}}; '
            '{"name": "get_time", "parameters": {"zone": "CET"}}<|python_end|>',
            "untagged_calls",
        ),
    ],
)
def test_llama4_calls_between_python_start_and_python_end_are_calls(output: str, repair: str) -> None:
    """Llama 4 may wrap its calls in <|python_start|>…<|python_end|>: its Python list was read as a
    text answer, its JSON as "a tool call amid text"."""
    from toolcall.reward import reward

    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.error is None and parsed.action == Action(calls=[PARIS, TIME]), parsed.error
    assert repair in parsed.repairs
    assert reward(WEATHER_TOOLS, (), Action(text="Which city?"), output) == 0


GRANITE_PARIS = '<function_call> {"name": "get_weather", "arguments": {"city": "Paris"}}'


@pytest.mark.parametrize(
    ("output", "calls", "text"),
    [
        (GRANITE_PARIS, [PARIS], None),
        (
            f'{GRANITE_PARIS} <function_call> {{"name": "get_time", "arguments": {{"zone": "CET"}}}}',
            [PARIS, TIME],
            None,
        ),
        (f"Let me check.\n{GRANITE_PARIS}<|endoftext|>", [PARIS], "Let me check."),
        (
            '<function_call> {"name": "echo", "arguments": {"text": "<function_call> x"}}',
            [ToolCall(name="echo", arguments={"text": "<function_call> x"})],
            None,
        ),  # the token inside a string is data
    ],
)
def test_granite_function_call_tokens_are_calls(output: str, calls: list[ToolCall], text: str | None) -> None:
    """Granite-20B-FunctionCalling writes '<function_call> {CALL}' per call (as BFCL's Granite handler
    reads it): that was a failure "a tool call amid text"."""
    parsed = parse_output(output)
    assert parsed.error is None and parsed.action == Action(calls=calls), parsed.error
    assert parsed.text == text and "untagged_calls" in parsed.repairs


@pytest.mark.parametrize(
    "output",
    [GRANITE_PARIS + " Done.", GRANITE_PARIS[:40], f"{GRANITE_PARIS} <function_call>"],
)
def test_a_granite_call_cut_off_or_followed_by_text_is_a_failure(output: str) -> None:
    parsed = parse_output(output)
    assert parsed.kind == "error" and "Granite tool call" in (parsed.error or ""), parsed.error


GRANITE_NO_FUNCTION = '<function_call> {"name": "no_function", "arguments": {}}'


@pytest.mark.parametrize(
    ("output", "text"),
    [
        (GRANITE_NO_FUNCTION, None),
        (f"{GRANITE_NO_FUNCTION}<|endoftext|>", None),
        (f"None of the tools books flights.\n{GRANITE_NO_FUNCTION}", "None of the tools books flights."),
    ],
)
def test_granite_no_function_is_the_no_call_answer(output: str, text: str | None) -> None:
    """Granite-20B-FunctionCalling's prompt asks for a call of "no_function" when no function fits
    (BFCL's Granite handler reads it as "no function is called"): it was read as a call of a tool
    named no_function, which matched no label. It is the no-call answer, as an empty call list is."""
    from toolcall.reward import reward

    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.error is None and parsed.action == Action(text=text), parsed.error
    assert "empty_call_list" in parsed.repairs
    assert reward(WEATHER_TOOLS, (), Action(text="Which city do you mean?"), output) == 1
    assert reward(WEATHER_TOOLS, (), Action(calls=[PARIS]), output) == 0


def test_granite_no_function_is_a_call_when_a_tool_has_that_name() -> None:
    tools = [*WEATHER_TOOLS, _tool("no_function")]
    parsed = parse_output(GRANITE_NO_FUNCTION, tools)
    assert parsed.action == Action(calls=[ToolCall(name="no_function", arguments={})]), parsed.error


def test_granite_no_function_beside_calls_is_a_failure() -> None:
    parsed = parse_output(f"{GRANITE_PARIS}\n{GRANITE_NO_FUNCTION}", WEATHER_TOOLS)
    assert parsed.kind == "error" and "no_function" in (parsed.error or ""), parsed.error


@pytest.mark.parametrize(
    ("output", "text"),
    [
        ("[]", None),  # xLAM's prompt: "make tool_calls an empty list '[]'"
        ("<tool_call>[]</tool_call>", None),  # SmolLM2's tool prompt: the same list in its block
        ("<tool_call>\n[]\n</tool_call><|im_end|>", None),
        (
            "None of the tools can book a flight.\n<tool_call>[]</tool_call>",
            "None of the tools can book a flight.",
        ),
        ("<|python_tag|>[]", None),
        ("```json\n[]\n```", None),
    ],
)
def test_an_explicit_empty_call_list_is_the_no_call_answer(output: str, text: str | None) -> None:
    """An empty call list says no tool fits: it was read as the text answer "[]" untagged and as a
    failure "tool call block is empty" in a block. It is the no-call answer now (its text the words
    outside it, if any), so it matches a no-call label and never a call."""
    from toolcall.reward import reward

    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.error is None and parsed.action == Action(text=text), parsed.error
    assert "empty_call_list" in parsed.repairs
    assert reward(WEATHER_TOOLS, (), Action(text="Which city do you mean?"), output) == 1
    assert reward(WEATHER_TOOLS, (), Action(calls=[PARIS]), output) == 0


@pytest.mark.parametrize(
    ("output", "text"),
    [
        ("[]\nI cannot help with that.", "I cannot help with that."),
        ("[ ]\n\nNo tool can book a flight.<|im_end|>", "No tool can book a flight."),
        ("```json\n[]\n```\nNo tool fits.", "No tool fits."),
        ("[TOOL_CALLS][]\nNo tool fits.", "No tool fits."),
        ("Sorry.\n[TOOL_CALLS][]\nNo tool fits.", "Sorry.\nNo tool fits."),
    ],
)
def test_the_words_after_an_empty_call_list_are_its_text(output: str, text: str) -> None:
    """An empty call list followed by words kept "[]" in the text answer ("[]\nI cannot help with
    that."), or was a failure after a call token: the words after it are the no-call answer's text."""
    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.error is None and parsed.action == Action(text=text), parsed.error
    assert parsed.text == text and "empty_call_list" in parsed.repairs


def test_an_empty_list_in_a_sentence_is_prose_and_one_before_calls_a_failure() -> None:
    prose = "[] is an empty list in Python."
    assert parse_output(prose, WEATHER_TOOLS).action == Action(text=prose)
    parsed = parse_output('[]\n[get_weather(city="Paris")]', WEATHER_TOOLS)
    assert parsed.kind == "error" and "empty call list" in (parsed.error or ""), parsed.error


@pytest.mark.parametrize(
    "output",
    [
        '<|python_tag|>get_weather(city="Paris"); get_time(zone="CET")<|eom_id|>',
        'get_weather(city="Paris");get_time(zone="CET")',
        '<|python_tag|>get_weather(city="Paris");\nget_time(zone="CET")',
    ],
)
def test_llama3_python_calls_separated_by_semicolons_are_the_calls_in_order(output: str) -> None:
    """Llama 3.x writes several Python calls after <|python_tag|> as statements, "a(); b()": the
    second was read as a function named "; get_time", a failure."""
    parsed = parse_output(output)
    assert parsed.error is None and parsed.action == Action(calls=[PARIS, TIME]), parsed.error
    assert "pythonic_calls" in parsed.repairs


@pytest.mark.parametrize(
    "text, reason",
    [
        ('Sure! {"name": "get_weather", "arguments": {"city": "Paris"}}', "amid text"),
        ("[get_weather('Paris')]", "by name"),
        ("get_weather('Paris')", "by name"),
        ("```tool_code\nget_weather(city=Paris)\n```", "not a literal"),
        (
            '<|tool_call|>[{"name": "get_weather", "arguments": {"city": "Par',
            "marker without a readable call",
        ),
        (  # DeepSeek's call tokens, cut off by the token budget
            "<think>ok</think><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather",
            "cut off",
        ),
        (
            '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Par',
            "marker without a readable call",
        ),
        (
            '<tool_call>\n```json\n{"name": "f", "arguments": {}}\n```\nThat is it\n</tool_call>',
            "after the code fence",
        ),
    ],
)
def test_a_call_that_is_not_in_a_readable_form_is_a_failure_not_a_text_answer(text: str, reason: str) -> None:
    parsed = parse_output(text)
    assert parsed.kind == "error" and reason in parsed.error


@pytest.mark.parametrize(
    "output",
    [
        '{"name": "get_weather", "parameters": {"city": "Par',  # Llama 3.x JSON
        '{"name": "get_weather", "arguments": {"city": "Paris"}',  # only the last brace missing
        '{"arguments": {"city": "Paris"}, "name": "get_wea',  # Hermes-3 writes the arguments first
        '[{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "get_ti',  # xLAM's list
        '```json\n{"name": "get_weather", "arguments": {"city": "Pa',  # in a fence never closed
        '[get_weather(city="Paris"), get_time(zone=',  # Llama 3.2 / ToolACE's Python list
        '[get_weather(city="Paris")',  # a further call may have followed
        'get_weather(city="Par',  # Gemma, bare
        '```tool_code\nget_weather(city="Paris")',  # Gemma's fence never closed: more may follow
    ],
)
def test_an_untagged_call_cut_off_by_the_token_budget_is_a_failure_never_a_text_answer(output: str) -> None:
    """Cut off before its brackets closed, such a call read as a text answer (the JSON and Python
    readers refused it and no tag said "call"): against a text label it earned the reward."""
    from toolcall.reward import reward

    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.kind == "error" and "cut off" in (parsed.error or ""), parsed
    assert reward(WEATHER_TOOLS, (), Action(text="Which city?"), output) == 0


@pytest.mark.parametrize(
    "output",
    [
        '<tool_call>\nget_weather(city="Paris")\n</tool_call>\n<tool_call>\nget_time(zone="CET")\n</tool_call>',
        '<tool_call>\n[get_weather(city="Paris"), get_time(zone="CET")]\n</tool_call>',
    ],
)
def test_python_calls_in_tool_call_tags_are_calls(output: str) -> None:
    """A block may hold a call in Python form (models trained on BFCL-style labels write it in the
    tags the prompt asks for): it was a failure, "not valid JSON"."""
    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.error is None and parsed.action == Action(calls=[PARIS, TIME]), parsed
    assert "pythonic_calls" in parsed.repairs
    cut_off = parse_output(output.partition("CET")[0], WEATHER_TOOLS)
    assert cut_off.kind == "error", cut_off


_CODE = "for x in range(3):\n\tprint(x)"  # typed raw into the JSON string: a newline and a tab


@pytest.mark.parametrize(
    "output",
    [
        f'<tool_call>\n{{"name": "run_code", "arguments": {{"code": "{_CODE}"}}}}\n</tool_call>',  # Hermes
        f'{{"name": "run_code", "parameters": {{"code": "{_CODE}"}}}}',  # Llama 3.x
        f'[TOOL_CALLS]run_code[ARGS]{{"code": "{_CODE}"}}',  # Mistral v11
        f'<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>run_code<｜tool▁sep｜>{{"code": "{_CODE}"}}'
        "<｜tool▁call▁end｜><｜tool▁calls▁end｜>",  # DeepSeek V3.1
        f'<function=run_code>{{"code": "{_CODE}"}}</function>',  # Llama 3.1 custom tool, Functionary v3.1
    ],
)
def test_a_control_character_typed_raw_into_a_json_string_is_itself(output: str) -> None:
    """JSON forbids a raw newline or tab inside a string, and models type them into code arguments:
    such a call was a failure ("Invalid control character"), though the character can only be itself."""
    parsed = parse_output(output)
    assert parsed.error is None, parsed.error
    assert parsed.action == Action(calls=[ToolCall(name="run_code", arguments={"code": _CODE})])
    assert "control_character_in_string" in parsed.repairs
    cut_off = parse_output(output.partition("range")[0])
    assert cut_off.kind == "error", cut_off


def test_a_control_character_typed_raw_into_arguments_given_as_a_json_string_is_itself() -> None:
    """Arguments given as a JSON string (OpenAI's form, also in a block) were decoded strictly: a raw
    newline in a code argument made the call a failure."""
    inner = json.dumps({"code": _CODE}).replace("\\n", "\n").replace("\\t", "\t")  # typed raw
    expected = [ToolCall(name="run_code", arguments={"code": _CODE})]
    assert parse_openai_tool_calls([{"function": {"name": "run_code", "arguments": inner}}]).calls == expected
    block = f"<tool_call>\n{json.dumps({'name': 'run_code', 'arguments': inner})}\n</tool_call>"
    parsed = parse_output(block)
    assert parsed.error is None and parsed.action == Action(calls=expected), parsed.error
    assert {"arguments_as_string", "control_character_in_string"} <= set(parsed.repairs)


def test_a_python_call_of_a_tool_whose_name_is_no_identifier_is_a_call() -> None:
    """ToolACE's tools are named "Market Trends API" and the like, and its labels call them as written:
    such a call list was read as a plain-text answer (and earned a clarification label's reward)."""
    from toolcall.reward import reward
    from toolcall.specs import ToolSpec

    tools = [
        ToolSpec.from_openai(
            {"name": name, "parameters": {"type": "object", "properties": {key: {"type": "string"}}}}
        )
        for name, key in (("Market Trends API", "trend_type"), ("get-weather", "city"))
    ]
    output = '[Market Trends API(trend_type="MARKET_INDEXES"), get-weather(city="Paris")]'
    calls = [
        ToolCall(name="Market Trends API", arguments={"trend_type": "MARKET_INDEXES"}),
        ToolCall(name="get-weather", arguments={"city": "Paris"}),
    ]
    parsed = parse_output(output, tools)
    assert parsed.error is None and parsed.action == Action(calls=calls), parsed
    assert reward(tools, (), Action(text="Which market?"), output) == 0
    assert reward(tools, (), Action(calls=calls), output) == 1
    # a name that is none of the tools is no call: prose in brackets stays text
    assert parse_output("[See also Smith(year=2020)]", tools).action == Action(
        text="[See also Smith(year=2020)]"
    )


@pytest.mark.parametrize(
    "output",
    [
        '[get_weather(city="Paris"), get_time(zone="CET"),]',
        '[get_weather(city="Paris"), get_time(zone="CET") , ]',
    ],
)
def test_a_python_call_list_with_a_last_comma_is_its_calls(output: str) -> None:
    """Python allows a comma after a list's last item: such a call list was read as a text answer."""
    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.error is None and parsed.action == Action(calls=[PARIS, TIME]), parsed
    amid_text = parse_output(f"Let me check.\n{output}", WEATHER_TOOLS)
    assert amid_text.kind == "error" and "amid text" in (amid_text.error or ""), amid_text


@pytest.mark.parametrize(
    "output",
    [
        'Let me check the weather.\n[get_weather(city="Paris"), get_time(zone="CET")]',  # Llama 3.2, ToolACE
        'Let me check.\n\n[get_weather(city="Paris")]\n\nI will tell you when I know.',
    ],
)
def test_a_python_call_list_amid_text_is_a_failure_never_a_text_answer(output: str) -> None:
    """A call list after a sentence was read as a plain-text answer (and earned a clarification
    label's reward), while a JSON call amid text is a failure."""
    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.kind == "error" and "amid text" in (parsed.error or ""), parsed


@pytest.mark.parametrize(
    "answer",
    [
        'Use [get_weather(city="Paris")] once you know the city: which one?',  # inline, not a line of its own
        "Sources:\n[Smith(2020)]",  # a citation: no keyword arguments, no call
    ],
)
def test_a_bracketed_call_inside_a_sentence_stays_a_text_answer(answer: str) -> None:
    assert parse_output(answer, WEATHER_TOOLS).action == Action(text=answer)


@pytest.mark.parametrize(
    "answer",
    [
        "f(x) = x^2 (for x > 0",  # prose opening with a bracket it never closes
        'get_weather(city="Paris") is the call I\'d make, but which day?',  # the call closes; prose after
        'Here is an example body:\n```json\n{"city": "Paris", "units": "met',  # not a call, cut off
    ],
)
def test_prose_that_leaves_a_bracket_open_is_no_cut_off_call(answer: str) -> None:
    assert parse_output(answer, WEATHER_TOOLS).action == Action(text=answer)


@pytest.mark.parametrize(
    "argument",
    [
        "<think>x</think>",
        "close with </think>",
        "open with <think>",
        "see <tool_call> docs",
        "a </tool_call> b",
    ],
)
def test_tags_inside_a_calls_json_strings_are_data(argument: str) -> None:
    raw = json.dumps({"name": "save_note", "arguments": {"text": argument}})  # as a model writes it
    parsed = parse_output(f"<think>plan</think>\n<tool_call>\n{raw}\n</tool_call><|im_end|>")
    assert parsed.error is None and parsed.repairs == []
    assert parsed.action.calls == [ToolCall(name="save_note", arguments={"text": argument})]
    assert parsed.think == "plan"


@pytest.mark.parametrize("opening", ["<think>", ""])  # "": the chat template opened the trace
def test_a_call_drafted_in_a_closed_trace_is_no_call_and_the_answer_after_it_is_read(opening: str) -> None:
    trace = f"{opening}I could write <tool_call>{WEATHER}</tool_call> but the city is unclear.\n</think>\n\n"
    clarification = parse_output(trace + "Which city do you mean?<|im_end|>")
    assert clarification.error is None and clarification.action == Action(text="Which city do you mean?")
    assert "<tool_call>" in (clarification.think or "")
    pythonic = parse_output(trace + '[get_time(zone="CET")]')
    assert pythonic.error is None and pythonic.action == Action(calls=[TIME])


@pytest.mark.parametrize(
    "output",
    [
        '{"function": "get_weather", "parameters": {"city": "Paris"}}',
        '{"name": "get_weather", "args": {"city": "Paris"}}',
        '{"action": "get_weather", "action_input": {"city": "Paris"}}',  # ReAct
        '[{"tool_name": "get_weather", "parameters": {"city": "Paris"}}]',
        'Sure: {"arguments": {"city": "Paris"}, "name": "get_weather"}',  # Hermes-3 writes arguments first
    ],
)
def test_a_call_under_keys_the_loop_does_not_read_is_a_failure_never_a_text_answer(output: str) -> None:
    """As a text answer it would match every clarification label and earn the reward."""
    from toolcall.reward import reward

    parsed = parse_output(output)
    assert parsed.kind == "error" and "call" in (parsed.error or "")
    assert reward([], (), Action(text="Which city do you mean?"), output) == 0


@pytest.mark.parametrize(
    "answer",
    [
        "```python\nprint(1)\n```",
        'Here:\n```json\n{"a": 1}\n```',
        "[1, 2, 3]",
        "Use print(x) to debug",
        "Paris (France) is sunny.",
        "get_weather(city='Paris') is the call I would make, but which city do you mean?",
        'Your profile: {"name": "John", "address": {"city": "Paris"}, "age": 30}',
        '{"name": "John", "age": 3}',
    ],
)
def test_a_fenced_or_json_text_answer_that_is_no_call_stays_a_text_answer(answer: str) -> None:
    assert parse_output(answer).kind == "text"


def test_an_openai_message_that_calls_nothing_is_its_content() -> None:
    for calls in ("[]", "null"):
        parsed = parse_output(f'{{"role": "assistant", "content": "Which city?", "tool_calls": {calls}}}')
        assert parsed.kind == "text" and parsed.action.text == "Which city?"


def test_several_end_tokens_and_a_bom_are_dropped() -> None:
    parsed = parse_output(f"\ufeff<tool_call>\n{WEATHER}\n</tool_call><|im_end|><|endoftext|>")
    assert parsed.action.calls == [WEATHER_CALL] and parsed.text is None


@pytest.mark.parametrize(
    "output",
    [
        '[get_weather(city="Paris", days=3)]<|eot|>',  # Llama 4
        '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris", "days": 3}}<|eom|>',  # Llama 4
        '{"name": "get_weather", "parameters": {"city": "Paris", "days": 3}}<|end_of_text|>',  # Llama 3
        '<|tool_call|>[{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}]<|/tool_call|>'
        "<|end|>",  # Phi-4-mini
        '```tool_code\nget_weather(city="Paris", days=3)\n```<end_of_turn>',  # Gemma
        f"<tool_call>\n{WEATHER}\n</tool_call><|observation|>",  # GLM
    ],
)
def test_the_end_token_of_each_family_is_dropped_so_its_call_is_a_call(output: str) -> None:
    """A server that keeps special tokens leaves the turn's end token: it must not turn a call
    into a text answer (which matches any clarification label) or a failure."""
    parsed = parse_output(output)
    assert parsed.error is None and parsed.action == Action(calls=[WEATHER_CALL]), parsed


def test_render_call_format() -> None:
    assert render_call(WEATHER_CALL) == f"<tool_call>\n{WEATHER}\n</tool_call>"
    assert render_action(Action(text="Which city?")) == "Which city?"


@settings(max_examples=300, deadline=None)
@given(call_actions)
def test_parse_of_render_is_identity(action: Action) -> None:
    parsed = parse_output(render_action(action))
    assert parsed.error is None and parsed.repairs == []
    assert parsed.action.calls == action.calls


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(text: str) -> None:
    parse_output(text)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "<tool_call>",
                "</tool_call>",
                "<think>",
                "</think>",
                "{",
                "}",
                '"name"',
                ":",
                ",",
                "'",
                "[",
                "x",
            ]
        ),
        max_size=40,
    )
)
def test_tag_soup_never_raises(pieces: list[str]) -> None:
    parsed = parse_output("".join(pieces))
    assert (parsed.error is None) == (parsed.action is not None)


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    parsed = parse_output("<tool_call>" + "[" * 100_000 + "</tool_call>")
    assert parsed.kind == "error"


def test_a_gemma_style_call_earns_nothing_against_a_text_label() -> None:
    """Gemma writes calls as Python in a ``tool_code`` fence or bare; read as a text answer, such an
    output earned the reward of a clarification label."""
    from toolcall.reward import reward
    from toolcall.specs import ToolSpec

    tool = ToolSpec.from_openai(
        {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
    )
    label = Action(text="Which city do you mean?")
    for output in ('```tool_code\nget_weather(city="Paris")\n```', 'get_weather(city="Paris")'):
        assert reward([tool], (), label, output) == 0


# --- DeepSeek's tool-call tokens ----------------------------------------------------------------------

DS_BEGIN, DS_END = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"
DS_CALL, DS_CALL_END, DS_SEP = "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>"
DS_EOS = "<｜end▁of▁sentence｜>"
TAGGED_WEATHER = f"<tool_call>\n{WEATHER}\n</tool_call>"
TOKYO = ToolCall(name="get_weather", arguments={"location": "東京", "unit": "celsius"})
NOTE = ToolCall(
    name="save_note",
    arguments={"title": "O'Brien's \"list\"", "tags": ["a", "b"], "meta": {"pinned": True, "due": None}},
)


def _v3(call: ToolCall) -> str:
    """A call as DeepSeek-V3 (and R1-0528) writes it: its type, then the name and a json fence."""
    arguments = json.dumps(call.arguments, ensure_ascii=False)
    return f"{DS_CALL}function{DS_SEP}{call.name}\n```json\n{arguments}\n```{DS_CALL_END}"


def _v31(call: ToolCall) -> str:
    """A call as DeepSeek-V3.1 writes it: the name, then the arguments."""
    return f"{DS_CALL}{call.name}{DS_SEP}{json.dumps(call.arguments, ensure_ascii=False)}{DS_CALL_END}"


@pytest.mark.parametrize(
    ("output", "calls", "text", "think"),
    [
        (f"{DS_BEGIN}{_v3(TOKYO)}{DS_END}{DS_EOS}", [TOKYO], None, None),  # V3
        (f"{DS_BEGIN}{_v3(TOKYO)}\n{_v3(NOTE)}{DS_END}{DS_EOS}", [TOKYO, NOTE], None, None),  # V3, parallel
        (  # R1-0528: the template opened the trace, the output closes it
            f"The user wants Tokyo's weather.\n</think>\n\n{DS_BEGIN}{_v3(TOKYO)}{DS_END}{DS_EOS}",
            [TOKYO],
            None,
            "The user wants Tokyo's weather.",
        ),
        (f"{DS_BEGIN}{_v31(TOKYO)}{DS_END}{DS_EOS}", [TOKYO], None, None),  # V3.1
        (f"{DS_BEGIN}{_v31(TOKYO)}{_v31(NOTE)}{DS_END}", [TOKYO, NOTE], None, None),  # V3.1, parallel
        (
            f"I'll check the weather and save a note.\n\n{DS_BEGIN}{_v31(TOKYO)}{_v31(NOTE)}{DS_END}{DS_EOS}",
            [TOKYO, NOTE],
            "I'll check the weather and save a note.",
            None,
        ),
        (
            f"{DS_BEGIN}{DS_CALL}get_time{DS_SEP}{{}}{DS_CALL_END}{DS_END}",
            [ToolCall(name="get_time", arguments={})],
            None,
            None,
        ),
    ],
)
def test_deepseek_tool_call_tokens_are_calls(
    output: str, calls: list[ToolCall], text: str | None, think: str | None
) -> None:
    parsed = parse_output(output)
    assert parsed.error is None and parsed.action == Action(calls=calls)
    assert parsed.text == text and parsed.think == think
    assert parsed.repairs == ["deepseek_calls"]


def test_an_unclosed_trace_before_a_deepseek_block_keeps_the_calls() -> None:
    parsed = parse_output(f"<think>Tokyo, then the note{DS_BEGIN}{_v31(TOKYO)}{DS_END}")
    assert parsed.action == Action(calls=[TOKYO]) and parsed.think == "Tokyo, then the note"
    assert parsed.repairs == ["unclosed_think", "deepseek_calls"]


def test_deepseek_tokens_inside_an_arguments_string_are_data() -> None:
    call = ToolCall(name="save_note", arguments={"text": f"the block ends with {DS_CALL_END}{DS_END}"})
    for write in (_v3, _v31):
        parsed = parse_output(f"{DS_BEGIN}{write(call)}{DS_END}")
        assert parsed.action == Action(calls=[call])


def test_a_deepseek_calls_own_slips_are_repaired_and_reported_as_in_a_tagged_block() -> None:
    parsed = parse_output(
        f"{DS_BEGIN}{DS_CALL}get_weather{DS_SEP}{{'location': 'Paris',}}{DS_CALL_END}{DS_END}"
    )
    assert parsed.action == Action(calls=[ToolCall(name="get_weather", arguments={"location": "Paris"})])
    assert "python_literal" in parsed.repairs and "deepseek_calls" in parsed.repairs


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        # Cut off by the token budget: no end token, so perhaps more calls were coming.
        (f"{DS_BEGIN}{_v31(TOKYO)}", "the block is cut off"),
        (f'{DS_BEGIN}{_v31(TOKYO)}{DS_CALL}save_note{DS_SEP}{{"title": "O\'Br', "a call is cut off"),
        (
            f'Let me check.{DS_BEGIN}{DS_CALL}function{DS_SEP}get_weather\n```json\n{{"loc',
            "a call is cut off",
        ),
        (f"{DS_BEGIN}{DS_CALL}get_wea", "a call is cut off"),
        (f"{DS_BEGIN}", "the block is cut off"),
        # Malformed.
        (f"{DS_BEGIN}{DS_CALL}function{DS_SEP}get_weather\n```json\n{{}}{DS_CALL_END}{DS_END}", "fence"),
        (
            f"{DS_BEGIN}{DS_CALL}tool{DS_SEP}get_weather\n```json\n{{}}\n```{DS_CALL_END}{DS_END}",
            "of type 'tool'",
        ),
        (f"{DS_BEGIN}{DS_CALL}get_weather{DS_CALL_END}{DS_END}", "without <｜tool▁sep｜>"),
        (
            f'{DS_BEGIN}{DS_CALL}get_weather{DS_SEP}{{"a": 1}} {{"b": 2}}{DS_CALL_END}{DS_END}',
            "2 JSON values",
        ),
        (f'{DS_BEGIN}{DS_CALL}get_weather{DS_SEP}["Paris"]{DS_CALL_END}{DS_END}', "must be an object"),
        (f"{DS_BEGIN}{DS_CALL}get_weather{DS_SEP}{{not json}}{DS_CALL_END}{DS_END}", "not valid JSON"),
        (f"{DS_BEGIN}Sure!{_v31(TOKYO)}{DS_END}", "text where a call"),
        (f"{DS_BEGIN}{DS_END}", "empty"),
        (f"{_v31(TOKYO)}", "outside a <｜tool▁calls▁begin｜> block"),
        (f"{DS_BEGIN}{_v31(TOKYO)}{DS_END}\n{TAGGED_WEATHER}", "<tool_call> blocks in one output"),
    ],
)
def test_a_cut_off_or_malformed_deepseek_block_is_a_failure_never_a_call(output: str, reason: str) -> None:
    parsed = parse_output(output)
    assert parsed.kind == "error" and parsed.action is None
    assert reason in (parsed.error or "")


def test_a_deepseek_call_earns_the_reward_of_its_label_and_a_cut_off_one_nothing() -> None:
    from toolcall.reward import reward
    from toolcall.specs import ToolSpec

    properties = {"location": {"type": "string"}, "unit": {"type": "string"}}
    tool = ToolSpec.from_openai(
        {"name": "get_weather", "parameters": {"type": "object", "properties": properties}}
    )
    called = Action(calls=[TOKYO])
    assert reward([tool], (), called, f"{DS_BEGIN}{_v31(TOKYO)}{DS_END}{DS_EOS}") == 1
    assert reward([tool], (), called, f"{DS_BEGIN}{_v3(TOKYO)}{DS_END}") == 1
    clarify = Action(text="Which city do you mean?")
    for output in (f"{DS_BEGIN}{_v31(TOKYO)}", f"{DS_BEGIN}{DS_CALL}get_weather{DS_SEP}{{"):
        assert reward([tool], (), clarify, output) == 0
        assert reward([tool], (), called, output) == 0


def test_an_assistant_turn_rendered_by_a_deepseek_v31_template_reads_back_as_its_calls() -> None:
    """What a V3.1-style chat template writes for an assistant's tool calls (the form the model was
    trained to emit) is read back as those calls, with the content before them as text."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from tests.families import TEMPLATES

    source = (TEMPLATES / "deepseek_v31.jinja").read_text(encoding="utf-8")
    template = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(source)
    history = [
        {"role": "system", "content": "You can call tools."},
        {"role": "user", "content": "Weather in Tokyo? And note O'Brien's list."},
    ]
    entries = [
        {
            "type": "function",
            "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)},
        }
        for c in (TOKYO, NOTE)
    ]
    turn = {"role": "assistant", "content": "On it.", "tool_calls": entries}
    bos = "<｜begin▁of▁sentence｜>"
    prompt = template.render(messages=history, add_generation_prompt=True, bos_token=bos)
    whole = template.render(messages=[*history, turn], add_generation_prompt=False, bos_token=bos)
    assert whole.startswith(prompt) and prompt.endswith("<｜Assistant｜></think>")
    completion = whole[len(prompt) :]
    assert completion.startswith(f"On it.{DS_BEGIN}{DS_CALL}get_weather{DS_SEP}{{")
    parsed = parse_output(completion)
    assert parsed.action == Action(calls=[TOKYO, NOTE]) and parsed.text == "On it."


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                *(DS_BEGIN, DS_END, DS_CALL, DS_CALL_END, DS_SEP, DS_EOS, "function", "f", "\n"),
                *("```json\n", "```", "{", "}", '"a"', ":", "1", "<think>", "</think>", "<tool_call>", "'"),
                *("<|tool_calls_section_begin|>", "<|tool_calls_section_end|>", "<|tool_call_begin|>"),
                *("<|tool_call_end|>", "<|tool_call_argument_begin|>", "functions.f:0"),
            ]
        ),
        max_size=30,
    )
)
def test_deepseek_token_soup_never_raises(pieces: list[str]) -> None:
    parsed = parse_output("".join(pieces))
    assert (parsed.error is None) == (parsed.action is not None)


# gpt-oss's harmony format returned raw (special tokens kept): the analysis is the trace, a message
# to functions.NAME a call, the final channel the answer.
HARMONY_ANALYSIS = "<|channel|>analysis<|message|>The user wants the weather in Paris for 3 days.<|end|>"
HARMONY_CALL = (
    "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json"
    '<|message|>{"city":"Paris","days":3}'
)


@pytest.mark.parametrize(
    "output",
    [
        HARMONY_ANALYSIS + HARMONY_CALL + "<|call|>",
        HARMONY_ANALYSIS + HARMONY_CALL,  # <|call|> is an end token: a backend drops it
        # the recipient in the role, the content type after the channel
        HARMONY_ANALYSIS
        + "<|start|>assistant to=functions.get_weather<|channel|>commentary json"
        + '<|message|>{"city":"Paris","days":3}<|call|>',
    ],
)
def test_a_harmony_call_is_read_as_its_call_and_the_analysis_as_the_trace(output: str) -> None:
    parsed = parse_output(output)
    assert parsed.error is None and parsed.action == Action(calls=[WEATHER_CALL])
    assert parsed.think == "The user wants the weather in Paris for 3 days." and "harmony" in parsed.repairs


def test_a_harmony_final_answer_is_the_text_and_an_analysis_alone_is_no_answer() -> None:
    final = parse_output(
        HARMONY_ANALYSIS + "<|start|>assistant<|channel|>final<|message|>Which city do you mean?<|return|>"
    )
    assert final.kind == "text" and final.action == Action(text="Which city do you mean?")
    for output, reason in [
        (
            "<|channel|>analysis<|message|>The user wants the weather; I will call get_weather with",
            "never ended",
        ),
        (HARMONY_ANALYSIS, "only the analysis"),
        (HARMONY_ANALYSIS + HARMONY_CALL[:-6], "the call of 'get_weather'"),  # cut inside the arguments
        (
            HARMONY_ANALYSIS
            + '<|start|>assistant<|channel|>analysis to=browser.search<|message|>{"query":"Paris"}<|call|>',
            "not to one of the functions",
        ),
    ]:
        parsed = parse_output(output)
        assert parsed.kind == "error" and reason in (parsed.error or ""), parsed


def test_a_harmony_call_earns_the_reward_of_its_label() -> None:
    from toolcall.reward import reward
    from toolcall.specs import ToolSpec

    properties = {"city": {"type": "string"}, "days": {"type": "integer"}}
    tool = ToolSpec.from_openai(
        {"name": "get_weather", "parameters": {"type": "object", "properties": properties}}
    )
    assert reward([tool], (), Action(calls=[WEATHER_CALL]), HARMONY_ANALYSIS + HARMONY_CALL + "<|call|>") == 1
    assert reward([tool], (), Action(text="Which city?"), HARMONY_ANALYSIS + HARMONY_CALL + "<|call|>") == 0


# --- Kimi K2's tool-call tokens -----------------------------------------------------------------------

KIMI_BEGIN, KIMI_END = "<|tool_calls_section_begin|>", "<|tool_calls_section_end|>"
KIMI_CALL, KIMI_ARGS, KIMI_CALL_END = (
    "<|tool_call_begin|>",
    "<|tool_call_argument_begin|>",
    "<|tool_call_end|>",
)


def _kimi(call: ToolCall, index: int) -> str:
    """A call as Kimi K2 writes it: its id (functions.NAME:INDEX), then the JSON arguments."""
    arguments = json.dumps(call.arguments, ensure_ascii=False)
    return f"{KIMI_CALL}functions.{call.name}:{index}{KIMI_ARGS}{arguments}{KIMI_CALL_END}"


@pytest.mark.parametrize(
    ("output", "calls", "text", "think"),
    [
        (f"{KIMI_BEGIN}{_kimi(TOKYO, 0)}{KIMI_END}<|im_end|>", [TOKYO], None, None),
        (f"{KIMI_BEGIN}\n{_kimi(TOKYO, 0)}\n{_kimi(NOTE, 1)}\n{KIMI_END}", [TOKYO, NOTE], None, None),
        (
            f"I'll check the weather and save a note.{KIMI_BEGIN}{_kimi(TOKYO, 0)}{_kimi(NOTE, 1)}{KIMI_END}",
            [TOKYO, NOTE],
            "I'll check the weather and save a note.",
            None,
        ),
        (  # Kimi K2 Thinking: a trace first
            f"<think>Tokyo's weather.</think>{KIMI_BEGIN}{_kimi(TOKYO, 0)}{KIMI_END}",
            [TOKYO],
            None,
            "Tokyo's weather.",
        ),
    ],
)
def test_kimi_tool_call_tokens_are_calls(
    output: str, calls: list[ToolCall], text: str | None, think: str | None
) -> None:
    parsed = parse_output(output)
    assert parsed.error is None and parsed.action == Action(calls=calls)
    assert parsed.text == text and parsed.think == think
    assert parsed.repairs == ["kimi_calls"]


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (f"{KIMI_BEGIN}{_kimi(TOKYO, 0)}", "the block is cut off"),  # perhaps a second call was coming
        (f'{KIMI_BEGIN}{KIMI_CALL}functions.get_weather:0{KIMI_ARGS}{{"location": "東', "cut off"),
        (f"{KIMI_BEGIN}{KIMI_CALL}functions.get_weather:0{KIMI_CALL_END}{KIMI_END}", "without"),
        (f"{KIMI_BEGIN}{_kimi(TOKYO, 0)}{KIMI_END}\n{TAGGED_WEATHER}", "<tool_call> blocks in one output"),
    ],
)
def test_a_cut_off_or_malformed_kimi_block_is_a_failure_never_a_call_or_text(
    output: str, reason: str
) -> None:
    parsed = parse_output(output)
    assert parsed.kind == "error" and parsed.action is None
    assert reason in (parsed.error or "") and "Kimi K2" in (parsed.error or "")


def test_a_kimi_call_earns_the_reward_of_its_label_not_that_of_a_clarification() -> None:
    from toolcall.reward import reward
    from toolcall.specs import ToolSpec

    properties = {"location": {"type": "string"}, "unit": {"type": "string"}}
    tool = ToolSpec.from_openai(
        {"name": "get_weather", "parameters": {"type": "object", "properties": properties}}
    )
    output = f"{KIMI_BEGIN}{_kimi(TOKYO, 0)}{KIMI_END}"
    assert reward([tool], (), Action(calls=[TOKYO]), output) == 1
    assert reward([tool], (), Action(text="Which city do you mean?"), output) == 0


def test_kimi_section_tokens_written_singular_open_the_same_calls() -> None:
    """Kimi K2 also writes its section tokens singular, <|tool_call_section_begin|> (vLLM's kimi_k2
    parser reads both): such calls were a failure "<|tool_call_begin|> outside a … block"."""
    begin, end = "<|tool_call_section_begin|>", "<|tool_call_section_end|>"
    parsed = parse_output(f"Checking.{begin}{_kimi(TOKYO, 0)}\n{_kimi(NOTE, 1)}{end}")
    assert parsed.error is None and parsed.action == Action(calls=[TOKYO, NOTE]), parsed.error
    assert parsed.text == "Checking." and parsed.repairs == ["kimi_calls"]
    cut_off = parse_output(f"{begin}{_kimi(TOKYO, 0)}")
    assert cut_off.kind == "error" and "cut off" in (cut_off.error or ""), cut_off.error


# --- Mistral's tokenizers from v11 on: [TOOL_CALLS]NAME[ARGS]{...} per call, [THINK] traces ---------------


@pytest.mark.parametrize(
    ("output", "calls", "think"),
    [
        ('[TOOL_CALLS]get_weather[ARGS]{"city": "Paris", "days": 3}</s>', [WEATHER_CALL], None),
        (
            '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]get_time[ARGS]{"zone": "CET"}',
            [PARIS, TIME],
            None,
        ),
        ('[TOOL_CALLS]get_weather[CALL_ID]a1B2c3D4e[ARGS]{"city": "Paris"}', [PARIS], None),  # v11
        ('[TOOL_CALLS]get_weather{"city": "Paris"}', [PARIS], None),  # decoded without special tokens
        (  # Magistral: its trace in [THINK] tokens
            '[THINK]The user wants Paris.[/THINK][TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}</s>',
            [PARIS],
            "The user wants Paris.",
        ),
        (  # a [TOOL_CALLS] inside an argument's string is data
            '[TOOL_CALLS]save_note[ARGS]{"text": "ends with [TOOL_CALLS]x"}',
            [ToolCall(name="save_note", arguments={"text": "ends with [TOOL_CALLS]x"})],
            None,
        ),
    ],
)
def test_mistral_v11_calls_are_calls_never_a_failure_or_text(
    output: str, calls: list[ToolCall], think: str | None
) -> None:
    parsed = parse_output(output)
    assert parsed.error is None and parsed.action == Action(calls=calls)
    assert parsed.think == think and "untagged_calls" in parsed.repairs


_FIRST = "I'll check the weather first."
_PARIS_THEN_TIME = json.dumps([{"name": c.name, "arguments": c.arguments} for c in (PARIS, TIME)])


@pytest.mark.parametrize(
    "output",
    [
        _FIRST
        + '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]get_time[ARGS]{"zone": "CET"}</s>',
        # Magistral, after its trace
        f'[THINK]Paris, then CET.[/THINK]{_FIRST}\n\n[TOOL_CALLS]get_weather[ARGS]{{"city": "Paris"}}'
        '[TOOL_CALLS]get_time[ARGS]{"zone": "CET"}',
        f"{_FIRST}[TOOL_CALLS]{_PARIS_THEN_TIME}",  # v3's list
        f"{_FIRST}\n<|tool_call|>{_PARIS_THEN_TIME}<|/tool_call|>",  # Phi-4-mini
    ],
)
def test_text_before_a_familys_call_token_is_kept_and_the_calls_read(output: str) -> None:
    """A sentence before [TOOL_CALLS] made the whole output a text answer (Mistral's calls with it):
    the call token was looked for only at the start."""
    from toolcall.reward import reward

    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.error is None and parsed.action == Action(calls=[PARIS, TIME]), parsed.error
    assert parsed.text == _FIRST
    assert reward(WEATHER_TOOLS, (), Action(text="Which city?"), output) == 0


@pytest.mark.parametrize(
    "output",
    [
        f'{_FIRST}\n```tool_code\nget_weather(city="Paris")\nget_time(zone="CET")\n```',
        f'{_FIRST}\n\n```tool_code\n[get_weather(city="Paris"), get_time(zone="CET")]\n```<end_of_turn>',
    ],
)
def test_text_before_gemmas_tool_code_fence_is_kept_and_the_calls_read(output: str) -> None:
    """Gemma's calls in its tool_code fence after a sentence were read as a plain-text answer."""
    from toolcall.reward import reward

    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.error is None and parsed.action == Action(calls=[PARIS, TIME]), parsed.error
    assert parsed.text == _FIRST and "pythonic_calls" in parsed.repairs
    assert reward(WEATHER_TOOLS, (), Action(text="Which city?"), output) == 0
    cut_off = parse_output(output.partition("CET")[0], WEATHER_TOOLS)
    assert cut_off.kind == "error" and "cut off" in (cut_off.error or ""), cut_off


@pytest.mark.parametrize(
    "answer",
    [
        f'{_FIRST}\n```tool_code\nget_weather(city="Paris")\n```\nThen I will tell you.',  # prose after it
        "Gemma writes ```tool_code fences; which city do you mean?",  # not at a line's start
    ],
)
def test_a_tool_code_fence_amid_prose_stays_a_text_answer(answer: str) -> None:
    assert parse_output(answer, WEATHER_TOOLS).action == Action(text=answer)


@pytest.mark.parametrize(
    "output",
    [
        "I'll check the weather.[TOOL_CALLS]",
        'I\'ll check the weather.[TOOL_CALLS]get_weather[ARGS]{"city": "Pa',
    ],
)
def test_text_then_a_cut_off_call_token_is_a_failure_never_a_text_answer(output: str) -> None:
    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.kind == "error" and parsed.text == output, parsed


@pytest.mark.parametrize(
    "answer",
    [
        "Mistral writes [TOOL_CALLS] before its calls, Llama <|python_tag|>. Which city do you mean?",
        "I could answer in <|tool_call|> tags, but which city do you mean?",
        "Gemma writes\n```tool_code\nfences. Which city do you mean?",
    ],
)
def test_a_call_token_named_in_prose_stays_a_text_answer(answer: str) -> None:
    """As a family's call tags named in prose are text: after text, a call token opens calls only when
    a call follows it (a list, an object, a name before its arguments) or nothing does (cut off)."""
    assert parse_output(answer, WEATHER_TOOLS).action == Action(text=answer)


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ('[TOOL_CALLS]get_weather[ARGS]{"city": "Par', "not JSON (cut off?)"),
        ('[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]get_ti', "not JSON"),  # a second call cut
        ('[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"} Let me know!', "text after call 1"),
        ("[TOOL_CALLS]", "no function name"),
    ],
)
def test_a_cut_off_or_malformed_mistral_v11_call_is_a_failure(output: str, reason: str) -> None:
    parsed = parse_output(output)
    assert parsed.kind == "error" and reason in (parsed.error or "")


def test_a_magistral_answer_after_its_trace_is_the_text_answer() -> None:
    parsed = parse_output("[THINK]No city given.[/THINK]Which city do you mean?</s>")
    assert parsed.action == Action(text="Which city do you mean?") and parsed.think == "No city given."


@pytest.mark.parametrize(
    "output",
    [
        "<think>The user wants the weather in Paris, so I should call get_weather with",  # budget ran out
        # calls drafted in a trace that goes on after them, then the budget ran out: drafts, no answer
        f"<think>Maybe <tool_call>\n{WEATHER}\n</tool_call> Hmm, but the user said Lyon, let me",
        f"<think>Draft: {DS_BEGIN}{_v31(TOKYO)}{DS_END} wait, the unit should be",
        f"<think>Draft: {KIMI_BEGIN}{_kimi(TOKYO, 0)}{KIMI_END} no, first the",
    ],
)
def test_a_trace_that_never_closed_is_no_answer_and_its_drafted_calls_are_no_calls(output: str) -> None:
    from toolcall.reward import reward

    parsed = parse_output(output)
    assert parsed.kind == "error" and parsed.action is None
    assert "reasoning trace never closed" in (parsed.error or "") and parsed.think
    assert reward([], (), Action(calls=[WEATHER_CALL]), output) == 0


@pytest.mark.parametrize(
    "output",
    [
        # The budget cut the trace the prompt opened: the call drafted in it is no call.
        f"Plan: <tool_call>\n{WEATHER}\n</tool_call> then I",
        f"Plan: <tool_call>\n{WEATHER}\n</tool_call>",  # cut right after the draft
        "I should ask the user which city they mean",  # a trace, never a text answer
        "",
    ],
)
def test_an_opened_trace_that_never_closed_is_no_answer(output: str) -> None:
    from toolcall.reward import reward

    parsed = parse_output(output, trace_opened=True)
    assert parsed.kind == "error" and parsed.action is None
    assert "reasoning trace never closed" in (parsed.error or "")
    assert parsed.think == (output.strip() or None)
    label = Action(calls=[WEATHER_CALL])
    assert reward([], (), label, output, trace_opened=True) == 0


def test_an_opened_trace_ends_at_its_first_close_and_the_answer_is_read_after_it() -> None:
    output = (
        f"Draft <tool_call>\n{WEATHER}\n</tool_call> no: Lyon.</think>\n\n"
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Lyon", "days": 3}}\n</tool_call>'
    )
    parsed = parse_output(output, trace_opened=True)
    assert parsed.action == Action(
        calls=[ToolCall(name="get_weather", arguments={"city": "Lyon", "days": 3})]
    )
    assert parsed.think == f"Draft <tool_call>\n{WEATHER}\n</tool_call> no: Lyon."
    answer = parse_output("Let me think.</think>\n\nWhich city do you mean?", trace_opened=True)
    assert answer.action == Action(text="Which city do you mean?") and answer.think == "Let me think."
    # A model that writes the opening tag again is read as usual.
    again = parse_output(f"<think>hmm</think><tool_call>{WEATHER}</tool_call>", trace_opened=True)
    assert again.action == Action(calls=[WEATHER_CALL]) and again.think == "hmm"


# --- XML-argument calls: Qwen3-Coder's <function=…><parameter=…> and GLM-4.5's <arg_key>/<arg_value> ------


def _xml_tool() -> Any:
    from toolcall.specs import ToolSpec

    properties = {
        "city": {"type": "string"},
        "days": {"type": "integer"},
        "zip": {"type": "string"},
        "metric": {"type": "boolean"},
        "hours": {"type": "array", "items": {"type": "integer"}},
        "note": {"type": ["string", "null"]},
    }
    return ToolSpec.from_openai(
        {"name": "get_weather", "parameters": {"type": "object", "properties": properties}}
    )


XML_CALL = ToolCall(
    name="get_weather",
    arguments={"city": "Paris", "days": 3, "zip": "75001", "metric": True, "hours": [9, 12], "note": None},
)


def _qwen3_coder(call: ToolCall, *, python_scalars: bool = False) -> str:
    """A call as Qwen3-Coder's chat template writes it: strings as they are, other values as JSON
    (a later template's ``| string`` writes True and None)."""

    def written(value: Any) -> str:
        if isinstance(value, str):
            return value
        if python_scalars and not isinstance(value, dict | list):
            return str(value)
        return json.dumps(value)

    parameters = "".join(
        f"<parameter={key}>\n{written(value)}\n</parameter>\n" for key, value in call.arguments.items()
    )
    return f"<tool_call>\n<function={call.name}>\n{parameters}</function>\n</tool_call>"


def _glm(call: ToolCall) -> str:
    """A call as GLM-4.5's chat template writes it."""
    arguments = "".join(
        f"<arg_key>{key}</arg_key>\n<arg_value>{value if isinstance(value, str) else json.dumps(value)}"
        "</arg_value>\n"
        for key, value in call.arguments.items()
    )
    return f"<tool_call>{call.name}\n{arguments}</tool_call>"


@pytest.mark.parametrize(
    "output",
    [
        _qwen3_coder(XML_CALL) + "<|im_end|>",
        _qwen3_coder(XML_CALL, python_scalars=True),
        "<think>Paris, three days.</think>\n" + _glm(XML_CALL),
    ],
)
def test_xml_argument_calls_are_typed_by_the_tools_schema(output: str) -> None:
    """ "75001" stays a string and 3 an integer because the schema says so; the label's reward follows."""
    from toolcall.reward import reward

    tool = _xml_tool()
    parsed = parse_output(output, [tool])
    assert parsed.error is None and parsed.action == Action(calls=[XML_CALL]), parsed.error
    assert "xml_arguments" in parsed.repairs
    assert reward([tool], (), Action(calls=[XML_CALL]), output) == 1


def test_xml_argument_calls_read_in_parallel_and_without_arguments() -> None:
    time = ToolCall(name="get_time", arguments={})
    output = _glm(PARIS) + "\n" + "<tool_call>get_time\n</tool_call>"
    assert parse_output(output, [_xml_tool()]).action == Action(calls=[PARIS, time])
    assert parse_output(_qwen3_coder(PARIS) + _qwen3_coder(TIME)).action == Action(calls=[PARIS, TIME])


@pytest.mark.parametrize(
    ("output", "tools", "reason"),
    [
        # without the schema "3" may be the integer or the string: no guess
        (_qwen3_coder(XML_CALL), False, "get_weather.days = '3' may be a string or the integer"),
        (_glm(XML_CALL), False, "may be a string or the integer"),
        (_qwen3_coder(XML_CALL)[:70], True, "without its </function>"),  # cut off
        ("<tool_call>\n<function=get_weather>\n<parameter=city>\nPar", True, "without its </function>"),
        ("<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Par", True, "not closed"),
        (
            "<tool_call>\n<function=get_weather>\n<parameter=city>Paris</parameter>\n"
            "<parameter=city>Lyon</parameter>\n</function>\n</tool_call>",
            True,
            "given twice",
        ),
    ],
)
def test_an_xml_argument_call_that_cannot_be_read_exactly_is_a_failure(
    output: str, tools: bool, reason: str
) -> None:
    parsed = parse_output(output, [_xml_tool()] if tools else None)
    assert parsed.kind == "error" and reason in (parsed.error or ""), parsed.error


# --- Cohere Command A / R7B: <|START_ACTION|>[…]<|END_ACTION|>, <|START_THINKING|>, <|START_RESPONSE|> ---

COHERE_ACTION = (
    "<|START_ACTION|>[\n"
    '    {"tool_call_id": "0", "tool_name": "get_weather", "parameters": {"city": "Paris"}},\n'
    '    {"tool_call_id": "1", "tool_name": "get_time", "parameters": {"zone": "CET"}}\n'
    "]<|END_ACTION|>"
)


def test_cohere_actions_are_calls_and_its_response_is_the_text_answer() -> None:
    from toolcall.reward import reward

    output = f"<|START_THINKING|>Weather, then the time.<|END_THINKING|>{COHERE_ACTION}<|END_OF_TURN_TOKEN|>"
    parsed = parse_output(output)
    assert parsed.error is None and parsed.action == Action(calls=[PARIS, TIME])
    assert parsed.think == "Weather, then the time."
    # a call is never a text answer: it earns nothing against a clarification label
    assert reward([], (), Action(text="Which city do you mean?"), output) == 0
    for answer in (
        "<|START_RESPONSE|>Which city do you mean?<|END_RESPONSE|><|END_OF_TURN_TOKEN|>",
        "<|START_THINKING|>No city given.<|END_THINKING|><|START_TEXT|>Which city do you mean?<|END_TEXT|>",
    ):
        assert parse_output(answer).action == Action(text="Which city do you mean?")


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (COHERE_ACTION[:90], "cut off"),
        (COHERE_ACTION + " Done.", "text after"),
        ('<|START_ACTION|>[{"name": "get_weather"}]<|END_ACTION|>', "'tool_name'"),
        ("<|START_ACTION|>[]<|END_ACTION|>", "empty action"),
    ],
)
def test_a_cut_off_or_malformed_cohere_action_is_a_failure(output: str, reason: str) -> None:
    parsed = parse_output(output)
    assert parsed.kind == "error" and reason in (parsed.error or ""), parsed.error


# --- Cohere Command-R (before Command A): Action: ```json [{"tool_name": …, "parameters": …}] ``` --------


def _command_r(*calls: ToolCall) -> str:
    """Calls as Command-R's tool-use prompt asks for them: a JSON list in a fence after "Action:"."""
    actions = [{"tool_name": call.name, "parameters": call.arguments} for call in calls]
    return f"Action: ```json\n{json.dumps(actions, indent=4)}\n```"


@pytest.mark.parametrize(
    ("output", "calls", "text"),
    [
        (f"{_command_r(PARIS)}<|END_OF_TURN_TOKEN|>", [PARIS], None),
        (
            f"Plan: First I will look up the weather, then the time.\n{_command_r(PARIS, TIME)}",
            [PARIS, TIME],
            "Plan: First I will look up the weather, then the time.",
        ),
        (
            'Action: ```json\n[{"tool_name": "get_weather", "parameters": {"city": "Paris"}}]```',
            [PARIS],
            None,
        ),
    ],
)
def test_command_r_actions_are_calls_never_a_failure(
    output: str, calls: list[ToolCall], text: str | None
) -> None:
    from toolcall.reward import reward

    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.error is None and parsed.action == Action(calls=calls), parsed.error
    assert parsed.text == text and "untagged_calls" in parsed.repairs
    assert reward(WEATHER_TOOLS, (), Action(calls=calls), output) == 1
    assert reward(WEATHER_TOOLS, (), Action(text="Which city?"), output) == 0


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (_command_r(PARIS, TIME)[:90], "cut off (no ```)"),  # inside a call's arguments
        (_command_r(PARIS).removesuffix("```"), "cut off (no ```)"),  # a further call may have followed
        (f"{_command_r(PARIS)}\nIt will be sunny.", "text after ```"),
        ('Action: ```json\n[{"name": "get_weather", "parameters": {"city": "Paris"}}]\n```', "'tool_name'"),
    ],
)
def test_a_cut_off_or_malformed_command_r_action_is_a_failure_never_a_text_answer(
    output: str, reason: str
) -> None:
    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.kind == "error" and reason in (parsed.error or ""), parsed.error


_DIRECTLY_ANSWER = '[\n    {\n        "tool_name": "directly_answer",\n        "parameters": {}\n    }\n]'


@pytest.mark.parametrize(
    ("output", "answer"),
    [
        (  # Command-R's tool-use turn, then the answer its grounded-generation template asks for
            "Plan: The user gave no city, so I will ask for it.\n"
            f"Action: ```json\n{_DIRECTLY_ANSWER}\n```\n"
            "Relevant Documents: None\nCited Documents: None\n"
            "Answer: Which city do you want the weather for?\n"
            "Grounded answer: Which city do you want the weather for?",
            "Which city do you want the weather for?",
        ),
        (f"Action: ```json\n{_DIRECTLY_ANSWER}\n```\nWhich city do you mean?", "Which city do you mean?"),
        (f"Action: ```json\n{_DIRECTLY_ANSWER}\n```<|END_OF_TURN_TOKEN|>", None),  # the answer comes next
        (
            '<|START_THINKING|>No city given.<|END_THINKING|><|START_ACTION|>[{"tool_call_id": "0", '
            '"tool_name": "directly_answer", "parameters": {}}]<|END_ACTION|>'
            "<|START_RESPONSE|>Which city?<|END_RESPONSE|>",
            "Which city?",
        ),
    ],
)
def test_cohere_directly_answer_is_a_text_answer_never_a_call(output: str, answer: str | None) -> None:
    """Cohere's tool-use prompts offer ``directly_answer`` for "no tool, answer in text": a policy that
    chose it was read as calling a function of that name and scored as a wrong call."""
    from toolcall.reward import reward

    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.error is None and parsed.kind == "text", parsed.error
    assert parsed.action == Action(text=answer)
    assert reward(WEATHER_TOOLS, (), Action(text="Which city do you want the weather for?"), output) == 1
    assert reward(WEATHER_TOOLS, (), Action(calls=[PARIS]), output) == 0


@pytest.mark.parametrize(
    "output",
    [
        'Action: ```json\n[{"tool_name": "directly_answer", "parameters": {}}, '
        '{"tool_name": "get_weather", "parameters": {"city": "Paris"}}]\n```',
        '<|START_ACTION|>[{"tool_call_id": "0", "tool_name": "get_weather", "parameters": '
        '{"city": "Paris"}}, {"tool_call_id": "1", "tool_name": "directly_answer", "parameters": {}}]'
        "<|END_ACTION|>",
    ],
)
def test_directly_answer_mixed_with_calls_is_a_failure(output: str) -> None:
    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.kind == "error"
    assert "'directly_answer' (answer in text) with calls of 'get_weather'" in (parsed.error or "")


@pytest.mark.parametrize(
    ("output", "key"),
    [
        (
            'Action: ```json\n[{"tool_name": "get_weather", "parameters": {"city": "Rome"}, '
            '"parameters": {"city": "Paris"}}]\n```',
            "'parameters'",
        ),
        (
            '<|START_ACTION|>[{"tool_call_id": "0", "tool_name": "directly_answer", '
            '"tool_name": "get_weather", "parameters": {"city": "Paris"}}]<|END_ACTION|>',
            "'tool_name'",
        ),
    ],
)
def test_a_cohere_action_entry_that_gives_a_key_twice_is_a_failure_not_its_last_value(
    output: str, key: str
) -> None:
    """The entry's own keys were read with Python's last-wins: the call of Paris matched a Paris label."""
    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.kind == "error" and f"gives the key {key} more than once" in (parsed.error or ""), (
        parsed.error
    )


@pytest.mark.parametrize(
    ("output", "code"),
    [
        (
            'Action: ```json\n[{"tool_name": "format_markdown", "parameters": '
            '{"text": "```python\\nprint(1)\\n```"}}]\n```',
            "```python\nprint(1)\n```",
        ),
        (
            '<|START_ACTION|>[{"tool_call_id": "0", "tool_name": "format_markdown", '
            '"parameters": {"text": "say <|END_ACTION|> literally"}}]<|END_ACTION|>',
            "say <|END_ACTION|> literally",
        ),
    ],
)
def test_an_action_end_inside_a_json_string_is_data_not_the_end_of_the_action(output: str, code: str) -> None:
    """A fence in a string argument ended Command-R's action early: "text after ```" for a good call."""
    parsed = parse_output(output)
    assert parsed.error is None, parsed.error
    assert parsed.action == Action(calls=[ToolCall(name="format_markdown", arguments={"text": code})])


@pytest.mark.parametrize(
    "answer",
    ["Action: book the flight first, then the hotel.", "Write Action: ```json and a list, then I can help."],
)
def test_an_action_line_without_a_json_list_stays_a_text_answer(answer: str) -> None:
    assert parse_output(answer, WEATHER_TOOLS).action == Action(text=answer)


@pytest.mark.parametrize(
    "header",
    [
        "Action: ```json JSON\n",
        "Action: ```JSON\n",
        "Action: ``` json\n",
        "Action:\n```json\n",
        "Action:```\n",
    ],
)
def test_a_command_r_action_fence_with_another_header_is_still_its_calls(header: str) -> None:
    """Only the header ``json`` or none was read: ```` ```json JSON ```` was a failure ("shaped like a
    tool call") for a good call, and a ``directly_answer`` behind it no text answer."""
    calls = _command_r(PARIS, TIME).replace("Action: ```json\n", header)
    parsed = parse_output(calls, WEATHER_TOOLS)
    assert parsed.error is None and parsed.action == Action(calls=[PARIS, TIME]), parsed.error
    answer = parse_output(f"{header}{_DIRECTLY_ANSWER}\n```\nAnswer: Which city?", WEATHER_TOOLS)
    assert answer.error is None and answer.action == Action(text="Which city?"), answer.error


# --- Repeated keys: json.loads keeps the last silently ------------------------------------------------


@pytest.mark.parametrize(
    "output",
    [
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris", "city": "Rome"}}</tool_call>',
        '<tool_call>{"name": "get_weather", "arguments": {"where": {"city": "Paris", "city": "Rome"}}}'
        "</tool_call>",
        '<tool_call>{"name": "get_weather", "name": "get_time", "arguments": {}}</tool_call>',
        '<tool_call>{"name": "get_weather", "arguments": '
        '"{\\"city\\": \\"Paris\\", \\"city\\": \\"Rome\\"}"}</tool_call>',
        "<tool_call>{'name': 'get_weather', 'arguments': {'city': 'Paris', 'city': 'Rome'}}</tool_call>",
        '{"name": "get_weather", "arguments": {"city": "Paris", "city": "Rome"}}',
        '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris", "city": "Rome"}',
        f'{DS_BEGIN}{DS_CALL}get_weather{DS_SEP}{{"city": "Paris", "city": "Rome"}}{DS_CALL_END}{DS_END}',
    ],
)
def test_a_call_that_gives_a_key_twice_is_a_failure_not_its_last_value(output: str) -> None:
    """json.loads keeps the last of repeated keys: the call read as Rome though Paris was written too."""
    parsed = parse_output(output)
    assert parsed.kind == "error" and parsed.action is None, parsed.action
    assert "more than once" in (parsed.error or "")


def test_repeated_keys_in_openai_tool_calls_are_refused() -> None:
    with pytest.raises(CallFormatError, match="more than once"):
        parse_openai_tool_calls(
            [{"type": "function", "function": {"name": "f", "arguments": '{"a": 1, "a": 2}'}}]
        )


def test_a_json_text_answer_with_a_repeated_key_stays_a_text_answer() -> None:
    answer = '{"answer": "Paris", "answer": "Rome"}'
    assert parse_output(answer).action == Action(text=answer)


# --- ByteDance Seed-OSS: <seed:tool_call><function=…><parameter=…>, <seed:think> ------------------------


def _seed(call: ToolCall) -> str:
    """A call as Seed-OSS's chat template writes it: Qwen3-Coder's XML arguments in its own tags."""
    block = _qwen3_coder(call).removeprefix("<tool_call>").removesuffix("</tool_call>")
    return f"<seed:tool_call>{block}</seed:tool_call>"


@pytest.mark.parametrize(
    ("output", "opened"),
    [
        (f"<seed:think>Paris, three days.</seed:think>\n{_seed(XML_CALL)}<seed:eos>", False),
        (f"Paris, three days.</seed:think>\n{_seed(XML_CALL)}", True),  # the template opened the trace
    ],
)
def test_a_seed_oss_call_is_its_call_typed_by_the_schema_and_its_trace_the_trace(
    output: str, opened: bool
) -> None:
    from toolcall.reward import reward

    tool = _xml_tool()
    parsed = parse_output(output, [tool], trace_opened=opened)
    assert parsed.error is None and parsed.action == Action(calls=[XML_CALL]), parsed.error
    assert parsed.think == "Paris, three days." and parsed.text is None
    assert "seed_calls" in parsed.repairs
    assert reward([tool], (), Action(calls=[XML_CALL]), output, trace_opened=opened) == 1


def test_parallel_seed_oss_calls_keep_their_order_and_text_before_them_is_kept() -> None:
    parsed = parse_output(f"Let me check.\n{_seed(PARIS)}\n{_seed(TIME)}", [_xml_tool()])
    assert parsed.action == Action(calls=[PARIS, TIME]) and parsed.text == "Let me check."


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (_seed(XML_CALL)[:80], "without its </function>"),  # cut off inside a parameter
        ("<seed:tool_call>\n<function=get_wea", "without its </function>"),
        ("<seed:think>Paris? I should call <seed:tool_call>", "empty block"),  # as a <tool_call>
    ],
)
def test_a_cut_off_seed_oss_call_is_a_failure_never_a_text_answer(output: str, reason: str) -> None:
    parsed = parse_output(output, [_xml_tool()])
    assert parsed.kind == "error" and reason in (parsed.error or ""), parsed.error


def test_a_seed_oss_tag_named_in_prose_stays_a_text_answer() -> None:
    answer = "Seed-OSS wraps each call in <seed:tool_call> tags; I need the city to call it."
    assert parse_output(answer).action == Action(text=answer)


# --- NVIDIA Nemotron: <TOOLCALL>[{"name": …, "arguments": …}, …]</TOOLCALL> ------------------------------

NEMOTRON = (
    '<TOOLCALL>[{"name": "get_weather", "arguments": {"city": "Paris"}}, '
    '{"name": "get_time", "arguments": {"zone": "CET"}}]</TOOLCALL>'
)


def test_nemotron_calls_are_calls_in_order_with_the_trace_split_off() -> None:
    from toolcall.reward import reward

    parsed = parse_output(f"<think>Weather and time.</think>\n{NEMOTRON}<|eot_id|>")
    assert parsed.error is None and parsed.action == Action(calls=[PARIS, TIME]), parsed.error
    assert parsed.think == "Weather and time." and "nemotron_calls" in parsed.repairs
    single = '<TOOLCALL>[{"name": "get_weather", "arguments": {"city": "Paris"}}]</TOOLCALL>'
    assert parse_output(single).action == Action(calls=[PARIS])
    clarify = Action(text="Which city?")
    assert reward([], (), Action(calls=[PARIS]), single) == 1 and reward([], (), clarify, single) == 0


@pytest.mark.parametrize("output", [NEMOTRON[:60], NEMOTRON[:-30], "<TOOLCALL>"])
def test_a_cut_off_nemotron_call_list_is_a_failure_never_a_text_answer(output: str) -> None:
    assert parse_output(output).kind == "error"


def test_a_nemotron_nano_v2_call_object_without_its_list_is_the_call() -> None:
    """Nemotron-Nano-v2 may write one call object in <TOOLCALL> without the list (vLLM's
    nemotron_nano_v2 parser reads it): that was a failure "a tool call amid text"."""
    single = '<TOOLCALL>{"name": "get_weather", "arguments": {"city": "Paris"}}</TOOLCALL>'
    parsed = parse_output(f"Let me check.{single}")
    assert parsed.error is None and parsed.action == Action(calls=[PARIS]), parsed.error
    assert parsed.text == "Let me check." and "nemotron_calls" in parsed.repairs
    assert parse_output(single[:40]).kind == "error"


def test_a_nemotron_tag_named_in_prose_stays_a_text_answer() -> None:
    answer = "I only write <TOOLCALL> when a tool fits; which city do you mean?"
    assert parse_output(answer).action == Action(text=answer)


# --- MiniMax: M1's <tool_calls> of JSON lines, M2's <minimax:tool_call> of <invoke>s -----------------------


def _minimax_m1(*calls: ToolCall) -> str:
    lines = "".join(json.dumps({"name": c.name, "arguments": c.arguments}) + "\n" for c in calls)
    return f"<tool_calls>\n{lines}</tool_calls>"


def _invokes(*calls: ToolCall) -> str:
    """Calls as ``<invoke>`` elements, as MiniMax-M2's chat template writes them: strings as they
    are, other values as JSON."""

    def invoke(call: ToolCall) -> str:
        parameters = "".join(
            f'<parameter name="{key}">{value if isinstance(value, str) else json.dumps(value)}</parameter>\n'
            for key, value in call.arguments.items()
        )
        return f'<invoke name="{call.name}">\n{parameters}</invoke>\n'

    return "".join(invoke(call) for call in calls)


def _minimax_m2(*calls: ToolCall) -> str:
    return f"<minimax:tool_call>\n{_invokes(*calls)}</minimax:tool_call>"


@pytest.mark.parametrize(
    "output",
    [
        f"<think>\nWeather, then time.\n</think>\n{_minimax_m1(XML_CALL, TIME)}<end_of_sentence>",
        f"<think>\nWeather, then time.\n</think>\n{_minimax_m2(XML_CALL, TIME)}[e~[",
    ],
)
def test_minimax_calls_are_calls_in_order_with_the_trace_split_off(output: str) -> None:
    from toolcall.reward import reward

    tool = _xml_tool()
    parsed = parse_output(output, [tool])
    assert parsed.error is None and parsed.action == Action(calls=[XML_CALL, TIME]), parsed.error
    assert parsed.think == "Weather, then time." and "minimax_calls" in parsed.repairs
    assert reward([tool], (), Action(calls=[XML_CALL, TIME]), output) == 1
    assert reward([tool], (), Action(text="Which city?"), output) == 0


def test_a_minimax_m2_call_keeps_the_text_before_it_and_may_have_no_arguments() -> None:
    output = 'Let me look.\n<minimax:tool_call>\n<invoke name="get_time">\n</invoke>\n</minimax:tool_call>'
    parsed = parse_output(output)
    assert parsed.action == Action(calls=[ToolCall(name="get_time", arguments={})])
    assert parsed.text == "Let me look."


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        # complete calls, but the block never closed: a second call may have been cut off
        (_minimax_m1(PARIS).removesuffix("</tool_calls>"), "cut off (no </tool_calls>)"),
        (_minimax_m1(PARIS, TIME)[:70], "cut off (no </tool_calls>)"),
        (_minimax_m2(PARIS).removesuffix("</minimax:tool_call>"), "cut off (no </minimax:tool_call>)"),
        (_minimax_m2(PARIS)[:60], "cut off"),
        ("<think>\nhm\n</think>\n<minimax:tool_call>\n", "cut off"),
        (
            '<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="city">Par</invoke>\n'
            "</minimax:tool_call>",
            "not closed",
        ),
        (_minimax_m2(XML_CALL), "may be a string or the integer"),  # no schema to type "3" by
    ],
)
def test_a_cut_off_or_unreadable_minimax_call_is_a_failure_never_a_text_answer(
    output: str, reason: str
) -> None:
    parsed = parse_output(output)
    assert parsed.kind == "error" and reason in (parsed.error or ""), parsed.error


def test_minimax_tags_in_prose_or_in_a_closed_trace_are_no_call() -> None:
    answer = "I would answer in <tool_calls> or <minimax:tool_call> tags, but which city?"
    assert parse_output(answer).action == Action(text=answer)
    drafted = f"<think>\nMaybe {_minimax_m1(PARIS)[:40]}... no, ask.\n</think>\nWhich city?"
    parsed = parse_output(drafted)
    assert parsed.action == Action(text="Which city?") and "<tool_calls>" in (parsed.think or "")


# --- Llama 3.1's custom-tool form, Functionary v3.1's: <function=NAME>{ARGS}</function> --------------------

FUNCTION_TAGS = '<function=get_weather>{"city": "Paris"}</function>'


@pytest.mark.parametrize(
    ("output", "calls", "text"),
    [
        (f"{FUNCTION_TAGS}<|eom_id|>", [PARIS], None),
        (f'{FUNCTION_TAGS}\n<function=get_time>{{"zone": "CET"}}</function><|eot_id|>', [PARIS, TIME], None),
        (f"I will look it up.\n{FUNCTION_TAGS}", [PARIS], "I will look it up."),
        (f"<think>Paris.</think>\n{FUNCTION_TAGS}", [PARIS], None),
    ],
)
def test_function_tag_calls_are_calls_never_a_failure(
    output: str, calls: list[ToolCall], text: str | None
) -> None:
    from toolcall.reward import reward

    parsed = parse_output(output)
    assert parsed.error is None and parsed.action == Action(calls=calls), parsed.error
    assert parsed.text == text and "function_tag_calls" in parsed.repairs
    assert reward([], (), Action(calls=calls), output) == 1


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (FUNCTION_TAGS[:35], "not JSON (cut off?)"),
        (FUNCTION_TAGS.removesuffix("</function>"), "no </function>"),
        ("<function=get_wea", "<function="),
        (f"{FUNCTION_TAGS} It will be sunny.", "text after call 1"),
    ],
)
def test_a_cut_off_function_tag_call_is_a_failure_never_a_text_answer(output: str, reason: str) -> None:
    parsed = parse_output(output)
    assert parsed.kind == "error" and reason in (parsed.error or ""), parsed.error


# --- Functionary v3.2: the prompt ends with ">>>"; "all\n" text, "NAME\n{ARGS}" calls, ">>>" between --------

V32_WEATHER = 'get_weather\n{"city": "Paris"}'


@pytest.mark.parametrize(
    ("output", "calls", "text"),
    [
        (f"{V32_WEATHER}<|eot_id|>", [PARIS], None),
        (f'{V32_WEATHER}\n>>>get_time\n{{"zone": "CET"}}<|eot_id|>', [PARIS, TIME], None),
        (f"all\nLet me check.>>>{V32_WEATHER}", [PARIS], "Let me check."),
        (f">>>{V32_WEATHER}", [PARIS], None),  # a prompt that did not end with ">>>"
    ],
)
def test_functionary_v32_calls_are_calls_never_a_text_answer(
    output: str, calls: list[ToolCall], text: str | None
) -> None:
    from toolcall.reward import reward

    parsed = parse_output(output)
    assert parsed.error is None and parsed.action == Action(calls=calls), parsed.error
    assert parsed.text == text and "functionary_messages" in parsed.repairs
    assert reward([], (), Action(text="Which city?"), output) == 0
    assert reward([], (), Action(calls=calls), output) == 1


def test_a_functionary_v32_text_message_is_the_answer_without_its_recipient() -> None:
    for output in ("all\nWhich city do you mean?<|eot_id|>", ">>>all\nWhich city do you mean?"):
        assert parse_output(output).action == Action(text="Which city do you mean?")


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (V32_WEATHER[:22], "not JSON (cut off?)"),
        ("all\nLet me check.>>>get_wea", "cut off inside the recipient"),
        (f"{V32_WEATHER}>>>get_ti", "text after the arguments"),
        (">>>python\nprint(1)", "not a JSON object"),
    ],
)
def test_a_cut_off_functionary_v32_call_is_a_failure_never_a_text_answer(output: str, reason: str) -> None:
    parsed = parse_output(output)
    assert parsed.kind == "error" and reason in (parsed.error or ""), parsed.error


@pytest.mark.parametrize(
    "answer", [">>> print(1 + 1)\n2", "Sure\nWhich city do you mean?", "python\nis the language to use."]
)
def test_text_that_is_no_functionary_message_stays_a_text_answer(answer: str) -> None:
    assert parse_output(answer).action == Action(text=answer)


def _tool(name: str, **properties: str) -> Any:
    from toolcall.specs import ToolSpec

    schema = {key: {"type": json_type} for key, json_type in properties.items()}
    return ToolSpec.from_openai({"name": name, "parameters": {"type": "object", "properties": schema}})


WEATHER_TOOLS = [_tool("get_weather", city="string"), _tool("get_time", zone="string")]


@pytest.mark.parametrize("answer", ['json\n{"a": 1}', 'Result\n{"status": "ok", "city": "Paris"}'])
def test_a_word_over_an_object_is_a_text_answer_when_the_word_is_none_of_the_tools(answer: str) -> None:
    from toolcall.reward import reward

    parsed = parse_output(answer, WEATHER_TOOLS)
    assert parsed.error is None and parsed.action == Action(text=answer), parsed.error
    assert reward(WEATHER_TOOLS, (), Action(text=answer), answer) == 1
    # written after ">>>", or with no tools to tell, it still opens a Functionary call to that word
    assert parse_output(f">>>{answer}", WEATHER_TOOLS).kind == "calls"
    assert parse_output(answer).kind == "calls"


def test_an_untagged_functionary_call_to_one_of_the_tools_is_still_a_call() -> None:
    output = f'{V32_WEATHER}\n>>>get_time\n{{"zone": "CET"}}<|eot_id|>'
    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.error is None and parsed.action == Action(calls=[PARIS, TIME]), parsed.error


def test_an_untagged_functionary_call_to_a_made_up_tool_is_a_wrong_call_never_a_text_answer() -> None:
    """A name shaped like a function's (snake_case, dotted) that the sample does not offer is a call
    the policy made up: read as text, it matched a clarification label and earned its reward."""
    from toolcall.reward import reward

    for output in ('get_forecast\n{"city": "Paris"}', 'weather.lookup\n{"city": "Paris"}'):
        parsed = parse_output(output, WEATHER_TOOLS)
        assert parsed.kind == "calls", parsed
        assert reward(WEATHER_TOOLS, (), Action(text="Which city?"), output) == 0


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "<seed:tool_call>",
                "</seed:tool_call>",
                "<seed:think>",
                "</seed:think>",
                "<function=f>",
                "</function>",
                "<parameter=a>",
                '<parameter name="a">',
                "</parameter>",
                "<TOOLCALL>",
                "</TOOLCALL>",
                "<tool_calls>",
                "</tool_calls>",
                "<minimax:tool_call>",
                "</minimax:tool_call>",
                '<invoke name="f">',
                "</invoke>",
                "<think>",
                "</think>",
                "<function_calls>",
                "</function_calls>",
                "<|action_start|>",
                "<|plugin|>",
                "<|action_end|>",
                ">>>",
                "all\n",
                "f\n",
                "{",
                "}",
                "[",
                "]",
                '"name"',
                ":",
                "1",
            ]
        ),
        max_size=40,
    )
)
def test_other_families_tag_soup_never_raises(pieces: list[str]) -> None:
    parsed = parse_output("".join(pieces))
    assert (parsed.error is None) == (parsed.action is not None)


# --- Hunyuan-A13B and Jamba: <tool_calls>[…]</tool_calls>; Hunyuan's <answer> wrapper -------------------

TOOL_CALLS_LIST = (
    '<tool_calls>[{"name": "get_weather", "arguments": {"city": "Paris"}}, '
    '{"name": "get_time", "arguments": {"zone": "CET"}}]</tool_calls>'
)


@pytest.mark.parametrize(
    "output",
    [
        TOOL_CALLS_LIST,  # Jamba
        f"<think>\nWeather and time.\n</think>\n<answer>\n{TOOL_CALLS_LIST}\n</answer>",  # Hunyuan-A13B
    ],
)
def test_a_tool_calls_list_is_calls_in_order(output: str) -> None:
    from toolcall.reward import reward

    parsed = parse_output(output)
    assert parsed.error is None and parsed.action == Action(calls=[PARIS, TIME]), parsed.error
    assert parsed.text is None and "tool_calls_list" in parsed.repairs
    assert reward([], (), Action(calls=[PARIS, TIME]), output) == 1


def test_a_hunyuan_answer_is_the_text_inside_its_answer_tags() -> None:
    parsed = parse_output("<think>\nNo city given.\n</think>\n<answer>\nWhich city do you mean?\n</answer>")
    assert parsed.action == Action(text="Which city do you mean?") and parsed.think == "No city given."


def test_an_ernie_answer_is_the_text_inside_its_response_tags() -> None:
    """ERNIE-4.5's thinking models answer in <response> tags (vLLM's ernie45 parser drops them): the
    tags were kept in the text answer."""
    parsed = parse_output("No city given.\n</think>\n\n<response>\nWhich city do you mean?\n</response>\n")
    assert parsed.action == Action(text="Which city do you mean?") and parsed.think == "No city given."


def test_a_cut_off_tool_calls_list_is_a_failure_never_a_text_answer() -> None:
    assert parse_output(TOOL_CALLS_LIST[:60]).kind == "error"


# --- InternLM2 / 2.5: <|action_start|><|plugin|>\n{"name": …, "parameters": …}<|action_end|> ---------------


def _internlm(call: ToolCall) -> str:
    """A call as InternLM2's chat template writes it (lmdeploy's internlm2 tool parser reads it so)."""
    body = json.dumps({"name": call.name, "parameters": call.arguments})
    return f"<|action_start|><|plugin|>\n{body}<|action_end|>"


@pytest.mark.parametrize(
    ("output", "calls", "text"),
    [
        (f"{_internlm(PARIS)}<|im_end|>", [PARIS], None),
        (
            f"Sure, I will look up the weather.{_internlm(PARIS)}<|im_end|>",
            [PARIS],
            "Sure, I will look up the weather.",
        ),
        (f"{_internlm(PARIS)}\n{_internlm(TIME)}<|im_end|>", [PARIS, TIME], None),
    ],
)
@pytest.mark.parametrize("spaced", [False, True])  # vLLM decodes with a space between special tokens
def test_internlm2_plugin_actions_are_calls_never_a_failure(
    output: str, calls: list[ToolCall], text: str | None, spaced: bool
) -> None:
    """A space between the opening's two tokens (``<|action_start|> <|plugin|>``, as vLLM's default
    decode writes them) made the call a failure "a tool call amid text"."""
    from toolcall.reward import reward

    if spaced:
        output = output.replace("<|action_start|><|plugin|>", "<|action_start|> <|plugin|>")
    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.error is None and parsed.action == Action(calls=calls), parsed.error
    assert parsed.text == text and "internlm_calls" in parsed.repairs
    assert reward(WEATHER_TOOLS, (), Action(calls=calls), output) == 1
    assert reward(WEATHER_TOOLS, (), Action(text="Which city?"), output) == 0


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (_internlm(PARIS)[:60], "not valid JSON"),  # cut off inside the arguments
        ("Let me check.<|action_start|><|plugin|>", "empty block"),
        ("Let me check.<|action_start|>", "empty block"),  # cut off between the opening's two tokens
        ("<|action_start|><|interpreter|>\n```python\nprint(1)\n```<|action_end|>", "code-interpreter"),
        (
            '<|action_start|><|plugin|>\n{"name": "get_weather", "args": {"city": "Paris"}}<|action_end|>',
            "unexpected keys",
        ),
    ],
)
def test_a_cut_off_or_unread_internlm2_action_is_a_failure_never_a_text_answer(
    output: str, reason: str
) -> None:
    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.kind == "error" and reason in (parsed.error or ""), parsed.error


def test_internlm2_action_tokens_named_in_prose_stay_a_text_answer() -> None:
    answer = "I would call it between <|action_start|><|plugin|> and <|action_end|>, but which city?"
    assert parse_output(answer, WEATHER_TOOLS).action == Action(text=answer)


def test_internlm2_action_tokens_are_call_delimiters() -> None:
    from toolcall.parsing import CALL_DELIMITERS

    assert {"<|action_start|>", "<|plugin|>", "<|action_end|>"} <= CALL_DELIMITERS


# --- Claude-style: <function_calls><invoke name="NAME"><parameter name="P">V</parameter></invoke>… ---------


def _function_calls(*calls: ToolCall) -> str:
    return f"<function_calls>\n{_invokes(*calls)}</function_calls>"


@pytest.mark.parametrize(
    ("output", "calls", "text"),
    [
        (_function_calls(XML_CALL), [XML_CALL], None),
        (
            f"I'll check the weather and the time.\n{_function_calls(XML_CALL, TIME)}",
            [XML_CALL, TIME],
            "I'll check the weather and the time.",
        ),
        (f"<think>\nWeather first.\n</think>\n{_function_calls(XML_CALL)}", [XML_CALL], None),
    ],
)
def test_claude_style_function_calls_are_calls_typed_by_the_schema(
    output: str, calls: list[ToolCall], text: str | None
) -> None:
    from toolcall.reward import reward

    tools = [_xml_tool(), WEATHER_TOOLS[1]]
    parsed = parse_output(output, tools)
    assert parsed.error is None and parsed.action == Action(calls=calls), parsed.error
    assert parsed.text == text and "function_calls" in parsed.repairs and "xml_arguments" in parsed.repairs
    # a call never earns the reward of a clarification label
    assert reward(tools, (), Action(text="Which city do you mean?"), output) == 0
    assert reward(tools, (), Action(calls=calls), output) == 1


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        # the block never closed: a further call may have been cut off
        (_function_calls(PARIS).removesuffix("</function_calls>"), "cut off (no </function_calls>)"),
        (_function_calls(PARIS, TIME)[:70], "cut off"),
        ("Let me check.\n<function_calls>\n", "cut off"),
        (
            '<function_calls>\n<invoke name="get_weather">\n<parameter name="city">Par</invoke>\n'
            "</function_calls>",
            "not closed",
        ),
    ],
)
def test_a_cut_off_or_unreadable_function_calls_block_is_a_failure_never_a_text_answer(
    output: str, reason: str
) -> None:
    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.kind == "error" and reason in (parsed.error or ""), parsed.error


@pytest.mark.parametrize(
    ("output", "text"),
    [
        ("<function_calls>\nget_weather(city='Paris')\nget_time(zone='CET')\n</function_calls>", None),
        (
            "I'll check both.\n<function_calls>\n"
            'get_weather(city="Paris")\nget_time(zone="CET")\n</function_calls>',
            "I'll check both.",
        ),
    ],
)
def test_olmo3_python_calls_in_function_calls_tags_are_calls(output: str, text: str | None) -> None:
    """OLMo 3 writes Python calls, one a line, in <function_calls> tags: the tags were taken for prose
    (no <invoke> after them) and the calls read as a plain-text answer."""
    from toolcall.reward import reward

    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.error is None and parsed.action == Action(calls=[PARIS, TIME]), parsed
    assert parsed.text == text and "pythonic_calls" in parsed.repairs
    assert reward(WEATHER_TOOLS, (), Action(text="Which city?"), output) == 0
    cut_off = parse_output(output.partition("</function_calls>")[0], WEATHER_TOOLS)
    assert cut_off.kind == "error" and "cut off" in (cut_off.error or ""), cut_off
    prose = "I could write <function_calls> tags(one per call), but which city do you mean?"
    assert parse_output(prose, WEATHER_TOOLS).action == Action(text=prose)


def test_function_calls_tags_named_in_prose_stay_a_text_answer() -> None:
    answer = "I could answer in <function_calls> tags, but which city do you mean?"
    assert parse_output(answer, WEATHER_TOOLS).action == Action(text=answer)


def test_function_calls_tags_are_call_delimiters() -> None:
    from toolcall.parsing import CALL_DELIMITERS

    assert {"<function_calls>", "</function_calls>"} <= CALL_DELIMITERS


# --- DeepSeek-V3.2's DSML: <｜DSML｜function_calls><｜DSML｜invoke name=…><｜DSML｜parameter … string=…> ---

_DSML = "｜DSML｜"


def _dsml(*calls: ToolCall) -> str:
    """Calls as DeepSeek-V3.2's encoder writes them: a string as it is (string="true"), any other
    value as JSON (string="false")."""

    def invoke(call: ToolCall) -> str:
        parameters = "".join(
            f'<{_DSML}parameter name="{key}" string="{"true" if isinstance(value, str) else "false"}">'
            f"{value if isinstance(value, str) else json.dumps(value)}</{_DSML}parameter>\n"
            for key, value in call.arguments.items()
        )
        return f'<{_DSML}invoke name="{call.name}">\n{parameters}</{_DSML}invoke>\n'

    return f"<{_DSML}function_calls>\n{''.join(invoke(call) for call in calls)}</{_DSML}function_calls>"


@pytest.mark.parametrize("tools", [None, "schema"])
@pytest.mark.parametrize(
    ("output", "calls", "text"),
    [
        (_dsml(XML_CALL), [XML_CALL], None),
        (
            f"<think>Weather, then time.</think>{_dsml(XML_CALL, TIME)}<｜end▁of▁sentence｜>",
            [XML_CALL, TIME],
            None,
        ),
        (f"Let me look that up.\n\n{_dsml(TIME)}", [TIME], "Let me look that up."),
        # string="true" says "75001" and "3" are text, whatever they would read as
        (
            _dsml(ToolCall(name="get_weather", arguments={"zip": "75001"})),
            [ToolCall(name="get_weather", arguments={"zip": "75001"})],
            None,
        ),
    ],
)
def test_deepseek_v32_dsml_calls_are_calls_typed_as_written(
    output: str, calls: list[ToolCall], text: str | None, tools: str | None
) -> None:
    """DeepSeek-V3.2 writes its calls in DSML tags: they were read as a text answer (and earned the
    reward of a clarification label). Its string attribute types each value, with or without a schema."""
    from toolcall.reward import reward

    schema = [_xml_tool(), WEATHER_TOOLS[1]]
    parsed = parse_output(output, schema if tools else None)
    assert parsed.error is None and parsed.action == Action(calls=calls), parsed.error
    assert parsed.text == text and "dsml_calls" in parsed.repairs
    assert reward(schema, (), Action(text="Which city do you mean?"), output) == 0
    assert reward(schema, (), Action(calls=calls), output) == 1


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (_dsml(PARIS, TIME).removesuffix(f"</{_DSML}function_calls>"), "cut off"),  # more calls may follow
        (_dsml(PARIS, TIME)[:90], "cut off"),
        (
            f'<{_DSML}function_calls>\n<{_DSML}invoke name="get_weather">\n<{_DSML}parameter name="days" '
            f'string="false">three</{_DSML}parameter>\n</{_DSML}invoke>\n</{_DSML}function_calls>',
            'marked string="false"',
        ),
    ],
)
def test_a_cut_off_or_mistyped_dsml_block_is_a_failure_never_a_text_answer(output: str, reason: str) -> None:
    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.kind == "error" and reason in (parsed.error or ""), parsed.error


# --- Google FunctionGemma: <start_function_call>call:NAME{key:<escape>text<escape>,n:3}<end_function_call>

_GEMMA_ESCAPE = "<escape>"


def _functiongemma(*calls: ToolCall) -> str:
    """Calls as FunctionGemma's chat template writes them: keys sorted and bare, a string between
    <escape> tokens, any other value bare, objects and lists of values in braces and brackets."""

    def value(item: Any) -> str:
        if isinstance(item, str):
            return f"{_GEMMA_ESCAPE}{item}{_GEMMA_ESCAPE}"
        if isinstance(item, dict):
            return "{" + ",".join(f"{key}:{value(item[key])}" for key in sorted(item)) + "}"
        if isinstance(item, list):
            return "[" + ",".join(value(element) for element in item) + "]"
        return json.dumps(item)

    return "".join(
        f"<start_function_call>call:{c.name}{value(c.arguments)}<end_function_call>" for c in calls
    )


FUNCTIONGEMMA_CALL = ToolCall(
    name="search",
    arguments={
        "query": 'say "hi", {ok}: [é] 3',  # the format's own punctuation inside a string is data
        "zip": "75001",  # a string that would read as a number: escaped, so text
        "filters": {"max": 2.5, "tags": ["a, b", "c"], "exact": True, "after": None},
        "limit": 10,
    },
)


@pytest.mark.parametrize(
    ("output", "calls", "text"),
    [
        (_functiongemma(PARIS), [PARIS], None),
        (f"{_functiongemma(PARIS, TIME)}<end_of_turn>", [PARIS, TIME], None),
        (_functiongemma(FUNCTIONGEMMA_CALL), [FUNCTIONGEMMA_CALL], None),
        (
            _functiongemma(ToolCall(name="get_time", arguments={})),
            [ToolCall(name="get_time", arguments={})],
            None,
        ),
        (f"I'll check.{_functiongemma(TIME)}", [TIME], "I'll check."),
    ],
)
def test_functiongemma_calls_are_calls_typed_as_written(
    output: str, calls: list[ToolCall], text: str | None
) -> None:
    """FunctionGemma's calls were read as a plain-text answer (and earned a clarification label's reward)."""
    from toolcall.reward import reward

    parsed = parse_output(output)
    assert parsed.error is None and parsed.action == Action(calls=calls), parsed.error
    assert parsed.text == text and "functiongemma_calls" in parsed.repairs
    assert reward(WEATHER_TOOLS, (), Action(text="Which city do you mean?"), output) == 0


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (_functiongemma(PARIS).partition("ris")[0], "closing <escape> never came"),  # inside a string
        (_functiongemma(PARIS).removesuffix("}<end_function_call>"), "cut off"),  # before the object closed
        ("<start_function_call>call:get_wea", "cut off"),  # the name alone: its template writes {} for none
        ("<start_function_call>call:get_weather{city:Paris}<end_function_call>", "<escape>"),  # a bare word
        (
            "<start_function_call>call:get_weather{city:<escape>Rome<escape>,city:<escape>Paris<escape>}"
            "<end_function_call>",
            "more than once",
        ),
    ],
)
def test_a_cut_off_or_malformed_functiongemma_call_is_a_failure_never_a_call_or_text(
    output: str, reason: str
) -> None:
    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.kind == "error" and reason in (parsed.error or ""), parsed.error


def test_functiongemma_tags_named_in_prose_stay_a_text_answer() -> None:
    answer = "FunctionGemma writes calls in <start_function_call> tags. Which city do you mean?"
    assert parse_output(answer, WEATHER_TOOLS).action == Action(text=answer)


# --- Meituan LongCat: <longcat_tool_call> around JSON, or GLM's form with longcat_ tags ----------------


@pytest.mark.parametrize(
    ("output", "text"),
    [
        (
            '<longcat_tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}\n'
            "</longcat_tool_call>",
            None,
        ),
        (
            "Let me help.\n<longcat_tool_call>get_weather\n<longcat_arg_key>city</longcat_arg_key>\n"
            "<longcat_arg_value>Paris</longcat_arg_value>\n<longcat_arg_key>days</longcat_arg_key>\n"
            "<longcat_arg_value>3</longcat_arg_value>\n</longcat_tool_call>",
            "Let me help.",
        ),
    ],
)
def test_longcat_calls_are_calls(output: str, text: str | None) -> None:
    """LongCat's JSON call in its tags was "a tool call amid text", and its GLM-style call (arguments in
    <longcat_arg_key>/<longcat_arg_value>) a plain-text answer that earned a clarification's reward."""
    from toolcall.reward import reward

    tools = [_xml_tool()]
    parsed = parse_output(output, tools)
    assert parsed.error is None, parsed.error
    assert parsed.action == Action(
        calls=[ToolCall(name="get_weather", arguments={"city": "Paris", "days": 3})]
    )
    assert parsed.text == text and "longcat_calls" in parsed.repairs
    assert reward(tools, (), Action(text="Which city do you mean?"), output) == 0


@pytest.mark.parametrize(
    "output",
    [
        "<longcat_tool_call>get_weather\n<longcat_arg_key>city</longcat_arg_key>\n<longcat_arg_value>Par",
        '<longcat_tool_call>\n{"name": "get_weather", "arguments": {"city": "Par',
    ],
)
def test_a_cut_off_longcat_call_is_a_failure_never_a_text_answer(output: str) -> None:
    assert parse_output(output, [_xml_tool()]).kind == "error"


def test_longcat_tags_named_in_prose_stay_a_text_answer() -> None:
    answer = "LongCat writes <longcat_tool_call> tags. Which city do you mean?"
    assert parse_output(answer, WEATHER_TOOLS).action == Action(text=answer)


# --- Liquid LFM2: <|tool_call_start|>[NAME(P=VALUE), …]<|tool_call_end|> -------------------------------


@pytest.mark.parametrize(
    ("output", "text"),
    [
        ('<|tool_call_start|>[get_weather(city="Paris"), get_time(zone="CET")]<|tool_call_end|>', None),
        (
            'Let me check that.<|tool_call_start|>[get_weather(city="Paris"), get_time(zone="CET")]'
            "<|tool_call_end|><|im_end|>",
            "Let me check that.",
        ),
        (f"<|tool_call_start|>{_PARIS_THEN_TIME}<|tool_call_end|>", None),  # its JSON form
    ],
)
def test_lfm2_calls_are_calls(output: str, text: str | None) -> None:
    """LFM2's closing token is Kimi K2's call-end token too: its calls were a failure ("Kimi K2 tool
    call: <|tool_call_end|> outside a <|tool_calls_section_begin|> block")."""
    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.error is None and parsed.action == Action(calls=[PARIS, TIME]), parsed
    assert parsed.text == text and "lfm2_calls" in parsed.repairs
    cut_off = parse_output(output.partition("CET")[0], WEATHER_TOOLS)
    assert cut_off.kind == "error", cut_off


# --- Swiss AI Apertus: <|tools_prefix|>[{NAME: {ARGS}}, …]<|tools_suffix|> ---------------------------------

_APERTUS_CALLS = '[{"get_weather": {"city": "Paris"}}, {"get_time": {"zone": "CET"}}]'


@pytest.mark.parametrize(
    ("output", "text"),
    [
        (f"<|tools_prefix|>{_APERTUS_CALLS}<|tools_suffix|>", None),
        (
            f"Checking both.<|tools_prefix|>{_APERTUS_CALLS}<|tools_suffix|><|assistant_end|>",
            "Checking both.",
        ),
    ],
)
def test_apertus_calls_keyed_by_name_are_calls(output: str, text: str | None) -> None:
    """Apertus keys each call by its function's name: its calls were read as a plain-text answer (and
    earned a clarification label's reward)."""
    from toolcall.reward import reward

    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.error is None and parsed.action == Action(calls=[PARIS, TIME]), parsed
    assert parsed.text == text and "apertus_calls" in parsed.repairs
    assert reward(WEATHER_TOOLS, (), Action(text="Which city?"), output) == 0
    assert parse_output(output.partition("CET")[0], WEATHER_TOOLS).kind == "error"  # cut off


@pytest.mark.parametrize(
    "output",
    [
        '<|tools_prefix|>[{"get_weather": {"city": "Rome"}, "get_weather": {"city": "Paris"}}]'
        "<|tools_suffix|>",
        '<|tools_prefix|>[{"arguments": {"city": "Paris"}}]<|tools_suffix|>',  # a call's part, no name
    ],
)
def test_an_apertus_entry_that_names_no_function_once_is_a_failure(output: str) -> None:
    assert parse_output(output, WEATHER_TOOLS).kind == "error"


# --- StepFun Step-3: DeepSeek's layout in its own tokens around <steptml:invoke> calls ---------------------


def _step3(*calls: ToolCall, kind: str = "function") -> str:
    """Calls as Step-3 writes them (vLLM's step3 parser): each ``<steptml:invoke>`` in its call tokens,
    strings as they are, other values as JSON."""
    invokes = _invokes(*calls).replace("<invoke", "<steptml:invoke").replace("</invoke", "</steptml:invoke")
    steptml = invokes.replace("<parameter", "<steptml:parameter").replace(
        "</parameter", "</steptml:parameter"
    )
    one_a_call = [f"<steptml:invoke{invoke}" for invoke in steptml.split("<steptml:invoke")[1:]]
    return (
        "<｜tool_calls_begin｜>"
        + "".join(
            f"<｜tool_call_begin｜>{kind}<｜tool_sep｜>{invoke}<｜tool_call_end｜>" for invoke in one_a_call
        )
        + "<｜tool_calls_end｜>"
    )


@pytest.mark.parametrize(
    ("output", "text"),
    [
        (_step3(XML_CALL, TIME), None),
        (f"<think>\nWeather, then time.\n</think>\nLet me check.\n{_step3(XML_CALL, TIME)}", "Let me check."),
    ],
)
def test_step3_calls_are_calls_in_order_typed_by_the_schema(output: str, text: str | None) -> None:
    """Step-3's calls were read as a plain-text answer (its tokens are not DeepSeek's), so they earned
    a clarification label's reward."""
    from toolcall.reward import reward

    tool = _xml_tool()
    parsed = parse_output(output, [tool])
    assert parsed.error is None and parsed.action == Action(calls=[XML_CALL, TIME]), parsed.error
    assert parsed.text == text and "step3_calls" in parsed.repairs
    assert reward([tool], (), Action(text="Which city?"), output) == 0


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (_step3(PARIS).removesuffix("<｜tool_calls_end｜>"), "cut off"),
        (_step3(PARIS)[:80], "cut off"),
        (_step3(PARIS, kind="code"), "not 'function'"),
    ],
)
def test_a_cut_off_or_unreadable_step3_call_is_a_failure_never_a_text_answer(
    output: str, reason: str
) -> None:
    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.kind == "error" and reason in (parsed.error or ""), parsed.error


# --- Sber GigaChat 3 / 3.1: one JSON call after its own header ---------------------------------------------

GIGACHAT_PARIS = '{"name": "get_weather", "arguments": {"city": "Paris"}}'


@pytest.mark.parametrize(
    ("output", "text"),
    [
        (f"<|message_sep|>\n\nfunction call<|role_sep|>\n{GIGACHAT_PARIS}", None),  # GigaChat 3
        (f"I'll check.<|message_sep|>\n\nfunction call<|role_sep|>\n{GIGACHAT_PARIS}</s>", "I'll check."),
        (f"<|function_call|>{GIGACHAT_PARIS}", None),  # GigaChat 3.1
        (f"I'll check.<|function_call|>{GIGACHAT_PARIS}</s>", "I'll check."),
    ],
)
def test_gigachat_calls_are_calls(output: str, text: str | None) -> None:
    """GigaChat's call (vLLM's gigachat3 format) was a failure "a tool call amid text", never its call."""
    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.error is None and parsed.action == Action(calls=[PARIS]), parsed.error
    assert parsed.text == text and "untagged_calls" in parsed.repairs


def test_a_cut_off_gigachat_call_is_a_failure_and_its_token_in_prose_text() -> None:
    assert parse_output(f"<|function_call|>{GIGACHAT_PARIS[:40]}", WEATHER_TOOLS).kind == "error"
    prose = "GigaChat writes <|function_call|> before a call."
    assert parse_output(prose, WEATHER_TOOLS).action == Action(text=prose)


# --- Qwen3-Coder's XML calls without their <tool_call> tags -------------------------------------------------


def _untagged_qwen3_coder(*calls: ToolCall) -> str:
    return "\n".join(
        _qwen3_coder(call).removeprefix("<tool_call>\n").removesuffix("\n</tool_call>") for call in calls
    )


@pytest.mark.parametrize(
    ("output", "text"),
    [
        (_untagged_qwen3_coder(XML_CALL, TIME), None),
        (f"Let me check.\n{_untagged_qwen3_coder(XML_CALL, TIME)}<|im_end|>", "Let me check."),
    ],
)
def test_qwen3_coder_calls_without_tool_call_tags_are_the_calls(output: str, text: str | None) -> None:
    """Qwen3-Coder's calls written without their <tool_call> tags (vLLM's qwen3_coder and step3p5
    parsers read them) were a failure "a Llama-style tool call", never the calls."""
    tool = _xml_tool()
    parsed = parse_output(output, [tool])
    assert parsed.error is None and parsed.action == Action(calls=[XML_CALL, TIME]), parsed.error
    assert parsed.text == text and "untagged_calls" in parsed.repairs


@pytest.mark.parametrize(
    "output",
    [
        _untagged_qwen3_coder(PARIS)[:40],  # cut off inside a parameter
        _untagged_qwen3_coder(PARIS).removesuffix("</function>"),
        f"{_untagged_qwen3_coder(PARIS)}\nDone.",  # text after the calls
    ],
)
def test_an_untagged_qwen3_coder_call_cut_off_or_followed_by_text_is_a_failure(output: str) -> None:
    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.kind == "error" and "<function=…> tool call" in (parsed.error or ""), parsed.error


# --- Google Gemma 4: FunctionGemma's calls in <|tool_call>…<tool_call|>, strings in <|"|> ---------------


def _gemma4(*calls: ToolCall) -> str:
    """Calls as Gemma 4 writes them (vLLM's gemma4 parser): FunctionGemma's, in Gemma 4's tokens."""
    written = _functiongemma(*calls).replace("<start_function_call>", "<|tool_call>")
    return written.replace("<end_function_call>", "<tool_call|>").replace(_GEMMA_ESCAPE, '<|"|>')


@pytest.mark.parametrize(
    ("output", "calls", "text"),
    [
        (_gemma4(PARIS, TIME), [PARIS, TIME], None),
        (_gemma4(FUNCTIONGEMMA_CALL), [FUNCTIONGEMMA_CALL], None),
        (f"Let me check the weather for you. {_gemma4(PARIS)}", [PARIS], "Let me check the weather for you."),
    ],
)
def test_gemma4_calls_are_calls_typed_as_written(
    output: str, calls: list[ToolCall], text: str | None
) -> None:
    """Gemma 4's calls were read as a plain-text answer (and earned a clarification label's reward)."""
    from toolcall.reward import reward

    parsed = parse_output(output)
    assert parsed.error is None and parsed.action == Action(calls=calls), parsed.error
    assert parsed.text == text and "gemma4_calls" in parsed.repairs
    assert reward(WEATHER_TOOLS, (), Action(text="Which city do you mean?"), output) == 0


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (_gemma4(PARIS).partition("ris")[0], 'closing <|"|> never came'),  # cut off inside a string
        (_gemma4(PARIS).removesuffix("}<tool_call|>"), "cut off"),
    ],
)
def test_a_cut_off_gemma4_call_is_a_failure_and_its_token_in_prose_text(output: str, reason: str) -> None:
    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.kind == "error" and reason in (parsed.error or ""), parsed.error
    prose = "Gemma 4 writes <|tool_call> before its calls."
    assert parse_output(prose, WEATHER_TOOLS).action == Action(text=prose)


# --- DeepSeek-V4: V3.2's DSML calls in <｜DSML｜tool_calls> tags ------------------------------------------


def _dsml_v4(*calls: ToolCall) -> str:
    return _dsml(*calls).replace(f"{_DSML}function_calls>", f"{_DSML}tool_calls>")


@pytest.mark.parametrize(
    ("output", "text"),
    [
        (_dsml_v4(XML_CALL, TIME), None),
        (f"Let me look that up.\n\n{_dsml_v4(XML_CALL, TIME)}<｜end▁of▁sentence｜>", "Let me look that up."),
    ],
)
def test_deepseek_v4_dsml_calls_are_calls_typed_as_written(output: str, text: str | None) -> None:
    """DeepSeek-V4 wraps V3.2's DSML calls in <｜DSML｜tool_calls> (vLLM's deepseek_v4 parser): they
    were read as a plain-text answer and earned a clarification label's reward."""
    from toolcall.reward import reward

    parsed = parse_output(output)
    assert parsed.error is None and parsed.action == Action(calls=[XML_CALL, TIME]), parsed.error
    assert parsed.text == text and "dsml_calls" in parsed.repairs
    assert reward(WEATHER_TOOLS, (), Action(text="Which city do you mean?"), output) == 0
    cut_off = parse_output(_dsml_v4(PARIS, TIME).removesuffix(f"</{_DSML}tool_calls>"))
    assert cut_off.kind == "error" and "cut off" in (cut_off.error or ""), cut_off.error


# --- Tencent Hy3 / Hy4: GLM-4.5's calls in <tool_call> blocks wrapped in <tool_calls> ----------------------


def _hy3(*calls: ToolCall) -> str:
    """Calls as Hy3 writes them (vLLM's hy_v3 parser): GLM's, a <tool_sep> after each name."""
    blocks = "".join(
        _glm(call).replace(f"<tool_call>{call.name}\n", f"<tool_call>{call.name}<tool_sep>\n", 1) + "\n"
        for call in calls
    )
    return f"<tool_calls>\n{blocks}</tool_calls>"


@pytest.mark.parametrize(
    ("output", "calls", "text"),
    [
        (_hy3(XML_CALL, TIME), [XML_CALL, TIME], None),
        (
            "Checking.<tool_calls><tool_call>get_time<tool_sep></tool_call></tool_calls>",
            [ToolCall(name="get_time", arguments={})],
            "Checking.",
        ),
        (f"<tool_calls>{_glm(XML_CALL)}</tool_calls>", [XML_CALL], None),  # Hy4: no <tool_sep>
    ],
)
def test_hy3_calls_are_calls_typed_by_the_schema(
    output: str, calls: list[ToolCall], text: str | None
) -> None:
    """Hy3's calls were a failure "not valid JSON" (its <tool_calls> wrapper and <tool_sep> unread)."""
    parsed = parse_output(output, [_xml_tool(), WEATHER_TOOLS[1]])
    assert parsed.error is None and parsed.action == Action(calls=calls), parsed.error
    assert parsed.text == text and "hy_calls" in parsed.repairs


def test_a_hy3_wrapper_cut_off_is_a_failure_and_its_tag_in_prose_text() -> None:
    cut_off = parse_output(_hy3(PARIS, TIME).removesuffix("</tool_calls>"), WEATHER_TOOLS)
    assert cut_off.kind == "error" and "cut off" in (cut_off.error or ""), cut_off.error
    prose = "Hy3 writes <tool_calls> around its calls."
    assert parse_output(prose, WEATHER_TOOLS).action == Action(text=prose)


# --- rednote dots.llm: <dots_function_call> around <invoke> calls or a JSON call ---------------------------


def _dots(*calls: ToolCall) -> str:
    return f"<dots_function_call>{_invokes(*calls)}</dots_function_call>"


@pytest.mark.parametrize(
    ("output", "calls", "text"),
    [
        (_dots(XML_CALL, TIME), [XML_CALL, TIME], None),
        (f"ok{_dots(XML_CALL)}", [XML_CALL], "ok"),
        (
            f'{_dots(XML_CALL)}<dots_function_call>{{"name": "get_time", "arguments": {{"zone": "CET"}}}}'
            "</dots_function_call>",
            [XML_CALL, TIME],
            None,
        ),
    ],
)
def test_dots_calls_are_calls_typed_by_the_schema(
    output: str, calls: list[ToolCall], text: str | None
) -> None:
    """dots.llm's calls (vLLM's dots parser) were read as a plain-text answer and earned a clarification
    label's reward."""
    from toolcall.reward import reward

    tools = [_xml_tool(), WEATHER_TOOLS[1]]
    parsed = parse_output(output, tools)
    assert parsed.error is None and parsed.action == Action(calls=calls), parsed.error
    assert parsed.text == text and "dots_calls" in parsed.repairs
    assert reward(tools, (), Action(text="Which city do you mean?"), output) == 0
    cut_off = parse_output(_dots(PARIS, TIME).removesuffix("</dots_function_call>"), WEATHER_TOOLS)
    assert cut_off.kind == "error" and "cut off" in (cut_off.error or ""), cut_off.error


# --- Qwen2.5-Coder: a JSON call in <tools> tags ------------------------------------------------------------

QWEN25_CODER_PARIS = f"<tools>{json.dumps({'name': 'get_weather', 'arguments': {'city': 'Paris'}})}</tools>"


@pytest.mark.parametrize(
    ("output", "calls", "text"),
    [
        (QWEN25_CODER_PARIS, [PARIS], None),
        (
            f"Let me check.\n\n{QWEN25_CODER_PARIS}"
            '<tools>{"name": "get_time", "arguments": {"zone": "CET"}}</tools><|im_end|>',
            [PARIS, TIME],
            "Let me check.",
        ),
    ],
)
def test_qwen25_coder_calls_in_tools_tags_are_calls(
    output: str, calls: list[ToolCall], text: str | None
) -> None:
    """Qwen2.5-Coder's JSON calls in <tools> tags (vLLM's qwen2_5_coder parser) were a failure "a tool
    call amid text", never the calls."""
    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.error is None and parsed.action == Action(calls=calls), parsed.error
    assert parsed.text == text and "qwen25_coder_calls" in parsed.repairs


def test_a_tools_tag_around_no_call_or_cut_off_is_no_call() -> None:
    listing = "I can use these: <tools>get_weather, get_time</tools>. Which city?"
    assert parse_output(listing, WEATHER_TOOLS).action == Action(text=listing)
    cut_off = parse_output(QWEN25_CODER_PARIS.removesuffix("}</tools>"), WEATHER_TOOLS)
    assert cut_off.kind == "error", cut_off


# --- MiniCPM-5: untagged <function name="NAME"><param name="P">V</param></function> calls ------------------


def _minicpm(call: ToolCall) -> str:
    """A call as MiniCPM-5 writes it (vLLM's minicpm5 parser): strings as they are, others as JSON."""
    parameters = "".join(
        f'<param name="{key}">{value if isinstance(value, str) else json.dumps(value)}</param>'
        for key, value in call.arguments.items()
    )
    return f'<function name="{call.name}">{parameters}</function>'


@pytest.mark.parametrize(
    ("output", "text"),
    [
        (f"{_minicpm(XML_CALL)}\n{_minicpm(TIME)}\n", None),
        (f"Head\n{_minicpm(XML_CALL)}\nTXT\n{_minicpm(TIME)}\nTail\n", "Head\nTXT\nTail"),
    ],
)
def test_minicpm_calls_are_calls_typed_by_the_schema(output: str, text: str | None) -> None:
    """MiniCPM-5's untagged calls were read as a plain-text answer and earned a clarification label's
    reward."""
    from toolcall.reward import reward

    tools = [_xml_tool(), WEATHER_TOOLS[1]]
    parsed = parse_output(output, tools)
    assert parsed.error is None and parsed.action == Action(calls=[XML_CALL, TIME]), parsed.error
    assert parsed.text == text and "minicpm_calls" in parsed.repairs
    assert reward(tools, (), Action(text="Which city do you mean?"), output) == 0


def test_a_minicpm_cdata_value_is_its_content_and_a_cut_off_call_a_failure() -> None:
    cdata = '<function name="get_weather"><param name="city"><![CDATA[New\nYork]]></param></function>'
    parsed = parse_output(cdata, WEATHER_TOOLS)
    assert parsed.action == Action(calls=[ToolCall(name="get_weather", arguments={"city": "New\nYork"})])
    cut_off = parse_output(_minicpm(PARIS)[:45], WEATHER_TOOLS)
    assert cut_off.kind == "error" and "cut off" in (cut_off.error or ""), cut_off.error
    prose = 'MiniCPM writes <function name="f"> tags around its calls.'
    assert parse_output(prose, WEATHER_TOOLS).action == Action(text=prose)


# --- XML argument values: only Qwen3-Coder's template frames them in newlines ------------------------------

CODE = "    def f():\n        return 1\n"
WRITE_FILE = ToolCall(name="write_file", arguments={"content": CODE})


@pytest.mark.parametrize(
    "output",
    [
        _glm(WRITE_FILE),
        _minimax_m2(WRITE_FILE),
        _dsml(WRITE_FILE),
        _qwen3_coder(WRITE_FILE),  # framed: "<parameter=content>\n…\n</parameter>"
    ],
)
def test_a_string_value_keeps_its_own_edge_newlines(output: str) -> None:
    """GLM's, MiniMax-M2's and DSML's templates write a value as it is, but one newline was cut from
    each end of every XML value (only Qwen3-Coder frames its values so): a code argument lost its
    last newline, and the call no longer matched its label."""
    tool = _tool("write_file", content="string")
    parsed = parse_output(output, [tool])
    assert parsed.error is None and parsed.action == Action(calls=[WRITE_FILE]), parsed.error


# --- Upstage Solar Open 2: GLM-4.5's calls in <|tool_call:start|> and <|tool_arg:…|> tokens ----------------


def _solar(call: ToolCall) -> str:
    """A call as Solar Open 2 writes it (vLLM's solar_open2 parser): strings as they are, others JSON."""
    arguments = "".join(
        f"<|tool_arg:start|>{key}<|tool_arg:value|>"
        f"{value if isinstance(value, str) else json.dumps(value)}<|tool_arg:end|>\n"
        for key, value in call.arguments.items()
    )
    return f"<|tool_call:start|>{call.name}\n{arguments}<|tool_call:end|>"


def test_solar_open2_calls_are_calls_typed_by_the_schema_and_its_trace_the_trace() -> None:
    """Solar Open 2's calls and trace were read as a plain-text answer (a clarification's reward)."""
    from toolcall.reward import reward

    tools = [_xml_tool(), WEATHER_TOOLS[1]]
    output = f"<|think:start|>Weather, then time.<|think:end|>Sure.{_solar(XML_CALL)}\n{_solar(TIME)}"
    parsed = parse_output(output, tools)
    assert parsed.error is None and parsed.action == Action(calls=[XML_CALL, TIME]), parsed.error
    assert parsed.text == "Sure." and parsed.think == "Weather, then time."
    assert "solar_calls" in parsed.repairs
    assert reward(tools, (), Action(text="Which city do you mean?"), output) == 0
    no_arguments = parse_output("<|tool_call:start|>get_time\n<|tool_call:end|>", WEATHER_TOOLS)
    assert no_arguments.action == Action(calls=[ToolCall(name="get_time", arguments={})])


def test_a_cut_off_solar_open2_call_is_a_failure_never_a_text_answer() -> None:
    parsed = parse_output(f"Let me check.{_solar(PARIS)[:60]}", WEATHER_TOOLS)
    assert parsed.kind == "error", parsed
    answer = parse_output("<|think:start|>No city given.<|think:end|>Which city?", WEATHER_TOOLS)
    assert answer.action == Action(text="Which city?") and answer.think == "No city given."


# --- MBZUAI K2: Hy3's wrapper and GLM-form blocks with "ifm|" in every tag ----------------------------------


def _ifm(plain: str) -> str:
    for tag in ("tool_calls", "tool_call", "arg_key", "arg_value"):
        plain = plain.replace(f"<{tag}>", f"<ifm|{tag}>").replace(f"</{tag}>", f"</ifm|{tag}>")
    return plain


@pytest.mark.parametrize(
    ("output", "calls", "text"),
    [
        (_ifm(f"Before <tool_calls>{_glm(XML_CALL)}\n{_glm(TIME)}</tool_calls>"), [XML_CALL, TIME], "Before"),
        (
            _ifm(
                '<tool_calls><tool_call>{"name": "get_time", "arguments": {"zone": "CET"}}'
                "</tool_call></tool_calls>"
            ),
            [TIME],
            None,
        ),
    ],
)
def test_k2_ifm_calls_are_calls(output: str, calls: list[ToolCall], text: str | None) -> None:
    """MBZUAI K2's calls (vLLM's k2_horizon parser) were read as a plain-text answer (the JSON one a
    failure "a tool call amid text")."""
    parsed = parse_output(output, [_xml_tool(), WEATHER_TOOLS[1]])
    assert parsed.error is None and parsed.action == Action(calls=calls), parsed.error
    assert parsed.text == text
    cut_off = parse_output(_ifm(f"<tool_calls>{_glm(PARIS)}"), WEATHER_TOOLS)
    assert cut_off.kind == "error" and "cut off" in (cut_off.error or ""), cut_off.error


@pytest.mark.parametrize(
    "output",
    [
        '<think>Let me search.</think>\n<tool: function>\nterminal find . -name "*.py"\n</tool>\n',
        "preamble\n<tool: function>\nterminal echo hi\n</tool>\n<tool: function>\nterminal echo bye\n</tool>",
    ],
)
def test_a_cwm_tool_call_is_a_failure_never_a_text_answer(output: str) -> None:
    """Meta CWM's calls (vLLM's cwm parser: a tool's raw text input in <tool: function>) were read as a
    plain-text answer and earned a clarification label's reward. Which parameter the raw text fills is
    the tool's own convention, so they are not read: a failure that names the format."""
    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.kind == "error" and "CWM" in (parsed.error or ""), parsed


# --- PLaMo 3: calls in <|plamo:…:plamo|> tags, a name then JSON arguments ----------------------------------


def _plamo3(*calls: ToolCall) -> str:
    """Calls as PLaMo 3 writes them (vLLM's plamo3 parser)."""

    def tag(name: str) -> str:
        return f"<|plamo:{name}:plamo|>"

    requests = "".join(
        f"{tag('begin_tool_request')}{tag('begin_tool_name')}{call.name}{tag('end_tool_name')}"
        f"{tag('begin_tool_arguments')}<|plamo:constrain|>json<|plamo:msg|>{json.dumps(call.arguments)}"
        f"{tag('end_tool_arguments')}{tag('end_tool_request')}"
        for call in calls
    )
    return f"{tag('begin_tool_requests')}{requests}{tag('end_tool_requests')}"


def test_plamo3_calls_are_calls_and_its_trace_the_trace() -> None:
    """PLaMo 3's calls and trace were read as a plain-text answer (a clarification label's reward)."""
    from toolcall.reward import reward

    output = (
        "<|plamo:begin_think:plamo|>Weather, then time.<|plamo:end_think:plamo|>"
        f"Checking the weather.{_plamo3(PARIS, TIME)}<|plamo:tag|>"
    )
    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.error is None and parsed.action == Action(calls=[PARIS, TIME]), parsed.error
    assert parsed.text == "Checking the weather." and parsed.think == "Weather, then time."
    assert parsed.repairs == ["plamo3_calls"]
    assert reward(WEATHER_TOOLS, (), Action(text="Which city do you mean?"), output) == 0


@pytest.mark.parametrize(
    "output",
    [
        _plamo3(PARIS, TIME).removesuffix("<|plamo:end_tool_requests:plamo|>"),  # more calls may follow
        _plamo3(PARIS)[:200],
    ],
)
def test_a_cut_off_plamo3_call_is_a_failure_never_a_text_answer(output: str) -> None:
    parsed = parse_output(f"Before tools.{output}", WEATHER_TOOLS)
    assert parsed.kind == "error" and "PLaMo 3" in (parsed.error or ""), parsed.error


# --- GigaChat 3.5: DSML's calls with ｜GCML｜ in every tag -------------------------------------------------


def _gcml(*calls: ToolCall) -> str:
    return _dsml_v4(*calls).replace(_DSML, "｜GCML｜")


@pytest.mark.parametrize(
    ("output", "text"),
    [(_gcml(XML_CALL, TIME), None), (f"I will check.{_gcml(XML_CALL, TIME)}", "I will check.")],
)
def test_gigachat35_gcml_calls_are_calls_typed_as_written(output: str, text: str | None) -> None:
    """GigaChat 3.5's calls (vLLM's gigachat35 parser: DSML with ｜GCML｜) were read as a plain-text
    answer and earned a clarification label's reward."""
    parsed = parse_output(output)
    assert parsed.error is None and parsed.action == Action(calls=[XML_CALL, TIME]), parsed.error
    assert parsed.text == text and "gcml_calls" in parsed.repairs
    cut_off = parse_output(_gcml(PARIS, TIME).removesuffix("</｜GCML｜tool_calls>"))
    assert cut_off.kind == "error" and "cut off" in (cut_off.error or ""), cut_off.error


# --- StepFun Step-Audio 2: <tool_call>function\nNAME\n{ARGS}</tool_call> ----------------------------------


def test_step_audio2_typed_calls_are_calls() -> None:
    """Step-Audio 2's calls (vLLM's step_audio_2 parser) were a failure "not valid JSON"."""
    output = (
        'Let me check.<tool_call>function\nget_weather\n{"city": "Paris"}</tool_call>'
        '<tool_call>function\nget_time\n{"zone": "CET"}</tool_call>'
    )
    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.error is None and parsed.action == Action(calls=[PARIS, TIME]), parsed.error
    assert parsed.text == "Let me check." and "step_audio_calls" in parsed.repairs
    assert parse_output(output[:60], WEATHER_TOOLS).kind == "error"


# --- Granite's bare Python call after its text (vLLM's granite_pythonic parser) -----------------------------


@pytest.mark.parametrize(
    "output",
    [
        'Sure, let me check the weather.\nget_weather(city="London")',
        'Sure.\nget_weather(city="London")\nget_time(zone="CET")',
    ],
)
def test_a_bare_python_call_of_a_tool_after_text_is_a_failure_never_a_text_answer(output: str) -> None:
    """Granite writes a bare Python call after its text: with the call on a line of its own, naming
    one of the sample's tools, it was a plain-text answer (a clarification label's reward)."""
    parsed = parse_output(output, WEATHER_TOOLS)
    assert parsed.kind == "error" and "amid text" in (parsed.error or ""), parsed


def test_a_code_line_calling_no_tool_stays_a_text_answer() -> None:
    answer = "To plot it:\nplt.plot(x=1)\nThat draws the line."
    assert parse_output(answer, WEATHER_TOOLS).action == Action(text=answer)
