"""The EDDE INPUT:/OUTPUT: parser."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolcall.expansion import parse_expansion
from toolcall.specs import ToolSpec
from toolcall.types import Action, Message, ToolCall

REQUEST = 'Log me in as "jane.doe" with password "Secure#2024". Then, show me my open tickets.'
FIGURE_15 = f"""INPUT: USER: {REQUEST}
OUTPUT: <tool_call>
{{"name": "ticket_login", "arguments": {{"username": "jane.doe", "password": "Secure#2024"}}}}
</tool_call>
<tool_call>
{{"name": "get_user_tickets", "arguments": {{"status": "open"}}}}
</tool_call>"""


def test_figure_15_style_sample() -> None:
    parsed = parse_expansion(FIGURE_15)
    assert parsed.error is None
    assert parsed.messages == [
        Message(
            role="user",
            content=REQUEST,
        )
    ]
    assert parsed.action == Action(
        calls=[
            ToolCall(name="ticket_login", arguments={"username": "jane.doe", "password": "Secure#2024"}),
            ToolCall(name="get_user_tickets", arguments={"status": "open"}),
        ]
    )


def test_multi_turn_input_with_calls_and_tool_results() -> None:
    raw = """<think>Let me design it.</think>
**INPUT:**
USER: Convert 100 EUR to USD.
ASSISTANT: <tool_call>
{"name": "convert", "arguments": {"amount": 100, "base": "EUR", "symbols": "USD"}}
</tool_call>
TOOL: <tool_response>{"result": 108.2}</tool_response>
USER: And the same amount in GBP?
**OUTPUT:**
<tool_call>
{"name": "convert", "arguments": {"amount": 100, "base": "EUR", "symbols": "GBP"}}
</tool_call>"""
    parsed = parse_expansion(raw)
    assert parsed.error is None
    assert [m.role for m in parsed.messages] == ["user", "assistant", "tool", "user"]
    assert parsed.messages[1].tool_calls[0].arguments["symbols"] == "USD"
    assert parsed.messages[2].content == '{"result": 108.2}'
    assert parsed.action.calls[0].arguments["symbols"] == "GBP"


def test_bare_input_is_one_user_turn_and_text_output_is_allowed() -> None:
    parsed = parse_expansion(
        "INPUT: Book a table for four.\nOUTPUT: Which restaurant and time would you like?"
    )
    assert parsed.messages == [Message(role="user", content="Book a table for four.")]
    assert parsed.action == Action(text="Which restaurant and time would you like?")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("OUTPUT: <tool_call>{}</tool_call>", "no INPUT"),
        ("INPUT: USER: hi", "no OUTPUT"),
        ("INPUT: [content]\nOUTPUT: x", "INPUT: is empty"),
        ("INPUT: USER: a\nOUTPUT: x\nINPUT: USER: b\nOUTPUT: y", "expected one sample"),
        ("INPUT: USER: hi\nOUTPUT: <tool_call>{bad</tool_call>", "OUTPUT: tool call: not valid JSON"),
        ("INPUT: ASSISTANT: hello\nOUTPUT: x", "no user turn"),
        ("INPUT: USER: hi\nASSISTANT: hello\nOUTPUT: x", "ends with an assistant turn"),
        ("INPUT: preface\nUSER: hi\nOUTPUT: x", "text before the first role marker"),
        ("INPUT: USER: hi\nOUTPUT:", "OUTPUT: empty output"),
    ],
)
def test_errors(raw: str, reason: str) -> None:
    parsed = parse_expansion(raw)
    assert parsed.error is not None and reason in parsed.error


_FARO = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Faro"}}\n</tool_call>'
_ROME = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>'


@pytest.mark.parametrize(
    "answer",
    [
        f"**Sample 1**\nINPUT: USER: Weather in Rome?\nOUTPUT: {_ROME}\n\n**Sample 2**\n"
        f"INPUT: USER: Weather in Faro?\nOUTPUT: {_FARO}",
        f"Here are three samples:\n\n### Example 1 (Rome)\n**INPUT:**\nUSER: Weather in Rome?\n\n"
        f"**OUTPUT:**\n{_ROME}\n\n### Example 2 (Faro)\n**INPUT:**\nUSER: Weather in Faro?\n\n"
        f"**OUTPUT:**\n{_FARO}\n\n### Example 3\n**INPUT:**\nUSER: Hi\n\n**OUTPUT:**\nHello!",
    ],
)
def test_of_several_numbered_samples_the_first_is_the_answer(answer: str) -> None:
    """Asked for one sample, a model lists two to four under "Sample 1", "Sample 2" headings: the
    answer was refused whole and the request's candidate lost, though every one of them answers it."""
    parsed = parse_expansion(answer)
    assert parsed.error is None, parsed.error
    assert parsed.messages == [Message(role="user", content="Weather in Rome?")]
    assert parsed.action == Action(calls=[ToolCall(name="get_weather", arguments={"city": "Rome"})])
    assert "first_of_several_samples" in parsed.repairs


def test_a_text_output_of_the_first_numbered_sample_ends_before_the_next() -> None:
    answer = (
        "Sample 1:\nINPUT: USER: Book Nopi for four.\nOUTPUT: What time would you like the table?\n\n"
        f"Sample 2:\nINPUT: USER: Weather in Faro?\nOUTPUT: {_FARO}"
    )
    parsed = parse_expansion(answer)
    assert parsed.error is None, parsed.error
    assert parsed.action == Action(text="What time would you like the table?")


@pytest.mark.parametrize(
    "answer",
    [
        # a draft and its revision: the first is not the answer
        f"Draft:\nINPUT: USER: Weather?\nOUTPUT: {_ROME}\n\nRevised:\nINPUT: USER: Faro?\nOUTPUT: {_FARO}",
        # numbered out of order, or one heading for two samples
        f"Sample 1\nINPUT: USER: Rome?\nOUTPUT: {_ROME}\nSample 3\nINPUT: USER: Faro?\nOUTPUT: {_FARO}",
        f"Sample 1\nINPUT: USER: Weather in Rome?\nOUTPUT: {_ROME}\nINPUT: USER: Faro?\nOUTPUT: {_FARO}",
        # the second sample has no OUTPUT
        f"Sample 1\nINPUT: USER: Weather in Rome?\nOUTPUT: {_ROME}\nSample 2\nINPUT: USER: Faro?",
    ],
)
def test_several_samples_not_listed_as_numbered_samples_are_refused(answer: str) -> None:
    parsed = parse_expansion(answer)
    assert parsed.action is None and parsed.error is not None and "expected one sample" in parsed.error


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(raw: str) -> None:
    parsed = parse_expansion(raw)
    assert (parsed.error is None) == (parsed.action is not None)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "INPUT:",
                "OUTPUT:",
                "USER:",
                "ASSISTANT:",
                "TOOL:",
                "\n",
                "hi",
                "<tool_call>",
                "</tool_call>",
                "{}",
            ]
        ),
        max_size=30,
    )
)
def test_marker_soup_never_raises(pieces: list[str]) -> None:
    parse_expansion(" ".join(pieces))


CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>'


@pytest.mark.parametrize(
    "answer",
    [
        # the prompt shows "INPUT: [New conversation ...]": models copy the brackets
        f"INPUT: [USER: What is the weather in Rome?]\nOUTPUT: {CALL}",
        f"INPUT:\nUSER: What is the weather in Rome?\n\n---\n\nOUTPUT:\n{CALL}",
        f"INPUT:\n```\nUSER: What is the weather in Rome?\n```\nOUTPUT:\n```\n{CALL}\n```",
        f'INPUT: USER: "What is the weather in Rome?"\nOUTPUT: {CALL}',
        f"INPUT:\nUSER: “What is the weather in Rome?”\nOUTPUT:\n{CALL}\n---",
    ],
)
def test_wrapping_a_generator_adds_is_not_part_of_the_sample(answer: str) -> None:
    """The brackets, a rule or quotes went into the user's message ("[USER: ...]", "...\\n\\n---"),
    and the sample into training."""
    parsed = parse_expansion(answer)
    assert parsed.error is None, parsed.error
    assert [(m.role, m.content) for m in parsed.messages] == [("user", "What is the weather in Rome?")]
    assert parsed.action is not None and parsed.action.calls[0].arguments == {"city": "Rome"}


def test_quotes_and_rules_inside_a_turn_stay() -> None:
    parsed = parse_expansion(
        f'INPUT:\nUSER: Say "hi" to "Rome"\nASSISTANT: {CALL}\nTOOL: a\n---\nb\nOUTPUT: {CALL}'
    )
    assert [m.content for m in parsed.messages] == ['Say "hi" to "Rome"', "", "a\n---\nb"]


def test_samples_drafted_in_a_trace_the_template_opened_are_not_the_answer() -> None:
    """DeepSeek-R1 or QwQ served without a reasoning parser: the template wrote ``<think>`` into the
    prompt, so the answer holds only the close. The drafts in the trace were counted as further samples
    ("expected one sample, found 2 INPUT"), and the answer was lost."""
    draft = CALL.replace("Rome", "Paris")
    answer = (
        "Okay, the error was a missing city. A first draft:\n\n"
        f"INPUT: USER: Weather in Paris?\nOUTPUT: {draft}\n\n"
        "Hmm, the scenario asks for another city, and the OUTPUT: must follow a real question.\n"
        f"</think>\n\nINPUT: USER: What is the weather in Rome?\nOUTPUT: {CALL}"
    )
    parsed = parse_expansion(answer)
    assert parsed.error is None, parsed.error
    assert [(m.role, m.content) for m in parsed.messages] == [("user", "What is the weather in Rome?")]
    assert parsed.action is not None and parsed.action.calls[0].arguments == {"city": "Rome"}


