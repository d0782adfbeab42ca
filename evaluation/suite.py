"""BFCL v4's single-turn and multi-turn categories, read from the data files bfcl-eval ships.

Each category is a JSON-lines file of questions (``bfcl_eval/data/BFCL_v4_<category>.json``: ``id``,
``question`` as a list of turns, ``function`` as BFCL function docs) and, for the AST categories, a
file of possible answers (``possible_answer/BFCL_v4_<category>.json``: per expected call, each
parameter's acceptable values; ``""`` among them means the parameter may be left out). The two files
are aligned by line. Relevance and irrelevance categories have no possible answers: they are scored
by whether a call is made.

Multi-turn categories (:class:`MultiTurnItem`) are conversations over BFCL's simulated APIs: per
entry its turns of user messages, the API classes involved and their initial state, and per turn the
ground-truth call strings. Their function docs come from ``multi_turn_func_doc/`` as bfcl-eval's own
loader assembles them (``populate_test_cases_with_predefined_functions``: every involved class's
docs; in ``miss_func`` the held-out functions are taken out and kept per turn; then the Python hint
on the remaining docs only).

Besides reading, this module derives our :class:`~toolcall.types.Action` label from a possible
answer (:func:`ground_truth_label`) and finds the few items no output can pass in BFCL's own checker
(:func:`unsatisfiable_reason`): both are used by the tests that push ground truth through the whole
scoring path, and by the ToolMatch parity script.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from evaluation.bfcl_checker import BfclUnavailableError, bfcl_version
from toolcall.formats import bfcl_label
from toolcall.specs import ToolSpec, load_tools
from toolcall.types import Action, Message

SUITE_NAME = "bfcl-v4"
VERSION_PREFIX = "BFCL_v4"

NON_LIVE_AST = ("simple_python", "multiple", "parallel", "parallel_multiple")
LIVE_AST = ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple")
IRRELEVANCE = ("irrelevance", "live_irrelevance")
RELEVANCE = ("live_relevance",)
SINGLE_TURN = (*NON_LIVE_AST, IRRELEVANCE[0], *LIVE_AST, IRRELEVANCE[1], *RELEVANCE)
MULTI_TURN = ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context")
CATEGORIES = (*SINGLE_TURN, *MULTI_TURN)

# BFCL appends this to every Python function description when it builds a model's prompt
# (bfcl_eval.utils._get_language_specific_hint); we render the tools the same way.
PYTHON_HINT = " Note that the provided function is in Python 3 syntax."

ItemKind = Literal["ast", "relevance", "irrelevance", "multi_turn"]


class SuiteError(ValueError):
    """An unknown category or unreadable data file."""


def kind_of(category: str) -> ItemKind:
    if category in MULTI_TURN:
        return "multi_turn"
    if category in IRRELEVANCE:
        return "irrelevance"
    if category in RELEVANCE:
        return "relevance"
    return "ast"


@dataclass(frozen=True)
class BfclItem:
    """One BFCL question with its function docs and (AST categories) its possible answer."""

    id: str
    category: str
    question: list[list[dict[str, Any]]]
    functions: list[dict[str, Any]]
    possible_answer: list[dict[str, dict[str, list[Any]]]] | None = None

    @property
    def kind(self) -> ItemKind:
        return kind_of(self.category)

    def messages(self) -> list[Message]:
        """The dialogue as our messages (BFCL's single-turn questions are one turn of messages)."""
        return [
            Message(role=m["role"], content=str(m.get("content") or ""))
            for turn in self.question
            for m in turn
        ]

    def tools(self) -> list[ToolSpec]:
        """The tools as the model sees them: BFCL's docs with BFCL's Python hint on each description."""
        return load_tools(
            [{**f, "description": f.get("description", "") + PYTHON_HINT} for f in self.functions]
        )

    def user_query(self) -> str:
        return "\n".join(
            str(m.get("content") or "") for turn in self.question for m in turn if m["role"] == "user"
        )


@dataclass(frozen=True)
class MultiTurnItem:
    """One BFCL multi-turn conversation: its turns, the API classes and their initial state, the
    ground truth per turn (call strings), and the function docs as bfcl-eval assembles them.

    ``functions`` are the docs offered from the first turn (with BFCL's Python hint);
    ``missed_function`` maps a turn index (a string, as in BFCL's data) to the docs held out until
    that turn (``miss_func`` only; BFCL adds no hint to them). ``excluded_function`` names the
    functions BFCL holds out of the entry (one canonical action path); bfcl-eval's loader still offers
    them, and so does this item, but a training sample read from the entry (``looptool ingest``) does
    not, which decontamination allows for.
    """

    id: str
    category: str
    question: list[list[dict[str, Any]]]
    initial_config: dict[str, Any]
    involved_classes: list[str]
    functions: list[dict[str, Any]]
    missed_function: dict[str, list[dict[str, Any]]]
    ground_truth: list[list[str]]
    excluded_function: tuple[str, ...] = ()

    @property
    def kind(self) -> ItemKind:
        return "multi_turn"

    @property
    def long_context(self) -> bool:
        """BFCL loads its APIs' long-context scenarios for this category (its own test on the id)."""
        return "long_context" in self.category

    def tools(self) -> list[ToolSpec]:
        """The tools offered from the first turn."""
        return load_tools(self.functions)

    def held_out_tools(self, turn: int) -> list[ToolSpec]:
        """The tools added at ``turn`` (empty unless a miss_func entry holds functions out until then)."""
        return load_tools(self.missed_function.get(str(turn), []))

    def turn_queries(self) -> list[str]:
        """Each turn's user text (empty for a turn that only adds held-out functions)."""
        return [
            "\n".join(str(m.get("content") or "") for m in turn if m["role"] == "user")
            for turn in self.question
        ]

    def user_query(self) -> str:
        return "\n".join(query for query in self.turn_queries() if query)

    def entry(self) -> dict[str, Any]:
        """BFCL's own test-entry form of this item (what its inference and checker read)."""
        return {
            "id": self.id,
            "question": self.question,
            "initial_config": self.initial_config,
            "involved_classes": self.involved_classes,
            "function": self.functions,
            **({"missed_function": self.missed_function} if self.missed_function else {}),
        }


SuiteItem = BfclItem | MultiTurnItem


def _data_root() -> Any:
    try:
        return importlib.resources.files("bfcl_eval") / "data"
    except ModuleNotFoundError as exc:
        raise BfclUnavailableError(
            "bfcl-eval is not installed in this environment; it is a project dependency "
            "(run scripts/install.sh, or `uv sync`)"
        ) from exc


def _read_jsonl(resource: Any) -> list[dict[str, Any]]:
    try:
        text = resource.read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteError(f"cannot read BFCL data file {resource}: {exc}") from exc
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@cache
def _category_items(category: str) -> tuple[BfclItem, ...]:
    root = _data_root()
    questions = _read_jsonl(root / f"{VERSION_PREFIX}_{category}.json")
    answers: list[dict[str, Any]] | None = None
    if kind_of(category) == "ast":
        answers = _read_jsonl(root / "possible_answer" / f"{VERSION_PREFIX}_{category}.json")
        if len(answers) != len(questions):
            raise SuiteError(f"{category}: {len(questions)} questions but {len(answers)} possible answers")
    items = []
    for index, entry in enumerate(questions):
        answer = answers[index]["ground_truth"] if answers is not None else None
        items.append(
            BfclItem(
                id=entry["id"],
                category=category,
                question=entry["question"],
                functions=entry["function"],
                possible_answer=answer,
            )
        )
    return tuple(items)


@cache
def _func_docs(file_name: str) -> tuple[dict[str, Any], ...]:
    return tuple(_read_jsonl(_data_root() / "multi_turn_func_doc" / file_name))


@cache
def _multi_turn_items(category: str) -> tuple[MultiTurnItem, ...]:
    from evaluation.bfcl_multi_turn import func_doc_files

    root = _data_root()
    questions = _read_jsonl(root / f"{VERSION_PREFIX}_{category}.json")
    answers = _read_jsonl(root / "possible_answer" / f"{VERSION_PREFIX}_{category}.json")
    if len(answers) != len(questions):
        raise SuiteError(f"{category}: {len(questions)} questions but {len(answers)} possible answers")
    doc_files = func_doc_files()
    items = []
    for entry, answer in zip(questions, answers, strict=True):
        if entry["id"] != answer["id"]:
            raise SuiteError(f"{category}: question {entry['id']} is aligned with answer {answer['id']}")
        functions = [
            copy.deepcopy(doc) for name in entry["involved_classes"] for doc in _func_docs(doc_files[name])
        ]
        missed: dict[str, list[dict[str, Any]]] = {}
        for turn, names in (entry.get("missed_function") or {}).items():
            missed[turn] = []
            for name in names:  # as bfcl-eval does: the first doc of that name moves out of the list
                index = next((i for i, doc in enumerate(functions) if doc["name"] == name), None)
                if index is not None:
                    missed[turn].append(functions.pop(index))
        for doc in functions:
            doc["description"] = doc["description"] + PYTHON_HINT
        items.append(
            MultiTurnItem(
                id=entry["id"],
                category=category,
                question=entry["question"],
                initial_config=entry.get("initial_config", {}),
                involved_classes=list(entry["involved_classes"]),
                functions=functions,
                missed_function=missed,
                ground_truth=answer["ground_truth"],
                excluded_function=tuple(entry.get("excluded_function") or ()),
            )
        )
    return tuple(items)


def parse_categories(spec: str | Iterable[str] | None) -> list[str]:
    """Category names from a comma-separated string or a list; None or "all" means every category.

    Group names are accepted too: ``single_turn``, ``multi_turn``, ``non_live``, ``live``, ``ast``,
    ``relevance`` (relevance and irrelevance detection).
    """
    if spec is None:
        return list(CATEGORIES)
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s).strip() for s in spec]
    groups = {
        "all": CATEGORIES,
        "single_turn": SINGLE_TURN,
        "multi_turn": MULTI_TURN,
        "non_live": (*NON_LIVE_AST, "irrelevance"),
        "live": (*LIVE_AST, "live_irrelevance", *RELEVANCE),
        "ast": (*NON_LIVE_AST, *LIVE_AST),
        "relevance": (*IRRELEVANCE, *RELEVANCE),
    }
    chosen: list[str] = []
    for name in filter(None, names):
        expanded = groups.get(name, (name,))
        for category in expanded:
            if category not in CATEGORIES:
                raise SuiteError(
                    f"unknown BFCL category {name!r}; known: {', '.join(CATEGORIES)} (or {', '.join(groups)})"
                )
            if category not in chosen:
                chosen.append(category)
    if not chosen:
        raise SuiteError("no BFCL category selected")
    return chosen


