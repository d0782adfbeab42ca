"""System prompts that carry the tool list: a dataset's calling harness, not part of its dialogue.

The policy prompt (:func:`toolcall.prompts.build_chat`) renders a sample's tools itself, so a system
prompt that lists them is read for its tools and left out of the messages; otherwise every training
prompt would show the tools twice (or, where the record has no ``tools`` field, only inside a system
message, with no tool offered). Recognised:

- the ``# Tools`` section of Qwen's chat template, which this project's Figure 7 prompt ends with: the
  section is the harness; the text before it is kept as the record's own system message, unless it
  is the Figure 7 instructions (then the time they state is the conversation's time); text after the
  section (a record's own system messages, as ``build_chat`` appends them) is kept too;
- any other system prompt with a ``<tools>`` block (Hermes), a JSON listing after a known phrase
  (ToolACE, glaive) or that is Kimi K2's ``<|im_system|>tool_declare<|im_middle|>[...]`` turn (Toucan):
  the whole prompt is the harness;
- ToolBench's (ToolLLaMA's) prompt, its APIs listed after "Specifically, you have access to the following
  APIs:" (a Python literal): the whole prompt is the harness, its ``Finish`` pseudo-API no tool (the
  assistant's ``Finish`` steps are answers, see :mod:`toolcall.formats.assistant`);
- a turn of the ``available_tools`` role (GasaiAI/Tool-Reasoning-31K), the tool list alone: read for its
  tools, never a message;
- a user turn that opens with the tool list of argilla's APIGen SFT sets (``apigen-synth-trl``): "You
  have access to the following tools: <tools>[...]</tools> Please answer the following query: …": the
  list is the harness, the query after it is the user's message.

Where a record has both a ``tools`` field and a harness listing, they must list the same tools.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from toolcall.formats.assistant import TOOLBENCH_FINISH
from toolcall.formats.common import RecordError, tools_from
from toolcall.prompts import POLICY_SYSTEM_PROMPT
from toolcall.pytypes import TypeExpressionError, python_literal
from toolcall.specs import ToolSpec

_TOOLS_BLOCK = re.compile(r"<tools>(.*?)</tools>", re.DOTALL)
# Kimi K2's tool declaration turn, kept verbatim as a system message by exports of its data (Toucan):
# "<|im_system|>tool_declare<|im_middle|>[...tools...]<|im_end|>".
_KIMI_TOOL_DECLARATION = re.compile(
    r"^\s*<\|im_system\|>tool_declare<\|im_middle\|>(.*?)(?:<\|im_end\|>)?\s*$", re.DOTALL
)

# Phrases after which a system prompt lists its tools as JSON (ToolACE, glaive).
_LISTING_MARKERS = (
    "in JSON format that you can invoke",
    "with access to the following functions",
    "has access to the following functions",
    "the following functions to help the user",
    "## Available Functions",  # function-calling-sharegpt: one JSON object per function, then "---"
)

# ToolBench's (ToolLLaMA's) harness lists its APIs, and a Finish pseudo-API, after this phrase.
_TOOLBENCH_LISTING = "you have access to the following APIs:"
HARNESS_NOTE = (
    "system prompt carrying the tool list not kept as a message (the policy prompt renders the tools)"
)
_NOTES = {
    "system prompt": HARNESS_NOTE,
    "user turn": (
        "tool list a user turn opens with not kept in its message (the policy prompt renders the tools)"
    ),
    "available_tools turn": (
        "available_tools turn not kept as a message (the policy prompt renders the tools)"
    ),
}

# argilla's APIGen SFT sets (apigen-synth-trl, made for Llama-3.2-1B-Instruct-APIGen-FC) list the tools
# in the user's turn, before the query; their first release wrote the list without the <tools> tags.
_USER_TOOLS = re.compile(
    r"\s*You have access to the following tools:\s*(?:<tools>(?P<tagged>.*?)</tools>|(?P<bare>[\[{].*?))"
    r"\s*Please answer the following query:\s*(?P<query>.*?)\s*",
    re.DOTALL,
)

# The Figure 7 prompt with marks where its time and tools go; "# Tools" starts the section it shares
# with Qwen's chat template. Built from the prompt itself, so a change to it changes what is read.
_TIME_MARK, _TOOLS_MARK = "\ue000time\ue001", "\ue000tools\ue001"
_FIGURE_7_HEAD, _SECTION = POLICY_SYSTEM_PROMPT.format(current_time=_TIME_MARK, tool_sets=_TOOLS_MARK).split(
    "# Tools", 1
)
_TOOLS_SECTION = re.compile(
    re.escape("# Tools" + _SECTION).replace(re.escape(_TOOLS_MARK), "(?P<tools>.*?)"), re.DOTALL
)
_FIGURE_7_INSTRUCTIONS = re.compile(
    re.escape(_FIGURE_7_HEAD.strip()).replace(re.escape(_TIME_MARK), "(?P<time>[^\n]{1,80}?)")
)


@dataclass(frozen=True)
class SystemPrompt:
    """A system prompt (or user turn) read: the text to keep as a message ("" for none), the tools it
    listed (None when it lists none: then it is no harness) and the time the Figure 7 instructions
    state."""

    kept: str
    listing: list[Any] | None = None
    time: str | None = None


def read_system(text: str) -> SystemPrompt:
    """What a system prompt holds besides its harness; see the module's docstring."""
    at = text.find(_TOOLBENCH_LISTING)
    if at != -1:
        return SystemPrompt("", _toolbench_apis(text[at + len(_TOOLBENCH_LISTING) :]))
    section = _TOOLS_SECTION.search(text)
    if section is None:
        listing = tools_in_system(text)
        return SystemPrompt(text) if listing is None else SystemPrompt("", listing)
    block = section["tools"]
    listing = _listing(block) if block.strip() else []  # Figure 7 with no tool: an empty block
    if listing is None:
        raise RecordError(
            "the <tools> block of the system prompt is neither JSON nor a Python literal",
            "tools in the system prompt do not parse",
        )
    before, after = text[: section.start()].strip(), text[section.end() :].strip()
    instructions = _FIGURE_7_INSTRUCTIONS.fullmatch(before)
    time = instructions["time"].strip() if instructions else None
    kept = "\n\n".join(part for part in ("" if instructions else before, after) if part)
    return SystemPrompt(kept, listing, time)