def test_a_sample_drafted_in_a_trace_that_never_closed_is_no_answer() -> None:
    """Qwen3 in thinking mode stopped inside its trace, after drafting a sample it was still revising:
    the draft was read as the answer."""
    answer = (
        "<think>\nThe error was a missing city argument. Draft:\n\n"
        f"INPUT: USER: What is the weather in Rome?\nOUTPUT: {CALL}\n\n"
        "Wait, the scenario focus asks for a multi-turn conversation, so the user should first"
    )
    parsed = parse_expansion(answer)
    assert parsed.action is None and parsed.messages == []
    assert parsed.error is not None and "reasoning trace never ended" in parsed.error


@pytest.mark.parametrize(
    "commentary",
    [
        "**Explanation:** The user gave no time, so the assistant must ask before calling book_table.",
        "### Explanation\nThe user gave no time, so the assistant must ask.",
        "Note: this sample addresses the missing-argument error of the original.",
        "This sample teaches the model to ask for the missing time instead of inventing one.",
        "---\n\n*Error pattern: calling book_table with an invented time.*",
        "Error pattern addressed: inventing a required argument.",
        # Kimi K2, GPT-4.1, Qwen3 and Llama 3.3 name theirs otherwise
        "### Why this sample\nThe time is required and was not given.",
        "**Why this works:** the assistant asks instead of inventing a time.",
        "**Key features of this sample:**\n- a required value missing\n- a clarifying question",
        "*Scenario focus: a missing required value.*",
        "✅ This demonstrates asking for the missing time.",
        # Llama 3.3 and Mistral Large
        "In this example, the assistant asks for the missing time instead of guessing it.",
        "(Note: no tool is called because `time` is required and missing.)",
    ],
)
def test_commentary_after_a_text_output_is_not_the_assistants_answer(commentary: str) -> None:
    """GPT-4o and Claude add a paragraph about the sample after it: after a clarification question it
    was kept as part of the label's answer, and the assistant was trained to explain its own sample."""
    question = "Which time would you like the table for?\nWe have slots at 19:00 and 21:00."
    parsed = parse_expansion(
        f"INPUT: USER: Book a table for four at Nopi.\nOUTPUT: {question}\n\n{commentary}"
    )
    assert parsed.error is None, parsed.error
    assert parsed.action == Action(text=question)
    assert "trailing_commentary" in parsed.repairs


@pytest.mark.parametrize(
    "listed",
    [
        '- get_weather(city="Rome")\n- get_forecast(city="Rome", days=3)',
        '1. `get_weather(city="Rome")`\n2. `get_forecast(city="Rome", days=3)`',
    ],
)
def test_calls_listed_as_python_bullets_are_the_calls(listed: str) -> None:
    """GPT-4o lists parallel calls as bullets ("- get_weather(city=\"Rome\")"): the list was kept as the
    assistant's text reply, a sample that trains the assistant to write its calls to the user."""
    parsed = parse_expansion(f"INPUT: Weather and 3-day forecast for Rome?\nOUTPUT:\n{listed}")
    assert parsed.error is None, parsed.error
    assert parsed.action == Action(
        calls=[
            ToolCall(name="get_weather", arguments={"city": "Rome"}),
            ToolCall(name="get_forecast", arguments={"city": "Rome", "days": 3}),
        ]
    )
    assert "bulleted_calls" in parsed.repairs


def test_a_bulleted_reply_with_words_stays_a_reply() -> None:
    reply = "- Call me (any time).\n- Email works too."
    parsed = parse_expansion(f"INPUT: How can I reach you?\nOUTPUT: {reply}")
    assert parsed.action == Action(text=reply)


def test_calls_in_a_fence_with_a_paragraph_after_it_are_the_output() -> None:
    """DeepSeek fences its call as JSON and explains it below: the OUTPUT did not read ("a tool call
    amid text, without <tool_call> tags") and the sample was lost."""
    call = '{"name": "get_weather", "arguments": {"city": "Rome"}}'
    parsed = parse_expansion(
        f"INPUT: What is the weather in Rome?\nOUTPUT:\n```json\n{call}\n```\n\nThe call passes the city."
    )
    assert parsed.error is None, parsed.error
    assert parsed.action == Action(calls=[ToolCall(name="get_weather", arguments={"city": "Rome"})])
    assert "trailing_commentary" in parsed.repairs


@pytest.mark.parametrize(
    "written",
    [
        '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Rome"}}]\n\nThis passes the city.',
        f"{CALL}\n\n{_FARO}\n\nBoth cities are asked for, so both are called.",
    ],
)
def test_calls_of_any_format_with_a_paragraph_after_them_are_the_output(written: str) -> None:
    """Mistral's [TOOL_CALLS] with a sentence after it did not read ("a tool-call marker without a
    readable call after it") and the sample was lost; every call before the words is kept."""
    parsed = parse_expansion(f"INPUT: Weather in Rome and Faro?\nOUTPUT: {written}")
    assert parsed.error is None, parsed.error
    assert parsed.action is not None and parsed.action.calls[0].arguments == {"city": "Rome"}
    assert len(parsed.action.calls) == written.count('{"name"')


def test_words_with_a_call_shape_after_the_calls_leave_the_output_unread() -> None:
    written = (
        '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Rome"}}]\n\nOr get_weather(city="Faro").'
    )
    parsed = parse_expansion(f"INPUT: Weather in Rome?\nOUTPUT: {written}")
    assert parsed.action is None and parsed.error is not None


def test_a_text_reply_with_a_code_block_and_words_after_it_stays_whole() -> None:
    reply = "Run this:\n```bash\nls -la\n```\n\nIt lists every file."
    parsed = parse_expansion(f"INPUT: How do I list files?\nOUTPUT: {reply}")
    assert parsed.action == Action(text=reply)
    reply = '```json\n{"a": 1}\n```\n\nThat is valid JSON.'
    parsed = parse_expansion(f'INPUT: Is {{"a": 1}} valid JSON?\nOUTPUT: {reply}')
    assert parsed.action == Action(text=reply)


@pytest.mark.parametrize("label", ["Explanation:", "**Rationale:**", "*Explanation*:"])
def test_an_explanation_on_the_line_after_a_text_reply_is_not_its_answer(label: str) -> None:
    """Without a blank line before it, "Explanation: the time is required." stayed in the reply: the
    assistant trained to explain its own sample to the user."""
    question = "What time would you like the table for?"
    parsed = parse_expansion(
        f"INPUT: Book a table for four at Nopi.\nOUTPUT: {question}\n{label} time is required."
    )
    assert parsed.error is None, parsed.error
    assert parsed.action == Action(text=question)
    assert "trailing_commentary" in parsed.repairs


@pytest.mark.parametrize(
    "second",
    [
        "I can search hotels in Oslo if you like.",
        "**Tip:** I can search hotels in Oslo instead.",
        "This is all these tools can do, sorry.",
        "Why not take the train? I can check its times.",
    ],
)
def test_a_text_output_of_several_paragraphs_stays_whole(second: str) -> None:
    answer = f"I can't book flights with these tools.\n\n{second}"
    parsed = parse_expansion(f"INPUT: USER: Book me a flight to Oslo.\nOUTPUT: {answer}")
    assert parsed.action == Action(text=answer) and parsed.repairs == []


def test_a_note_before_the_calls_does_not_cut_them_off() -> None:
    parsed = parse_expansion(
        f"INPUT: USER: What is the weather in Rome?\nOUTPUT: Sure.\n\nNote: checking.\n{CALL}"
    )
    assert parsed.action is not None and parsed.action.calls[0].arguments == {"city": "Rome"}
    assert "trailing_commentary" not in parsed.repairs


@pytest.mark.parametrize(
    "output",
    [
        "ASSISTANT: Which restaurant, and for what time?",
        "\n**Assistant:** Which restaurant, and for what time?",
        'ASSISTANT: "Which restaurant, and for what time?"',
        "“Which restaurant, and for what time?”",
    ],
)
def test_the_assistant_marker_and_quotes_of_a_text_output_are_not_its_answer(output: str) -> None:
    """The INPUT's turns carry role markers, so models write the OUTPUT as one more turn: for a text
    answer (a clarification), "ASSISTANT: " and the quotes became part of the label's text."""
    parsed = parse_expansion(f"INPUT: USER: Book a table for four.\nOUTPUT: {output}")
    assert parsed.error is None, parsed.error
    assert parsed.action == Action(text="Which restaurant, and for what time?")


def test_an_output_that_goes_on_with_the_conversation_is_its_first_step() -> None:
    """The generator wrote the clarification exchange into the OUTPUT: its call answered "Rome", which
    the INPUT's user never said, and was read as the next step after "What's the weather?". The next
    step is the OUTPUT's first turn; an OUTPUT that opens with another role's turn has none."""
    raw = f"INPUT: USER: What's the weather?\nOUTPUT:\nASSISTANT: Which city?\nUSER: Rome\nASSISTANT: {CALL}"
    parsed = parse_expansion(raw)
    assert parsed.error is None and parsed.action == Action(text="Which city?")
    assert "output_continued" in parsed.repairs
    calls_first = parse_expansion(
        f"INPUT: USER: Weather in Rome?\nOUTPUT: {CALL}\nTOOL: {{}}\nASSISTANT: Sunny."
    )
    assert calls_first.action is not None and calls_first.action.calls[0].arguments == {"city": "Rome"}
    user_first = parse_expansion(f"INPUT: USER: What's the weather?\nOUTPUT:\nUSER: Rome\nASSISTANT: {CALL}")
    assert user_first.action is None and user_first.error is not None
    assert "starts with a USER: turn" in user_first.error


OSLO = CALL.replace("Rome", "Oslo")