def load_suite(categories: Sequence[str] | str | None = None, limit: int | None = None) -> list[SuiteItem]:
    """The items of ``categories`` (default: all, multi-turn included), the first ``limit`` of each."""
    if limit is not None and limit < 1:
        raise SuiteError(f"limit must be at least 1, got {limit}")
    items: list[SuiteItem] = []
    for category in parse_categories(categories):
        chosen: Sequence[SuiteItem] = (
            _multi_turn_items(category) if category in MULTI_TURN else _category_items(category)
        )
        items.extend(chosen[:limit] if limit is not None else chosen)
    return items


def suite_version() -> str:
    return bfcl_version()


# --- ground truth -> label ------------------------------------------------------------------------


def _properties(schema: dict[str, Any]) -> dict[str, Any]:
    props = schema.get("properties")
    return props if isinstance(props, dict) else {}


def ground_truth_label(item: BfclItem) -> Action:
    """Our label for an AST item: per parameter the first acceptable value (``""``: left out).

    A required parameter takes its first acceptable value other than ``""``; a parameter the function
    does not declare is left out when BFCL allows that; dict values are resolved key by key. This is
    one output BFCL's checker accepts for every satisfiable item (the tests verify it).
    """
    if item.possible_answer is None:
        raise SuiteError(f"{item.id}: {item.category} items have no ground truth")
    return bfcl_label(item.possible_answer, item.tools())


def unsatisfiable_reason(item: BfclItem) -> str | None:
    """Why no output can pass BFCL's checker on this item (flaws in BFCL's data), or None."""
    if item.possible_answer is None:
        return None
    docs = {f["name"]: f for f in item.functions}
    for expected in item.possible_answer:
        ((name, acceptable_by_param),) = expected.items()
        if name not in docs:
            return f"expected function {name!r} is not among the item's functions"
        schema = docs[name].get("parameters", {})
        props = _properties(schema)
        required = list(schema.get("required") or [])
        for param in required:
            if param not in acceptable_by_param:
                return f"{name}: required parameter {param!r} has no possible answer"
        for param, acceptable in acceptable_by_param.items():
            if not isinstance(acceptable, list):
                continue
            if not acceptable:
                return f"{name}.{param}: the list of acceptable values is empty"
            if param not in props and "" not in acceptable:
                return f"{name}.{param}: expected but not declared by the function"
            if param in required and all(value == "" for value in acceptable):
                return f"{name}.{param}: required, but its only acceptable value is omission"
    return None
