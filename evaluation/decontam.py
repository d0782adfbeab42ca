"""Decontamination: is a training sample one of the evaluation suite's questions?

A loop that trains on its own benchmark measures nothing. Seeds may come from anywhere (a dataset that
copied BFCL questions, an expansion that reproduced one), so ingest reports seeds that overlap the suite
and curate refuses to put an overlapping sample into a round's dataset.

Overlap is decided by a normalised content hash of what makes a question that question: the user's
text (every user message, Unicode-NFKC-normalised, case-folded, whitespace collapsed) and the names of
the tools offered (case-folded, ``.``/``-``/``/``/spaces read as ``_``, since OpenAI-style exports rename
``math.factorial`` to ``math_factorial``; as a set, order ignored). Tool descriptions, the label and any
system prompt are left out on purpose: a copied question with reworded docs or another answer is still
the benchmark's question.

A multi-turn conversation is many questions: a training sample cut from it at turn k holds the user
turns up to k (its context), or turn k alone (a re-split dialogue). Each of those texts is hashed with
the tools offered by then (``miss_func`` adds its held-out functions at their turn) and with every
function of the conversation's API classes (a copy that never held any out), each also without the
functions the entry's ``excluded_function`` names (which ``looptool ingest`` leaves out of a sample's
tools, while bfcl-eval's loader, and so the suite, still offers them).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

from evaluation.suite import (
    SUITE_NAME,
    BfclItem,
    MultiTurnItem,
    SuiteItem,
    load_suite,
    parse_categories,
    suite_version,
)
from toolcall.canonical import content_hash
from toolcall.specs import ToolSpec
from toolcall.types import Message

_SPACES = re.compile(r"\s+")
_NAME_SEPARATORS = re.compile(r"[.\-/\s]+")


class HasContext(Protocol):
    """Anything with tools and messages: a Sample, a SampleAdded or CuratedSample payload, a pool sample."""

    @property
    def tools(self) -> Sequence[ToolSpec]: ...

    @property
    def messages(self) -> Sequence[Message]: ...


def normalise_query(text: str) -> str:
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def normalise_tool_name(name: str) -> str:
    return _NAME_SEPARATORS.sub("_", unicodedata.normalize("NFKC", name).casefold().strip())


def overlap_key(user_query: str, tool_names: Iterable[str]) -> str:
    """The hash two questions share when they are the same question over the same tools."""
    return content_hash(
        {"query": normalise_query(user_query), "tools": sorted({normalise_tool_name(n) for n in tool_names})}
    )


def sample_key(sample: HasContext) -> str:
    query = "\n".join(m.content for m in sample.messages if m.role == "user")
    return overlap_key(query, (tool.name for tool in sample.tools))


def item_key(item: BfclItem) -> str:
    return overlap_key(item.user_query(), (f["name"] for f in item.functions))


def item_keys(item: SuiteItem) -> set[str]:
    """Every hash under which a training sample is this item's question (one for single-turn items)."""
    if not isinstance(item, MultiTurnItem):
        return {item_key(item)}
    offered = [f["name"] for f in item.functions]
    every = [*offered, *(f["name"] for docs in item.missed_function.values() for f in docs)]
    excluded = set(item.excluded_function)
    keys: set[str] = set()
    so_far: list[str] = []
    for turn, query in enumerate(item.turn_queries()):
        offered = [*offered, *(f["name"] for f in item.missed_function.get(str(turn), []))]
        # Ingest leaves BFCL's excluded functions out of a sample's tools; bfcl-eval still offers them.
        tool_sets = [offered, every]
        if excluded:
            tool_sets += [[name for name in names if name not in excluded] for names in (offered, every)]
        texts = []
        if query:
            so_far.append(query)
            texts.append(query)
        if so_far:
            texts.append("\n".join(so_far))
        for text in texts:
            for tools in tool_sets:
                keys.add(overlap_key(text, tools))
    return keys


@dataclass(frozen=True)
class Decontaminator:
    """The suite's question hashes, and the check of a sample against them."""

    suite: str
    suite_version: str
    item_ids_by_key: Mapping[str, tuple[str, ...]]

    @classmethod
    def from_items(
        cls, items: Iterable[SuiteItem], suite: str = SUITE_NAME, version: str = ""
    ) -> Decontaminator:
        index: dict[str, list[str]] = {}
        for item in items:
            for key in item_keys(item):
                index.setdefault(key, []).append(item.id)
        return cls(suite, version, {key: tuple(ids) for key, ids in index.items()})

    @classmethod
    def from_suite(cls, categories: Sequence[str] | str | None = None) -> Decontaminator:
        """Every item of the given BFCL categories (default: all, multi-turn included)."""
        return _from_suite(tuple(parse_categories(categories)))

    def __len__(self) -> int:
        return len(self.item_ids_by_key)

    def matches(self, sample: HasContext) -> tuple[str, ...]:
        """The suite item ids the sample is the same question as (empty if none)."""
        return self.item_ids_by_key.get(sample_key(sample), ())

    def overlaps(self, sample: HasContext) -> str | None:
        """The reason to keep this sample out of training, or None when it is not a suite question."""
        ids = self.matches(sample)
        if not ids:
            return None
        shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
        return f"overlaps evaluation suite {self.suite}@{self.suite_version} ({shown})"


@cache
def _from_suite(categories: tuple[str, ...]) -> Decontaminator:
    return Decontaminator.from_items(load_suite(list(categories)), SUITE_NAME, suite_version())


def describe(decontaminator: Decontaminator) -> dict[str, Any]:
    """What the check covers, for logs and reports."""
    return {
        "suite": decontaminator.suite,
        "suite_version": decontaminator.suite_version,
        "questions": len(decontaminator),
    }
