"""Score one model output on one single-turn BFCL item, and aggregate per category (single- and
multi-turn) into BFCL's summary columns.

The path of an output: it is read into BFCL's decoded "model output" form,
``[{function_name: {param: value}}, ...]``, by default exactly as bfcl-eval's ``QwenFCHandler.decode_ast``
reads it (:mod:`evaluation.reading`: ``<tool_call>`` JSON blocks in its layout, others dropped; an
output it cannot decode is BFCL's ``ast_decoder:decoder_failed``), or, with the ``repair`` reading,
by our parser (:func:`toolcall.parsing.parse_output`); bfcl-eval's AST checker judges it against the
item's possible answer. Irrelevance items are correct when no call is made, the relevance item when
one is (BFCL's rule: an output that does not decode into calls counts as no call), with BFCL's error
types.

Aggregation follows ``bfcl_eval.eval_checker.eval_runner_helper.generate_leaderboard_csv`` restricted to
the categories we run (Python single-turn and the four multi-turn ones): non-live AST is the unweighted
mean of its four categories (BFCL's "simple" there is the mean of Python, Java and JavaScript; we
evaluate Python only), live AST the mean weighted by item counts, irrelevance the unweighted mean of
its two categories, relevance the one category, multi-turn the unweighted mean of its four
categories. "overall" is BFCL's overall formula (weights 10 non-live, 10 live, 10 irrelevance, 30
multi-turn, 40 agentic) over the parts that ran, its weights renormalised: BFCL's agentic part (web
search, memory) is never run here, so it is not BFCL's leaderboard overall, which would count the
missing agentic part as 0. With only the single-turn parts it is their equal-weight mean.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from statistics import fmean
from typing import Any

from evaluation.bfcl_checker import ast_check
from evaluation.reading import (
    DEFAULT_OUTPUT_READING,
    DecodeError,
    OutputReading,
    decode_ast,
    extract_tool_calls,
    scored_response,
)
from evaluation.suite import (
    CATEGORIES,
    IRRELEVANCE,
    LIVE_AST,
    MULTI_TURN,
    NON_LIVE_AST,
    RELEVANCE,
    BfclItem,
)
from toolcall.parsing import parse_output
from toolcall.specs import ToolSpec
from toolcall.types import Action

SUMMARY_COLUMNS = ("non_live_ast", "live_ast", "irrelevance", "relevance", "multi_turn", "overall")
SUMMARY_TITLES = {
    "non_live_ast": "Non-Live AST",
    "live_ast": "Live AST",
    "irrelevance": "Irrelevance",
    "relevance": "Relevance",
    "multi_turn": "Multi-Turn",
    "overall": "Overall (no agentic)",
}
# BFCL's overall weights (generate_leaderboard_csv); the agentic part (40) is never run here.
OVERALL_WEIGHTS = {"non_live_ast": 10.0, "live_ast": 10.0, "irrelevance": 10.0, "multi_turn": 30.0}


def to_bfcl_output(action: Action | None) -> list[dict[str, dict[str, Any]]]:
    """An action in BFCL's decoded model-output form (a text answer or no action: no calls).

    Arguments go through a JSON round trip, so the checker sees exactly what a model's JSON says.
    """
    if action is None:
        return []
    return [{call.name: json.loads(json.dumps(call.arguments))} for call in action.calls]


@dataclass(frozen=True)
class ItemResult:
    """The verdict on one item, with what the model said and how it was read (for inspection)."""

    id: str
    category: str
    correct: bool
    made_call: bool
    raw_output: str
    decoded: list[dict[str, dict[str, Any]]] = field(default_factory=list)
    parse_error: str | None = None
    error_type: str | None = None
    errors: list[str] = field(default_factory=list)
    steps: int = 1  # model outputs scored (a multi-turn conversation has many)

    def to_record(self) -> dict[str, Any]:
        """A flat, JSON-safe row (nested values as JSON strings, so parquet columns stay simple)."""
        row = asdict(self)
        row["decoded"] = json.dumps(self.decoded, ensure_ascii=False)
        row["errors"] = json.dumps(self.errors, ensure_ascii=False, default=str)
        return row


IRRELEVANCE_ERROR = "irrelevance_error:decoder_success"  # BFCL's names for the two failures
RELEVANCE_ERROR = "relevance_error:decoder_failed"
DECODER_FAILED = "ast_decoder:decoder_failed"


@dataclass(frozen=True)
class Reading:
    """An output as one reading sees it: decoded calls, or why it does not decode (``error``)."""

    decoded: list[dict[Any, dict[str, Any]]]
    error: str | None = None  # the output does not decode into calls
    note: str | None = None  # it decodes, but some <tool_call> blocks were not read


def read_output(
    raw_output: str,
    reading: OutputReading = DEFAULT_OUTPUT_READING,
    tools: Sequence[ToolSpec] | None = None,
    *,
    trace_opened: bool = False,
) -> Reading:
    """``raw_output`` in BFCL's decoded model-output form, read as bfcl-eval reads it or repaired
    (``tools`` type the values of XML-argument calls, and ``trace_opened``, the prompt ending inside a
    reasoning trace its template opened, makes text before ``</think>`` the trace: see
    :func:`toolcall.parsing.parse_output`). The ``bfcl`` reading ignores ``trace_opened``, as
    ``bfcl evaluate`` has no such notion: it reads the text after the last ``</think>``."""
    if reading == "bfcl":
        try:
            decoded = decode_ast(raw_output)
        except DecodeError as error:
            return Reading([], error=str(error))
        return Reading(decoded, note=extract_tool_calls(scored_response(raw_output)).note())
    if reading != "repair":
        raise ValueError(f"unknown output reading {reading!r} (bfcl or repair)")
    parsed = parse_output(raw_output, tools, trace_opened=trace_opened)
    if parsed.error is not None:
        return Reading([], error=parsed.error)
    return Reading(to_bfcl_output(parsed.action))


def score_output(
    item: BfclItem,
    raw_output: str,
    reading: OutputReading = DEFAULT_OUTPUT_READING,
    *,
    trace_opened: bool = False,
) -> ItemResult:
    """Read ``raw_output`` (see :func:`read_output`) and judge it as BFCL does for ``item``'s category."""
    read = read_output(raw_output, reading, item.tools(), trace_opened=trace_opened)
    decoded = read.decoded
    made_call = bool(decoded)
    common = {
        "id": item.id,
        "category": item.category,
        "raw_output": raw_output,
        "decoded": decoded,
        "parse_error": read.error or read.note,
    }
    if item.kind == "irrelevance":
        return ItemResult(
            correct=not made_call,
            made_call=made_call,
            error_type=IRRELEVANCE_ERROR if made_call else None,
            **common,
        )
    if item.kind == "relevance":
        return ItemResult(
            correct=made_call,
            made_call=made_call,
            error_type=None if made_call else RELEVANCE_ERROR,
            **common,
        )
    if read.error is not None:
        return ItemResult(
            correct=False, made_call=False, error_type=DECODER_FAILED, errors=[read.error], **common
        )
    assert item.possible_answer is not None
    verdict = ast_check(item.functions, decoded, item.possible_answer, item.category)
    return ItemResult(
        correct=verdict.valid,
        made_call=made_call,
        error_type=verdict.error_type,
        errors=[e if isinstance(e, str) else json.dumps(e, default=str) for e in verdict.errors],
        **common,
    )


