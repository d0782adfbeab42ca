"""Dataset formats -> samples (T, c_t, a*_t). Pure: records in, samples or a clear error out.

Formats (detected per record from its keys, or forced):

- ``paper``: this project's rendering of the paper's samples (:mod:`toolcall.formats.paper`); with
  ``messages``, detected only where ``label`` reads as the label of a sample (else ``openai``).
- ``bfcl``: BFCL as shipped, single-turn, irrelevance, Java/JavaScript and multi-turn, with its
  possible answers and class docs from a :class:`FormatContext` (:mod:`toolcall.formats.bfcl`).
- ``xlam``: APIGen/xLAM ``query``, ``tools``, ``answers`` (:mod:`toolcall.formats.xlam`).
- ``openai``: chat ``messages`` with ``tool_calls`` and ``tool`` results, and TRL's conversational
  ``prompt`` / ``completion`` records (:mod:`toolcall.formats.chat`).
- ``sharegpt``: ``conversations`` of from/value (or role/content) turns: Hermes function-calling v1,
  glaive and LLaMA-Factory (``function_call`` / ``observation``), ToolACE
  (:mod:`toolcall.formats.sharegpt`); ``hermes``, ``glaive-sharegpt``, ``llamafactory`` and
  ``toolace`` name it too.
- ``glaive``: glaive-function-calling-v2's raw ``system`` / ``chat`` transcripts.
- ``when2call``: When2Call's multiple-choice records, the correct response as the label
  (:mod:`toolcall.formats.when2call`).

The chat formats share how they read an assistant's text (:mod:`toolcall.formats.assistant`: the
policy's own output parser; ToolBench's ReAct steps one call each) and a system prompt that carries the
tool list (:mod:`toolcall.formats.harness`: the calling harness, read for its tools, not kept).

Whole dialogues yield one sample per learnable assistant step (Section 4.1): each step that calls
tools, and each plain-text answer right after a user turn. A record that offers no tool is a valid
"no call" sample. :func:`convert_record` returns the samples with the conversion's warnings (what was
kept but is not checked, or not kept); :func:`record_to_samples` returns the samples only.
"""

from __future__ import annotations

from typing import Any

from toolcall.formats.bfcl import BFCL_CLASS_DOC_FILES, bfcl_label, from_bfcl, is_bfcl
from toolcall.formats.chat import from_openai, is_prompt_completion
from toolcall.formats.common import (
    EMPTY_CONTEXT,
    MAX_ARGUMENT_DEPTH,
    NO_SUITABLE_TOOL,
    Conversion,
    FormatContext,
    RecordError,
    dialogue_samples,
    nesting_depth,
    reason_of,
)
from toolcall.formats.paper import from_paper
from toolcall.formats.sharegpt import from_glaive, from_sharegpt
from toolcall.formats.when2call import from_when2call, is_when2call
from toolcall.formats.xlam import from_xlam
from toolcall.types import Sample

FORMATS = ("paper", "bfcl", "xlam", "openai", "sharegpt", "glaive", "when2call")
ALIASES = {
    "hermes": "sharegpt",
    "glaive-sharegpt": "sharegpt",
    "llamafactory": "sharegpt",
    "toolace": "sharegpt",
}


def detect_format(record: dict[str, Any]) -> str:
    """Guess a record's format from its keys."""
    if is_bfcl(record):
        return "bfcl"
    if "query" in record and "answers" in record:
        return "xlam"
    if is_when2call(record):
        return "when2call"
    if "conversations" in record:
        return "sharegpt"
    if "system" in record and "chat" in record:
        return "glaive"
    if "label" in record and ("input" in record or ("messages" in record and _paper_label_fits(record))):
        return "paper"
    if "messages" in record or is_prompt_completion(record):
        return "openai"
    if "input" in record:
        return "paper"
    raise RecordError(
        f"unrecognised record format (keys: {sorted(record)[:12]})", "unrecognised record format"
    )


