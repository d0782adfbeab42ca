"""Ground truth rendered as model output scores 100% through render → parse → convert → BFCL's checker.

Every item of the eleven single-turn categories is pushed through the whole scoring path. The only
items that fail are those no output can pass in BFCL's own checker (flaws in BFCL's data, found
statically by :func:`evaluation.suite.unsatisfiable_reason`); the test pins that set, so a new
bfcl-eval release that fixes or adds one shows up here. Every conversation of the four multi-turn
categories, its ground truth written as the model's outputs turn by turn, passes bfcl-eval's
multi-turn checker through our decoding.
"""

from __future__ import annotations

import pytest

from evaluation.bfcl_multi_turn import live_instances
from evaluation.multi_turn import score_conversation
from evaluation.multi_turn_parity import ground_truth_plan, transcript_of
from evaluation.scoring import score_output, summarise
from evaluation.suite import (
    MULTI_TURN,
    SINGLE_TURN,
    BfclItem,
    MultiTurnItem,
    ground_truth_label,
    load_suite,
    unsatisfiable_reason,
)
from toolcall.parsing import render_action, render_call
from toolcall.types import Action, ToolCall

# bfcl-eval 2026.3.23: a required parameter whose acceptable-value list is empty (2), a required
# parameter whose only acceptable value is omission (1), an expected parameter the function does not
# declare (1), and a required parameter absent from the possible answer (1).
UNSATISFIABLE = {
    "live_simple_106-63-0",
    "live_simple_112-68-0",
    "live_multiple_507-149-4",
    "live_multiple_862-181-3",
    "live_multiple_964-207-0",
}
COUNTS = {
    "simple_python": 400,
    "multiple": 200,
    "parallel": 200,
    "parallel_multiple": 200,
    "irrelevance": 240,
    "live_simple": 258,
    "live_multiple": 1053,
    "live_parallel": 16,
    "live_parallel_multiple": 24,
    "live_irrelevance": 884,
    "live_relevance": 16,
}


def ground_truth_output(item: BfclItem) -> str:
    """What a perfect model writes: the label's calls; a call for relevance; a refusal for irrelevance."""
    if item.kind == "ast":
        return render_action(ground_truth_label(item))
    if item.kind == "relevance":
        return render_call(ToolCall(name=item.functions[0]["name"], arguments={}))
    return render_action(Action(text="None of the provided functions can be used for this request."))


@pytest.fixture(scope="module")
def items() -> list[BfclItem]:
    return load_suite("single_turn")  # type: ignore[return-value]


def test_every_single_turn_category_is_read_in_full(items: list[BfclItem]) -> None:
    counts: dict[str, int] = {}
    for item in items:
        counts[item.category] = counts.get(item.category, 0) + 1
    assert counts == COUNTS
    assert list(counts) == list(SINGLE_TURN)
    assert all((item.possible_answer is None) == (item.kind != "ast") for item in items)


def test_ground_truth_scores_on_every_satisfiable_item(items: list[BfclItem]) -> None:
    results = [score_output(item, ground_truth_output(item)) for item in items]
    failed = {r.id for r in results if not r.correct}
    unsatisfiable = {item.id for item in items if unsatisfiable_reason(item) is not None}
    assert failed == unsatisfiable == UNSATISFIABLE
    satisfiable = summarise(r for r in results if r.id not in UNSATISFIABLE)
    assert {name: score.accuracy for name, score in satisfiable.categories.items()} == dict.fromkeys(
        SINGLE_TURN, 1.0
    )
    assert satisfiable.columns() == {
        "non_live_ast": 1.0,
        "live_ast": 1.0,
        "irrelevance": 1.0,
        "relevance": 1.0,
        "overall": 1.0,
    }


def test_the_opposite_answers_score_zero(items: list[BfclItem]) -> None:
    """A refusal fails every AST and relevance item; a call fails every irrelevance item."""
    sample = [item for category in SINGLE_TURN for item in [i for i in items if i.category == category][:5]]
    for item in sample:
        if item.kind == "irrelevance":
            output = render_call(ToolCall(name=item.functions[0]["name"], arguments={}))
        else:
            output = "I cannot help with that."
        assert not score_output(item, output).correct, item.id


def test_multi_turn_ground_truth_passes_bfcls_checker_on_every_conversation() -> None:
    conversations = load_suite("multi_turn")
    assert {c: sum(i.category == c for i in conversations) for c in MULTI_TURN} == dict.fromkeys(
        MULTI_TURN, 200
    )
    results = []
    for item in conversations:
        assert isinstance(item, MultiTurnItem)
        results.append(score_conversation(item, transcript_of(ground_truth_plan(item))))
    failed = [(r.id, r.error_type) for r in results if not r.correct]
    assert failed == []
    summary = summarise(results)
    assert summary.multi_turn == 1.0 and summary.overall == 1.0 and "overall" in summary.partial
    assert live_instances() == 0  # every conversation's API instances were released