@dataclass(frozen=True)
class CategoryScore:
    category: str
    correct: int
    total: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


@dataclass(frozen=True)
class BfclSummary:
    """Per-category counts and BFCL's summary columns (None where none of a column's categories ran)."""

    categories: dict[str, CategoryScore]
    non_live_ast: float | None
    live_ast: float | None
    irrelevance: float | None
    relevance: float | None
    multi_turn: float | None
    overall: float | None
    # Summary columns computed from only some of their categories (e.g. ``--categories multiple``).
    partial: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return sum(score.total for score in self.categories.values())

    @property
    def correct(self) -> int:
        return sum(score.correct for score in self.categories.values())

    def column(self, name: str) -> float | None:
        return getattr(self, name)

    def columns(self) -> dict[str, float]:
        """The summary columns that have a value."""
        return {name: value for name in SUMMARY_COLUMNS if (value := self.column(name)) is not None}

    def accuracy(self) -> dict[str, float]:
        return {name: score.accuracy for name, score in self.categories.items()}


def category_scores(results: Iterable[Any]) -> dict[str, CategoryScore]:
    correct: dict[str, int] = {}
    total: dict[str, int] = {}
    for result in results:
        total[result.category] = total.get(result.category, 0) + 1
        correct[result.category] = correct.get(result.category, 0) + int(result.correct)
    order = [c for c in CATEGORIES if c in total] + sorted(c for c in total if c not in CATEGORIES)
    return {c: CategoryScore(c, correct[c], total[c]) for c in order}


def _unweighted(scores: Sequence[CategoryScore]) -> float | None:
    return fmean(s.accuracy for s in scores) if scores else None


def _weighted(scores: Sequence[CategoryScore]) -> float | None:
    total = sum(s.total for s in scores)
    return sum(s.correct for s in scores) / total if total else None


def summarise(results: Iterable[Any]) -> BfclSummary:
    """Per-category counts and summary columns of item results (anything with ``category`` and
    ``correct``: single-turn :class:`ItemResult` and multi-turn results alike)."""
    return summary_from_scores(category_scores(results))


def summary_from_scores(categories: dict[str, CategoryScore]) -> BfclSummary:
    """BFCL's summary columns from per-category scores (see the module docstring for the formulas)."""

    def present(group: Sequence[str]) -> list[CategoryScore]:
        return [categories[c] for c in group if c in categories and categories[c].total]

    groups = {
        "non_live_ast": NON_LIVE_AST,
        "live_ast": LIVE_AST,
        "irrelevance": IRRELEVANCE,
        "relevance": RELEVANCE,
        "multi_turn": MULTI_TURN,
    }
    columns = {
        "non_live_ast": _unweighted(present(NON_LIVE_AST)),
        "live_ast": _weighted(present(LIVE_AST)),
        "irrelevance": _unweighted(present(IRRELEVANCE)),
        "relevance": _unweighted(present(RELEVANCE)),
        "multi_turn": _unweighted(present(MULTI_TURN)),
    }
    partial = [name for name, group in groups.items() if present(group) and len(present(group)) < len(group)]
    parts = {name: columns[name] for name in OVERALL_WEIGHTS if columns[name] is not None}
    overall = None
    if parts:
        weight = sum(OVERALL_WEIGHTS[name] for name in parts)
        overall = sum(OVERALL_WEIGHTS[name] * value for name, value in parts.items()) / weight  # type: ignore[operator]
        if len(parts) < len(OVERALL_WEIGHTS) or any(name in partial for name in parts):
            partial.append("overall")
    return BfclSummary(categories=categories, overall=overall, partial=tuple(partial), **columns)
