"""The ShareGPT family: ``conversations`` of ``{"from", "value"}`` turns, and glaive's raw transcripts.

- **Hermes function-calling v1** (NousResearch): tools in a ``<tools>`` block of the system turn (JSON,
  one object per line, or a Python literal with single quotes and ``True``), calls in ``<tool_call>``
  blocks of ``gpt`` turns (JSON or Python literals), results in ``<tool_response>`` blocks of ``tool``
  turns. The system prose mentions "``<tools> </tools>`` XML tags" before the real block: empty blocks
  are skipped.
- **glaive / LLaMA-Factory**: ``tools`` as a JSON string (``"[]"``: no tool), calls in
  ``function_call`` turns (JSON, one call or a list), results in ``observation`` turns.
- **ToolACE**: tools listed as JSON in the ``system`` field ("...in JSON format that you can invoke:
  [...]"), speakers ``user``/``assistant``/``tool``, calls written as Python, ``[Func Name(a=1, b="x")]``.
- **glaive raw** (``glaiveai/glaive-function-calling-v2``: ``system`` and ``chat`` strings):
  ``USER:``/``ASSISTANT:``/``FUNCTION RESPONSE:`` turns, calls as ``<functioncall> {...}`` with the
  arguments a JSON object in single quotes (``"arguments": '{"message": "I'm late"}'``).
- **ToolBench / ToolLLaMA**: the APIs listed in the system prompt ("the following APIs: [...]", less the
  ``Finish`` pseudo-API), ``Thought:`` / ``Action:`` / ``Action Input:`` steps of one call each in
  ``assistant`` turns (:mod:`toolcall.formats.assistant`), results in ``function`` turns.

Turns are ``{"from", "value"}`` or ``{"role", "content"}`` (speakers in any case), with OpenAI's
``tool_calls`` on assistant turns (then ``"content": null`` is allowed) and content as text or a list of
parts, as in :mod:`toolcall.formats.chat`. Speakers human/user, gpt/assistant, system,
tool/observation/tool_response and function_call/tool_call are read (a hyphen or a space as an underscore:
glaive's function-calling-chatml writes ``function-call``, its calls with glaive's single-quoted
arguments, lilacai's glaive-function-calling-v2-sharegpt ``function call``);
consecutive ``function_call`` turns with no result between them are one step. Anthropic content blocks
are read as in :mod:`toolcall.formats.chat`: ``tool_use`` parts are calls, a user turn's ``tool_result``
parts are tool results (named by the ``tool_use`` their ``tool_use_id`` points to). Assistant text is read by
:mod:`toolcall.formats.assistant`, as in every chat reader (glaive's ``<functioncall>`` included). A
system prompt that only carried the tool list is the dataset's calling harness: it is not kept as a
message (the policy prompt renders the tools), and the conversion says so in its warnings.
"""

from __future__ import annotations

import re
from typing import Any

from toolcall.formats.assistant import add_call_turn, assistant_text, call_turn, merge_calls
from toolcall.formats.common import (
    Conversion,
    RecordError,
    dialogue_samples,
    message,
    openai_tool_calls,
    python_calls_to_tool_calls,
    text_of,
    tool_responses,
    tool_result_content,
    tool_result_pieces,
    tool_use_names,
    turn_weight,
    with_time,
)
from toolcall.formats.harness import Harness
from toolcall.specs import ToolSpec
from toolcall.types import Message, ToolCall

_SPEAKERS = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "chatgpt": "assistant",
    "tool": "tool",
    "observation": "tool",
    "tool_response": "tool",
    "function_response": "tool",
    "function": "tool",
    "ipython": "tool",
    "function_call": "function_call",
    "tool_call": "function_call",
}
_SEPARATORS = re.compile(r"[\s-]+")
# ToolACE's call syntax: "[Name(" where the name holds no brackets, quotes or separators.
_PYTHON_CALLS = re.compile(r"^\s*\[\s*[^\[\]{}\"'=,()]+\(", re.DOTALL)


