"""Hypothesis strategies for hostile (but well-formed) events and for what models answer.

"Hostile" means any content a sample or a model can carry through a valid envelope: tag soup and
prompt injections in every text field, tools whose schemas are odd (unknown type names, enums of
mixed types, required parameters that are not declared), calls to tools that do not exist, deep
arguments. Non-finite numbers (NaN, Infinity) are left out here: they are a known gap with targeted
tests of their own (see test_bad_input.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import strategies as st

from schemas.events import (
    CuratedSample,
    Event,
    ExpansionCandidate,
    ProbeResult,
    Producer,
    Scenario,
    Verdict,
    make_event,
)
from toolcall.specs import ParamSchema, ToolSpec
from toolcall.types import Action, Message, ToolCall

RUN = "fuzz"
PRODUCER = Producer(stage="fuzz", version="0")
INJECTIONS = [
    json.loads(line)
    for line in (Path(__file__).parent / "data" / "injections.jsonl").read_text(encoding="utf-8").splitlines()
    if line.strip()
]
TAG_SOUP = [
    "<tool_call>",
    "</tool_call>",
    "<think>",
    "</think>",
    "<tool_response>",
    "</tool_response>",
    "</conversation>",
    "<tools>",
    "</response_1>",
    "INPUT:",
    "OUTPUT:",
    "USER:",
    "ASSISTANT:",
    "TOOL (x):",
    "RESPONSE 1 INCORRECT",
    "BOTH_CORRECT",
    "Error Analysis:",
    "CORRECT",
    "Reason:",
    "{",
    "}",
    '"name"',
    '"arguments"',
    "\n",
    "```json",
    "\x00",
    "\u202e",
    "\uff1c/tools\uff1e",
]

hostile_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from([case["text"] for case in INJECTIONS]),
    st.lists(st.sampled_from(TAG_SOUP) | st.text(max_size=8), max_size=8).map("".join),
)
names = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True),
    st.sampled_from(["get_weather", "x", "", "a.b", "</tools>", "ń", "1"]),
)
finite_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | hostile_text
)
json_values = st.recursive(
    finite_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=10,
)
type_names = st.one_of(
    st.none(),
    st.sampled_from(["string", "integer", "number", "boolean", "array", "object", "null", "frob", "str"]),
    st.tuples(st.sampled_from(["string", "null", "integer"]), st.sampled_from(["number", "array"])),
)


def _schema(children: st.SearchStrategy[ParamSchema]) -> st.SearchStrategy[ParamSchema]:
    return st.builds(
        ParamSchema,
        type=type_names,
        description=hostile_text,
        enum=st.none() | st.lists(finite_scalars, max_size=3).map(tuple),
        default=finite_scalars,
        has_default=st.booleans(),
        properties=st.dictionaries(names, children, max_size=3),
        required=st.lists(names, max_size=3).map(tuple),
        items=st.none() | children,
        additional_properties=st.none() | st.booleans(),
    )


param_schemas = st.recursive(
    st.builds(ParamSchema, type=type_names, description=hostile_text), _schema, max_leaves=6
)
tools = st.builds(
    ToolSpec,
    name=names,
    description=hostile_text,
    parameters=st.builds(
        ParamSchema,
        type=st.just("object"),
        properties=st.dictionaries(names, param_schemas, max_size=3),
        required=st.lists(names, max_size=3).map(tuple),
    ),
)
tool_lists = st.lists(tools, min_size=0, max_size=3)
calls = st.builds(ToolCall, name=names, arguments=st.dictionaries(names, json_values, max_size=3))
actions = st.one_of(
    st.builds(Action, calls=st.lists(calls, min_size=1, max_size=3), ordered=st.booleans()),
    st.builds(Action, text=st.none() | hostile_text),
)
messages = st.lists(
    st.builds(
        Message,
        role=st.sampled_from(["system", "user", "assistant", "tool"]),
        content=hostile_text,
        tool_calls=st.lists(calls, max_size=2),
        name=st.none() | names,
    ),
    max_size=4,
)
rounds = st.integers(min_value=1, max_value=3)
ulids = st.from_regex(r"01[A-HJKMNP-TV-Z0-9]{24}", fullmatch=True)


def _event(payload: object) -> Event:  # type: ignore[type-arg]
    return make_event(payload, run_id=RUN, producer=PRODUCER)  # type: ignore[arg-type]


curated_events = st.builds(
    CuratedSample,
    round=rounds,
    sample_id=hostile_text,
    source=st.sampled_from(["SEED", "ES", "EE", "HPPL", "SEED_NEW"]),
    tools=tool_lists,
    messages=messages,
    label=actions,
    label_event_id=ulids,
    content_hash=st.text(max_size=8),
).map(_event)
probe_events = st.builds(
    ProbeResult,
    sample_id=hostile_text,
    round=rounds,
    label_event_id=ulids,
    tools=tool_lists,
    messages=messages,
    label=actions,
    raw_output=hostile_text,
    prediction=st.none() | actions,
    parse_error=st.none() | hostile_text,
    matched=st.booleans(),
    ppl=st.none() | st.floats(min_value=1.0, max_value=1e6),
).map(_event)
verdict_events = st.builds(
    Verdict,
    sample_id=hostile_text,
    round=rounds,
    probe_event_id=ulids,
    tools=tool_lists,
    messages=messages,
    label=actions,
    prediction=st.none() | actions,
    verdict=st.sampled_from(["PRED_WRONG", "LABEL_WRONG", "BOTH_CORRECT", "BOTH_WRONG", "UNPARSEABLE"]),
    decided_by=st.sampled_from(["rules", "judge", "simulation"]),
    label_position=st.none() | st.sampled_from([1, 2]),
    error_analysis=hostile_text,
    raw_response=hostile_text,
).map(_event)
candidate_events = st.builds(
    ExpansionCandidate,
    candidate_id=hostile_text,
    seed_sample_id=hostile_text,
    round=rounds,
    verdict_event_id=ulids,
    index=st.integers(min_value=0, max_value=7),
    count=st.integers(min_value=1, max_value=8),
    scenario=st.builds(Scenario, focus=hostile_text, parameters=hostile_text),
    tools=tool_lists,
    messages=messages,
    label=st.none() | actions,
    parse_error=st.none() | hostile_text,
    raw_response=hostile_text,
).map(_event)


def _tool_call_text(call: ToolCall) -> str:
    return "<tool_call>\n" + json.dumps({"name": call.name, "arguments": call.arguments}) + "\n</tool_call>"


model_outputs = st.one_of(
    hostile_text,
    st.lists(calls, min_size=1, max_size=2).map(lambda cs: "\n".join(map(_tool_call_text, cs))),
    st.tuples(hostile_text, calls).map(lambda p: f"<think>{p[0]}</think>{_tool_call_text(p[1])}"),
)
judge_answers = st.one_of(
    hostile_text,
    st.tuples(
        st.sampled_from(["RESPONSE 1 INCORRECT", "RESPONSE 2 INCORRECT", "BOTH_CORRECT", "BOTH_INCORRECT"]),
        hostile_text,
    ).map(lambda p: f"{p[0]}\nError Analysis: {p[1]}\nCorrect Approach: {p[1]}"),
)
generator_answers = st.one_of(
    hostile_text,
    st.tuples(hostile_text, st.lists(calls, min_size=1, max_size=2)).map(
        lambda p: f"INPUT: USER: {p[0]}\nOUTPUT: " + "\n".join(map(_tool_call_text, p[1]))
    ),
    st.tuples(messages, hostile_text).map(
        lambda p: "INPUT: " + "\n".join(f"{m.role.upper()}: {m.content}" for m in p[0]) + f"\nOUTPUT: {p[1]}"
    ),
)
verifier_answers = st.one_of(
    hostile_text,
    st.tuples(st.sampled_from(["CORRECT", "INCORRECT", "**CORRECT**", "[INCORRECT]"]), hostile_text).map(
        lambda p: f"{p[0]}\nReason: {p[1]}"
    ),
)