@pytest.mark.parametrize(
    "result_turn",
    [
        'USER: <tool_response>\n{"temp": 3}\n</tool_response>',  # Qwen's template puts results in a user turn
        '<tool_response>\n{"temp": 3}\n</tool_response>',  # no marker: straight after the calls
        'FUNCTION RESPONSE: {"temp": 3}',  # glaive's name
        'OBSERVATION: {"temp": 3}',
        'Tool Result: {"temp": 3}',
    ],
)
def test_a_tool_result_written_the_way_other_formats_do_is_a_tool_turn(result_turn: str) -> None:
    """The result became a user message, or text of the assistant turn that made the call (its
    content "FUNCTION RESPONSE: {...}"), and the sample was accepted with no tool turn."""
    raw = f"INPUT:\nUSER: Weather in Oslo?\nASSISTANT: {OSLO}\n{result_turn}\n"
    raw += f"USER: And in Rome?\nOUTPUT: {CALL}"
    parsed = parse_expansion(raw)
    assert parsed.error is None, parsed.error
    assert [(m.role, m.content) for m in parsed.messages] == [
        ("user", "Weather in Oslo?"),
        ("assistant", ""),
        ("tool", '{"temp": 3}'),
        ("user", "And in Rome?"),
    ]
    assert parsed.messages[1].tool_calls == [ToolCall(name="get_weather", arguments={"city": "Oslo"})]


def test_the_placeholders_brackets_around_a_text_output_are_not_its_answer() -> None:
    """The prompt shows ``OUTPUT: [Correct tool calls …]``; a model copying the brackets around a
    clarification had them trained as part of the assistant's answer."""
    parsed = parse_expansion("INPUT: [USER: Book a table for four.]\nOUTPUT: [Which restaurant, and when?]")
    assert parsed.error is None, parsed.error
    assert parsed.action == Action(text="Which restaurant, and when?")
    kept = parse_expansion("INPUT: USER: Book a table.\nOUTPUT: [Nopi] or [Dishoom]: which one?")
    assert kept.action == Action(text="[Nopi] or [Dishoom]: which one?")


@pytest.mark.parametrize(
    "answer",
    [
        f"**INPUT (single turn):**\nUSER: What is the weather in Rome?\n\n**OUTPUT (tool calls):**\n{CALL}",
        f"### INPUT (conversation)\nUSER: What is the weather in Rome?\n### OUTPUT (tool calls)\n{CALL}",
    ],
)
def test_section_labels_with_a_qualifier_in_parentheses_are_read(answer: str) -> None:
    """GPT-4o and Claude qualify the headings ("INPUT (single turn):"): the answer was lost as having
    "no INPUT: section"."""
    parsed = parse_expansion(answer)
    assert parsed.error is None, parsed.error
    assert [(m.role, m.content) for m in parsed.messages] == [("user", "What is the weather in Rome?")]
    assert parsed.action is not None and parsed.action.calls[0].arguments == {"city": "Rome"}


@pytest.mark.parametrize(
    "note",
    [
        "\n\n(The user names the city, so it must be passed.)",
        "\n\n**Note:** the user gives the city.",
        "\n*Scenario: the user gives the city.*",
        "\n\nExplanation: a single-turn request.",
        "\n\n*(This sample tests the city.)*",
    ],
)
def test_a_generators_note_after_the_users_words_is_not_theirs(note: str) -> None:
    """Models annotate the INPUT ("(The user names the city, so it must be passed.)"): the note was
    kept in the user's message, a sample that trains on words no user writes."""
    parsed = parse_expansion(f"INPUT:\nUSER: What is the weather in Rome?{note}\n\nOUTPUT:\n{CALL}")
    assert parsed.error is None, parsed.error
    assert parsed.messages == [Message(role="user", content="What is the weather in Rome?")]
    assert "input_commentary" in parsed.repairs


@pytest.mark.parametrize(
    "own",
    [
        "\n\nNote: I need it in Celsius.",
        "\n(asking for my mum, the user of this account)",
        "\n\n(the cheap one)",
    ],
)
def test_a_users_own_note_stays_in_their_turn(own: str) -> None:
    parsed = parse_expansion(f"INPUT:\nUSER: What is the weather in Rome?{own}\n\nOUTPUT:\n{CALL}")
    assert parsed.messages == [Message(role="user", content=f"What is the weather in Rome?{own}")]


def test_a_turn_written_without_its_marker_after_a_json_result_is_refused() -> None:
    """The user's next question written right after a tool's JSON result, with no USER: marker, was
    kept as part of the tool's result: the sample ended on the tool's turn with the user's words in it."""
    answer = (
        f"INPUT:\nUSER: Weather in Faro?\nASSISTANT: {_weather_call('Faro')}\n"
        f'TOOL: {{"temp": 21}}\nAnd in Rome?\nOUTPUT: {CALL}'
    )
    parsed = parse_expansion(answer)
    assert parsed.action is None and parsed.error is not None
    assert "text after its JSON result" in parsed.error


def test_a_json_result_over_several_lines_is_one_result() -> None:
    answer = (
        f"INPUT:\nUSER: Weather in Faro?\nASSISTANT: {_weather_call('Faro')}\n"
        f'TOOL: {{\n  "temp": 21\n}}\nUSER: And Rome?\nOUTPUT: {CALL}'
    )
    parsed = parse_expansion(answer)
    assert parsed.error is None, parsed.error
    assert parsed.messages[2].content == '{\n  "temp": 21\n}'


def test_a_tool_turn_keeps_the_name_the_prompt_shows_it_with() -> None:
    """The original sample is shown with "TOOL (get_weather): …" and generators copy it: the name
    was dropped, so two parallel results could no longer be told apart."""
    oslo, rome = CALL.replace("Rome", "Oslo"), CALL
    raw = (
        f"INPUT:\nUSER: Weather in Oslo, and the time there?\nASSISTANT: {oslo}\n"
        '<tool_call>\n{"name": "get_time", "arguments": {"city": "Oslo"}}\n</tool_call>\n'
        'TOOL (get_weather): {"temp": 3}\nTOOL (get_time): {"time": "09:00"}\n'
        f"USER: And the weather in Rome?\nOUTPUT: {rome}"
    )
    parsed = parse_expansion(raw)
    assert parsed.error is None, parsed.error
    assert [(m.role, m.name) for m in parsed.messages[2:4]] == [("tool", "get_weather"), ("tool", "get_time")]


@pytest.mark.parametrize("line", ["- Tool: a cordless drill", "Function: f(x) = x^2 + 1", "TOOL: the wrench"])
def test_a_user_line_that_looks_like_a_tool_marker_is_refused_not_split_off(line: str) -> None:
    """A line of the user's message that reads as a tool marker split the turn: the rest of the
    request became a "tool result" answering no call, and the sample was accepted cut in two."""
    parsed = parse_expansion(f"INPUT:\nUSER: Find me a shop that rents:\n{line}\nOUTPUT: {CALL}")
    assert parsed.action is None and parsed.error is not None and "answers no call" in parsed.error


def test_a_magistral_trace_with_a_drafted_sample_is_not_the_answer() -> None:
    """Magistral writes its trace as ``[THINK]…[/THINK]``: a sample drafted in it counted as a second
    one ("expected one sample"), and the answer was lost."""
    draft = CALL.replace("Rome", "Paris")
    answer = (
        f"[THINK]Draft:\nINPUT: USER: Weather in Paris?\nOUTPUT: {draft}\nNo, use Rome.[/THINK]\n"
        f"INPUT: USER: What is the weather in Rome?\nOUTPUT: {CALL}"
    )
    parsed = parse_expansion(answer)
    assert parsed.error is None, parsed.error
    assert [(m.role, m.content) for m in parsed.messages] == [("user", "What is the weather in Rome?")]
    assert parsed.action is not None and parsed.action.calls[0].arguments == {"city": "Rome"}


def test_a_text_answer_with_a_line_like_a_tool_marker_stays_whole() -> None:
    """A tool turn only follows calls: after a text answer, "- Tool: a drill" is a line of that answer,
    not a turn the model went on to write."""
    answer = "You will need:\n- Tool: a cordless drill\n- Time: about two hours"
    parsed = parse_expansion(f"INPUT: USER: What do I need to hang a shelf?\nOUTPUT: {answer}")
    assert parsed.action == Action(text=answer) and parsed.repairs == []


def test_a_text_answer_with_a_line_like_a_user_marker_stays_whole() -> None:
    """A final answer that lists an account ("User: jane.doe") was cut at that line as if the model had
    gone on with the dialogue, and the label became "I found this account:"."""
    answer = "I found this account:\nUser: jane.doe\nStatus: active"
    parsed = parse_expansion(f"INPUT: USER: Who owns ticket 4411?\nOUTPUT: {answer}")
    assert parsed.action == Action(text=answer) and parsed.repairs == []


def test_an_input_line_in_the_users_own_text_is_no_second_sample() -> None:
    """The prompt labels its sections in capitals: a user's "Input:" line is part of the user's turn,
    not a second INPUT section that made the answer "expected one sample"."""
    raw = (
        "INPUT:\nUSER: Please add these up.\nInput: the numbers 1, 2\nOutput: their sum\n"
        'OUTPUT:\n<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>'
    )
    parsed = parse_expansion(raw)
    assert parsed.error is None, parsed.error
    assert parsed.messages == [
        Message(role="user", content="Please add these up.\nInput: the numbers 1, 2\nOutput: their sum")
    ]
    assert parsed.action == Action(calls=[ToolCall(name="add", arguments={"a": 1, "b": 2})])
    # Labels all written in another case are still the sections.
    lower = parse_expansion(
        "**Input:**\nUSER: Add 1 and 2.\n**Output:**\n"
        '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>'
    )
    assert lower.error is None and lower.action == parsed.action, lower.error


def _weather_call(city: str) -> str:
    return f'<tool_call>\n{{"name": "get_weather", "arguments": {{"city": "{city}"}}}}\n</tool_call>'


