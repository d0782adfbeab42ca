"""Dataset formats -> samples (T, c_t, a*_t). Pure: records in, samples or a clear error out.

Supported record formats (one JSON object per JSONL line):

- ``paper``: this project's rendering of the paper's GRPO samples (Figures 8-9): ``tools``, the
  context as ``messages`` (role/content list) or ``input`` (ChatML text with ``<|im_start|>`` turns),
  and ``label`` as ``<tool_call>`` text (or an Action object); optional ``ordered``.
- ``bfcl``: ``question`` (list of turns, each a list of messages), ``function`` (BFCL specs) and
  ``ground_truth`` (BFCL possible answers: per call, each parameter's acceptable values; the label
  takes the first, and omits a parameter whose first acceptable value is ``""``). An empty
  ``ground_truth`` list is a "no call" label (BFCL's irrelevance category).
- ``xlam``: APIGen/xLAM ``query``, ``tools`` and ``answers`` (JSON strings or lists).
- ``openai``: chat ``messages`` with assistant ``tool_calls`` and ``tool`` results, plus ``tools``.
- ``hermes``: ShareGPT-style ``conversations`` (from/value) with ``<tool_call>`` in gpt turns and
  ``tools`` (or a ``<tools>`` block in the system turn).

Whole dialogues (openai, hermes, paper ``input`` without ``label``) yield one sample per assistant
step, as in Section 4.1: each step that calls tools, and each plain-text answer that directly
follows a user turn (a clarification or "no suitable tool" answer). Summaries after tool results
are not steps to learn from and are skipped.
"""

from __future__ import annotations

import json
import re
from typing import Any

from toolcall.parsing import parse_openai_tool_calls, parse_output
from toolcall.specs import ParamSchema, ToolSpec, load_tools
from toolcall.types import Action, Message, Sample, ToolCall

FORMATS = ("paper", "bfcl", "xlam", "openai", "hermes")

_CHATML_TURN = re.compile(
    r"<\|im_start\|>\s*(\w+)\s*\n?(.*?)(?:<\|im_end\|>|(?=<\|im_start\|>)|\Z)", re.DOTALL
)
_TOOL_RESPONSE = re.compile(r"<tool_response>\s*(.*?)\s*</tool_response>", re.DOTALL)
_TOOLS_BLOCK = re.compile(r"<tools>\s*(.*?)\s*</tools>", re.DOTALL)
_HERMES_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "tool": "tool"}


class RecordError(ValueError):
    """A record that cannot become a sample; the message says why."""


def detect_format(record: dict[str, Any]) -> str:
    """Guess a record's format from its keys."""
    if "question" in record and "function" in record:
        return "bfcl"
    if "query" in record and "answers" in record:
        return "xlam"
    if "conversations" in record:
        return "hermes"
    if "label" in record and ("messages" in record or "input" in record):
        return "paper"
    if "messages" in record:
        return "openai"
    if "input" in record:
        return "paper"
    raise RecordError(f"unrecognised record format (keys: {sorted(record)[:12]})")


def record_to_samples(record: Any, fmt: str = "auto") -> list[Sample]:
    """Convert one record to its samples; raises :class:`RecordError` with the reason."""
    if not isinstance(record, dict):
        raise RecordError(f"a record must be a JSON object, got {type(record).__name__}")
    fmt = detect_format(record) if fmt == "auto" else fmt
    converters = {
        "paper": _from_paper,
        "bfcl": _from_bfcl,
        "xlam": _from_xlam,
        "openai": _from_openai,
        "hermes": _from_hermes,
    }
    if fmt not in converters:
        raise RecordError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    try:
        samples = converters[fmt](record)
    except RecordError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise RecordError(f"{fmt} record: {type(exc).__name__}: {exc}") from exc
    if not samples:
        raise RecordError(f"{fmt} record has no assistant step to learn from")
    return samples


# --- helpers ---------------------------------------------------------------------------------------