def _assistant(value: str, tools: list[ToolSpec], notes: list[str], where: str) -> Message:
    # ToolACE's calls first: their names may hold spaces and their arguments may be positional (in the
    # declared order), which the output parser, reading a model's calls, does not accept.
    if _PYTHON_CALLS.match(value) and "<tool_call>" not in value:
        return Message(role="assistant", tool_calls=python_calls_to_tool_calls(value, tools, where))
    content, calls = assistant_text(value, notes, where, tools)
    return Message(role="assistant", content=content, tool_calls=calls)


def _function_call(value: str, tools: list[ToolSpec], where: str) -> list[ToolCall]:
    if _PYTHON_CALLS.match(value):
        return python_calls_to_tool_calls(value, tools, where)
    return call_turn(value, where)


def _turn(turn: Any) -> tuple[str, str, Any]:
    """A turn's speaker as written, its role and its value, from ``from``/``value`` or
    ``role``/``content`` keys (datasets write either, and speakers in any case)."""
    if not isinstance(turn, dict):
        raise RecordError("each conversation turn must be an object")
    speaker = turn.get("from", turn.get("role"))
    # function-call, function-response (function-calling-chatml); "function call" (lilacai's glaive-v2)
    role = _SPEAKERS.get(_SEPARATORS.sub("_", str(speaker).strip().lower()))
    if role is None:
        raise RecordError(f"unknown sharegpt speaker {speaker!r}", "unknown sharegpt speaker")
    value = turn["value"] if "value" in turn else turn.get("content", "")
    return str(speaker), role, value


def _structured_calls(turn: dict[str, Any], role: str, where: str) -> list[ToolCall]:
    """The calls of a turn's OpenAI-style ``tool_calls`` field (read as in ``openai``)."""
    if not turn.get("tool_calls"):
        return []
    if role != "assistant":
        raise RecordError(f"{where}: only assistant turns make calls", "calls outside an assistant turn")
    return openai_tool_calls(turn["tool_calls"], where)


def from_sharegpt(record: dict[str, Any]) -> Conversion:
    turns = record.get("conversations")
    if not isinstance(turns, list):
        raise RecordError("sharegpt 'conversations' must be a list of turns")
    notes: list[str] = []
    tools_value: Any = record.get("tools")
    if isinstance(tools_value, str) and tools_value.strip() in ("", "[]"):
        tools_value = None  # glaive / LLaMA-Factory write "[]" for no tool; a system prompt may list them
    system_field = record.get("system")
    if system_field is not None and not isinstance(system_field, str):
        raise RecordError("sharegpt 'system' must be a string")
    # The tools come first (ToolACE's positional arguments take their declared order), so every system
    # and user text is read for its harness before the turns are; kept: what stays of each as a message.
    harness = Harness()
    kept_field = harness.system(system_field) if system_field else ""
    kept: dict[int, str] = {}
    labelled_turns = _with_tool_results_split(turns)
    for index, (_, turn) in enumerate(labelled_turns):
        _, role, value = _turn(turn)
        if role in ("system", "user") and isinstance(value, str | list):
            text = value if isinstance(value, str) else text_of(value, [], "")[0]
            kept[index] = harness.system(text) if role == "system" else harness.user(text)
    tools = harness.tools(tools_value, notes)
    messages: list[Message] = []
    untrained: set[int] = set()  # assistant steps the record says not to train on ("weight": 0)
    if kept_field:
        messages.append(message("system", kept_field))
    previous_role = ""
    names_by_call_id: dict[str, str] = {}  # Anthropic tool_use ids, to name the results that answer them
    for index, (label, turn) in enumerate(labelled_turns):
        speaker, role, value = _turn(turn)
        where = f"turn {label} ({speaker})"
        if role == "assistant" and turn_weight(turn, where) == 0:
            untrained.add(len(messages))
        structured = _structured_calls(turn, role, where)
        if role == "tool":
            value = tool_result_content(value)
        if value is None and structured:
            value = ""  # OpenAI writes "content": null beside tool_calls
        if isinstance(value, list):  # content parts, as in OpenAI messages
            names_by_call_id.update(tool_use_names(value))
            value, part_calls = text_of(value, notes, where)
            structured = [*part_calls, *structured]
        if not isinstance(value, str):
            raise RecordError(
                f"{where}: the value must be text (null only beside tool_calls)", "turn value is not a string"
            )
        if structured and role != "assistant":
            raise RecordError(f"{where}: only assistant turns make calls", "calls outside an assistant turn")
        if role == "system":
            if kept.get(index, value):
                messages.append(message("system", kept.get(index, value)))
        elif role == "assistant":
            said = _assistant(value, tools, notes, where)
            calls = merge_calls(list(said.tool_calls), structured, where)
            for entry in turn.get("tool_calls") or ():  # OpenAI call ids name the results that answer them
                if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                    names_by_call_id[entry["id"]] = str((entry.get("function") or {}).get("name", ""))
            messages.append(Message(role="assistant", content=said.content, tool_calls=calls))
        elif role == "function_call":
            add_call_turn(messages, _function_call(value, tools, where), previous_role == "function_call")
            if turn_weight(turn, where) == 0:
                untrained.add(len(messages) - 1)  # joined to the turn before or not, its step is the last
        elif role == "tool":
            responses = tool_responses(value)
            name = turn.get("name") if isinstance(turn.get("name"), str) else None
            call_id = turn.get("tool_use_id") or turn.get("tool_call_id") or ""
            name = name or names_by_call_id.get(call_id) or None
            messages.extend(message("tool", response.strip(), name=name) for response in responses)
        else:
            text = kept.get(index, value)
            if text or text == value:  # a user turn that was only the harness is no message
                messages.append(message(role, text))
        previous_role = role
    samples = dialogue_samples(tools, messages, untrained=frozenset(untrained))
    return Conversion("sharegpt", with_time(samples, harness.time), notes)