def test_human_and_ai_markers_are_the_user_and_the_assistant() -> None:
    """A generator that wrote its INPUT as a Human:/AI: transcript (LangChain's, Anthropic's
    Human/Assistant) had it read as one user message, markers, calls and results included."""
    raw = (
        f"INPUT:\nHuman: What's the weather in Porto?\nAI: {_weather_call('Porto')}\n"
        'TOOL: <tool_response>{"temp": 20}</tool_response>\nAI: It is 20 °C in Porto.\n'
        f"Human: And in Faro?\nOUTPUT: AI: {_weather_call('Faro')}\nHuman: Thanks!\nAI: You're welcome."
    )
    parsed = parse_expansion(raw)
    assert parsed.error is None, parsed.error
    assert [(m.role, m.content) for m in parsed.messages] == [
        ("user", "What's the weather in Porto?"),
        ("assistant", ""),
        ("tool", '{"temp": 20}'),
        ("assistant", "It is 20 °C in Porto."),
        ("user", "And in Faro?"),
    ]
    assert parsed.messages[1].tool_calls == [ToolCall(name="get_weather", arguments={"city": "Porto"})]
    assert parsed.action == Action(calls=[ToolCall(name="get_weather", arguments={"city": "Faro"})])
    assert parsed.repairs == ["output_continued"]  # the thanks after the step are no part of it
    anthropic = f"INPUT:\nHuman: Weather in Porto?\n\nAssistant: {_weather_call('Porto')}\n\nHuman: Faro?"
    assert [m.role for m in parse_expansion(f"{anthropic}\nOUTPUT: {_weather_call('Faro')}").messages] == [
        "user",
        "assistant",
        "user",
    ]


@pytest.mark.parametrize(
    "user_text",
    [
        "Here is my glossary:\nAI: artificial intelligence\nML: machine learning\nWhich terms are missing?",
        "USER: Is the AI: section of my notes right?",
        "USER: My glossary:\nai: artificial intelligence\nAi: the same, capitalised",
    ],
)
def test_ai_in_a_users_own_text_is_no_marker(user_text: str) -> None:
    # An "AI:" mid-line, in another case, or in an INPUT that is no transcript is the user's text.
    parsed = parse_expansion(f"INPUT: {user_text}\nOUTPUT: Which terms do you expect?")
    assert parsed.error is None, parsed.error
    assert [m.role for m in parsed.messages] == ["user"]
    assert parsed.messages[0].content == user_text.removeprefix("USER: ")


def test_an_input_written_as_the_chat_apis_message_list_is_read_as_its_messages() -> None:
    """A generator that wrote its INPUT as OpenAI messages had the JSON text kept as one user message:
    the sample would train on a user who types JSON, with the earlier call lost as context."""
    listed = [
        {"role": "user", "content": "What's the weather in Porto?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Porto"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 20}'},
        {"role": "assistant", "content": "It is 20 °C in Porto."},
        {"role": "user", "content": "And in Faro?"},
    ]
    for written in (json.dumps(listed), "```json\n" + json.dumps(listed, indent=2) + "\n```"):
        parsed = parse_expansion(f"INPUT: {written}\nOUTPUT: {_weather_call('Faro')}")
        assert parsed.error is None, parsed.error
        assert [(m.role, m.content, m.name) for m in parsed.messages] == [
            ("user", "What's the weather in Porto?", None),
            ("assistant", "", None),
            ("tool", '{"temp": 20}', "get_weather"),  # named by the call it answers, as the reader does
            ("assistant", "It is 20 °C in Porto.", None),
            ("user", "And in Faro?", None),
        ]
        assert parsed.messages[1].tool_calls == [ToolCall(name="get_weather", arguments={"city": "Porto"})]
        assert parsed.action == Action(calls=[ToolCall(name="get_weather", arguments={"city": "Faro"})])
    # A Python literal, as some models write it, reads too.
    python_list = "[{'role': 'user', 'content': \"What's the weather in Faro?\"}]"
    parsed = parse_expansion(f"INPUT: {python_list}\nOUTPUT: {_weather_call('Faro')}")
    assert [(m.role, m.content) for m in parsed.messages] == [("user", "What's the weather in Faro?")]


@pytest.mark.parametrize(
    ("written", "why"),
    [
        ('[{"role": "robot", "content": "hi"}]', "unknown message role 'robot'"),
        ('[{"role": "user", "content": "hi"}, {"role": "tool", "content": "20"}]', "answers no call"),
        ('[{"role": "user", "content": "hi"', "the message list does not read"),
    ],
)
def test_a_message_list_that_does_not_read_is_refused_with_the_reason(written: str, why: str) -> None:
    parsed = parse_expansion(f"INPUT: {written}\nOUTPUT: {_weather_call('Faro')}")
    assert parsed.action is None and why in (parsed.error or ""), parsed.error


_PORTO = {"name": "get_weather", "arguments": {"city": "Porto"}}


@pytest.mark.parametrize(
    "answer",
    [
        # GPT-4.1 / DeepSeek asked for a sample, answering in JSON with the prompt's labels as keys
        json.dumps(
            {"input": "USER: Weather in Porto?", "output": f"<tool_call>\n{json.dumps(_PORTO)}\n</tool_call>"}
        ),
        "```json\n" + json.dumps({"INPUT": "Weather in Porto?", "OUTPUT": _PORTO}, indent=2) + "\n```",
        # keys named for what they hold, after a preface
        "Here is the new sample:\n```json\n"
        + json.dumps({"user_query": "Weather in Porto?", "tool_call": _PORTO})
        + "\n```",
        json.dumps([{"input": "Weather in Porto?", "output": _PORTO}]),  # a list of the one sample
        json.dumps(
            {
                "input": [{"content": "Weather in Porto?", "role": "user"}],
                "output": {
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Porto"}'},
                        }
                    ]
                },
            }
        ),
    ],
)
def test_an_answer_written_as_one_json_object_is_read_by_its_keys(answer: str) -> None:
    """A generator that answered with a JSON object ({"input": …, "output": …}) had it lost as
    "no INPUT: section"."""
    parsed = parse_expansion(answer)
    assert parsed.error is None, parsed.error
    assert parsed.messages == [Message(role="user", content="Weather in Porto?")]
    assert parsed.action == Action(calls=[ToolCall(name="get_weather", arguments={"city": "Porto"})])


@pytest.mark.parametrize(
    "answer",
    [
        '{"messages": [{"role": "user", "content": "Book Nopi for four."}], "label": "What time?"}',
        '{"dialogue": "USER: Book Nopi for four.", "answer": "What time?"}',
        '```json\n{"conversation": "Book Nopi for four.", "expected_response": "What time?"}\n```',
    ],
)
def test_a_json_answer_keyed_as_a_dataset_record_is_read(answer: str) -> None:
    """A JSON answer keyed as a dataset record ({"messages": […], "label": …}) read as having no INPUT
    section and the sample was lost."""
    parsed = parse_expansion(answer)
    assert parsed.error is None, parsed.error
    assert parsed.messages == [Message(role="user", content="Book Nopi for four.")]
    assert parsed.action == Action(text="What time?")


def test_of_a_json_list_of_samples_the_first_is_the_answer() -> None:
    """A JSON list of samples, asked for one, was refused whole ("expected one sample, found 2 samples
    written as JSON objects") though each of them answers the request, as numbered samples do."""
    samples = [{"input": "Weather in Porto?", "output": _PORTO}, {"input": "Weather in Faro?", "output": "x"}]
    parsed = parse_expansion(f"Here are two samples:\n```json\n{json.dumps(samples, indent=2)}\n```")
    assert parsed.error is None, parsed.error
    assert parsed.messages == [Message(role="user", content="Weather in Porto?")]
    assert parsed.action == Action(calls=[ToolCall(name="get_weather", arguments={"city": "Porto"})])
    assert "first_of_several_samples" in parsed.repairs


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ('{"input": "USER: Weather in Porto?", "output": {"name": "get_weath', "no INPUT"),  # cut off
        ('{"question": "Weather in Porto?", "answer": "Sunny"}', "no INPUT"),  # not the sample's parts
        ('{"input": "Weather?", "query": "Porto?", "output": "x"}', "no INPUT"),  # two inputs: which?
        ('{"input": [{"role": "robot", "content": "hi"}], "output": "x"}', "INPUT: the message list"),
        # one sample object after another (no list orders them): which one is meant is not ours to pick
        ('{"input": "Porto?", "output": "x"}\n{"input": "Faro?", "output": "y"}', "expected one sample"),
        ("[" * 5000 + "\n" + "{" * 5000, "no INPUT"),  # nested past what the decoder follows: no raise
        # a list of samples the budget cut in its second: its first is no answer
        ('[\n  {"input": "Porto?", "output": "x"},\n  {"input": "Faro?", "outp', "no INPUT"),
        ('{"input": "Porto?", "output": "x"}\n{"input": "Faro?", "outp', "expected one sample"),
    ],
)
def test_a_json_answer_that_is_no_one_sample_is_refused(answer: str, reason: str) -> None:
    parsed = parse_expansion(answer)
    assert parsed.action is None and parsed.error is not None and reason in parsed.error, parsed.error


@pytest.mark.parametrize(
    "filler", ["N/A", "n/a", "None", "null.", "[N/A]", "(none)", "—", "...", "ASSISTANT: N/A"]
)
def test_a_filler_output_is_no_answer(filler: str) -> None:
    """A generator that put its refusal under the INPUT heading and a filler under OUTPUT ("## INPUT\\nI
    can't generate this sample ...\\n## OUTPUT\\nN/A") had the refusal accepted as a user's request
    whose answer is the text "N/A"."""
    answer = f"## INPUT\nI can't generate this sample: the tools handle personal data.\n## OUTPUT\n{filler}"
    parsed = parse_expansion(answer)
    assert parsed.action is None and parsed.error is not None and "OUTPUT: is empty" in parsed.error, parsed
    assert parse_expansion(f"INPUT: {filler.removeprefix('ASSISTANT: ')}\nOUTPUT: Which city?").error == (
        "INPUT: is empty"
    )


