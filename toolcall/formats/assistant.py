"""An assistant turn written as text -> its answer text and its calls, the same way in every reader.

The text is read with the policy's own output parser (:func:`toolcall.parsing.parse_output`), so a
dataset turn is read exactly as a model output would be: ``<tool_call>`` blocks, the untagged forms it
accepts (Llama's bare JSON, ``[f(a=1)]``), reasoning (``<think>``) left out with a warning. Before
that, the wrappers the parser does not know are read: glaive's ``<functioncall> {...}`` (arguments
in single quotes) and When2Call's ``<TOOLCALL>[{"name", "arguments"}, ...]</TOOLCALL>``; ToolBench's
ReAct steps (``Action:`` / ``Action Input:``) are refused with that reason. What the parser flags as
a failure (a call amid text, a block that is not JSON) is a :class:`RecordError` naming the turn: a
call that cannot be read is never kept as a text answer.
"""

from __future__ import annotations

import json
import re
from typing import Any

from toolcall.formats.common import RecordError, calls_from_json
from toolcall.parsing import parse_output
from toolcall.types import ToolCall

_TOOLCALL_BLOCK = re.compile(r"<TOOLCALL>(.*?)</TOOLCALL>", re.DOTALL)
# glaive's call: the rest of the turn after the tag (its closing tag is rare).
_FUNCTION_CALL = re.compile(r"<functioncall>\s*(.*?)\s*(?:</functioncall>|$)", re.DOTALL)
# ToolBench's ReAct steps ("Thought: …\nAction: name\nAction Input: {…}", a Finish pseudo-call for the
# answer): refused, since reading them would need ToolBench's own answer and give-up conventions.
_REACT_STEP = re.compile(r"^[ \t]*Action[ \t]*:.*\n[ \t]*Action Input[ \t]*:", re.MULTILINE)
REACT_REFUSAL = "ToolBench ReAct format is not supported"
# The parser's own wording for an output with nothing in it (blank, or reasoning only).
_SAYS_NOTHING = parse_output("").error


def assistant_text(text: str, notes: list[str], where: str) -> tuple[str, list[ToolCall]]:
    """The answer text and the calls of an assistant turn's text; ``("", [])`` when it says nothing.

    ``notes`` gets a warning when reasoning is left out; ``where`` names the turn in errors.
    """
    if _REACT_STEP.search(text):
        raise RecordError(f"{where}: {REACT_REFUSAL} (Thought/Action/Action Input steps)", REACT_REFUSAL)
    calls: list[ToolCall] = []
    for body in _FUNCTION_CALL.findall(text):
        calls.extend(_glaive_calls(body, where))
    text = _FUNCTION_CALL.sub("\n", text)
    for body in _TOOLCALL_BLOCK.findall(text):
        calls.extend(calls_from_json(body, f"{where}: <TOOLCALL> block"))
    text = _TOOLCALL_BLOCK.sub("\n", text)
    if "<TOOLCALL>" in text or "</TOOLCALL>" in text:
        raise RecordError(
            f"{where}: a <TOOLCALL> without its closing tag (or a closing tag alone)",
            "assistant turn does not parse",
        )
    if not text.strip():
        return "", calls
    parsed = parse_output(text)
    if parsed.think is not None:
        notes.append(f"{where}: reasoning not kept (a step's label is its calls or its answer)")
    if parsed.error is not None:
        if parsed.error == _SAYS_NOTHING:
            return "", calls
        raise RecordError(
            f"{where}: assistant turn does not parse: {parsed.error}", "assistant turn does not parse"
        )
    action = parsed.action
    if action is None:  # the parser gives an action whenever it reports no error
        raise RecordError(f"{where}: assistant turn does not parse", "assistant turn does not parse")
    if action.calls:
        return parsed.text or "", [*calls, *action.calls]
    return action.text or "", calls


def merge_calls(text_calls: list[ToolCall], structured: list[ToolCall], where: str) -> list[ToolCall]:
    """A turn's calls when it may give them twice: in its text and in a structured field
    (``tool_calls``). Some exports write both for one turn; taking both would double every call."""
    if text_calls and structured and text_calls != structured:
        raise RecordError(
            f"{where}: the calls in the text and in tool_calls differ", "text calls and tool_calls differ"
        )
    return structured or text_calls


# glaive quotes the arguments object in single quotes; the JSON inside starts after the quote.
_QUOTED_ARGUMENTS = re.compile(r"\"arguments\"\s*:\s*'\s*")
_CLOSING_QUOTE = re.compile(r"\s*'")


def _glaive_calls(body: str, where: str) -> list[ToolCall]:
    """The calls of a ``<functioncall>`` body. Its single-quoted arguments make it neither JSON nor,
    when an apostrophe is inside (``I'm``, ``O'Brien``), a Python literal: the inner JSON is read."""
    quoted = _QUOTED_ARGUMENTS.search(body)
    inner = _quoted_arguments(body, quoted.end()) if quoted is not None else None
    if quoted is not None and inner is not None:
        arguments, end = inner
        body = f'{body[: quoted.start()]}"arguments": {json.dumps(arguments)}{body[end:]}'
    return calls_from_json(body, f"{where}: <functioncall>")


def _quoted_arguments(body: str, start: int) -> tuple[Any, int] | None:
    """The JSON value starting at ``start`` and the index after its closing quote, or None."""
    try:
        value, end = json.JSONDecoder().raw_decode(body, start)
    except (ValueError, RecursionError):
        pass
    else:
        closing = _CLOSING_QUOTE.match(body, end)
        if closing is not None:
            return value, closing.end()
    last = body.rfind("'")  # else the call's last quote closes them
    if last > start:
        try:
            return json.loads(body[start:last]), last + 1
        except (ValueError, RecursionError):
            pass
    return None  # not JSON inside the quotes (an escaped \'): the Python literal reading may do
