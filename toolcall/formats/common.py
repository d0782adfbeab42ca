"""What every record format shares: the error type, the conversion result, messages, calls, labels.

Pure: records in, samples or a :class:`RecordError` with the reason out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from toolcall.parsing import CallFormatError, ParsedOutput, parse_openai_tool_calls, parse_output
from toolcall.pytypes import TypeExpressionError, parse_python_calls, python_literal
from toolcall.specs import ToolSpec, ToolSpecError, load_tools
from toolcall.types import Action, Message, Sample, ToolCall

# The text of a "no call" label where the dataset gives none (ToolMatch ignores no-call texts).
NO_SUITABLE_TOOL = "None of the available functions can be used for this request."

# Deeper call arguments than any tool schema needs; pydantic stops serialising at a few hundred levels,
# so a record nested that deep could never be sent: refuse it here, with the reason.
MAX_ARGUMENT_DEPTH = 64

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_GOT = re.compile(r"(, )?got .*$")
_NUMBER = re.compile(r"(?<![\w.])\d+(?![\w.])")


def reason_of(message: str, *, quotes: bool = True) -> str:
    """A message's stable class, for counting: numbers, "got …" values and (with ``quotes``) quoted
    names masked. Messages written here quote keywords; messages of other layers quote values."""
    first = message.splitlines()[0] if message else ""
    if quotes:
        first = _QUOTED.sub("'…'", first)
    masked = _NUMBER.sub("N", _GOT.sub("", first))
    return masked.strip()[:200] or "unknown"


class RecordError(ValueError):
    """A record that cannot become a sample; the message says why, ``reason`` is its stable class."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason_of(reason or message, quotes=False)


@dataclass(frozen=True)
class FormatContext:
    """What a record may need from outside itself (pure data, loaded by the caller).

    ``bfcl_answers``: BFCL's possible answers by question id (the ``ground_truth`` of its
    ``possible_answer/`` file); ``bfcl_class_docs``: the function docs of each multi-turn class (its
    ``multi_turn_func_doc/`` file); ``bfcl_answer_errors``: the lines of the possible answers that
    could not be read (file and line each), named when a record has no answer;
    ``bfcl_class_doc_errors``: by class, the first unreadable line of its docs file.
    """

    bfcl_answers: Mapping[str, Any] = field(default_factory=dict)
    bfcl_class_docs: Mapping[str, list[Any]] = field(default_factory=dict)
    bfcl_answer_errors: tuple[str, ...] = ()
    bfcl_class_doc_errors: Mapping[str, str] = field(default_factory=dict)


EMPTY_CONTEXT = FormatContext()


@dataclass
class Conversion:
    """One record's samples, in order, and what was kept but not checked or not kept at all."""

    format: str
    samples: list[Sample]
    warnings: list[str] = field(default_factory=list)


def flag(record: Mapping[str, Any], key: str, default: bool = False) -> bool:
    """A boolean field, strictly: JSON ``true``/``false`` (or absent, null: ``default``), nothing else.

    ``bool("false")`` is True: a string or number here is refused, naming the field, never guessed.
    """
    value = record.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        shown = repr(value)[:40]
        raise RecordError(
            f"{key!r} must be true or false (a JSON boolean), got {type(value).__name__} {shown}",
            f"{key!r} is not a boolean",
        )
    return value


def nesting_depth(value: Any, limit: int) -> int:
    """How deep ``value``'s lists and objects nest, counted up to ``limit + 1`` (no recursion)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth > limit:
                return depth
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def json_or_value(value: Any, what: str, *, python: bool = False) -> Any:
    """A JSON string read (or, with ``python``, a Python literal), anything else as it is."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        if python:
            try:
                return python_literal(value, what)
            except TypeExpressionError:
                pass
        raise RecordError(
            f"{what} is not valid JSON: {error.msg} at char {error.pos}", f"{what} is not valid JSON"
        ) from error