@pytest.mark.parametrize("answer", ["No, it is not.", "None of the tools can book flights.", "Nah"])
def test_a_short_text_output_is_still_an_answer(answer: str) -> None:
    parsed = parse_expansion(f"INPUT: USER: Can you book me a flight?\nOUTPUT: {answer}")
    assert parsed.action == Action(text=answer)


_HANGZHOU = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "杭州"}}\n</tool_call>'
_BEIJING = _HANGZHOU.replace("杭州", "北京")


@pytest.mark.parametrize(
    "labels", [("INPUT：", "OUTPUT："), ("输入：", "输出："), ("**输入：**", "**输出：**")]
)
def test_roles_and_labels_named_in_chinese_are_read(labels: tuple[str, str]) -> None:
    """A GLM or Qwen generator writing a Chinese sample names the roles 用户/助手: the dialogue was kept
    as ONE user turn with the markers in it; labels written 输入/输出 gave no INPUT section."""
    dialogue = "用户：帮我订 Nopi 的桌子。\n助手：好的，几位？\n用户：4 位。"
    answer = f"{labels[0]}\n{dialogue}\n{labels[1]}\n助手：请问几点？"
    parsed = parse_expansion(answer)
    assert parsed.error is None, parsed.error
    assert [(m.role, m.content) for m in parsed.messages] == [
        ("user", "帮我订 Nopi 的桌子。"),
        ("assistant", "好的，几位？"),
        ("user", "4 位。"),
    ]
    assert parsed.action == Action(text="请问几点？")


@pytest.mark.parametrize(
    ("answer", "roles"),
    [
        (f"INPUT：USER：杭州天气怎么样？\nOUTPUT：{_HANGZHOU}", ["user"]),
        (
            f"INPUT:\nUSER：北京呢？\nASSISTANT：{_BEIJING}\nTOOL：晴\nUSER：杭州天气怎么样？\nOUTPUT:\n{_HANGZHOU}",
            ["user", "assistant", "tool", "user"],
        ),
    ],
)
def test_full_width_colons_after_labels_and_markers_are_colons(answer: str, roles: list[str]) -> None:
    """A generator writing a Chinese sample (ACEBench's zh seeds) put "：" after its labels and role
    markers: the answer was lost as "no INPUT: section", or its turns read as one user message."""
    parsed = parse_expansion(answer)
    assert parsed.error is None, parsed.error
    assert [m.role for m in parsed.messages] == roles
    assert parsed.messages[-1] == Message(role="user", content="杭州天气怎么样？")
    assert parsed.action == Action(calls=[ToolCall(name="get_weather", arguments={"city": "杭州"})])


@pytest.mark.parametrize(
    "answer",
    [
        "```\nINPUT: USER: Book a table for four at Nopi.\nOUTPUT: What time would you like the table?\n```",
        "```text\nINPUT: USER: Book a table for four at Nopi.\nOUTPUT: What time would you like the table?\n"
        "```\n\nIt teaches asking for a required value.",
        "Here is the sample:\n<sample>\nINPUT: USER: Book a table for four at Nopi.\n"
        "OUTPUT: What time would you like the table?\n</sample>",
    ],
)
def test_the_close_of_a_wrapper_around_the_whole_answer_is_no_part_of_a_text_output(answer: str) -> None:
    """An answer wrapped in a fence (DeepSeek-V3, Kimi K2) or a <sample> tag (Claude) with a text
    OUTPUT had the closing fence or tag kept as the last line of the assistant's answer."""
    parsed = parse_expansion(answer)
    assert parsed.error is None, parsed.error
    assert parsed.action == Action(text="What time would you like the table?")


@pytest.mark.parametrize(
    "output",
    [
        "Run this:\n```\nprint(1)\n```",  # no wrapper: the OUTPUT's own block stays whole
        "Run this:\n```python\nprint(1)\n```\nThen tell me.",
    ],
)
def test_a_code_block_of_a_text_output_stays_whole(output: str) -> None:
    parsed = parse_expansion(f"INPUT: USER: How do I print 1?\nOUTPUT: {output}")
    assert parsed.action == Action(text=output)
    if "```python" in output:  # in a wrapper too; a bare fence there closes the wrapper, as Markdown reads it
        wrapped = parse_expansion(f"```\nINPUT: USER: How do I print 1?\nOUTPUT: {output}\n```")
        assert wrapped.action == Action(text=output)


_ROME = ToolCall(name="get_weather", arguments={"city": "Rome"})


@pytest.mark.parametrize(
    ("output", "action"),
    [
        (
            '{"role": "assistant", "content": "Which city do you mean?"}',
            Action(text="Which city do you mean?"),
        ),
        (
            '```json\n{"role": "assistant", "content": [{"type": "text", "text": "Which city do you mean?"}]}'
            "\n```",
            Action(text="Which city do you mean?"),
        ),
        # Claude's tool_use block, alone or after a text block
        (
            '{"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Rome"}}',
            Action(calls=[_ROME]),
        ),
        (
            '[{"type": "text", "text": "Checking."}, '
            '{"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Rome"}}]',
            Action(calls=[_ROME]),
        ),
        (
            '{"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", '
            '"function": {"name": "get_weather", "arguments": "{\\"city\\": \\"Rome\\"}"}}]}',
            Action(calls=[_ROME]),
        ),
    ],
)
def test_an_output_written_as_a_chat_message_is_read_as_one(output: str, action: Action) -> None:
    """An OUTPUT written as the chat API's assistant message or as Claude's tool_use block was a text
    answer holding the JSON: the sample trained the assistant to answer in raw message JSON."""
    parsed = parse_expansion(f"INPUT: USER: What's the weather there?\nOUTPUT: {output}")
    assert parsed.error is None, parsed.error
    assert parsed.action == action


@pytest.mark.parametrize(
    "output",
    [
        '{"role": "assistant", "content": ""}',
        '{"role": "assistant", "content": [{"type": "image", "source": {}}]}',
    ],
)
def test_an_assistant_message_output_with_nothing_to_read_is_refused(output: str) -> None:
    parsed = parse_expansion(f"INPUT: USER: What's the weather there?\nOUTPUT: {output}")
    assert (
        parsed.action is None
        and parsed.error is not None
        and parsed.error.startswith("OUTPUT: the assistant")
    )


@pytest.mark.parametrize(
    "answer",
    [
        "### 📥 INPUT\nUSER: Book Nopi for four.\n\n### 📤 OUTPUT\nWhat time would you like?",
        "**➡️ INPUT:** USER: Book Nopi for four.\n**⬅️ OUTPUT:** What time would you like?",
    ],
)
def test_section_labels_led_by_an_emoji_are_read(answer: str) -> None:
    """Kimi K2 and GPT-4.1 decorate headings with an emoji: the answer was lost as "no INPUT: section"."""
    parsed = parse_expansion(answer)
    assert parsed.error is None, parsed.error
    assert parsed.messages == [Message(role="user", content="Book Nopi for four.")]
    assert parsed.action == Action(text="What time would you like?")


def test_a_tag_the_input_leaves_open_is_no_wrapper_around_the_sample() -> None:
    """An INPUT turn's <tool_call> left unclosed was taken for a wrapper around the sample: the
    OUTPUT was cut at its first </tool_call>, and its second call was lost."""
    answer = (
        "INPUT:\nUSER: Weather in Faro?\nASSISTANT:\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "Faro"}}\n'
        'TOOL: {"temp": 21}\nUSER: Now Rome and Oslo.\n'
        f"OUTPUT:\n{_weather_call('Rome')}\n{_weather_call('Oslo')}"
    )
    parsed = parse_expansion(answer)
    assert parsed.error is None, parsed.error
    assert [c.arguments["city"] for c in parsed.action.calls] == ["Rome", "Oslo"]  # type: ignore[union-attr]


_ASK = "What time would you like the table?"


@pytest.mark.parametrize(
    "output",
    [
        f"[No tool call] {_ASK}",
        f"(No tool call needed) {_ASK}",
        f"No tool call.\nASSISTANT: {_ASK}",
        f"ASSISTANT: (asks for clarification) {_ASK}",
        f"*(no tool call)*\n{_ASK}",
        f"Clarification needed: {_ASK}",
        f"**Response:** {_ASK}",
        f"**Assistant response (no tool call):**\n{_ASK}",
        f'[Text response] "{_ASK}"',
    ],
)
def test_a_note_or_label_before_a_text_reply_is_no_part_of_it(output: str) -> None:
    """Asked for a clarifying OUTPUT, generators mark it ("[No tool call]", "**Response:**", a stage
    direction): the mark went into the assistant's reply ("No tool call." alone, with the reply after
    it cut as the rest of a dialogue), and "OUTPUT: **Response:**" even lost its first two stars."""
    parsed = parse_expansion(f"INPUT: USER: Book a table for four at Nopi.\nOUTPUT: {output}")
    assert parsed.error is None, parsed.error
    assert parsed.action == Action(text=_ASK)
    assert "reply_note" in parsed.repairs


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (f'The assistant should ask for the missing time: "{_ASK}"', "describes the assistant's reply"),
        (f'No tool call is made; the assistant asks: "{_ASK}"', "describes the assistant's reply"),
        ("No tool call needed.", "a note that no tool is called, and no reply"),
    ],
)
def test_an_output_that_describes_the_reply_is_refused(output: str, reason: str) -> None:
    parsed = parse_expansion(f"INPUT: USER: Book a table for four at Nopi.\nOUTPUT: {output}")
    assert parsed.action is None and parsed.error is not None and reason in parsed.error, parsed.error