def _toolbench_apis(listing: str) -> list[Any]:
    """The APIs ToolBench's prompt lists (the rest of the prompt), less its Finish pseudo-API: ToolBench's
    way to answer, which its steps read as the answer (or a give-up), never a tool to offer."""
    apis = _listing(listing)
    if apis is None:
        apis = _paragraph_listing(listing)
    if apis is None:
        raise RecordError(
            "the API list of the ToolBench system prompt is neither JSON nor a Python literal",
            "tools in the system prompt do not parse",
        )
    return [api for api in apis if not (isinstance(api, dict) and api.get("name") == TOOLBENCH_FINISH)]


def read_user(text: str) -> SystemPrompt:
    """A user turn read: the query to keep and the tools listed before it, where the turn opens with
    the APIGen SFT sets' tool list (see the module's docstring); else the turn as it is, no harness."""
    turn = _USER_TOOLS.fullmatch(text)
    if turn is None:
        return SystemPrompt(text)
    block = turn["tagged"] if turn["tagged"] is not None else turn["bare"]
    listing = _listing(block) if block.strip() else []  # <tools></tools>: no tool offered
    if listing is None:
        raise RecordError(
            "the tool list of the user turn is neither JSON nor a Python literal",
            "tools in the user turn do not parse",
        )
    return SystemPrompt(turn["query"], listing)


@dataclass
class Harness:
    """What a record's system prompts (and user turns) said about its calling harness, read one turn at
    a time; each listing with where it was (``system prompt``, ``user turn``)."""

    listings: list[tuple[str, list[Any]]] = field(default_factory=list)
    time: str | None = None

    def system(self, text: str) -> str:
        """The text of a system prompt to keep as a message ("": none), its harness read out."""
        return self._read(read_system(text), text, "system prompt")

    def user(self, text: str) -> str:
        """The text of a user turn to keep as its message, a tool list it opens with read out."""
        return self._read(read_user(text), text, "user turn")

    def tool_turn(self, text: str) -> None:
        """A turn that is the tool list alone (GasaiAI/Tool-Reasoning-31K's ``available_tools`` role, a JSON
        list): read for its tools, never a message. One that lists nothing readable refuses the record."""
        where = "available_tools turn"
        listing = tools_in_entry(text, where)
        if listing is None:
            raise RecordError(f"the {where} holds no JSON tool list", f"tools in the {where} do not parse")
        self.listings.append((where, listing))

    def _read(self, prompt: SystemPrompt, text: str, where: str) -> str:
        if prompt.listing is None:
            return text
        self.listings.append((where, prompt.listing))
        self.time = self.time or prompt.time
        return prompt.kept

    def tools(self, given: Any, notes: list[str]) -> list[ToolSpec]:
        """The record's tools: its own field (``given``), else what its harness listed."""
        tools = tools_from(given, notes)
        for where in dict.fromkeys(where for where, _ in self.listings):
            notes.append(_NOTES[where])
        for where, listing in self.listings:
            listed = tools_from(listing, [] if tools else notes, f"tools in the {where}")
            if not tools:  # no tools field (or an empty one): the prompt the model saw listed them
                tools = listed
            elif {t.name: t for t in listed} != {t.name: t for t in tools}:
                raise RecordError(
                    f"the record's tools differ from those its {where} lists (a prompt would show both)",
                    f"tools field and {where} tools differ",
                )
        return tools


