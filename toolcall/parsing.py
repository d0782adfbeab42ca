"""Model output -> a typed action: ``<think>`` split off, ``<tool_call>`` blocks read, free text kept.

The paper's format (Figure 7): an optional reasoning trace ``<think>…</think>``, then one or more
``<tool_call>{"name": …, "arguments": {…}}</tool_call>`` blocks, or plain text when no call is right
(a clarification question, "no suitable tool"). OpenAI-style ``tool_calls`` JSON is read too.

Repairs are made only where the intent is unambiguous, and every one is reported in
:attr:`ParsedOutput.repairs`: a missing final ``</tool_call>``, a Markdown code fence inside a block,
trailing commas, Python literals (single quotes, ``True``/``None``), ``arguments`` given as a JSON
string, ``parameters`` instead of ``arguments``, several JSON objects in one block. Anything else that
looks like a call but does not read as one is a parse failure with the reason, never a guess.

Pure: no I/O, and :func:`parse_output` never raises on any input text.
"""

from __future__ import annotations

import ast
import json
import math
import re
import warnings
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from toolcall.types import Action, ToolCall

OutputKind = Literal["calls", "text", "error"]

_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_OPEN, _CLOSE = "<tool_call>", "</tool_call>"
_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?\s*```$", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
# Chat-template tokens a decode may leave at the end of the text.
_TAGS_IN_JSON = re.compile(r"</?(?:tool_call|think)>")
_END_TOKENS = re.compile(r"(<\|im_end\|>|<\|endoftext\|>|<\|eot_id\|>|</s>)\s*$")


class ParsedOutput(BaseModel):
    """What a model said: its action (calls or a plain-text answer), or why it could not be read."""

    model_config = ConfigDict(frozen=True)

    action: Action | None = None
    think: str | None = None
    text: str | None = None  # free text outside the reasoning and the call blocks
    error: str | None = None
    repairs: list[str] = Field(default_factory=list)

    @property
    def kind(self) -> OutputKind:
        if self.error is not None or self.action is None:
            return "error"
        return "calls" if self.action.calls else "text"


class CallFormatError(ValueError):
    """A call block or tool_calls entry that does not read as a call; the message says why."""


def render_call(call: ToolCall) -> str:
    """One call in the paper's output format."""
    body = json.dumps({"name": call.name, "arguments": call.arguments}, ensure_ascii=False)
    # A tag inside a string value would end the block or start a trace: write its "<" as a JSON escape.
    body = _TAGS_IN_JSON.sub(lambda m: "\\u003c" + m.group(0)[1:], body)
    return f"{_OPEN}\n{body}\n{_CLOSE}"


def render_action(action: Action) -> str:
    """An action as the model should write it: call blocks one per line, or the plain-text answer."""
    if action.calls:
        return "\n".join(render_call(call) for call in action.calls)
    return action.text or ""


def parse_output(text: str) -> ParsedOutput:
    """Parse one model output. Never raises: unreadable output gives ``error`` with the reason."""
    try:
        return _parse(text)
    except (RecursionError, MemoryError) as error:  # pathological nesting in a JSON body
        return ParsedOutput(error=f"output too deeply nested to read ({type(error).__name__})")


def _parse(text: str) -> ParsedOutput:
    if not isinstance(text, str):
        return ParsedOutput(error=f"output must be text, got {type(text).__name__}")
    repairs: list[str] = []
    body, think = _split_think(text, repairs)
    body = _END_TOKENS.sub("", body).strip()
    if _OPEN not in body and _CLOSE not in body:
        openai = _openai_message(body)
        if openai is not None:
            return openai.model_copy(update={"think": think})
        if not body:
            return ParsedOutput(think=think, error="empty output (no tool call and no answer text)")
        return ParsedOutput(action=Action(text=body), think=think, text=body, repairs=repairs)
    blocks, outside, error = _blocks(body, repairs)
    if error is not None:
        return ParsedOutput(think=think, text=outside or None, error=error, repairs=repairs)
    calls: list[ToolCall] = []
    for index, block in enumerate(blocks):
        try:
            calls.extend(_calls_from_block(block, repairs))
        except CallFormatError as failure:
            where = f"tool call {index + 1}" if len(blocks) > 1 else "tool call"
            return ParsedOutput(
                think=think, text=outside or None, error=f"{where}: {failure}", repairs=repairs
            )
    if not calls:
        return ParsedOutput(
            think=think, text=outside or None, error="tool call block is empty", repairs=repairs
        )
    return ParsedOutput(action=Action(calls=calls), think=think, text=outside or None, repairs=repairs)


def _split_think(text: str, repairs: list[str]) -> tuple[str, str | None]:
    thoughts = [m.strip() for m in _THINK.findall(text)]
    body = _THINK.sub("", text)
    if "</think>" in body:  # the template opened <think> in the prompt; only the close is in the output
        before, _, body = body.rpartition("</think>")
        thoughts.insert(0, before.replace("<think>", "").strip())
    elif "<think>" in body:
        before, _, after = body.partition("<think>")
        if _OPEN in after:  # a reasoning trace that was never closed, followed by calls: keep the calls
            thoughts.append(after[: after.index(_OPEN)].strip())
            body = before + after[after.index(_OPEN) :]
            repairs.append("unclosed_think")
        else:
            thoughts.append(after.strip())
            body = before
            repairs.append("unclosed_think")
    think = "\n".join(t for t in thoughts if t) or None
    return body, think


def _blocks(body: str, repairs: list[str]) -> tuple[list[str], str, str | None]:
    """Split ``body`` into call block contents and the text outside them."""
    blocks: list[str] = []
    outside: list[str] = []
    rest = body
    while rest:
        start = rest.find(_OPEN)
        stray_close = rest.find(_CLOSE)
        if stray_close != -1 and (start == -1 or stray_close < start):
            return blocks, _join(outside), "a </tool_call> without its opening <tool_call>"
        if start == -1:
            outside.append(rest)
            break
        outside.append(rest[:start])
        rest = rest[start + len(_OPEN) :]
        end = rest.find(_CLOSE)
        next_open = rest.find(_OPEN)
        if end == -1 or (next_open != -1 and next_open < end):
            if next_open != -1:
                return blocks, _join(outside), "a <tool_call> is not closed before the next one opens"
            blocks.append(rest)  # the last block lacks its closing tag: the output was cut at the end
            repairs.append("unclosed_tool_call")
            break
        blocks.append(rest[:end])
        rest = rest[end + len(_CLOSE) :]
    return blocks, _join(outside), None


def _join(parts: list[str]) -> str:
    return "\n".join(p.strip() for p in parts if p.strip())


def _calls_from_block(block: str, repairs: list[str]) -> list[ToolCall]:
    content = block.strip()
    fenced = _FENCE.match(content)
    if fenced:
        content = fenced.group(1).strip()
        repairs.append("code_fence")
    if not content:
        raise CallFormatError("empty block")
    values = _json_values(content, repairs)
    if len(values) > 1:
        repairs.append("several_calls_in_one_block")
    calls = []
    for value in values:
        if isinstance(value, list):  # a JSON list of calls in one block
            repairs.append("list_of_calls_in_one_block")
            calls.extend(_call_from_object(item, repairs) for item in value)
        else:
            calls.append(_call_from_object(value, repairs))
    return calls


def _json_values(content: str, repairs: list[str]) -> list[Any]:
    """One JSON value, or several written one after another (one per line)."""
    try:
        return [json.loads(content)]
    except json.JSONDecodeError:
        pass
    decoder = json.JSONDecoder()
    values: list[Any] = []
    position = 0
    try:
        while position < len(content):
            value, end = decoder.raw_decode(content, position)
            values.append(value)
            position = end
            while position < len(content) and content[position] in " \t\r\n,":
                position += 1
        if len(values) > 1:
            return values
    except json.JSONDecodeError:
        pass
    return [_repaired_json(content, repairs)]


def _repaired_json(content: str, repairs: list[str]) -> Any:
    without_commas = _TRAILING_COMMA.sub(r"\1", content)
    if without_commas != content:
        try:
            value = json.loads(without_commas)
        except json.JSONDecodeError:
            pass
        else:
            repairs.append("trailing_comma")
            return value
    try:  # a Python literal (single quotes, True/False/None): literal_eval evaluates no code
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)  # model garbage ("1st") is not worth a warning
            value = ast.literal_eval(content)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as error:
        raise CallFormatError(f"not valid JSON: {_json_reason(content)}") from error
    if not isinstance(value, dict | list):
        raise CallFormatError(f"not valid JSON: {_json_reason(content)}")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise CallFormatError(f"not valid JSON: {_json_reason(content)}") from error
    repairs.append("python_literal")
    return value


def _json_reason(content: str) -> str:
    try:
        json.loads(content)
    except json.JSONDecodeError as error:
        return f"{error.msg} at line {error.lineno} column {error.colno}"
    return "unreadable"


def _call_from_object(value: Any, repairs: list[str]) -> ToolCall:
    if not isinstance(value, dict):
        raise CallFormatError(f"a call must be a JSON object, got {type(value).__name__}")
    if "function" in value and isinstance(value["function"], dict) and "name" not in value:
        value = value["function"]  # an OpenAI tool_calls entry inside a block
        repairs.append("openai_call_in_block")
    name = value.get("name")
    if not isinstance(name, str) or not name.strip():
        raise CallFormatError("a call needs a non-empty string 'name'")
    if "arguments" in value:
        arguments = value["arguments"]
    elif "parameters" in value:
        arguments = value["parameters"]
        repairs.append("parameters_key")
    else:
        arguments = {}
        repairs.append("missing_arguments")
    unknown = sorted(set(value) - {"name", "arguments", "parameters", "id", "type"})
    if unknown:
        raise CallFormatError(f"unexpected keys in call {name!r}: {unknown}")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as error:
            raise CallFormatError(
                f"arguments of {name!r} are a string that is not JSON: {error.msg}"
            ) from error
        repairs.append("arguments_as_string")
    if arguments is None:
        arguments = {}
        repairs.append("null_arguments")
    if not isinstance(arguments, dict):
        raise CallFormatError(f"arguments of {name!r} must be an object, got {type(arguments).__name__}")
    if not _finite(arguments):
        raise CallFormatError(f"arguments of {name!r} hold a number that is not finite (NaN or Infinity)")
    return ToolCall(name=name.strip(), arguments=arguments)


def _finite(value: Any) -> bool:
    """No NaN or Infinity anywhere (JSON has neither; Python's json module reads both)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(item) for item in value.values())
    if isinstance(value, list | tuple):
        return all(_finite(item) for item in value)
    return True


def parse_openai_tool_calls(tool_calls: Any) -> Action:
    """OpenAI ``tool_calls`` (``[{"type": "function", "function": {"name", "arguments"}}]``) -> Action.

    Raises :class:`CallFormatError` (a ``ValueError``) with the reason when an entry is not a call.
    """
    if not isinstance(tool_calls, list) or not tool_calls:
        raise CallFormatError("tool_calls must be a non-empty list")
    repairs: list[str] = []
    calls = []
    for index, entry in enumerate(tool_calls):
        if not isinstance(entry, dict):
            raise CallFormatError(f"tool_calls[{index}] must be an object")
        function = entry.get("function", entry)
        if not isinstance(function, dict):
            raise CallFormatError(f"tool_calls[{index}].function must be an object")
        try:
            calls.append(
                _call_from_object({k: v for k, v in function.items() if k != "description"}, repairs)
            )
        except CallFormatError as error:
            raise CallFormatError(f"tool_calls[{index}]: {error}") from error
    return Action(calls=calls)


def _openai_message(body: str) -> ParsedOutput | None:
    """A whole output that is an OpenAI assistant message (or its ``tool_calls`` list) as JSON."""
    if not body.startswith(("{", "[")):
        return None
    try:
        value = json.loads(body)
    except (json.JSONDecodeError, RecursionError):
        return None
    tool_calls = value.get("tool_calls") if isinstance(value, dict) else None
    if tool_calls is None and isinstance(value, list) and value and isinstance(value[0], dict):
        if "function" not in value[0]:
            return None
        tool_calls = value
    if tool_calls is None:
        return None
    try:
        action = parse_openai_tool_calls(tool_calls)
    except CallFormatError as error:
        return ParsedOutput(error=f"OpenAI tool_calls: {error}")
    content = value.get("content") if isinstance(value, dict) else None
    text = content.strip() if isinstance(content, str) and content.strip() else None
    return ParsedOutput(action=action, text=text)