@pytest.mark.parametrize(
    "answer",
    [
        "input:\n  - user: What is the weather in Rome?\noutput:\n  - name: get_weather\n    arguments:\n"
        "      city: Rome",
        "INPUT:\nUSER: What is the weather in Rome?\n\nOUTPUT:\n```yaml\ntool_calls:\n  - name: get_weather\n"
        "    parameters:\n      city: Rome\n```",
    ],
)
def test_an_output_call_written_as_yaml_is_refused_not_kept_as_a_reply(answer: str) -> None:
    """A generator that writes the sample in YAML had its call kept as the assistant's text reply
    ("- name: get_weather\n  arguments: …"): the assistant would be trained to say the call."""
    parsed = parse_expansion(answer)
    assert parsed.action is None and parsed.error is not None and "YAML" in parsed.error


def test_a_sample_written_as_a_blockquote_keeps_no_quote_marks() -> None:
    """Gemini and GPT-4.1 quote the sections ("> USER: …"): the markers read past the "> ", but the
    turns' other lines kept it (the user's message "Book Nopi for four.\n> We'll be there at 8."), and
    a quoted call block did not parse."""
    call = _weather_call("Faro").replace("\n", "\n> ")
    answer = (
        f'**INPUT:**\n> **USER:** Weather in Faro?\n> **ASSISTANT:** {call}\n> **TOOL:** {{"temp": 21}}\n'
        "> **USER:** Book Nopi for four.\n> We'll be there at 8.\n\n"
        "**OUTPUT:**\n> Sure! Which day would you like?\n> We have tables at 20:00."
    )
    parsed = parse_expansion(answer)
    assert parsed.error is None, parsed.error
    assert [(m.role, m.content) for m in parsed.messages] == [
        ("user", "Weather in Faro?"),
        ("assistant", ""),
        ("tool", '{"temp": 21}'),
        ("user", "Book Nopi for four.\nWe'll be there at 8."),
    ]
    assert parsed.messages[1].tool_calls == [ToolCall(name="get_weather", arguments={"city": "Faro"})]
    assert parsed.action == Action(text="Sure! Which day would you like?\nWe have tables at 20:00.")


def test_a_quote_inside_a_turn_keeps_its_marks() -> None:
    answer = "INPUT: USER: My bot wrote:\n> Table booked.\nIs that right?\nOUTPUT: Yes, it is booked."
    parsed = parse_expansion(answer)
    assert parsed.messages == [Message(role="user", content="My bot wrote:\n> Table booked.\nIs that right?")]