def _json_or_value(value: Any, what: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise RecordError(f"{what} is not valid JSON: {exc.msg} at char {exc.pos}") from exc
    return value


def _tools(value: Any) -> list[ToolSpec]:
    if value is None:
        raise RecordError("record has no tools")
    try:
        tools = load_tools(_json_or_value(value, "tools"))
    except ValueError as exc:
        raise RecordError(f"invalid tools: {exc}") from exc
    if not tools:
        raise RecordError("record has an empty tool list")
    return tools


def _message(
    role: str, content: Any, tool_calls: list[ToolCall] | None = None, name: str | None = None
) -> Message:
    if role not in ("system", "user", "assistant", "tool"):
        raise RecordError(f"unknown message role {role!r}")
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise RecordError(f"{role} message content must be a string")
    return Message(role=role, content=content, tool_calls=tool_calls or [], name=name)


def _assistant_from_text(text: str) -> Message:
    """An assistant turn written in the paper's format: its ``<tool_call>`` blocks become calls."""
    parsed = parse_output(text)
    if parsed.error:
        raise RecordError(f"assistant turn does not parse: {parsed.error}")
    action = parsed.action
    if action is not None and action.calls:
        return Message(role="assistant", content=parsed.text or "", tool_calls=list(action.calls))
    return Message(role="assistant", content=text.strip())


def _label_from(value: Any, ordered: bool) -> Action:
    """A label given as ``<tool_call>`` text, an Action object, or a list of calls."""
    if isinstance(value, str):
        parsed = parse_output(value)
        if parsed.error or parsed.action is None:
            raise RecordError(f"label does not parse: {parsed.error or 'empty label'}")
        action = parsed.action
    elif isinstance(value, list):
        action = Action(calls=[_call(call) for call in value])
    elif isinstance(value, dict):
        action = Action.model_validate(value)
    else:
        raise RecordError(
            f"label must be text, a list of calls or an action object, got {type(value).__name__}"
        )
    return action.model_copy(update={"ordered": ordered}) if ordered else action


def _call(value: Any) -> ToolCall:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise RecordError(f"a call needs a string 'name': {str(value)[:80]}")
    arguments = _json_or_value(value.get("arguments", value.get("parameters", {})), "call arguments")
    if not isinstance(arguments, dict):
        raise RecordError(f"arguments of {value['name']} must be an object")
    return ToolCall(name=value["name"], arguments=arguments)


def _check_context(messages: list[Message]) -> None:
    if not any(m.role == "user" for m in messages):
        raise RecordError("context has no user turn")


def dialogue_samples(tools: list[ToolSpec], messages: list[Message], ordered: bool = False) -> list[Sample]:
    """One sample per learnable assistant step of a whole dialogue (Section 4.1)."""
    samples = []
    for index, message in enumerate(messages):
        if message.role != "assistant" or index == 0:
            continue
        context = messages[:index]
        previous = context[-1].role
        if message.tool_calls:
            label = Action(calls=list(message.tool_calls), ordered=ordered)
        elif previous == "user" and message.content.strip():
            label = Action(text=message.content.strip())
        else:
            continue
        if any(m.role == "user" for m in context):
            samples.append(Sample(tools=tools, messages=context, label=label))
    return samples


# --- formats ---------------------------------------------------------------------------------------


def _chatml_messages(text: str) -> list[Message]:
    messages: list[Message] = []
    turns = _CHATML_TURN.findall(text)
    if not turns:
        raise RecordError("input has no <|im_start|> turns")
    for role, content in turns:
        content = content.strip()
        if role == "assistant":
            messages.append(_assistant_from_text(content))
        elif role == "user" and _TOOL_RESPONSE.search(content):
            for response in _TOOL_RESPONSE.findall(content):
                messages.append(_message("tool", response))
        else:
            messages.append(_message(role, content))
    return messages


def _from_paper(record: dict[str, Any]) -> list[Sample]:
    tools = _tools(record.get("tools"))
    ordered = bool(record.get("ordered", False))
    if "messages" in record:
        raw = record["messages"]
        if not isinstance(raw, list):
            raise RecordError("messages must be a list")
        messages = [_plain_message(m) for m in raw]
    elif isinstance(record.get("input"), str):
        messages = _chatml_messages(record["input"])
    else:
        raise RecordError("paper record needs 'messages' or an 'input' string")
    if "label" not in record:
        return dialogue_samples(tools, messages, ordered)
    _check_context(messages)
    return [Sample(tools=tools, messages=messages, label=_label_from(record["label"], ordered))]


def _plain_message(raw: Any) -> Message:
    if not isinstance(raw, dict):
        raise RecordError("each message must be an object")
    role = raw.get("role")
    if role == "assistant" and isinstance(raw.get("content"), str) and "<tool_call>" in raw["content"]:
        return _assistant_from_text(raw["content"])
    calls = [_call(c) for c in raw.get("tool_calls") or []]
    return _message(str(role), raw.get("content"), calls, raw.get("name"))


def _from_bfcl(record: dict[str, Any]) -> list[Sample]:
    tools = _tools(record.get("function"))
    question = record.get("question")
    if not isinstance(question, list) or not question:
        raise RecordError("bfcl 'question' must be a non-empty list of turns")
    turns = question if all(isinstance(t, list) for t in question) else [question]
    messages = [_plain_message(m) for turn in turns for m in turn]
    _check_context(messages)
    if "ground_truth" not in record:
        raise RecordError("bfcl record has no 'ground_truth'")
    truth = _json_or_value(record["ground_truth"], "ground_truth")
    label = bfcl_label(truth, tools)
    if not label.calls:
        label = Action(text="None of the available functions can be used for this request.")
    return [Sample(tools=tools, messages=messages, label=label)]


_OMIT = object()


def _bfcl_first(acceptable: list[Any], required: bool) -> Any:
    """The first acceptable value; ``""`` means "left out", which a required parameter cannot be."""
    for value in acceptable:
        if value == "":
            if required:
                continue
            return _OMIT
        return value
    return _OMIT


def _nested_acceptable(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, list) for v in value.values())


