"""The binary ToolMatch reward (Eq. 1), for the CPU trainer and as verl's custom reward function.

verl imports this module from its own environment (``custom_reward_function.path`` points here,
``name`` is ``compute_score``), so it and everything it imports stays pure: the standard library and
pydantic only. The ground truth verl hands back is the string written into the training parquet by
:func:`ground_truth_json`: the sample's tools and its label.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from toolcall.match import counts_as_match, tool_match
from toolcall.parsing import parse_output
from toolcall.specs import ToolSpec, load_tools
from toolcall.types import Action, Message

DATA_SOURCE = "looptool"


def reward(
    tools: Sequence[ToolSpec],
    messages: Sequence[Message],
    label: Action,
    output: str,
    *,
    truncated: bool = False,
    trace_opened: bool = False,
) -> int:
    """r(T, c_t, a*_t, a_t): 1 when the output parses and ToolMatches the label, else 0.

    ``truncated``: the output was cut off at the token budget; then only matching calls earn the
    reward (:func:`toolcall.match.counts_as_match`), as the probe counts them. ``trace_opened``: the
    prompt ended inside a reasoning trace its chat template opened
    (:func:`toolcall.templates.prompt_opens_trace`), so the answer starts after ``</think>``
    (:func:`toolcall.parsing.parse_output`). The context does not
    change the comparison; it is part of the signature because the reward is defined on the whole
    sample (and a future reward may need it).
    """
    del messages
    parsed = parse_output(output, tools, trace_opened=trace_opened)
    if parsed.action is None:
        return 0
    matched = tool_match(parsed.action, label, tools).matched
    return int(counts_as_match(parsed.action, matched, truncated=truncated))


def ground_truth_json(tools: Sequence[ToolSpec], label: Action) -> str:
    """What a training row carries for the reward: the tools (OpenAI form) and the label."""
    return json.dumps(
        {"tools": [tool.to_openai() for tool in tools], "label": label.model_dump(mode="json")},
        ensure_ascii=False,
        sort_keys=True,
    )


@lru_cache(maxsize=65536)
def _ground_truth(ground_truth: str) -> tuple[tuple[ToolSpec, ...], Action]:
    value = json.loads(ground_truth)
    return tuple(load_tools(value["tools"])), Action.model_validate(value["label"])


def compute_score(
    data_source: str, solution_str: str, ground_truth: str, extra_info: dict[str, Any] | None = None, **_: Any
) -> float:
    """verl's reward-function signature. Raises on a ground truth this module did not write.

    ``extra_info["truncated"]``: set by our reward manager (trainer/verl/reward_manager.py) when the
    response was cut off at its token budget, and ``extra_info["trace_opened"]`` when its prompt
    ended inside a reasoning trace the chat template opened.
    """
    del data_source
    tools, label = _ground_truth(ground_truth)
    info = extra_info or {}
    truncated = bool(info.get("truncated", False))
    trace_opened = bool(info.get("trace_opened", False))
    return float(reward(tools, (), label, solution_str, truncated=truncated, trace_opened=trace_opened))