_SEED_TOOLS = [
    ToolSpec.from_openai(
        {"name": name, "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
    )
    for name in ("get_weather", "search")
]


@pytest.mark.parametrize(
    "output",
    [
        '`get_weather(city="Rome")`',
        '**Tool call:** get_weather(city="Rome")',
        'Function call: get_weather(city="Rome")',
        'Call `get_weather` with {"city": "Rome"}',
        "ASSISTANT: [calls get_weather with city=Rome]",
        'The assistant calls search(city="Rome").',
    ],
)
def test_a_text_output_that_writes_a_seed_tools_call_is_refused(output: str) -> None:
    """A generator that writes its call as code or prose ("`get_weather(city=\"Rome\")`", "Call
    `get_weather` with {…}") had it kept as the assistant's text reply: a sample that trains the
    assistant to tell the user its calls instead of making them."""
    parsed = parse_expansion(f"INPUT: USER: What is the weather in Rome?\nOUTPUT: {output}", _SEED_TOOLS)
    assert parsed.action is None and parsed.error is not None
    assert "writes a call of" in parsed.error


def test_a_reply_that_uses_a_tools_name_as_a_word_stays_a_reply() -> None:
    reply = "Which city should I search for?"
    parsed = parse_expansion(f"INPUT: USER: What is the weather?\nOUTPUT: {reply}", _SEED_TOOLS)
    assert parsed.action == Action(text=reply)


@pytest.mark.parametrize(
    "headed",
    [
        "#### User\nWeather in Faro?\n#### Assistant\nIt is 21°C.\n#### User\nAnd Rome?",
        "**User**\nWeather in Faro?\n\n**Assistant**\nIt is 21°C.\n\n**User**\nAnd Rome?",
        "### User (turn 1)\nWeather in Faro?\n### AI (turn 1)\nIt is 21°C.\n### User (turn 2)\nAnd Rome?",
    ],
)
def test_turns_headed_by_their_role_are_turns(headed: str) -> None:
    """A dialogue laid out under role headings ("#### User" / "#### Assistant") was read as one user
    turn holding the whole dialogue and its headings: a sample kept with the wrong turns."""
    parsed = parse_expansion(f"INPUT:\n{headed}\n\nOUTPUT:\n#### Assistant\nWhich Rome, Italy or Georgia?")
    assert parsed.error is None, parsed.error
    assert [(m.role, m.content) for m in parsed.messages] == [
        ("user", "Weather in Faro?"),
        ("assistant", "It is 21°C."),
        ("user", "And Rome?"),
    ]
    assert parsed.action == Action(text="Which Rome, Italy or Georgia?")


def test_a_role_heading_inside_a_users_text_stays_text() -> None:
    parsed = parse_expansion("INPUT:\nMy notes:\n**User**\nasks for Rome\nOUTPUT: Noted.")
    assert parsed.messages == [Message(role="user", content="My notes:\n**User**\nasks for Rome")]


@pytest.mark.parametrize(
    "between",
    [
        "\n\nAlternative OUTPUT: ",
        "\n\nOr, if the user meant Faro:\n",
        "\n\n**Explanation:** the call above passes the city. A second sample:\n",
    ],
)
def test_words_between_two_calls_refuse_the_output(between: str) -> None:
    """A model that offers another call after its first ("Alternative OUTPUT: <tool_call>…") had both
    read as one step's parallel calls: the sample kept with a call its user never asked for."""
    parsed = parse_expansion(f"INPUT: What is the weather in Rome?\nOUTPUT: {CALL}{between}{_FARO}")
    assert parsed.action is None and parsed.error is not None and "words between its calls" in parsed.error


@pytest.mark.parametrize("between", ["\n", "\n\n", "\n2. ", " and ", "\n```\n```json\n"])
def test_calls_separated_by_numbering_or_and_are_one_step(between: str) -> None:
    parsed = parse_expansion(f"INPUT: Weather in Rome and in Faro?\nOUTPUT: {CALL}{between}{_FARO}")
    assert parsed.error is None, parsed.error
    assert parsed.action is not None and [c.arguments["city"] for c in parsed.action.calls] == [
        "Rome",
        "Faro",
    ]


def test_a_reply_with_a_name_line_alone_is_no_yaml_call() -> None:
    reply = "Here is your booking:\nname: Jane\ntime: 20:00"
    parsed = parse_expansion(f"INPUT: Show my booking.\nOUTPUT: {reply}")
    assert parsed.action == Action(text=reply)


@pytest.mark.parametrize(
    "reply",
    [
        "No problem! What time would you like the table?",
        "No tool here can book flights, sorry. I can check the weather instead.",
        "(Just to be sure) do you mean Nopi in Soho?",
        "**Nopi** is open from 19:00. What time would you like?",
    ],
)
def test_a_reply_that_opens_like_a_note_stays_whole(reply: str) -> None:
    parsed = parse_expansion(f"INPUT: USER: Book a table for four at Nopi.\nOUTPUT: {reply}")
    assert parsed.action == Action(text=reply) and "reply_note" not in parsed.repairs


@pytest.mark.timeout(5)
@pytest.mark.parametrize("body", ["(" + "ask " * 12000, "**" + "reply " * 9000])
def test_a_long_line_that_opens_like_a_note_is_read_quickly(body: str) -> None:
    # A note is looked for in the reply's first characters only; the whole line took seconds.
    assert parse_expansion(f"INPUT: USER: hi\nOUTPUT: {body}").action == Action(text=body.strip())


@pytest.mark.parametrize(
    "written",
    [
        "**User query:** What is the weather in Rome?",
        "User request: What is the weather in Rome?",
        "\nUser message: What is the weather in Rome?",
        "\n> USER: What is the weather in Rome?",
        "\n[User]: What is the weather in Rome?",
        '"What is the weather in Rome?"',  # a bare turn in quotes, as a marked one may be
    ],
)
def test_a_user_label_or_quotes_around_the_only_turn_are_no_part_of_it(written: str) -> None:
    """GPT-4.1 and Llama 3.3 label the user's message ("**User query:**", "User request:"), quote it
    or write it as a blockquote: a label other than USER: made the INPUT bare text, and the label
    (or the quotes, the ">") went into the user's message."""
    parsed = parse_expansion(f"INPUT: {written}\nOUTPUT: {CALL}")
    assert parsed.error is None, parsed.error
    assert parsed.messages == [Message(role="user", content="What is the weather in Rome?")]


@pytest.mark.parametrize(
    "listed",
    [
        '[{"content": "What is the weather in Rome?", "role": "user"}]',
        '[\n  {\n    "content": "What is the weather in Rome?",\n    "role": "user"\n  }\n]',
    ],
)
def test_a_message_list_whose_role_key_comes_second_is_a_message_list(listed: str) -> None:
    """A message list that wrote "content" before "role" was kept as one user message holding the
    JSON (its list brackets even taken for the prompt's placeholder brackets)."""
    parsed = parse_expansion(f"INPUT:\n{listed}\nOUTPUT: {CALL}")
    assert parsed.error is None, parsed.error
    assert parsed.messages == [Message(role="user", content="What is the weather in Rome?")]


def test_a_fence_around_a_tool_result_is_no_part_of_it() -> None:
    """Kimi K2 and GPT-4.1 fence the JSON of a tool turn (TOOL:\\n```json\\n{…}\\n```): the fence went
    into the tool message, and the sample trained on results that never come fenced."""
    answer = (
        f"INPUT:\nUSER: Weather in Faro?\nASSISTANT: {_weather_call('Faro')}\n"
        'TOOL:\n```json\n{"temp": 21}\n```\nUSER: And Rome?\n'
        f"OUTPUT: {_weather_call('Rome')}"
    )
    parsed = parse_expansion(answer)
    assert parsed.error is None, parsed.error
    assert [(m.role, m.content) for m in parsed.messages][2] == ("tool", '{"temp": 21}')


@pytest.mark.parametrize(
    "written",
    [
        "<|user|>\nWhat is the weather in Rome?",  # GLM, Phi-3
        "<user>What is the weather in Rome?</user>",
        "<|im_start|>user\nWhat is the weather in Rome?<|im_end|>",  # ChatML
        "<s>[INST] What is the weather in Rome? [/INST]",  # Mistral
        "<start_of_turn>user\nWhat is the weather in Rome?<end_of_turn>",  # Gemma
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is the weather in Rome?<|eot_id|>",
        "Query: What is the weather in Rome?",
        "1. USER: What is the weather in Rome?",
    ],
)
def test_chat_template_turns_in_the_input_are_role_markers(written: str) -> None:
    """A generator that copies a chat template's turn into a bare INPUT ("<|user|>\\nWhat's …") had
    the tokens kept in the user's message, a sample trained on text no user writes."""
    parsed = parse_expansion(f"INPUT:\n{written}\nOUTPUT: {CALL}")
    assert parsed.error is None, parsed.error
    assert parsed.messages == [Message(role="user", content="What is the weather in Rome?")]


@pytest.mark.parametrize(
    ("written", "roles"),
    [
        (
            "<|im_start|>user\nWeather in Faro?<|im_end|>\n<|im_start|>assistant\n"
            f'{_weather_call("Faro")}<|im_end|>\n<|im_start|>tool\n{{"temp": 21}}<|im_end|>\n'
            "<|im_start|>user\nAnd Rome?<|im_end|>",
            ["user", "assistant", "tool", "user"],
        ),
        (
            "[INST] Hi [/INST] Hello! How can I help?</s>[INST] Weather in Rome? [/INST]",
            ["user", "assistant", "user"],
        ),
        (
            "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
            "<start_of_turn>user\nWeather in Rome?<end_of_turn>",
            ["user", "assistant", "user"],
        ),
    ],
)
def test_a_dialogue_in_chat_template_turns_keeps_its_roles(written: str, roles: list[str]) -> None:
    parsed = parse_expansion(f"INPUT:\n{written}\nOUTPUT: {CALL}")
    assert parsed.error is None, parsed.error
    assert [m.role for m in parsed.messages] == roles
    tokens = ("<|", "|>", "INST]", "_turn>", "</s>")
    assert not any(token in m.content for m in parsed.messages for token in tokens)


def test_an_unknown_chat_template_token_in_a_turn_refuses_the_sample() -> None:
    """A template the reader does not know leaves its tokens in the turn: kept, they would be trained
    on as the user's words."""
    parsed = parse_expansion(f"INPUT:\n<|User|>What is the weather in Rome?<|Assistant|>\nOUTPUT: {CALL}")
    assert parsed.action is None and parsed.error is not None
    assert "chat-template token <|User|>" in parsed.error


@pytest.mark.parametrize(
    ("written", "question"),
    [
        ("What does <|endoftext|> mean in GPT-2?", "What does <|endoftext|> mean in GPT-2?"),
        ("USER: Is `<|im_end|>` the end of a turn?", "Is `<|im_end|>` the end of a turn?"),
        # in a template's turn, the mentioned closer is the user's words, not cut out of them
        (
            "<|im_start|>user\nWhy does my output end with <|endoftext|> every time?<|im_end|>",
            "Why does my output end with <|endoftext|> every time?",
        ),
        ("<s>[INST] What do <s> and </s> mark in Llama 2? [/INST]", "What do <s> and </s> mark in Llama 2?"),
    ],
)
def test_a_template_token_a_user_mentions_in_a_sentence_is_the_users_words(
    written: str, question: str
) -> None:
    """A user asking about a token ("What does <|endoftext|> mean in GPT-2?") had the sample refused as
    holding a template token, or, inside a template's turn, the token cut out of the question."""
    parsed = parse_expansion(f"INPUT: {written}\nOUTPUT: {CALL}")
    assert parsed.error is None, parsed.error
    assert parsed.messages == [Message(role="user", content=question)]


@pytest.mark.parametrize(
    "written",
    [
        "<|prompter|>What is the weather in Rome?<|endoftext|>",  # opens the line
        "USER: What is the weather in Rome? <|endoftext|>",  # ends the turn
        "USER: Hi<|bot|>Hello! What is the weather in Rome?",  # glued to the turns it separates
        "USER: What is the weather in Rome? <|bot|> Sure, one moment.",  # names a role
    ],
)
def test_a_template_token_used_as_a_turn_marker_still_refuses_the_sample(written: str) -> None:
    parsed = parse_expansion(f"INPUT: {written}\nOUTPUT: {CALL}")
    assert parsed.action is None and parsed.error is not None and "chat-template token" in parsed.error


@pytest.mark.parametrize(
    "answer",
    [
        "Here is the sample.\n\n<input>\nUSER: What is the weather in Rome?\n</input>\n\n"
        f"<output>\n{CALL}\n</output>",
        f"<INPUT>What is the weather in Rome?</INPUT>\n<OUTPUT>{CALL}</OUTPUT>\n\nThis tests the city.",
        f"1. INPUT: What is the weather in Rome?\n2. OUTPUT: {CALL}",
        f"**1. INPUT:**\nUSER: What is the weather in Rome?\n\n**2. OUTPUT:**\n{CALL}",
    ],
)
def test_tagged_or_numbered_section_labels_are_the_sections(answer: str) -> None:
    """Claude tags the parts (<input>…</input> <output>…</output>) and some models number the labels
    ("1. INPUT:"): the answer read as having no INPUT: section and was lost."""
    parsed = parse_expansion(answer)
    assert parsed.error is None, parsed.error
    assert parsed.messages == [Message(role="user", content="What is the weather in Rome?")]
    assert parsed.action == Action(calls=[ToolCall(name="get_weather", arguments={"city": "Rome"})])


@pytest.mark.parametrize(
    "answer",
    [
        f"**Input Conversation:**\nUSER: What is the weather in Rome?\n\n**Expected Output:**\n{CALL}",
        f"### New INPUT\nUSER: What is the weather in Rome?\n\n### Correct OUTPUT\n{CALL}",
        f"INPUT query: What is the weather in Rome?\nOUTPUT tool calls: {CALL}",
    ],
)
def test_a_label_qualified_by_a_word_is_the_section(answer: str) -> None:
    """GPT-4o and Llama name the parts "**Expected Output:**", "### New INPUT", "Input Conversation:":
    the answer read as having no INPUT or OUTPUT section and the sample was lost."""
    parsed = parse_expansion(answer)
    assert parsed.error is None, parsed.error
    assert parsed.messages == [Message(role="user", content="What is the weather in Rome?")]
    assert parsed.action == Action(calls=[ToolCall(name="get_weather", arguments={"city": "Rome"})])


def test_tagged_sections_out_of_order_or_repeated_are_refused() -> None:
    answer = f"<output>{CALL}</output>\n<input>What is the weather in Rome?</input>"
    parsed = parse_expansion(answer)
    assert parsed.action is None and parsed.error is not None and "<input>" in parsed.error


@pytest.mark.parametrize(
    "written",
    [
        '<tool_call>\n{"function": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>',
        '<tool_call>\n{"name": "get_weather", "args": {"city": "Rome"}}\n</tool_call>',  # Gemini's keys
        '{"function": "get_weather", "args": {"city": "Rome"}}',
        '[{"name": "get_weather", "args": {"city": "Rome"}}]',
    ],
)
def test_a_call_under_function_or_args_keys_is_read(written: str) -> None:
    """A generator's call written {"function": NAME, "arguments": …} or {"name": …, "args": …} was
    refused ("a call needs a non-empty string 'name'", "unexpected keys"), and the sample lost."""
    parsed = parse_expansion(f"INPUT: What is the weather in Rome?\nOUTPUT: {written}")
    assert parsed.error is None, parsed.error
    assert parsed.action == Action(calls=[ToolCall(name="get_weather", arguments={"city": "Rome"})])
    assert "call_keys_renamed" in parsed.repairs


@pytest.mark.parametrize(
    "written",
    [
        '<tool_call>\n{"tool": "get_weather", "tool_input": {"city": "Rome"}}\n</tool_call>',  # LangChain
        '```json\n{"action": "get_weather", "action_input": {"city": "Rome"}}\n```',  # ReAct
        '[{"tool": "get_weather", "tool_input": {"city": "Rome"}}, '
        '{"action": "get_forecast", "action_input": {"city": "Rome", "days": 3}}]',
    ],
)
def test_a_call_written_as_a_react_agents_step_is_read(written: str) -> None:
    """A generator that writes its call as a ReAct/LangChain agent step ({"tool": …, "tool_input": …},
    {"action": …, "action_input": …}) had the sample lost ("a call needs a non-empty string 'name'")."""
    parsed = parse_expansion(f"INPUT: What is the weather in Rome?\nOUTPUT: {written}")
    assert parsed.error is None, parsed.error
    assert parsed.action is not None and parsed.action.calls[0] == ToolCall(
        name="get_weather", arguments={"city": "Rome"}
    )
    assert "call_keys_renamed" in parsed.repairs
    if len(parsed.action.calls) > 1:
        assert parsed.action.calls[1] == ToolCall(name="get_forecast", arguments={"city": "Rome", "days": 3})


def test_a_react_final_answer_is_the_text_reply() -> None:
    """{"action": "Final Answer", "action_input": "…"} was kept whole as the assistant's reply: the
    assistant trained to write the agent's JSON to the user."""
    reply = '{"action": "Final Answer", "action_input": "Which city do you mean?"}'
    parsed = parse_expansion(f"INPUT: What is the weather?\nOUTPUT: {reply}")
    assert parsed.error is None, parsed.error
    assert parsed.action == Action(text="Which city do you mean?")
    assert "react_final_answer" in parsed.repairs


@pytest.mark.parametrize(
    "step",
    ['{"action": "get_weather", "action_input": "Rome"}', '{"tool": "get_weather", "tool_input": null}'],
)
def test_a_react_tool_step_without_an_argument_object_is_refused(step: str) -> None:
    parsed = parse_expansion(f"INPUT: What is the weather in Rome?\nOUTPUT: {step}")
    assert parsed.action is None and parsed.error is not None and "ReAct step" in parsed.error


def test_an_assistant_turn_of_the_input_may_write_its_call_under_args() -> None:
    answer = (
        "INPUT:\nUSER: Weather in Faro?\n"
        'ASSISTANT: <tool_call>\n{"name": "get_weather", "args": {"city": "Faro"}}\n</tool_call>\n'
        f'TOOL: {{"temp": 21}}\nUSER: And Rome?\nOUTPUT: {CALL}'
    )
    parsed = parse_expansion(answer)
    assert parsed.error is None, parsed.error
    assert parsed.messages[1].tool_calls == [ToolCall(name="get_weather", arguments={"city": "Faro"})]


def test_a_text_reply_that_quotes_json_with_a_function_key_is_left_as_written() -> None:
    reply = 'Your config {"function": "resize", "mode": "fast"} looks right.'
    parsed = parse_expansion(f"INPUT: Is my config right?\nOUTPUT: {reply}")
    assert parsed.error is None, parsed.error
    assert parsed.action == Action(text=reply)


_EMAIL_CALL = '{"name": "send_email", "arguments": {"to": "bob", "body": "Hi Bob,\nSee you at 5.\n\tAnn"}}'


@pytest.mark.parametrize(
    "written",
    [
        f"<tool_call>\n{_EMAIL_CALL}\n</tool_call>",
        _EMAIL_CALL,
    ],
)
def test_a_newline_written_raw_in_a_call_string_is_read_as_one(written: str) -> None:
    """Models write a multi-line argument (an e-mail body) with raw newlines inside the JSON string:
    the call did not read ("Invalid control character") and the sample was lost."""
    parsed = parse_expansion(f"INPUT: Email Bob that I'll see him at 5.\nOUTPUT: {written}")
    assert parsed.error is None, parsed.error
    expected = ToolCall(name="send_email", arguments={"to": "bob", "body": "Hi Bob,\nSee you at 5.\n\tAnn"})
    assert parsed.action == Action(calls=[expected])
    assert "control_character_in_string" in parsed.repairs


def test_a_text_reply_with_quotes_across_lines_is_left_as_written() -> None:
    reply = 'He wrote "Hi Bob,\nsee you" in the draft.'
    parsed = parse_expansion(f"INPUT: What did he write?\nOUTPUT: {reply}")
    assert parsed.error is None, parsed.error
    assert parsed.action == Action(text=reply)


@pytest.mark.parametrize(
    "written",
    [
        "<|im_start|>user\nWhat is the weather in Rome?<|im_end|>\n<|im_start|>assistant\n",
        "<|start_header_id|>user<|end_header_id|>\n\nWhat is the weather in Rome?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "<start_of_turn>user\nWhat is the weather in Rome?<end_of_turn>\n<start_of_turn>model\n",
    ],
)
def test_a_template_generation_prompt_that_ends_the_input_is_no_turn(written: str) -> None:
    """A generator that copies the template's generation prompt (<|im_start|>assistant) at the end of
    the INPUT had it read as an empty assistant turn, and the sample refused."""
    parsed = parse_expansion(f"INPUT:\n{written}\nOUTPUT: {CALL}")
    assert parsed.error is None, parsed.error
    assert parsed.messages == [Message(role="user", content="What is the weather in Rome?")]


@pytest.mark.parametrize("marker", ["ASSISTANT:", "**Assistant:**", "Assistant:", "#### Assistant"])
def test_an_empty_assistant_marker_that_ends_the_input_is_no_turn(marker: str) -> None:
    """A generator that ends its INPUT with the assistant's marker, the OUTPUT's turn opened, had it
    read as an empty assistant turn and the sample refused ("does not parse: empty output")."""
    parsed = parse_expansion(f"INPUT:\nUSER: What is the weather in Rome?\n{marker}\n\nOUTPUT:\n{CALL}")
    assert parsed.error is None, parsed.error
    assert parsed.messages == [Message(role="user", content="What is the weather in Rome?")]


@pytest.mark.parametrize(
    "turn",
    [
        "<|im_start|>assistant\nWhich Rome, Italy or Georgia?<|im_end|>",
        "<start_of_turn>model\nWhich Rome, Italy or Georgia?<end_of_turn>",
        "<|start_header_id|>assistant<|end_header_id|>\n\nWhich Rome, Italy or Georgia?<|eot_id|>",
    ],
)
def test_a_template_turn_copied_as_the_output_is_the_assistants_reply(turn: str) -> None:
    """A generator that copies the template's assistant turn as its OUTPUT had the opener kept in the
    reply ("<|im_start|>assistant\nWhich Rome…"): the assistant trained to write template tokens."""
    parsed = parse_expansion(
        f"INPUT: <|im_start|>user\nWhat is the weather in Rome?<|im_end|>\nOUTPUT: {turn}"
    )
    assert parsed.error is None, parsed.error
    assert parsed.action == Action(text="Which Rome, Italy or Georgia?")


@pytest.mark.parametrize("tag", ["response", "answer", "reply", "assistant"])
def test_tags_around_the_whole_output_are_no_part_of_the_reply(tag: str) -> None:
    """ "<response>Which city?</response>" was kept with its tags as the assistant's reply."""
    parsed = parse_expansion(
        f"INPUT: What is the weather?\nOUTPUT: <{tag}>\nWhich city do you mean?\n</{tag}>"
    )
    assert parsed.error is None, parsed.error
    assert parsed.action == Action(text="Which city do you mean?")


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ('{"content": "Which city do you mean?"}', "neither a call nor an assistant message"),
        ('```json\n{"response": "Which city do you mean?"}\n```', "neither a call nor an assistant message"),
        ("{}", "neither a call nor an assistant message"),
        ("[]", "neither a call nor a reply"),
    ],
)
def test_an_output_of_json_that_is_no_call_is_refused(output: str, reason: str) -> None:
    """{"content": "Which city?"} was kept as the assistant's text (JSON trained as words to the user),
    and "[]" as a step holding neither a call nor a reply."""
    parsed = parse_expansion(f"INPUT: What is the weather?\nOUTPUT: {output}")
    assert parsed.action is None and parsed.error is not None and reason in parsed.error


