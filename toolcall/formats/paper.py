"""This project's rendering of the paper's GRPO samples (Figures 8-9).

``tools``, the context as ``messages`` (role/content list) or ``input`` (ChatML text with
``<|im_start|>`` turns), and ``label`` as ``<tool_call>`` text (or an Action object or a list of
calls); optional ``ordered``. Without ``label`` the record is a whole dialogue: one sample per step.
The conversation's time, when the record gives it (a ``current_time`` field, or the Figure 7 system
prompt's "The current time is …" in the ChatML ``input``), goes with every sample.
"""

from __future__ import annotations

import re
from typing import Any

from toolcall.formats.common import (
    Conversion,
    RecordError,
    assistant_from_text,
    call_from,
    check_context,
    dialogue_samples,
    label_from,
    message,
    tools_from,
)
from toolcall.types import Message, Sample

_CHATML_TURN = re.compile(
    r"<\|im_start\|>\s*(\w+)\s*\n?(.*?)(?:<\|im_end\|>|(?=<\|im_start\|>)|\Z)", re.DOTALL
)
_TOOL_RESPONSE = re.compile(r"<tool_response>\s*(.*?)\s*</tool_response>", re.DOTALL)


def chatml_messages(text: str) -> list[Message]:
    messages: list[Message] = []
    turns = _CHATML_TURN.findall(text)
    if not turns:
        raise RecordError("input has no <|im_start|> turns")
    for role, content in turns:
        content = content.strip()
        if role == "assistant":
            messages.append(assistant_from_text(content))
        elif role in ("user", "tool") and _TOOL_RESPONSE.search(content):
            messages.extend(message("tool", response) for response in _TOOL_RESPONSE.findall(content))
        else:
            messages.append(message(role, content))
    return messages


def plain_message(raw: Any) -> Message:
    if not isinstance(raw, dict):
        raise RecordError("each message must be an object")
    role = raw.get("role")
    if role == "assistant" and isinstance(raw.get("content"), str) and "<tool_call>" in raw["content"]:
        return assistant_from_text(raw["content"])
    calls = [call_from(c) for c in raw.get("tool_calls") or []]
    return message(str(role), raw.get("content"), calls, raw.get("name"))


def from_paper(record: dict[str, Any]) -> Conversion:
    notes: list[str] = []
    tools = tools_from(record.get("tools"), notes)
    ordered = bool(record.get("ordered", False))
    if "messages" in record:
        raw = record["messages"]
        if not isinstance(raw, list):
            raise RecordError("messages must be a list")
        messages = [plain_message(m) for m in raw]
    elif isinstance(record.get("input"), str):
        messages = chatml_messages(record["input"])
    else:
        raise RecordError("paper record needs 'messages' or an 'input' string")
    time = conversation_time(record)
    if "label" not in record:
        samples = dialogue_samples(tools, messages, ordered)
        return Conversion("paper", [s.model_copy(update={"conversation_time": time}) for s in samples], notes)
    check_context(messages)
    sample = Sample(
        tools=tools, messages=messages, label=label_from(record["label"], ordered), conversation_time=time
    )
    return Conversion("paper", [sample], notes)


_TIME_KEYS = ("current_time", "conversation_time")
# The paper's system prompt (Figure 7) states the time: "The current time is {current_time}."
_STATED_TIME = re.compile(r"The current time is ([^\n<]{1,80}?)\.?[ \t]*(?:\n|<\||$)")


def conversation_time(record: dict[str, Any]) -> str | None:
    """The time of the record's conversation: a ``current_time`` (or ``conversation_time``) field, or
    the time the paper's system prompt states in a ChatML ``input``; None when the record has none."""
    for key in _TIME_KEYS:
        value = record.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip() or len(value) > 80:
            raise RecordError(f"{key} must be a non-empty string of at most 80 characters", f"invalid {key}")
        return value.strip()
    text = record.get("input")
    if isinstance(text, str):
        stated = _STATED_TIME.search(text)
        if stated:
            return stated.group(1).strip()
    return None
