"""OpenAI chat records: ``messages`` (with ``tool_calls``, ``tool`` results) and ``tools``; TRL's
conversational ``prompt`` / ``completion`` (or ``chosen``) records are read as the one dialogue they make.

Content may be a string or a list of parts (OpenAI's ``{"type": "text", "text": ...}``, LLaMA-Factory's
``{"type": "text", "value": ...}`` and ``{"type": "tool_call", "value": "{...}"}``); reasoning parts are
left out with a warning, and any other part (an image) is refused. Anthropic Messages records are read
too: ``tool_use`` parts are the assistant's calls, a user turn's ``tool_result`` parts are tool results
(named by the call their ``tool_use_id`` points to, in order, text beside them a user message in its
place), ``thinking`` parts are reasoning, ``system`` may be a list of text parts, and tools may carry
``input_schema``. ``arguments`` may be a JSON string, the
legacy ``function_call`` / ``function`` role and ``functions`` list are read too, Llama 3.1's ``ipython``
role is a tool result (so are the ``function_response``, ``tool_response`` and ``observation`` roles of
glaive and ModelScope exports; their ``function_call`` or ``tool_call`` role is a turn of calls alone,
consecutive ones one step), and ``developer`` is a system turn. AmanPriyanshu's tool-reasoning-sft sets
write a step as roles of their own: ``reasoning`` (left out with a warning), ``tool_call`` (a call turn),
``tool_output`` (a tool result) and ``answer`` (the assistant's answer). An assistant's text is read as a
model output is (:mod:`toolcall.formats.assistant`): calls written in it (``<tool_call>`` blocks, bare JSON,
When2Call's ``<TOOLCALL>``) are calls, text that does not parse is refused, and calls given both in the
text and in ``tool_calls`` must agree. An assistant turn with ``"weight": 0`` (OpenAI fine-tuning: do not
train on it) is never a label; it stays in the context of the turns after it. A ``current_time`` (or
``conversation_time``) field is the conversation's time, as in :mod:`toolcall.formats.paper`. With no
``tools`` (or ``functions``, or ``tools_json``) field, a ``metadata`` object (or JSON text) holding
``tools`` gives them (Nemotron-Post-Training-Dataset-v1's tool_calling split); with none of those,
``chat_template_kwargs`` gives its ``xml_tools`` listings and its ``custom_instructions`` as the system
message (smoltalk2). ToolsGen's ``assistant_calls`` are the calls of the assistant turn after the
messages. Toucan's ``available_tools`` column lists the tools where nothing else does. A system
prompt that carries the tool list is read as the calling harness
(:mod:`toolcall.formats.harness`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from toolcall.formats.assistant import add_call_turn, assistant_text, call_turn, merge_calls
from toolcall.formats.common import (
    Conversion,
    RecordError,
    call_from,
    conversation_time,
    dialogue_samples,
    flag,
    json_or_value,
    message,
    openai_tool_calls,
    text_of,
    tool_responses,
    tool_result_content,
    tool_result_pieces,
    tool_use_names,
    turn_weight,
    with_time,
)
from toolcall.formats.harness import Harness, tools_in_entry
from toolcall.specs import ToolSpec
from toolcall.types import Message

# Roles other exports give OpenAI-style messages, by the role they are here: glaive's parsed form and
# ModelScope's function-calling-chatml write a step's calls alone as a turn of their own.
_ROLE_NAMES = {
    "developer": "system",
    "tool_call": "function_call",
    "function_response": "tool",
    "tool_response": "tool",
    "observation": "tool",
    "tool_output": "tool",  # AmanPriyanshu's tool-reasoning-sft sets, their answer turn below
    "answer": "assistant",
}
_TOOL_ROLES = ("tool", "function", "ipython")  # ipython: Llama 3.1's tool results
# A turn of the assistant's reasoning alone (AmanPriyanshu's tool-reasoning-sft sets: ``<think>…</think>``
# before each call or answer): left out, as a <think> trace is; it is no step, and no turn between steps.
_REASONING_ROLE = "reasoning"
# A turn that is the tool list alone, as JSON (GasaiAI/Tool-Reasoning-31K): the harness, never a message.
_TOOL_LIST_ROLE = "available_tools"
# Fields exports keep an assistant's reasoning in, beside its content (DeepSeek's and vLLM's
# reasoning_content, OpenRouter's reasoning, gpt-oss templates' thinking): left out, as a <think> trace is.
_REASONING_FIELDS = ("reasoning_content", "reasoning", "thinking")
# Columns a record keeps its tool list in, the first present is read: OpenAI's ``tools``, the legacy
# ``functions``, and ``tools_json`` (JSON text; tuandunghcmut/apigen-function-calling's OpenAI-format
# conversion of APIGen).
_TOOL_FIELDS = ("tools", "functions", "tools_json")


def from_openai(record: dict[str, Any]) -> Conversion:
    notes: list[str] = []
    given = next((record[key] for key in _TOOL_FIELDS if record.get(key) is not None), None)
    tools_value = json_or_value(given, "tools", python=True)
    if tools_value is None:
        tools_value = _metadata_tools(record.get("metadata"))
    if tools_value is None:
        tools_value = _template_tools(record.get("chat_template_kwargs"), notes)
    if "messages" not in record and "prompt" in record:
        raw_messages = _prompt_and_completion(record, notes)
    else:
        raw_messages = json_or_value(record.get("messages"), "messages")
    if not isinstance(raw_messages, list):
        raise RecordError("openai 'messages' must be a list")
    raw_messages = [
        *_system_field(record, raw_messages),
        *raw_messages,
        *_chosen_response(record, notes),
        *_assistant_calls(record),
    ]
    turns = _turns(raw_messages)
    # The tools first (a system prompt may list them): they type the values of XML-argument calls in
    # the assistant's text.
    harness = Harness()
    kept_texts = _harness_read(turns, harness)
    if tools_value is None and not harness.listings:
        # Toucan-1.5M's available_tools column (JSON text) lists the tools its messages were made with;
        # where a prompt in the messages lists them too, that listing, what the model saw, is read.
        tools_value = json_or_value(record.get("available_tools"), "available_tools", python=True)
    tools = harness.tools(tools_value, notes)
    messages, untrained = _messages(turns, tools, kept_texts, notes)
    samples = dialogue_samples(tools, messages, flag(record, "ordered"), frozenset(untrained))
    # The paper's whole dialogues (``messages`` without ``label``) are read here: keep their time too.
    return Conversion("openai", with_time(samples, conversation_time(record) or harness.time), notes)


def chat_messages(raw_messages: list[Any], tools: Sequence[ToolSpec] = ()) -> list[Message]:
    """A list of OpenAI-style messages as this project's, read as :func:`from_openai` reads a record's
    (calls in ``tool_calls`` or in the text, tool results, Anthropic parts, other exports' roles; a
    system prompt that only lists tools is no message). ``tools`` type the values of XML-argument
    calls. Raises :class:`RecordError` on what does not read."""
    turns = _turns(raw_messages)
    messages, _ = _messages(turns, list(tools), _harness_read(turns, Harness()), [])
    return messages


def _harness_read(turns: list[tuple[str, dict[str, Any]]], harness: Harness) -> dict[str, str]:
    """Each system and user turn's text to keep (by the turn's index), read for its harness."""
    kept_texts: dict[str, str] = {}
    for index, raw in turns:
        role = str(raw.get("role"))
        role = _ROLE_NAMES.get(role, role)
        if role in ("system", "user"):
            text = text_of(raw.get("content"), [], f"message {index} ({role})")[0]
            kept_texts[index] = harness.system(text) if role == "system" else harness.user(text)
        elif role == _TOOL_LIST_ROLE:
            harness.tool_turn(text_of(raw.get("content"), [], f"message {index} ({role})")[0])
    return kept_texts


def _messages(
    turns: list[tuple[str, dict[str, Any]]],
    tools: list[ToolSpec],
    kept_texts: dict[str, str],
    notes: list[str],
) -> tuple[list[Message], set[int]]:
    """The turns as messages, and the positions of assistant turns not to train on (weight 0)."""
    names_by_call_id: dict[str, str] = {}
    messages: list[Message] = []
    untrained: set[int] = set()
    previous_role = ""
    for index, raw in turns:
        role = str(raw.get("role"))
        role = _ROLE_NAMES.get(role, role)
        if role == _TOOL_LIST_ROLE:  # read with the harness, before the turns
            continue
        where = f"message {index} ({role})"
        if role == _REASONING_ROLE:
            notes.append(f"{where}: reasoning not kept (a step's label is its calls or its answer)")
            continue
        content = raw.get("content")
        if role in _TOOL_ROLES:
            content = tool_result_content(content)
        text, part_calls = text_of(content, notes, where)
        if role == "assistant":
            if any(isinstance(raw.get(key), str) and raw[key].strip() for key in _REASONING_FIELDS):
                notes.append(f"{where}: reasoning field not kept (a step's label is its calls or its answer)")
            calls = list(part_calls)
            names_by_call_id.update(tool_use_names(raw.get("content")))
            if raw.get("tool_calls"):
                calls.extend(openai_tool_calls(raw["tool_calls"], where))
                for entry in raw["tool_calls"]:
                    if isinstance(entry, dict) and entry.get("id"):
                        names_by_call_id[entry["id"]] = (entry.get("function") or {}).get("name", "")
            if raw.get("function_call"):
                calls.append(call_from(raw["function_call"]))
            if turn_weight(raw, where) == 0:
                untrained.add(len(messages))
            text, text_calls = assistant_text(text, notes, where, tools)
            calls = merge_calls(text_calls, calls, where)
            messages.append(Message(role="assistant", content=text, tool_calls=calls))
        elif role == "function_call":  # a turn of the assistant's calls alone
            add_call_turn(messages, call_turn(text, where), previous_role == "function_call")
            if turn_weight(raw, where) == 0:
                untrained.add(len(messages) - 1)  # joined to the turn before or not, its step is the last
        elif role in _TOOL_ROLES:
            name = raw.get("name") or names_by_call_id.get(raw.get("tool_call_id", ""))
            messages.extend(message("tool", response, name=name) for response in tool_responses(text))
        else:
            if part_calls:
                raise RecordError(
                    f"{where}: only assistant turns make calls", "calls outside an assistant turn"
                )
            kept = kept_texts.get(index, text)
            if kept or kept == text:  # a system prompt that was only the harness is no message
                messages.append(message(role, kept))
        previous_role = role
    return messages, untrained


def _metadata_tools(metadata: Any) -> Any:
    """The tools a record keeps in its ``metadata`` (Nemotron-Post-Training-Dataset-v1's tool_calling
    split: a JSON string ``{"tools": [...]}``); None where it keeps none. Metadata that is no JSON object
    is other data, not a tool list: it is left alone."""
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except json.JSONDecodeError:
            return None
    return metadata.get("tools") if isinstance(metadata, dict) else None


def _template_tools(template_kwargs: Any, notes: list[str]) -> list[Any] | None:
    """The tools a record gives its chat template (HuggingFaceTB/smoltalk2's ``chat_template_kwargs``:
    ``xml_tools``, a list of texts each listing tools, as a Python literal in a ``<tools>`` block in its
    xlam and Hermes splits); None where it gives none. ``python_tools`` (function signatures in Python,
    for code agents) are no tool list this reader knows: a warning names them."""
    if not isinstance(template_kwargs, dict):
        return None
    if template_kwargs.get("python_tools"):
        notes.append("chat_template_kwargs python_tools not read (Python signatures, not a tool list)")
    entries = template_kwargs.get("xml_tools")
    if not isinstance(entries, list) or not entries:
        return None
    tools: list[Any] = []
    for index, entry in enumerate(entries):
        where = f"chat_template_kwargs xml_tools[{index}]"
        if not isinstance(entry, str):
            raise RecordError(f"{where} must be a string", "chat_template_kwargs xml_tools is not strings")
        listed = tools_in_entry(entry, where)
        if listed is None:
            notes.append(f"{where} lists no tool (no JSON or Python literal in it): not read")
        tools.extend(listed or [])
    return tools


def _turns(raw_messages: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    """Each message with the index it is named by; a user turn holding Anthropic ``tool_result`` parts
    is split, in order, into a ``tool`` message per result (``tool_call_id`` its ``tool_use_id``) and a
    user message per run of other parts (index ``3.0``, ``3.1``…)."""
    turns: list[tuple[str, dict[str, Any]]] = []
    for index, raw in enumerate(raw_messages):
        if not isinstance(raw, dict):
            raise RecordError("each message must be an object")
        pieces = (
            tool_result_pieces(raw.get("content"), f"message {index}") if raw.get("role") == "user" else None
        )
        if pieces is None:
            turns.append((str(index), raw))
            continue
        turns.extend(
            (f"{index}.{number}", {"role": role, "content": content, "tool_call_id": call_id})
            for number, (role, content, call_id) in enumerate(pieces)
        )
    return turns


def _chosen_response(record: dict[str, Any], notes: list[str]) -> list[Any]:
    """A preference record's answer (When2Call's ``chosen_response`` beside ``messages`` that end with
    the user's question): the assistant turn that follows the messages. The rejected one is no label."""
    chosen = record.get("chosen_response")
    if chosen is None:
        return []
    if not isinstance(chosen, dict) or chosen.get("role") != "assistant":
        raise RecordError(
            "'chosen_response' must be an assistant message", "chosen_response is not an assistant message"
        )
    if record.get("rejected_response") is not None:
        notes.append("rejected_response not kept (a sample learns the chosen answer only)")
    return [chosen]