def test_an_unknown_template_token_in_a_text_output_refuses_it() -> None:
    parsed = parse_expansion("INPUT: What is the weather?\nOUTPUT: <|bot|>Which city do you mean?")
    assert (
        parsed.action is None and parsed.error is not None and "chat-template token <|bot|>" in parsed.error
    )


def test_a_reply_that_opens_with_a_question_label_stays_a_reply() -> None:
    parsed = parse_expansion("INPUT: Book Nopi.\nOUTPUT: Question: what time would you like?")
    assert parsed.action == Action(text="Question: what time would you like?")


def test_deepseek_template_tokens_in_the_input_are_role_markers() -> None:
    """DeepSeek's template writes <｜User｜> and <｜Assistant｜> (full-width bars): a DeepSeek generator
    that copies them had the sample refused as holding an unknown token."""
    written = (
        "<｜begin▁of▁sentence｜><｜User｜>Weather in Faro?<｜Assistant｜>It is 21°C.<｜end▁of▁sentence｜>"
        "<｜User｜>What is the weather in Rome?<｜Assistant｜>"
    )
    parsed = parse_expansion(f"INPUT: {written}\nOUTPUT: {CALL}")
    assert parsed.error is None, parsed.error
    assert [(m.role, m.content) for m in parsed.messages] == [
        ("user", "Weather in Faro?"),
        ("assistant", "It is 21°C."),
        ("user", "What is the weather in Rome?"),
    ]


@pytest.mark.parametrize(
    "reply", ['"What time would you like?".', "“What time would you like?”.", "[What time would you like?]."]
)
def test_a_quoted_reply_with_its_period_after_the_quotes_is_the_words_inside(reply: str) -> None:
    """The quotes stayed in the assistant's text when a period followed them, so the label taught the
    policy to answer in quotes; without the period they were already left out."""
    parsed = parse_expansion(f"INPUT:\nUSER: Book a table at Luigi's.\nOUTPUT: {reply}")
    assert parsed.action is not None and parsed.action.text == "What time would you like?"
    # Quotes that do not wrap the whole reply are its words.
    parsed = parse_expansion('INPUT:\nUSER: Book a table.\nOUTPUT: "Sure." That is what I said.')
    assert parsed.action is not None and parsed.action.text == '"Sure." That is what I said.'


@pytest.mark.parametrize("label", ["**Tool call:**", "Function calls:", "Here is the call:", "### Call:"])
def test_a_line_labelling_the_outputs_call_is_no_part_of_it(label: str) -> None:
    """A label line over a fenced call made the OUTPUT "a tool call amid text": the sample was lost."""
    call = '{"name": "get_weather", "arguments": {"city": "Rome"}}'
    parsed = parse_expansion(f"INPUT:\nUSER: Weather in Rome?\nOUTPUT:\n{label}\n```json\n{call}\n```")
    assert parsed.action == Action(calls=[ToolCall(name="get_weather", arguments={"city": "Rome"})])
    assert "call_label" in parsed.repairs
    # Over words, the label is not taken off: no call follows it.
    parsed = parse_expansion(f"INPUT:\nUSER: Weather?\nOUTPUT:\n{label}\nWhich city do you mean?")
    assert "call_label" not in parsed.repairs
