"""How BFCL scoring reads a model output: as bfcl-eval reads it (the default), or repaired by our parser.

``bfcl`` follows bfcl-eval's ``QwenFCHandler`` (``bfcl_eval/model_handler/local_inference/qwen_fc.py``),
the handler ``bfcl evaluate`` uses for ``Qwen/Qwen3-8B-FC``, whose ``<tool_call>`` JSON layout is our
policy's:

- ``_parse_query_response_prompting``: what is scored (and executed, multi-turn) is the text after
  the last ``</think>`` (its leading newlines dropped) when the output has one, else the whole
  output, so a call drafted inside the reasoning trace is never read (:func:`scored_response`);
- ``_extract_tool_calls``: every match of ``<tool_call>\\n(.*?)\\n</tool_call>`` (non-greedy, across
  lines; the newlines after the opening and before the closing tag are required) is given to
  ``json.loads``; a block that does not load is dropped, silently;
- ``decode_ast`` (single-turn): fails unless every loaded block is a JSON object; each becomes
  ``{block["name"]: dict(block["arguments"])}`` (a missing key, an unhashable name or arguments that
  are not an object make the whole output fail to decode);
- ``decode_execute`` (multi-turn): the same check, then ``{block["name"]: block["arguments"]}``, where
  arguments given as a JSON string are loaded first; an output that fails to decode is a step that
  makes no call.

Nothing is repaired: a block written with Python literals, one whose closing tag is missing or that
sits on one line with its tags is not read. bfcl-eval's code is not imported here: importing its
handler module loads its model-handler base (the OpenAI client, its settings module, which creates
result folders under ``BFCL_PROJECT_ROOT``), which an evaluator must not need. This module follows
the same rules with the standard library, and ``benchmarks/bfcl_multi_turn_parity.py`` and
``tests/evaluation/test_reading.py`` check it against bfcl-eval's own handler on the same outputs.

``repair`` is our parser (:func:`toolcall.parsing.parse_output`), which the loop's probe and the
held-out ToolMatch set use: it repairs what is unambiguous (Python literals, trailing commas, a
missing final ``</tool_call>``, code fences) and calls an output with an unreadable block unparseable.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

OutputReading = Literal["bfcl", "repair"]
OUTPUT_READINGS: tuple[OutputReading, ...] = ("bfcl", "repair")
DEFAULT_OUTPUT_READING: OutputReading = "bfcl"

# QwenFCHandler._extract_tool_calls's pattern, matched with re.DOTALL.
TOOL_CALL_BLOCK = re.compile(r"<tool_call>\n(.*?)\n</tool_call>", re.DOTALL)
OPENING_TAG = "<tool_call>"


class DecodeError(ValueError):
    """The output does not decode into calls the way bfcl-eval decodes it (BFCL: a decoder failure)."""


@dataclass(frozen=True)
class Extracted:
    """The JSON blocks bfcl-eval reads from an output, and how many ``<tool_call>`` tags it ignored."""

    blocks: list[Any]
    tags: int  # opening tags in the output
    matched: int  # blocks in bfcl-eval's layout (loaded or not)

    @property
    def dropped(self) -> int:
        """Opening tags whose block bfcl-eval does not read (not in its layout, or not JSON)."""
        return self.tags - len(self.blocks)

    def note(self) -> str | None:
        """Why some ``<tool_call>`` blocks were not read (None when every one was)."""
        if not self.dropped:
            return None
        unmatched = self.tags - self.matched
        invalid = self.matched - len(self.blocks)
        reasons = []
        if unmatched > 0:
            reasons.append(f"{unmatched} not in the layout <tool_call>\\n...\\n</tool_call>")
        if invalid:
            reasons.append(f"{invalid} not JSON")
        return (
            f"bfcl-eval's reading drops {self.dropped} of {self.tags} <tool_call> blocks "
            f"({', '.join(reasons)})"
        )


def scored_response(text: str) -> str:
    """``QwenFCHandler._parse_query_response_prompting``'s ``model_responses``: after the last
    ``</think>``."""
    if "</think>" in text:
        return text.split("</think>")[-1].lstrip("\n")
    return text


def extract_tool_calls(text: str) -> Extracted:
    """``QwenFCHandler._extract_tool_calls``: each block of the layout that ``json.loads`` reads."""
    matches = TOOL_CALL_BLOCK.findall(text)
    blocks = []
    for match in matches:
        try:
            blocks.append(json.loads(match))
        except Exception:  # bfcl-eval drops a block on any failure to load it
            continue
    return Extracted(blocks=blocks, tags=text.count(OPENING_TAG), matched=len(matches))


def _objects(text: str) -> list[dict[str, Any]]:
    blocks = extract_tool_calls(scored_response(text)).blocks
    if any(type(block) is not dict for block in blocks):
        raise DecodeError(f"Model did not return a list of function calls: {text}")
    return blocks


def _key(block: dict[str, Any], name: str) -> Any:
    if name not in block:
        raise DecodeError(f"a <tool_call> object without {name!r}")
    return block[name]


def _hashable_name(block: dict[str, Any]) -> Any:
    name = _key(block, "name")
    if isinstance(name, (list, dict)):
        raise DecodeError(f"unhashable type: '{type(name).__name__}' as a function name")
    return name


def decode_ast(text: str) -> list[dict[Any, dict[str, Any]]]:
    """``QwenFCHandler.decode_ast``: ``[{name: {param: value}}, ...]``; :class:`DecodeError` if it fails."""
    decoded = []
    for block in _objects(text):
        name = _hashable_name(block)
        arguments = _key(block, "arguments")
        if not isinstance(arguments, dict):
            raise DecodeError(f"'{type(arguments).__name__}' object has no attribute 'items'")
        decoded.append({name: dict(arguments)})
    return decoded


def decode_execute(text: str) -> list[tuple[Any, dict[str, Any]]]:
    """``QwenFCHandler.decode_execute`` before it renders call strings: ``[(name, arguments), ...]``.

    Arguments given as a JSON string are loaded, as bfcl-eval's ``convert_to_function_call`` does;
    :class:`DecodeError` where bfcl-eval's decoding fails (the step then makes no call).
    """
    calls = []
    for block in _objects(text):
        name = _hashable_name(block)
        arguments = _key(block, "arguments")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError as error:
                raise DecodeError(f"arguments string is not JSON: {error}") from error
        if not isinstance(arguments, dict):
            raise DecodeError(f"'{type(arguments).__name__}' object has no attribute 'items'")
        calls.append((name, arguments))
    return calls