def tools_from(value: Any, notes: list[str], what: str = "tools") -> list[ToolSpec]:
    """The record's tools; none (absent, null, empty) is an empty list: a record may offer no tool."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    if isinstance(value, list):  # When2Call, table columns of list<string>: each tool a JSON string
        value = [json_or_value(item, what) for item in value]
    try:
        return load_tools(value, notes)
    except ToolSpecError as error:
        raise RecordError(f"invalid {what}: {error}", f"invalid {what}: {reason_of(error.what)}") from error


def message(
    role: str, content: Any, tool_calls: list[ToolCall] | None = None, name: str | None = None
) -> Message:
    if role not in ("system", "user", "assistant", "tool"):
        raise RecordError(f"unknown message role {role!r}", "unknown message role")
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise RecordError(f"{role} message content must be a string", "message content is not a string")
    return Message(role=role, content=content, tool_calls=tool_calls or [], name=name)


def call_from(value: Any) -> ToolCall:
    """A call written as ``{"name", "arguments"|"parameters"}`` (arguments may be a JSON string)."""
    if isinstance(value, dict) and isinstance(value.get("function"), dict) and "name" not in value:
        value = value["function"]  # an OpenAI tool_calls entry
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not value["name"].strip():
        raise RecordError(f"a call needs a string 'name': {str(value)[:80]}", "a call has no name")
    arguments = value.get("arguments", value.get("parameters", {}))
    arguments = json_or_value(arguments, "call arguments", python=True) if arguments != "" else {}
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise RecordError(
            f"arguments of {value['name']} must be an object", "call arguments are not an object"
        )
    return ToolCall(name=value["name"].strip(), arguments=arguments)


def openai_tool_calls(tool_calls: Any, where: str) -> list[ToolCall]:
    """The calls of an OpenAI ``tool_calls`` field, read by the policy's own parser.

    ``arguments`` may be a JSON string, an object, or a Python literal in a string: exports of
    glaive-derived data write ``"{'country': 'France'}"``, which is no JSON but says one object only.
    """
    if isinstance(tool_calls, list):
        tool_calls = [_literal_arguments_read(entry) for entry in tool_calls]
    try:
        return list(parse_openai_tool_calls(tool_calls).calls)
    except CallFormatError as error:
        raise RecordError(f"{where}: {error}", "tool_calls do not parse") from error


def _literal_arguments_read(entry: Any) -> Any:
    """A ``tool_calls`` entry whose ``arguments`` string is a Python literal object, with that object as
    its arguments; any other entry as it is (the parser says what is wrong with it)."""
    wrapped = isinstance(entry, dict) and isinstance(entry.get("function"), dict)
    function = entry["function"] if wrapped else entry
    if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
        return entry
    try:
        json.loads(function["arguments"])
        return entry
    except json.JSONDecodeError:
        pass
    try:
        arguments = python_literal(function["arguments"], "call arguments")
    except TypeExpressionError:
        return entry
    if not isinstance(arguments, dict):
        return entry
    function = {**function, "arguments": arguments}
    return {**entry, "function": function} if wrapped else function


def calls_from_json(text: str, what: str) -> list[ToolCall]:
    """One call or a list of calls, as JSON (or a Python literal) text."""
    value = json_or_value(text.strip(), what, python=True)
    items = value if isinstance(value, list) else [value]
    if not items:
        raise RecordError(f"{what} holds no call", f"{what} holds no call")
    return [call_from(item) for item in items]


def answer_of(parsed: ParsedOutput) -> Action | None:
    """A dataset turn's (or label's) action as the parser read it, where an explicit empty call list
    (``[]``, ``<tool_call>[]</tool_call>``: the "no call" answer APIGen/xLAM and SmolLM prompts ask for)
    with no words beside it is the :data:`NO_SUITABLE_TOOL` answer, as xLAM's empty ``answers`` are. The
    parser leaves such a prediction without text (ToolMatch matches two no-call answers whatever their
    text); a label needs its text, or it is an empty action and no step to learn."""
    action = parsed.action
    if action is None or action.calls or (action.text or "").strip():
        return action
    if "empty_call_list" in parsed.repairs:
        return action.model_copy(update={"text": NO_SUITABLE_TOOL})
    return action


def label_from(value: Any, ordered: bool, tools: list[ToolSpec] | None = None) -> Action:
    """A label given as ``<tool_call>`` text, an Action object, or a list of calls; ``tools`` type the
    values of XML-argument calls in the text."""
    if isinstance(value, str):
        parsed = parse_output(value, tools)
        if parsed.error or parsed.action is None:
            raise RecordError(
                f"label does not parse: {parsed.error or 'empty label'}", "label does not parse"
            )
        action = answer_of(parsed) or parsed.action
    elif isinstance(value, list):
        action = Action(calls=[call_from(call) for call in value])
    elif isinstance(value, dict):
        calls = value.get("calls")
        if isinstance(calls, list):
            # Each call by call_from, the rule of context calls too: table exports (parquet, hf) and
            # OpenAI-style data write arguments as JSON strings.
            value = {**value, "calls": [call_from(call) for call in calls]}
        try:
            action = Action.model_validate(value, strict=True)  # "ordered": "false" is no boolean
        except ValidationError as error:
            fields = field_errors(error)
            raise RecordError(
                f"label is not an action: {fields}", f"label is not an action: {field_names(error)}"
            ) from error
    else:
        raise RecordError(
            f"label must be text, a list of calls or an action object, got {type(value).__name__}",
            "label has the wrong type",
        )
    return action.model_copy(update={"ordered": ordered}) if ordered else action


def field_errors(error: ValidationError, limit: int = 3) -> str:
    """Pydantic's errors on one short line, each naming its field (``calls.0.arguments: …``): its own
    message starts with "N validation errors for Action", which names no field, and spans many lines."""
    shown = [f"{_location(item['loc'])}: {item['msg']}" for item in error.errors()[:limit]]
    more = error.error_count() - len(shown)
    return "; ".join(shown) + (f" (and {more} more)" if more > 0 else "")


def field_names(error: ValidationError) -> str:
    """The fields that failed, for a stable reason (values left out)."""
    return ", ".join(dict.fromkeys(_location(item["loc"]) for item in error.errors()))


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "label"


def check_context(messages: list[Message]) -> None:
    if not any(m.role == "user" for m in messages):
        raise RecordError("context has no user turn")


def turn_weight(turn: Mapping[str, Any], where: str) -> int:
    """An assistant turn's weight: 1 (train on it) or 0 (do not: the turn stays as context only).

    Given as ``weight`` (OpenAI's fine-tuning format, ShareGPT exports: 0 or 1) or as ``loss``
    (THUDM/AgentInstruct, Agent-FLAN: a JSON boolean, false on the task prompt's acknowledgements and
    examples); 1 when the turn gives neither. A turn whose two flags disagree is refused."""
    value = turn.get("weight")
    if value is not None and (isinstance(value, bool) or value not in (0, 1)):
        raise RecordError(
            f"{where}: weight must be 0 or 1, got {value!r}"[:200], "message weight is not 0 or 1"
        )
    trained = flag(turn, "loss", default=True)
    if value is not None and turn.get("loss") is not None and int(value) != int(trained):
        raise RecordError(
            f"{where}: weight {value} and loss {str(trained).lower()} disagree",
            "message weight and loss disagree",
        )
    return int(trained) if value is None else int(value)


def dialogue_samples(
    tools: list[ToolSpec],
    messages: list[Message],
    ordered: bool = False,
    untrained: frozenset[int] = frozenset(),
) -> list[Sample]:
    """One sample per learnable assistant step of a whole dialogue (Section 4.1).

    A step is an assistant turn that calls tools, or a plain-text answer right after a user turn (a
    clarification, a "no suitable tool" answer, a reply when no tool is offered). Summaries after tool
    results are not steps to learn from, nor are the turns at the indexes in ``untrained`` (the dataset
    says not to train on them); both stay in the context of later steps.
    """
    samples = []
    for index, turn in enumerate(messages):
        if turn.role != "assistant" or index == 0 or index in untrained:
            continue
        context = messages[:index]
        previous = context[-1].role
        if turn.tool_calls:
            label = Action(calls=list(turn.tool_calls), ordered=ordered)
        elif previous == "user" and turn.content.strip():
            label = Action(text=turn.content.strip())
        else:
            continue
        if any(m.role == "user" for m in context):
            samples.append(Sample(tools=tools, messages=context, label=label))
    return samples


def with_time(samples: list[Sample], time: str | None) -> list[Sample]:
    """The samples with their conversation's time, where the record gives one."""
    if time is None:
        return samples
    return [sample.model_copy(update={"conversation_time": time}) for sample in samples]


def tool_result_content(content: Any) -> Any:
    """A tool result's content as a message holds it: a JSON object (a structured result, as some
    agentic datasets write tool turns) is its JSON text; anything else is read as any content is."""
    if isinstance(content, dict) and "type" not in content:
        return json.dumps(content, ensure_ascii=False)
    return content


def text_of(content: Any, warnings: list[str], where: str) -> tuple[str, list[ToolCall]]:
    """Message content as text, and the calls held in tool-call parts.

    Content may be a string or a list of parts: text parts (``text`` or ``value``) are joined, tool-call
    parts (LLaMA-Factory's ``{"type": "tool_call", "value": "{...}"}``, Anthropic's ``{"type":
    "tool_use", "name", "input"}``) become calls, reasoning parts (Anthropic's ``thinking`` among them)
    are left out with a warning; any other part (an image, audio) cannot be represented and is refused.
    """
    if content is None or isinstance(content, str):
        return content or "", []
    if not isinstance(content, list):
        raise RecordError(f"{where}: content must be text or a list of parts", "message content is not text")
    texts: list[str] = []
    calls: list[ToolCall] = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict):
            raise RecordError(f"{where}: a content part must be an object", "content part is not an object")
        kind = part.get("type", "text")
        body = part.get("text", part.get("value", part.get("content")))
        if kind in ("text", "input_text", "output_text"):
            if not isinstance(body, str):
                raise RecordError(f"{where}: a text part holds no text", "text part holds no text")
            texts.append(body)
        elif kind in ("tool_call", "function_call"):
            calls.extend(
                calls_from_json(body, f"{where} tool_call part")
                if isinstance(body, str)
                else [call_from(body)]
            )
        elif kind == "tool_use":  # Anthropic Messages: {"type": "tool_use", "id", "name", "input"}
            calls.append(call_from({"name": part.get("name"), "arguments": part.get("input")}))
        elif kind in ("reasoning", "thinking", "redacted_thinking"):
            warnings.append(f"{where}: reasoning part not kept (a step's label is its calls or its answer)")
        else:
            raise RecordError(
                f"{where}: a {kind!r} content part cannot be represented (only text and tool calls are)",
                "content part cannot be represented",
            )
    return "".join(texts), calls