def _with_tool_results_split(turns: list[Any]) -> list[tuple[str, Any]]:
    """Each turn with the index it is named by; a user turn holding Anthropic ``tool_result`` parts is
    split, in order, into a ``tool`` turn per result and a turn of its speaker per run of other parts
    (index ``3.0``, ``3.1``…), as :mod:`toolcall.formats.chat` splits such a message."""
    split: list[tuple[str, Any]] = []
    for index, turn in enumerate(turns):
        _, role, value = _turn(turn)
        pieces = tool_result_pieces(value, f"turn {index}") if role == "user" else None
        if pieces is None:
            split.append((str(index), turn))
            continue
        speaker = turn.get("from", turn.get("role"))
        for number, (kind, content, call_id) in enumerate(pieces):
            piece = {"from": "tool", "value": "" if content is None else content, "tool_use_id": call_id}
            split.append(
                (f"{index}.{number}", piece if kind == "tool" else {"from": speaker, "value": content})
            )
    return split


# --- glaive raw transcripts ------------------------------------------------------------------------

_GLAIVE_TURN = re.compile(r"(?:^|\n)\s*(USER|ASSISTANT|FUNCTION RESPONSE)\s*:", re.MULTILINE)
_END_OF_TEXT = re.compile(r"\s*<\|endoftext\|>\s*")


def from_glaive(record: dict[str, Any]) -> Conversion:
    system, chat = record.get("system"), record.get("chat")
    if not isinstance(system, str) or not isinstance(chat, str):
        raise RecordError("glaive records need 'system' and 'chat' strings")
    notes: list[str] = []
    harness = Harness()
    prompt = harness.system(re.sub(r"^\s*SYSTEM\s*:\s*", "", system).strip())
    tools = harness.tools(None, notes)
    messages: list[Message] = []
    if prompt:
        messages.append(message("system", prompt))
    pieces = _GLAIVE_TURN.split(chat)
    if len(pieces) < 3:
        raise RecordError("glaive chat has no USER:/ASSISTANT: turns", "glaive chat has no turns")
    for index, (speaker, text) in enumerate(zip(pieces[1::2], pieces[2::2], strict=True)):
        text = _END_OF_TEXT.sub("\n", text).strip()
        if speaker == "USER":
            messages.append(message("user", text))
        elif speaker == "FUNCTION RESPONSE":
            messages.append(message("tool", text))
        else:
            content, calls = assistant_text(text, notes, f"turn {index} (ASSISTANT)")
            messages.append(Message(role="assistant", content=content, tool_calls=calls))
    return Conversion("glaive", dialogue_samples(tools, messages), notes)