def _bfcl_arguments(name: str, acceptable_by_param: Any, schema: ParamSchema | None) -> dict[str, Any]:
    if not isinstance(acceptable_by_param, dict):
        raise RecordError(f"ground truth of {name} must map parameters to acceptable values")
    properties = schema.properties if schema is not None else {}
    required = set(schema.required) if schema is not None else set()
    arguments: dict[str, Any] = {}
    for param, acceptable in acceptable_by_param.items():
        if not isinstance(acceptable, list):
            arguments[param] = acceptable  # a bare value (seen inside nested dicts): take it as given
            continue
        sub = properties.get(param)
        if sub is None and "" in acceptable:
            continue  # BFCL data quirk: an undeclared parameter the answer may leave out is left out
        value = _bfcl_first(acceptable, param in required)
        if value is _OMIT:
            continue
        if sub is not None and "object" in sub.types and _nested_acceptable(value):
            value = _bfcl_arguments(f"{name}.{param}", value, sub)  # acceptable values per dict key
        elif sub is not None and "array" in sub.types and isinstance(value, list):
            items = sub.items
            if items is not None and "object" in items.types:
                value = [
                    _bfcl_arguments(f"{name}.{param}[]", v, items) if _nested_acceptable(v) else v
                    for v in value
                ]
        arguments[param] = value
    return arguments


