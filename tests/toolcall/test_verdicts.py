"""Verdict parsing: the Figure 10 grammar, position mapping, and nothing else."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolcall.verdicts import VERDICT_REGEX, parse_verdict

ANSWER = "{decision}\nError Analysis: The base and symbols are reversed.\nCorrect Approach: Use EUR as base."


@pytest.mark.parametrize(
    ("decision", "label_position", "verdict"),
    [
        ("RESPONSE 1 INCORRECT", 1, "LABEL_WRONG"),
        ("RESPONSE 1 INCORRECT", 2, "PRED_WRONG"),
        ("RESPONSE 2 INCORRECT", 2, "LABEL_WRONG"),
        ("RESPONSE 2 INCORRECT", 1, "PRED_WRONG"),
        ("BOTH_CORRECT", 1, "BOTH_CORRECT"),
        ("BOTH_INCORRECT", 2, "BOTH_WRONG"),
    ],
)
def test_decision_maps_by_label_position(decision: str, label_position: int, verdict: str) -> None:
    parsed = parse_verdict(ANSWER.format(decision=decision), label_position)
    assert parsed.verdict == verdict
    assert parsed.error_analysis == "The base and symbols are reversed."
    assert parsed.correct_approach == "Use EUR as base."


@pytest.mark.parametrize(
    "decision",
    [
        "[RESPONSE 2] INCORRECT",
        "**RESPONSE 2 INCORRECT**",
        "response 2 incorrect.",
        '"RESPONSE 2 INCORRECT"',
        "## RESPONSE 2 INCORRECT",
    ],
)
def test_tolerated_decorations(decision: str) -> None:
    assert parse_verdict(ANSWER.format(decision=decision), 1).verdict == "PRED_WRONG"


def test_reasoning_trace_is_skipped() -> None:
    raw = (
        "<think>Response 1 looks wrong... RESPONSE 1 INCORRECT?</think>\n\nBOTH_CORRECT\nError Analysis: none"
    )
    assert parse_verdict(raw, 1).verdict == "BOTH_CORRECT"


def test_decision_and_analysis_on_one_line() -> None:
    parsed = parse_verdict(
        "RESPONSE 1 INCORRECT Error Analysis: wrong unit. Correct Approach: use celsius.", 1
    )
    assert parsed.verdict == "LABEL_WRONG" and parsed.error_analysis == "wrong unit."


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "LABEL_WRONG",  # the project's own names are not the judge's grammar
        "PRED_WRONG\nError Analysis: x",
        "I think response 1 is wrong.",
        "RESPONSE 3 INCORRECT",
        "Both responses are fine. BOTH_CORRECT",
        "<think>never closed RESPONSE 1 INCORRECT",
        "Error Analysis: x\nRESPONSE 1 INCORRECT",
    ],
)
def test_anything_else_is_unparseable_with_raw_kept(raw: str) -> None:
    parsed = parse_verdict(raw, 1)
    assert parsed.verdict == "UNPARSEABLE" and parsed.raw == raw and parsed.reason


def test_invalid_label_position() -> None:
    assert parse_verdict("BOTH_CORRECT", 3).verdict == "UNPARSEABLE"


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=400), st.sampled_from([1, 2]))
def test_arbitrary_text_never_raises(raw: str, position: int) -> None:
    parsed = parse_verdict(raw, position)
    assert parsed.verdict in ("PRED_WRONG", "LABEL_WRONG", "BOTH_CORRECT", "BOTH_WRONG", "UNPARSEABLE")


@settings(max_examples=300, deadline=None)
@given(st.from_regex(VERDICT_REGEX, fullmatch=True), st.sampled_from([1, 2]))
def test_every_answer_the_constraint_allows_parses(raw: str, position: int) -> None:
    """With constrained decoding (vLLM structured outputs) a judge cannot be UNPARSEABLE."""
    assert parse_verdict(raw, position).verdict != "UNPARSEABLE"


def test_think_tags_after_the_decision_are_the_judges_text() -> None:
    """An analysis may quote a response's reasoning block (unparsed outputs are shown as text)."""
    raw = "RESPONSE 2 INCORRECT\nError Analysis: it wrote <think>plan, never closed\nCorrect Approach: x"
    parsed = parse_verdict(raw, 1)
    assert parsed.verdict == "PRED_WRONG" and "never closed" in parsed.error_analysis
    quoted = "BOTH_INCORRECT\nError Analysis: the output ends with </think> and no call\nCorrect Approach: y"
    assert parse_verdict(quoted, 1).verdict == "BOTH_WRONG"
    # A trace whose opening tag was in the chat template: the decision follows its closing tag.
    assert parse_verdict("weighing both...</think>\nRESPONSE 1 INCORRECT\nError Analysis: z", 1).verdict == (
        "LABEL_WRONG"
    )
