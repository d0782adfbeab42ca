"""An assistant turn written as text -> its answer text and its calls, the same way in every reader.

The text is read with the policy's own output parser (:func:`toolcall.parsing.parse_output`), so a
dataset turn is read exactly as a model output would be: ``<tool_call>`` blocks, the untagged forms it
accepts (Llama's bare JSON, ``[f(a=1)]``), reasoning (``<think>``) left out with a warning. Before
that, one wrapper the parser does not know is read: When2Call's ``<TOOLCALL>[{"name", "arguments"},
...]</TOOLCALL>``. What the parser flags as a failure (a call amid text, a block that is not JSON) is
a :class:`RecordError` naming the turn: a call that cannot be read is never kept as a text answer.
"""

from __future__ import annotations

import re

from toolcall.formats.common import RecordError, calls_from_json
from toolcall.parsing import parse_output
from toolcall.types import ToolCall

_TOOLCALL_BLOCK = re.compile(r"<TOOLCALL>(.*?)</TOOLCALL>", re.DOTALL)
# The parser's own wording for an output with nothing in it (blank, or reasoning only).
_SAYS_NOTHING = parse_output("").error


def assistant_text(text: str, notes: list[str], where: str) -> tuple[str, list[ToolCall]]:
    """The answer text and the calls of an assistant turn's text; ``("", [])`` when it says nothing.

    ``notes`` gets a warning when reasoning is left out; ``where`` names the turn in errors.
    """
    calls: list[ToolCall] = []
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
