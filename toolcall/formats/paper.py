"""This project's rendering of the paper's GRPO samples (Figures 8-9).

``tools``, the context as ``messages`` (role/content list) or ``input`` (ChatML text with
``<|im_start|>`` turns; a last assistant turn with nothing in it is the generation prompt, not a
turn), and ``label`` as ``<tool_call>`` text (or an Action object or a list of calls); optional
``ordered``. Without ``label`` the record is a whole dialogue: one sample per step
(detected by its keys, such a record with ``messages`` is read by :mod:`toolcall.formats.chat`, which
reads its turns the same way and keeps its time). Assistant turns are read as model outputs are
(:mod:`toolcall.formats.assistant`).
A system prompt that carries the tool list, this project's own Figure 7 prompt among them, is the
calling harness (:mod:`toolcall.formats.harness`): its tools are the sample's when the record has no
``tools`` (both given: they must agree), and it is not kept as a message. The conversation's time,
when the record gives it (a ``current_time`` field, or the Figure 7 system prompt's "The current time
is …"), goes with every sample.
"""

from __future__ import annotations

import re
from typing import Any

from toolcall.formats.assistant import assistant_text, merge_calls
from toolcall.formats.common import (
    Conversion,
    RecordError,
    call_from,
    check_context,
    conversation_time,
    dialogue_samples,
    flag,
    has_tool_responses,
    label_from,
    message,
    tool_responses,
    with_time,
)
from toolcall.formats.harness import Harness, read_system, read_user
from toolcall.specs import ToolSpec
from toolcall.types import Message, Sample, ToolCall

_CHATML_TURN = re.compile(
    r"<\|im_start\|>\s*(\w+)\s*\n?(.*?)(?:<\|im_end\|>|(?=<\|im_start\|>)|\Z)", re.DOTALL
)
# The turns that may carry the calling harness, each with its reader.
_HARNESS_ROLES = {"system": read_system, "user": read_user}


def chatml_messages(text: str, notes: list[str], tools: list[ToolSpec] | None = None) -> list[Message]:
    messages: list[Message] = []
    turns = _CHATML_TURN.findall(text)
    if not turns:
        raise RecordError("input has no <|im_start|> turns")
    for index, (role, content) in enumerate(turns):
        content = content.strip()
        if role == "assistant":
            where = f"input turn {index} (assistant)"
            if index == len(turns) - 1 and assistant_text(content, [], where, tools or ()) == ("", []):
                break  # the template's generation prompt: the answer to learn is not written yet
            messages.append(_assistant(content, [], notes, where, tools))
        elif role in ("user", "tool") and has_tool_responses(content):
            messages.extend(message("tool", response) for response in tool_responses(content))
        else:
            messages.append(message(role, content))
    return messages


def _assistant(
    text: str, structured: list[ToolCall], notes: list[str], where: str, tools: list[ToolSpec] | None
) -> Message:
    content, text_calls = assistant_text(text, notes, where, tools or ())
    calls = merge_calls(text_calls, structured, where)
    if not content and not calls:
        raise RecordError(f"{where}: assistant turn is empty", "assistant turn is empty")
    return Message(role="assistant", content=content, tool_calls=calls)


def plain_message(raw: Any, notes: list[str], where: str, tools: list[ToolSpec] | None = None) -> Message:
    if not isinstance(raw, dict):
        raise RecordError("each message must be an object")
    role = raw.get("role")
    raw_calls = raw.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        raise RecordError("a message's 'tool_calls' must be a list", "'tool_calls' is not a list")
    calls = [call_from(c) for c in raw_calls]
    if role == "assistant" and isinstance(raw.get("content"), str) and raw["content"].strip():
        return _assistant(raw["content"], calls, notes, where, tools)
    return message(str(role), raw.get("content"), calls, raw.get("name"))


def from_paper(record: dict[str, Any]) -> Conversion:
    notes: list[str] = []
    ordered = flag(record, "ordered")
    # The tools first (a system prompt, or a user turn, may list them): they type the values of
    # XML-argument calls in assistant turns and in the label.
    harness = Harness()
    for role, text in _harness_texts(record):
        if role == "system":
            harness.system(text)
        else:
            harness.user(text)
    tools = harness.tools(record.get("tools"), notes)
    if "messages" in record:
        raw = record["messages"]
        messages = [plain_message(m, notes, f"message {i} ({_role(m)})", tools) for i, m in enumerate(raw)]
    elif isinstance(record.get("input"), str):
        messages = chatml_messages(record["input"], notes, tools)
    elif isinstance(record.get("input"), list):
        # Llama-Nemotron's post-training sets write {"input": [messages], "output": "..."}; none of its
        # published categories is tool calling, so the layout is named rather than guessed at.
        beside = " beside an 'output' (Llama-Nemotron's post-training layout)" if "output" in record else ""
        raise RecordError(
            f"'input' is a list of messages{beside}, and 'input' is read only as ChatML text: give the "
            "turns as 'messages', the answer to learn as their last (assistant) turn",
            "'input' is a list of messages, not ChatML text",
        )
    else:
        raise RecordError("paper record needs 'messages' or an 'input' string")
    messages = _without_harness(messages)
    time = conversation_time(record) or harness.time
    if "label" not in record:
        return Conversion("paper", with_time(dialogue_samples(tools, messages, ordered), time), notes)
    check_context(messages)
    sample = Sample(
        tools=tools,
        messages=messages,
        label=label_from(record["label"], ordered, tools),
        conversation_time=time,
    )
    return Conversion("paper", [sample], notes)


def _harness_texts(record: dict[str, Any]) -> list[tuple[str, str]]:
    """The record's system prompts and user turns (role, text) as its messages will hold them, before
    the messages are read."""
    if "messages" in record:
        raw = record["messages"]
        if not isinstance(raw, list):
            raise RecordError("messages must be a list")
        return [
            (m["role"], m["content"])
            for m in raw
            if isinstance(m, dict) and m.get("role") in _HARNESS_ROLES and isinstance(m.get("content"), str)
        ]
    if isinstance(record.get("input"), str):
        turns = _CHATML_TURN.findall(record["input"])
        return [(role, content.strip()) for role, content in turns if role in _HARNESS_ROLES]
    return []


def _without_harness(messages: list[Message]) -> list[Message]:
    """The messages with each system prompt's (and user turn's) calling harness, read before them,
    left out."""
    kept: list[Message] = []
    for turn in messages:
        reader = _HARNESS_ROLES.get(turn.role)
        text = reader(turn.content).kept if reader is not None else turn.content
        if text != turn.content:
            if text:
                kept.append(turn.model_copy(update={"content": text}))
            continue
        kept.append(turn)
    return kept


def _role(raw: Any) -> str:
    return str(raw.get("role")) if isinstance(raw, dict) else "?"