def _listing(body: str) -> list[Any] | None:
    """A tool listing: a JSON list or object, several JSON objects in a row, or a Python literal."""
    body = body.strip()
    if not body:
        return None
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        value = _json_sequence(body)
        if value is None:
            try:
                value = python_literal(body, "tools")
            except TypeExpressionError:
                return None
    if isinstance(value, dict):
        return [value]
    return value if isinstance(value, list) else None


def _paragraph_listing(body: str) -> list[Any] | None:
    """Tools written one a paragraph, each a JSON or Python literal (ModelScope swift's ToolBench prompt
    joins its tools with blank lines, each as the dataset gives it: a Python dict's text in its docs'
    example); None unless every paragraph reads."""
    listings = [_listing(paragraph) for paragraph in re.split(r"\n[ \t]*\n", body.strip())]
    if any(listing is None for listing in listings):
        return None
    return [tool for listing in listings if listing is not None for tool in listing]


def _json_sequence(text: str, start: int = 0) -> list[Any] | None:
    """JSON values written one after another from ``start`` (stops at the first non-JSON text);
    None when none reads. An empty list is a listing: it lists no tool."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    read = False
    position = start
    while position < len(text):
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text) or text[position] not in "[{":
            break
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            break
        read = True
        if isinstance(value, list):
            values.extend(value)
        else:
            values.append(value)
    return values if read else None


def tools_in_entry(text: str, where: str) -> list[Any] | None:
    """The tools of a text that holds a tool listing and nothing to keep (an entry of SmolLM3's
    ``chat_template_kwargs.xml_tools``): a ``<tools>`` block or a known phrase's listing as in a system
    prompt, else the text as JSON, a Python literal, or one tool a line; None where it lists none (no
    JSON or literal in it at all). A listing that does not read raises, naming ``where``."""
    try:
        listed = tools_in_system(text)
    except RecordError as error:  # its wording names a system prompt: name the entry instead
        raise RecordError(f"{where}: {error}", f"tools in {where} do not parse") from error
    if listed is not None:
        return listed
    if not re.search(r"[\[{]", text):
        return None
    whole = _listing(text)
    if whole is not None:
        return whole
    lines = [_listing(line) for line in text.splitlines() if line.strip()]
    if any(line is None for line in lines):
        raise RecordError(f"{where} is neither JSON nor a Python literal", f"tools in {where} do not parse")
    return [tool for line in lines if line is not None for tool in line]


def tools_in_system(text: str) -> list[Any] | None:
    """The tools a system prompt lists, or None if it lists none; a listing that does not read raises."""
    declaration = _KIMI_TOOL_DECLARATION.match(text)
    if declaration is not None:
        listing = _listing(declaration.group(1))
        if listing is None:
            raise RecordError(
                "the tool_declare turn of the system prompt is not a JSON tool list",
                "tools in the system prompt do not parse",
            )
        return listing
    blocks = [block for block in _TOOLS_BLOCK.findall(text) if block.strip()]
    for block in blocks:
        value = _listing(block)
        if value is None:
            raise RecordError(
                "the <tools> block of the system prompt is neither JSON nor a Python literal",
                "tools in the system prompt do not parse",
            )
        return value
    for marker in _LISTING_MARKERS:
        at = text.find(marker)
        if at == -1:
            continue
        start = min((i for i in (text.find("[", at), text.find("{", at)) if i != -1), default=-1)
        if start == -1:
            continue
        value = _json_sequence(text, start)
        if value is None:
            raise RecordError(
                "the tool list of the system prompt is not JSON", "tools in the system prompt do not parse"
            )
        return value
    return None