# A <tool_response> block (Hermes, Qwen), its result the group: the chat readers and the generator reader.
TOOL_RESPONSE_BLOCK = re.compile(r"<tool_response>\s*(.*?)\s*</tool_response>", re.DOTALL)


def tool_responses(text: str) -> list[str]:
    """A tool turn's results: each ``<tool_response>`` block's text (Hermes and Qwen wrap every result in
    one, several results of a step in one turn), else the text as it is."""
    return [response.strip() for response in TOOL_RESPONSE_BLOCK.findall(text)] or [text]


def has_tool_responses(text: str) -> bool:
    return TOOL_RESPONSE_BLOCK.search(text) is not None


def tool_result_pieces(content: Any, where: str) -> list[tuple[str, Any, str | None]] | None:
    """A user turn's content holding Anthropic ``tool_result`` parts, split in order into pieces:
    ``("tool", result content, tool_use_id)`` per result and ``("user", [parts], None)`` per run of other
    parts (text beside the results); None when the content holds no ``tool_result`` part."""
    if not isinstance(content, list) or not any(_is_tool_result(part) for part in content):
        return None
    pieces: list[tuple[str, Any, str | None]] = []
    for part in content:
        if _is_tool_result(part):
            if not isinstance(part.get("tool_use_id"), str):
                raise RecordError(
                    f"{where}: a tool_result part needs a string 'tool_use_id'",
                    "tool_result part has no tool_use_id",
                )
            pieces.append(("tool", part.get("content"), part["tool_use_id"]))
        elif pieces and pieces[-1][0] == "user":
            pieces[-1][1].append(part)
        else:
            pieces.append(("user", [part], None))
    return pieces