def _paper_label_fits(record: dict[str, Any]) -> bool:
    """Whether ``label`` beside ``messages`` is a paper sample's label, not a chat record's metadata
    (``"label": "tool_call"``): an action (calls, or an Action object), or a text answer to a context
    that does not end with the assistant's own turn after a user's (a chat record's whole dialogue)."""
    label, messages = record["label"], record["messages"]
    if isinstance(label, list):
        return all(isinstance(call, dict) for call in label)
    if isinstance(label, dict):
        return bool(label) and set(label) <= {"calls", "text", "ordered"}
    if not isinstance(label, str):
        return False
    if "<tool_call>" in label:
        return True
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        return True
    answered = messages[-1].get("role") == "assistant"
    return not (answered and any(isinstance(m, dict) and m.get("role") == "user" for m in messages))


def resolve_format(fmt: str) -> str:
    """A format name or alias -> the format (``auto`` stays)."""
    fmt = ALIASES.get(fmt, fmt)
    if fmt != "auto" and fmt not in FORMATS:
        raise RecordError(
            f"unknown format {fmt!r}; known: auto, {', '.join(FORMATS)}, {', '.join(ALIASES)}",
            "unknown format",
        )
    return fmt


def convert_record(record: Any, fmt: str = "auto", context: FormatContext = EMPTY_CONTEXT) -> Conversion:
    """Convert one record; raises :class:`RecordError` with the reason."""
    if not isinstance(record, dict):
        raise RecordError(
            f"a record must be a JSON object, got {type(record).__name__}", "record is not an object"
        )
    fmt = resolve_format(fmt)
    fmt = detect_format(record) if fmt == "auto" else fmt
    converters = {
        "paper": from_paper,
        "bfcl": lambda r: from_bfcl(r, context),
        "xlam": from_xlam,
        "openai": from_openai,
        "sharegpt": from_sharegpt,
        "glaive": from_glaive,
        "when2call": from_when2call,
    }
    try:
        conversion = converters[fmt](record)
    except RecordError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise RecordError(
            f"{fmt} record: {type(error).__name__}: {error}", f"{fmt} record: {type(error).__name__}"
        ) from error
    if not conversion.samples:
        raise RecordError(
            f"{fmt} record has no assistant step to learn from", "no assistant step to learn from"
        )
    _check_argument_depth(conversion.samples)
    if any(sample.label.calls and not sample.tools for sample in conversion.samples):
        # Kept (a dataset may call what it never lists), but said: the usual cause is a tool list in a
        # field or prompt this reader does not know.
        conversion.warnings.append(
            f"a step calls tools but the record offers none: is its tool list in a field the {fmt} "
            f"reader does not read? (keys: {sorted(record)[:12]})"
        )
    return conversion


def _check_argument_depth(samples: list[Sample]) -> None:
    """Every call of every format within :data:`MAX_ARGUMENT_DEPTH` levels (each format reads its calls
    its own way; the limit is checked once, here, for all of them)."""
    for sample in samples:
        calls = [call for turn in sample.messages for call in turn.tool_calls] + list(sample.label.calls)
        for call in calls:
            if nesting_depth(call.arguments, MAX_ARGUMENT_DEPTH) > MAX_ARGUMENT_DEPTH:
                raise RecordError(
                    f"arguments of {call.name[:80]} are nested more than {MAX_ARGUMENT_DEPTH} levels deep",
                    "call arguments nested too deeply",
                )


def record_to_samples(record: Any, fmt: str = "auto", context: FormatContext = EMPTY_CONTEXT) -> list[Sample]:
    """Convert one record to its samples; raises :class:`RecordError` with the reason."""
    return convert_record(record, fmt, context).samples


__all__ = [
    "ALIASES",
    "BFCL_CLASS_DOC_FILES",
    "FORMATS",
    "NO_SUITABLE_TOOL",
    "Conversion",
    "FormatContext",
    "RecordError",
    "bfcl_label",
    "convert_record",
    "detect_format",
    "dialogue_samples",
    "reason_of",
    "record_to_samples",
    "resolve_format",
]
