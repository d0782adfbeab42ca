"""An assistant turn written as text -> its answer text and its calls, the same way in every reader.

The text is read with the policy's own output parser (:func:`toolcall.parsing.parse_output`), so a dataset
turn is read exactly as a model output would be: ``<tool_call>`` blocks, the untagged forms it accepts
(Llama's bare JSON, ``[f(a=1)]``), reasoning (``<think>``) left out with a warning, an explicit empty call
list (``[]``) the "no call" answer (:func:`toolcall.formats.common.answer_of`). Before that, the
wrappers the parser does not know are read: glaive's ``<functioncall> {...}`` (arguments in single quotes;
several in a turn, glaive's ``<|endoftext|>`` or text after one), When2Call's ``<TOOLCALL>[{"name",
"arguments"}, ...]</TOOLCALL>``, function-calling-sharegpt's ``<|fn_start|>{...}<|fn_end|>`` and Gorilla
OpenFunctions v2's ``<<function>>f(a=1)<<function>>g(b=2)`` (Python calls, one after each tag);
ToolBench's ReAct steps (``Thought:`` / ``Action:`` / ``Action Input:``, one call a step) are read as
ToolBench means them: the action is the step's call, its thought the turn's text, and the ``Finish``
pseudo-call the final answer (``give_answer``) or no answer at all (``give_up_and_restart``). What the parser
flags as a failure (a call amid text, a block that is not JSON) is a :class:`RecordError` naming the turn:
a call that cannot be read is never kept as a text answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from toolcall.formats.common import (
    RecordError,
    answer_of,
    call_from,
    calls_from_json,
    json_or_value,
    python_calls_to_tool_calls,
)
from toolcall.parsing import parse_output
from toolcall.pytypes import TypeExpressionError, python_literal
from toolcall.specs import ToolSpec
from toolcall.types import Message, ToolCall

# Call blocks of datasets whose tags the output parser does not know, each holding JSON calls:
# When2Call's <TOOLCALL>[...]</TOOLCALL>, function-calling-sharegpt's <|fn_start|>{...}<|fn_end|>.
_CALL_BLOCK_TAGS = (("<TOOLCALL>", "</TOOLCALL>"), ("<|fn_start|>", "<|fn_end|>"))
_CALL_BLOCKS = tuple(
    (opening, closing, re.compile(re.escape(opening) + "(.*?)" + re.escape(closing), re.DOTALL))
    for opening, closing in _CALL_BLOCK_TAGS
)
# ToolBench's (ToolLLaMA's) ReAct steps: "Thought: …\nAction: name\nAction Input: {…}", one call a step;
# the Finish pseudo-call ends the trajectory with the answer or gives up (ToolBench's own conventions).
_REACT_STEP = re.compile(r"^[ \t]*Action[ \t]*:.*\n[ \t]*Action Input[ \t]*:", re.MULTILINE)
_REACT = re.compile(
    r"\s*(?:Thought[ \t]*:(?P<thought>.*?))?^[ \t]*Action[ \t]*:[ \t]*(?P<name>[^\n]*?)[ \t]*\n"
    r"[ \t]*Action Input[ \t]*:(?P<input>.*)",
    re.DOTALL | re.MULTILINE,
)
TOOLBENCH_FINISH = "Finish"
_REACT_UNREADABLE = "ToolBench step does not parse"
# Gorilla OpenFunctions v2 answers with its calls alone, each a Python call after this tag; read as plain
# text it would be a text label that is really a call.
_OPENFUNCTIONS_TAG = "<<function>>"
# The parser's own wording for an output with nothing in it (blank, or reasoning only).
_SAYS_NOTHING = parse_output("").error


def assistant_text(
    text: str, notes: list[str], where: str, tools: Sequence[ToolSpec] = ()
) -> tuple[str, list[ToolCall]]:
    """The answer text and the calls of an assistant turn's text; ``("", [])`` when it says nothing.

    ``notes`` gets a warning when reasoning is left out; ``where`` names the turn in errors; ``tools``
    (the record's) type the values of XML-argument calls (Qwen3-Coder, GLM-4.5), as for a model output.
    """
    if _REACT_STEP.search(text):
        return _react_step(text, notes, where)
    if _OPENFUNCTIONS_TAG in text:
        return "", _openfunctions_calls(text, where, tools)
    text, calls = _take_glaive_calls(text, where)
    for opening, closing, block in _CALL_BLOCKS:
        for body in block.findall(text):
            calls.extend(calls_from_json(body, f"{where}: {opening} block"))
        text = block.sub("\n", text)
        if opening in text or closing in text:
            raise RecordError(
                f"{where}: a {opening} without its closing tag (or a closing tag alone)",
                "assistant turn does not parse",
            )
    if not text.strip():
        return "", calls
    parsed = parse_output(text, tools)
    if parsed.think is not None:
        notes.append(f"{where}: reasoning not kept (a step's label is its calls or its answer)")
    if parsed.error is not None:
        if parsed.error == _SAYS_NOTHING:
            return "", calls
        raise RecordError(
            f"{where}: assistant turn does not parse: {parsed.error}", "assistant turn does not parse"
        )
    # An empty call list beside calls in a wrapper says nothing more; alone, it is the no-call answer.
    action = parsed.action if calls else answer_of(parsed)
    if action is None:  # the parser gives an action whenever it reports no error
        raise RecordError(f"{where}: assistant turn does not parse", "assistant turn does not parse")
    if action.calls:
        return parsed.text or "", [*calls, *action.calls]
    return action.text or "", calls


def _openfunctions_calls(text: str, where: str, tools: Sequence[ToolSpec]) -> list[ToolCall]:
    """The calls of an OpenFunctions v2 answer, ``<<function>>`` before each Python call (positional
    arguments in the declared order); text before the first tag, or beside a call, refuses the record."""
    before, *bodies = text.split(_OPENFUNCTIONS_TAG)
    what = f"{where}: {_OPENFUNCTIONS_TAG} calls"
    if before.strip() or not all(body.strip() for body in bodies):
        raise RecordError(
            f"{what}: text before the first call, or a tag with no call after it",
            "<<function>> calls do not parse",
        )
    try:
        return python_calls_to_tool_calls(
            "[" + ", ".join(body.strip() for body in bodies) + "]", list(tools), what
        )
    except RecordError as error:
        raise RecordError(str(error), "<<function>> calls do not parse") from error


def _react_step(text: str, notes: list[str], where: str) -> tuple[str, list[ToolCall]]:
    """A ToolBench step's text and calls: its thought and its one call, or for ``Finish`` the final
    answer (``give_answer``) or nothing (``give_up_and_restart``: no answer to learn, said in ``notes``)."""
    if len(_REACT_STEP.findall(text)) > 1:
        raise RecordError(
            f"{where}: several Action steps in one turn (ToolBench takes one)", _REACT_UNREADABLE
        )
    step = _REACT.fullmatch(text)
    if step is None or not step["name"].strip():
        raise RecordError(
            f"{where}: a ToolBench step needs 'Thought:' (optional), 'Action:' and 'Action Input:', in that "
            "order and nothing else",
            _REACT_UNREADABLE,
        )
    name, written = step["name"].strip(), step["input"].strip()
    try:
        arguments = json_or_value(written, "Action Input", python=True) if written else {}
    except RecordError as error:
        raise RecordError(f"{where}: {error}", _REACT_UNREADABLE) from error
    if not isinstance(arguments, dict):
        raise RecordError(f"{where}: the Action Input of {name[:80]} is not an object", _REACT_UNREADABLE)
    if name != TOOLBENCH_FINISH:
        return (step["thought"] or "").strip(), [call_from({"name": name, "arguments": arguments})]
    answer = arguments.get("final_answer")
    if arguments.get("return_type") == "give_answer" and isinstance(answer, str) and answer.strip():
        return answer.strip(), []
    if arguments.get("return_type") == "give_up_and_restart":
        notes.append(f"{where}: ToolBench gave up here (Finish: give_up_and_restart): no answer to learn")
        return "", []
    raise RecordError(
        f"{where}: Finish needs return_type give_answer with a final_answer, or give_up_and_restart",
        _REACT_UNREADABLE,
    )


def merge_calls(text_calls: list[ToolCall], structured: list[ToolCall], where: str) -> list[ToolCall]:
    """A turn's calls when it may give them twice: in its text and in a structured field
    (``tool_calls``). Some exports write both for one turn; taking both would double every call."""
    if text_calls and structured and text_calls != structured:
        raise RecordError(
            f"{where}: the calls in the text and in tool_calls differ", "text calls and tool_calls differ"
        )
    return structured or text_calls


# glaive's call: ``<functioncall> {"name": …, "arguments": '{…}'}``, the arguments a JSON object text in
# single quotes; a closing tag is rare, and exports that keep glaive's <|endoftext|> leave it after the call.
_GLAIVE_OPEN, _GLAIVE_CLOSE = "<functioncall>", "</functioncall>"
_QUOTED_ARGUMENTS = re.compile(r"\"arguments\"\s*:\s*'")
_CLOSING_QUOTE = re.compile(r"\s*'")
_GLAIVE_TAIL = re.compile(r"(?:\s*<\|endoftext\|>)+\s*$")
_GLAIVE_UNREADABLE = "<functioncall> arguments in single quotes are not JSON"


def _take_glaive_calls(text: str, where: str) -> tuple[str, list[ToolCall]]:
    """``text`` with each ``<functioncall>`` call taken out (what follows a call stays: an answer, or the
    end token the parser drops), and the calls, in order."""
    if _GLAIVE_OPEN not in text and _GLAIVE_CLOSE not in text:
        return text, []
    kept: list[str] = []
    calls: list[ToolCall] = []
    position = 0
    while (tag := text.find(_GLAIVE_OPEN, position)) != -1:
        kept.append(text[position:tag])
        start = tag + len(_GLAIVE_OPEN)
        # A call reaches at most to the next tag: a call that cannot be read never swallows the next.
        limit = min(
            (
                found
                for found in (text.find(_GLAIVE_OPEN, start), text.find(_GLAIVE_CLOSE, start))
                if found >= 0
            ),
            default=len(text),
        )
        what = f"{where}: <functioncall>"
        found_calls, end = _glaive_call(text, start, limit, what)
        calls.extend(found_calls)
        closing = _after_spaces(text, end)
        if text.startswith(_GLAIVE_CLOSE, closing):
            position = closing + len(_GLAIVE_CLOSE)
        elif text.startswith(_GLAIVE_CLOSE, limit):  # the tag closes, but not right after the call
            raise RecordError(
                f"{what}: text after the call, before </functioncall>: {text[end:limit].strip()[:60]!r}",
                "<functioncall> holds text after its call",
            )
        else:
            position = end
        kept.append("\n")
    rest = text[position:]
    if _GLAIVE_CLOSE in rest or any(_GLAIVE_CLOSE in piece for piece in kept):
        raise RecordError(
            f"{where}: a </functioncall> without its <functioncall>", "assistant turn does not parse"
        )
    return "".join(kept) + rest, calls


def call_turn(text: str, where: str) -> list[ToolCall]:
    """The calls of a turn whose whole text is its calls (ShareGPT's ``function_call`` speaker, a
    ``function_call`` or ``tool_call`` role in ``messages``): JSON, one call or a list (Python literals
    too), ``<tool_call>`` blocks (AmanPriyanshu's tool-reasoning-sft sets wrap the one call of their
    ``tool_call`` turns in one), else glaive's call object with its arguments in single quotes."""
    if _TOOL_CALL_TAG in text:
        return _tagged_call_turn(text, where)
    try:
        return calls_from_json(text, where)
    except RecordError:
        if _QUOTED_ARGUMENTS.search(text) is None:
            raise  # no glaive call either: the JSON error says what is wrong
        return glaive_call_body(text, where)  # arguments in single quotes, which JSON has not


_TOOL_CALL_TAG = "<tool_call>"


def _tagged_call_turn(text: str, where: str) -> list[ToolCall]:
    """The calls of a call turn written as ``<tool_call>`` blocks, read by the output parser; the turn
    holds its calls alone, so text or reasoning beside them, or no call, refuses the record."""
    parsed = parse_output(text)
    if parsed.error is not None or parsed.action is None:
        raise RecordError(
            f"{where}: call turn does not parse: {parsed.error or 'no action'}", "call turn does not parse"
        )
    if not parsed.action.calls:
        raise RecordError(f"{where}: call turn holds no call", "call turn holds no call")
    if parsed.text or parsed.think:
        raise RecordError(
            f"{where}: call turn holds text beside its calls: {(parsed.text or parsed.think or '')[:60]!r}",
            "call turn holds text beside its calls",
        )
    return list(parsed.action.calls)


def add_call_turn(messages: list[Message], calls: list[ToolCall], follows_call_turn: bool) -> None:
    """Add a turn of calls alone (``function_call``, ``tool_call``) to ``messages``. Right after another
    such turn, with no result between them, it joins that turn: exports write a step's parallel calls
    one turn per call (ModelScope's function-calling-chatml ``tool_call`` entries)."""
    last = messages[-1] if messages else None
    if follows_call_turn and last is not None and last.role == "assistant" and last.tool_calls:
        messages[-1] = last.model_copy(update={"tool_calls": [*last.tool_calls, *calls]})
    else:
        messages.append(Message(role="assistant", tool_calls=calls))


def glaive_call_body(text: str, where: str) -> list[ToolCall]:
    """The calls of a turn that holds a call body alone, as glaive writes one (arguments in single
    quotes): the ``function-call`` turns of glaive's ShareGPT conversions. Only glaive's end token may
    follow the call."""
    what = f"{where}: call"
    calls, end = _glaive_call(text, 0, len(text), what)
    rest = _GLAIVE_TAIL.sub("", text[end:]).strip()
    if rest:
        raise RecordError(
            f"{what}: text after the call: {rest[:60]!r}", "call turn holds text after its call"
        )
    return calls


def _glaive_call(text: str, start: int, limit: int, what: str) -> tuple[list[ToolCall], int]:
    """The calls of the ``<functioncall>`` body starting at ``start``, and where the body ends.

    Plain JSON is read as it is. glaive's single-quoted arguments make the body neither JSON nor, when
    an apostrophe is inside (``I'm``, ``O'Brien``), a Python literal: the JSON inside the quotes is read
    on its own, then the call object around it. A body that is neither is read as a Python literal
    (an apostrophe escaped as ``\\'``); anything else is refused with the reason.
    """
    first = _after_spaces(text, start)
    if not _GLAIVE_TAIL.sub("", text[first:limit]).strip():
        raise RecordError(f"{what} holds no call", "<functioncall> holds no call")
    decoder = json.JSONDecoder()
    try:
        value, end = decoder.raw_decode(text, first)
    except (ValueError, RecursionError):
        pass
    else:
        return _calls_of(value, what), end
    quoted = _QUOTED_ARGUMENTS.search(text, first, limit)
    inner = _quoted_json(text, quoted.end(), limit) if quoted is not None else None
    if quoted is not None and inner is not None:
        arguments, after_quote = inner
        # The call object with its arguments as JSON; the text after the quote keeps its place.
        head = f'{text[first : quoted.start()]}"arguments": {json.dumps(arguments)}'
        try:
            value, end = decoder.raw_decode(head + text[after_quote:limit])
        except (ValueError, RecursionError) as error:
            raise RecordError(
                f"{what}: the call object around its quoted arguments is not JSON ({error})"[:300],
                "<functioncall> call object is not JSON",
            ) from error
        if end <= len(head):  # the object closed before its arguments: they are not its own
            raise RecordError(
                f"{what}: the arguments are outside the call object", "<functioncall> is not JSON"
            )
        return _calls_of(value, what), after_quote + end - len(head)
    body = _GLAIVE_TAIL.sub("", text[first:limit])
    try:
        calls = _calls_of(python_literal(body, what), what)
    except (TypeExpressionError, RecordError) as error:
        if quoted is not None:  # no JSON object in the quotes: '{'city': 'Paris'}' has no one reading
            raise RecordError(
                f"{what}: the arguments in single quotes are not a JSON object: {body[:120]!r}",
                _GLAIVE_UNREADABLE,
            ) from error
        if isinstance(error, RecordError):
            raise
        raise RecordError(
            f"{what} is not a call object: {body[:120]!r}", "<functioncall> is not a call object"
        ) from error
    return calls, first + len(body)


def _quoted_json(text: str, start: int, limit: int) -> tuple[Any, int] | None:
    """The JSON value in single quotes from ``start`` and the index after its closing quote, or None.

    Some glaive arguments escape their apostrophes as Python would inside single quotes (``I\\'m``),
    which JSON has no escape for: where the JSON does not read as written, it is read with each ``\\'``
    as the apostrophe it stands for (the text after the call, an answer, keeps its place).
    """
    begin = _after_spaces(text, start)
    decoder = json.JSONDecoder()
    try:
        value, end = decoder.raw_decode(text, begin)
    except (ValueError, RecursionError):
        unescaped, origins = _unescape_apostrophes(text[begin:limit])
        if len(unescaped) == limit - begin:  # no escaped apostrophe: nothing else to try
            return None
        try:
            value, read = decoder.raw_decode(unescaped)
        except (ValueError, RecursionError):
            return None
        end = begin + origins[read - 1] + 1
    closing = _CLOSING_QUOTE.match(text, end)
    return (value, closing.end()) if closing is not None and closing.end() <= limit else None


def _unescape_apostrophes(segment: str) -> tuple[str, list[int]]:
    """``segment`` with each ``\\'`` read as ``'`` (an escaped backslash stays as it is), and for each
    character of the result its index in ``segment``."""
    characters: list[str] = []
    origins: list[int] = []
    index = 0
    while index < len(segment):
        if segment[index] == "\\" and index + 1 < len(segment):
            if segment[index + 1] == "'":
                characters.append("'")
                origins.append(index + 1)
            else:
                characters.append(segment[index : index + 2])
                origins.extend((index, index + 1))
            index += 2
            continue
        characters.append(segment[index])
        origins.append(index)
        index += 1
    return "".join(characters), origins


def _calls_of(value: Any, what: str) -> list[ToolCall]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise RecordError(f"{what} holds no call", "<functioncall> holds no call")
    try:
        return [call_from(item) for item in items]
    except RecordError as error:
        raise RecordError(f"{what}: {error}", error.reason) from error


def _after_spaces(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position