def _assistant_calls(record: dict[str, Any]) -> list[Any]:
    """ToolsGen's answer (atasoglu/nano-tool-calling-v1: ``messages`` hold the user's request alone,
    ``assistant_calls`` the OpenAI ``tool_calls`` entries that answer it): the assistant turn that makes
    those calls, after the messages. None or an empty list adds no turn."""
    calls = record.get("assistant_calls")
    if calls is None or calls == []:
        return []
    if not isinstance(calls, list):
        raise RecordError("'assistant_calls' must be a list of tool calls", "assistant_calls is not a list")
    return [{"role": "assistant", "content": None, "tool_calls": calls}]


def is_prompt_completion(record: dict[str, Any]) -> bool:
    """TRL's conversational prompt-completion (or preference) record: ``prompt`` a list of messages and
    ``completion`` (or ``chosen``) the list of the turns to learn."""
    answer = record.get("completion", record.get("chosen"))
    return isinstance(record.get("prompt"), list) and isinstance(answer, list)


def _prompt_and_completion(record: dict[str, Any], notes: list[str]) -> list[Any]:
    """The dialogue of a TRL prompt-completion record: the prompt's turns as context only (its assistant
    turns are not trained on, as TRL does not), then the completion's (a preference record's
    ``chosen``; its ``rejected`` is not kept)."""
    if not is_prompt_completion(record):
        raise RecordError(
            "a prompt-completion record needs 'prompt' and 'completion' (or 'chosen') lists of messages",
            "prompt-completion record is not two lists of messages",
        )
    if record.get("rejected") is not None:
        notes.append("rejected not kept (a sample learns the chosen answer only)")
    completion = record.get("completion", record.get("chosen"))
    prompt = [
        {**turn, "weight": 0} if isinstance(turn, dict) and turn.get("role") == "assistant" else turn
        for turn in record["prompt"]
    ]
    return [*prompt, *completion]


def _system_field(record: dict[str, Any], raw_messages: list[Any]) -> list[Any]:
    """A ``system`` field beside the messages (exports that keep the system prompt in a column of its
    own; smoltalk2's ``chat_template_kwargs.custom_instructions``) as the first message; nothing when it
    is empty or the messages already start with it."""
    system = record.get("system")
    template_kwargs = record.get("chat_template_kwargs")
    has_system_turn = any(
        isinstance(m, dict) and m.get("role") in ("system", "developer") for m in raw_messages
    )
    if system is None and isinstance(template_kwargs, dict) and not has_system_turn:
        system = template_kwargs.get("custom_instructions")  # smoltalk2: the system prompt's own text
    if isinstance(system, list):  # Anthropic Messages: a list of text blocks
        system = text_of(system, [], "system field")[0]
    if system is None or (isinstance(system, str) and not system.strip()):
        return []
    if not isinstance(system, str):
        raise RecordError("openai 'system' must be a string", "system field is not a string")
    first = raw_messages[0] if raw_messages else None
    if isinstance(first, dict) and first.get("role") == "system" and first.get("content") == system:
        return []
    return [{"role": "system", "content": system}]