def bfcl_label(possible_answer: Any, tools: list[ToolSpec]) -> Action:
    """BFCL's possible answer -> our label: per parameter its first acceptable value.

    ``""`` means "may be left out" (a required parameter takes its first other value); dict values
    carry acceptable values per key and are resolved recursively. The result is one output BFCL's
    checker accepts (tested on every satisfiable BFCL v4 item). An empty list is a "no call" label.
    """
    if not isinstance(possible_answer, list):
        raise RecordError("bfcl 'ground_truth' must be a list of calls")
    specs = {tool.name: tool.parameters for tool in tools}
    calls = []
    for entry in possible_answer:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise RecordError("each bfcl ground-truth call must be an object with one function name")
        ((name, acceptable_by_param),) = entry.items()
        calls.append(
            ToolCall(name=name, arguments=_bfcl_arguments(name, acceptable_by_param, specs.get(name)))
        )
    return Action(calls=calls)


def _from_xlam(record: dict[str, Any]) -> list[Sample]:
    tools = _tools(record.get("tools"))
    query = record.get("query")
    if not isinstance(query, str) or not query.strip():
        raise RecordError("xlam 'query' must be a non-empty string")
    answers = _json_or_value(record.get("answers"), "answers")
    if not isinstance(answers, list):
        raise RecordError("xlam 'answers' must be a list of calls")
    calls = [_call(answer) for answer in answers]
    label = (
        Action(calls=calls) if calls else Action(text="None of the available tools can handle this request.")
    )
    return [Sample(tools=tools, messages=[Message(role="user", content=query.strip())], label=label)]


def _from_openai(record: dict[str, Any]) -> list[Sample]:
    tools = _tools(record.get("tools"))
    raw_messages = record.get("messages")
    if not isinstance(raw_messages, list):
        raise RecordError("openai 'messages' must be a list")
    names_by_call_id: dict[str, str] = {}
    messages = []
    for raw in raw_messages:
        if not isinstance(raw, dict):
            raise RecordError("each message must be an object")
        role = raw.get("role")
        if role == "assistant" and raw.get("tool_calls"):
            action = parse_openai_tool_calls(raw["tool_calls"])
            for call in raw["tool_calls"]:
                if isinstance(call, dict) and call.get("id"):
                    names_by_call_id[call["id"]] = (call.get("function") or {}).get("name", "")
            messages.append(_message("assistant", raw.get("content"), list(action.calls)))
        elif role == "tool":
            name = raw.get("name") or names_by_call_id.get(raw.get("tool_call_id", ""))
            messages.append(_message("tool", _text_content(raw.get("content")), name=name))
        else:
            messages.append(_message(str(role), _text_content(raw.get("content"))))
    return dialogue_samples(tools, messages, bool(record.get("ordered", False)))


def _text_content(content: Any) -> Any:
    """OpenAI content may be a list of parts; keep the text parts."""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content


def _from_hermes(record: dict[str, Any]) -> list[Sample]:
    turns = record.get("conversations")
    if not isinstance(turns, list):
        raise RecordError("hermes 'conversations' must be a list")
    tools_value = record.get("tools")
    messages = []
    for turn in turns:
        if not isinstance(turn, dict):
            raise RecordError("each conversation turn must be an object")
        role = _HERMES_ROLES.get(str(turn.get("from")))
        value = turn.get("value", "")
        if role is None:
            raise RecordError(f"unknown hermes speaker {turn.get('from')!r}")
        if not isinstance(value, str):
            raise RecordError("hermes turn values must be strings")
        if role == "system" and tools_value is None and (block := _TOOLS_BLOCK.search(value)):
            tools_value = _tools_from_block(block.group(1))
        if role == "assistant":
            messages.append(_assistant_from_text(value))
        elif role == "tool":
            responses = _TOOL_RESPONSE.findall(value) or [value]
            messages.extend(_message("tool", response.strip()) for response in responses)
        else:
            messages.append(_message(role, value))
    return dialogue_samples(_tools(tools_value), messages)


def _tools_from_block(block: str) -> list[Any]:
    """A ``<tools>`` block holds a JSON list or one JSON object per line."""
    try:
        value = json.loads(block)
        return value if isinstance(value, list) else [value]
    except json.JSONDecodeError:
        return [json.loads(line) for line in block.splitlines() if line.strip()]