def _is_tool_result(part: Any) -> bool:
    return isinstance(part, dict) and part.get("type") == "tool_result"


def tool_use_names(content: Any) -> dict[str, str]:
    """The names of an assistant turn's Anthropic ``tool_use`` parts by their ids, to pair results with."""
    if not isinstance(content, list):
        return {}
    return {
        part["id"]: str(part.get("name", ""))
        for part in content
        if isinstance(part, dict) and part.get("type") == "tool_use" and isinstance(part.get("id"), str)
    }


def python_calls_to_tool_calls(text: str, tools: list[ToolSpec], what: str) -> list[ToolCall]:
    """Calls written as Python (``[f(a=1), g(b='x')]``); positional arguments take the declared order."""
    try:
        parsed = parse_python_calls(text)
    except TypeExpressionError as error:
        raise RecordError(f"{what}: {error}", f"{what} does not parse as calls") from error
    by_name = {tool.name: tool for tool in tools}
    calls = []
    for call in parsed:
        arguments = dict(call.keywords)
        if call.positional:
            tool = by_name.get(call.name)
            if tool is None:
                raise RecordError(
                    f"{what}: {call.name} takes positional arguments, but no tool of that name "
                    "declares their order",
                    f"{what}: positional arguments of an unknown function",
                )
            order = list(tool.parameters.properties)
            if len(call.positional) > len(order):
                raise RecordError(
                    f"{what}: {call.name} got {len(call.positional)} positional arguments, "
                    f"declares {len(order)}",
                    f"{what}: too many positional arguments",
                )
            for name, value in zip(order, call.positional, strict=False):
                if name in arguments:
                    raise RecordError(
                        f"{what}: {call.name} got {name} twice", f"{what}: argument given twice"
                    )
                arguments[name] = value
        calls.append(ToolCall(name=call.name, arguments=arguments))
    return calls


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


__all__ = [
    "EMPTY_CONTEXT",
    "MAX_ARGUMENT_DEPTH",
    "NO_SUITABLE_TOOL",
    "TOOL_RESPONSE_BLOCK",
    "Conversion",
    "FormatContext",
    "RecordError",
    "answer_of",
    "call_from",
    "calls_from_json",
    "check_context",
    "conversation_time",
    "dialogue_samples",
    "flag",
    "has_tool_responses",
    "json_or_value",
    "label_from",
    "message",
    "nesting_depth",
    "openai_tool_calls",
    "python_calls_to_tool_calls",
    "reason_of",
    "text_of",
    "tool_responses",
    "tool_result_pieces",
    "tool_use_names",
    "tools_from",
    "with_time",
]
