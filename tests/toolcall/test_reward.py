"""The binary reward and verl's compute_score entry point."""

from __future__ import annotations

import subprocess
import sys

from toolcall.parsing import render_action
from toolcall.reward import compute_score, ground_truth_json, reward
from toolcall.specs import load_tools
from toolcall.types import Action, Message, ToolCall

TOOLS = load_tools(
    [
        {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        }
    ]
)
LABEL = Action(calls=[ToolCall(name="get_weather", arguments={"city": "Paris"})])
CONTEXT = [Message(role="user", content="Weather in Paris?")]


def test_reward_is_binary_toolmatch() -> None:
    assert reward(TOOLS, CONTEXT, LABEL, "<think>ok</think>" + render_action(LABEL)) == 1
    assert (
        reward(
            TOOLS,
            CONTEXT,
            LABEL,
            '<tool_call>{"name": "get_weather", "arguments": {"city": "paris"}}</tool_call>',
        )
        == 1
    )
    assert (
        reward(
            TOOLS,
            CONTEXT,
            LABEL,
            '<tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}}</tool_call>',
        )
        == 0
    )
    assert reward(TOOLS, CONTEXT, LABEL, "<tool_call>{broken") == 0
    assert reward(TOOLS, CONTEXT, LABEL, "Which city?") == 0
    assert reward(TOOLS, CONTEXT, Action(text="No tool fits."), "I can't help with that.") == 1


def test_a_cut_off_output_earns_the_reward_only_with_matching_calls() -> None:
    """A text answer cut off at the budget matched every clarification label (reward 1 with the
    probe counting it a mismatch): training and probing now count it alike."""
    asks = Action(text="Which city?")
    assert reward(TOOLS, CONTEXT, asks, "Could you tell me which ci", truncated=True) == 0
    assert reward(TOOLS, CONTEXT, asks, "Could you tell me which city?") == 1
    assert reward(TOOLS, CONTEXT, LABEL, render_action(LABEL), truncated=True) == 1


def test_compute_score_round_trips_the_ground_truth() -> None:
    truth = ground_truth_json(TOOLS, LABEL)
    assert compute_score("looptool", render_action(LABEL), truth) == 1.0
    assert compute_score("looptool", "nothing", truth, extra_info={"index": 3}) == 0.0


def test_reward_module_imports_only_stdlib_and_pydantic() -> None:
    """verl loads it in its own environment: nothing heavy may come along."""
    code = (
        "import sys, toolcall.reward; "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'torch','transformers','faust','aiokafka','lancedb','fastavro','numpy','pandas','vllm',"
        "'structlog','looptool','schemas','streams'}); "
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
