"""Hypothesis strategies for tool-call values, shared by the core's property tests."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from toolcall.specs import ToolSpec, load_tools
from toolcall.types import Action, Message, Sample, ToolCall

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.]{0,20}", fullmatch=True)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.floats(allow_nan=False, allow_infinity=False, width=64)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
arguments = st.dictionaries(st.text(min_size=1, max_size=12), json_values, max_size=5)
calls = st.builds(ToolCall, name=names, arguments=arguments)
call_actions = st.builds(Action, calls=st.lists(calls, min_size=1, max_size=4), ordered=st.booleans())

# --- whole samples, as a curated round holds them (round-trip tests of exports, events, the store) ---

# Pieces that text fields must keep exactly: combining marks, right-to-left text and its overrides,
# emoji sequences, a byte-order mark, NUL and other controls, line endings, JSON's escapes.
HARD_TEXT = [
    "e\u0301",
    "\u0645\u0631\u062d\u0628\u0627",
    "\u05e9\u05dc\u05d5\u05dd",
    "\u202e",
    "\u200f",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "\U0001f1e8\U0001f1ed",
    "\ufeff",
    "\x00",
    "\x1f",
    "\r\n",
    "\t",
    '"',
    "\\",
    "\\u0000",
    "\u2028",
    "\U0010fffd",
    "東京",
    " ",
]
hard_text = st.one_of(
    st.text(max_size=20),
    st.lists(st.sampled_from(HARD_TEXT) | st.text(max_size=4), max_size=6).map("".join),
    st.sampled_from(HARD_TEXT).map(lambda piece: piece * 300),  # very long
)
# Turn texts as ingest keeps them: a dataset's text is read without its surrounding whitespace, and a
# turn that says nothing has no content.
turn_text = hard_text.map(str.strip)
# Tool names as datasets write them: snake case, dotted (BFCL's classes), hyphens, ToolACE's spaces.
tool_names = st.one_of(
    names,
    st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,8}([-. ][A-Za-z0-9]{1,8}){1,3}", fullmatch=True),
    st.sampled_from(["Weather Forecast API", "get-weather", "math.factorial", "東京_天気"]),
)
adversarial_scalars = (
    json_scalars
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.sampled_from([-0.0, 1e300, -1e-300, 5e-324, 1.0, 0, True, False, 2**63, -(2**63) - 1])
    | hard_text
)
adversarial_values = st.recursive(
    adversarial_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(hard_text, children, max_size=4),
    max_leaves=16,
)
adversarial_arguments = st.dictionaries(hard_text.filter(bool), adversarial_values, max_size=5)
_TYPES = ["string", "integer", "number", "boolean", "array", "object"]


def _parameter(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"type": st.sampled_from(_TYPES), "description": hard_text},
        optional={
            "enum": st.lists(adversarial_scalars, min_size=1, max_size=3, unique_by=json.dumps),
            "default": adversarial_values,
            "items": children,
            "properties": st.dictionaries(hard_text.filter(bool), children, max_size=3),
        },
    )


parameter_schemas = st.recursive(
    st.fixed_dictionaries({"type": st.sampled_from(_TYPES)}, optional={"description": hard_text}),
    _parameter,
    max_leaves=6,
)


@st.composite
def tool_specs(draw: st.DrawFn) -> ToolSpec:
    """A tool as :func:`load_tools` reads it from a dataset's JSON Schema."""
    properties = draw(st.dictionaries(hard_text.filter(bool), parameter_schemas, max_size=4))
    required = draw(st.lists(st.sampled_from(sorted(properties)), unique=True)) if properties else []
    function = {
        "name": draw(tool_names),
        "description": draw(hard_text),
        "parameters": {"type": "object", "properties": properties, "required": required},
    }
    [tool] = load_tools([function])
    return tool


def _call(tools: list[ToolSpec]) -> st.SearchStrategy[ToolCall]:
    known = [tool.name for tool in tools]
    name = st.sampled_from(known) | tool_names if known else tool_names
    return st.builds(ToolCall, name=name, arguments=adversarial_arguments)


@st.composite
def samples(draw: st.DrawFn) -> Sample:
    """A sample of a curated round: a dialogue of one to three exchanges (a user turn; then calls,
    their named results and the assistant's answer, or the answer alone), a system prompt or not; the
    label the step after it: calls (parallel, ordered or not) or, right after a user turn, a text.
    Conversation time set or not."""
    tools = draw(st.lists(tool_specs(), max_size=3, unique_by=lambda tool: tool.name))
    calls = st.lists(_call(tools), min_size=1, max_size=3)
    messages: list[Message] = []
    if draw(st.booleans()):
        messages.append(Message(role="system", content=draw(turn_text.filter(bool))))
    exchanges = draw(st.integers(min_value=1, max_value=3))
    for exchange in range(exchanges):
        messages.append(Message(role="user", content=draw(turn_text)))
        last = exchange == exchanges - 1
        if last and draw(st.booleans()):
            break  # the label answers this user turn
        made = draw(calls) if last or draw(st.booleans()) else []
        if made:
            content = draw(st.just("") | turn_text)
            messages.append(Message(role="assistant", content=content, tool_calls=made))
            messages.extend(Message(role="tool", content=draw(hard_text), name=call.name) for call in made)
        if last:
            break  # the label is the step after the results
        messages.append(Message(role="assistant", content=draw(turn_text.filter(bool))))
    after_user = messages[-1].role == "user"
    if after_user and draw(st.booleans()):
        label = Action(text=draw(turn_text.filter(bool)))
    else:
        label = Action(calls=draw(calls), ordered=draw(st.booleans()))
    time = draw(st.none() | st.sampled_from(["2026-03-05 09:00", "2024-02-29T23:59:59+05:30", "yesterday"]))
    return Sample(tools=tools, messages=messages, label=label, conversation_time=time)
