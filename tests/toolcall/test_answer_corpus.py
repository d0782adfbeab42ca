"""Real-looking judge and verifier answers, each with the decision a careful reader takes from it.

data/judge_answers.jsonl holds 254 hand-written answers in the styles of Qwen3 (thinking, with vLLM's
reasoning field or an inline trace, or not thinking; QwQ), DeepSeek-R1 (trace opened by the chat
template), Llama 3 (3.3 70B among them), GPT-4o-class (GPT-4.1 among them) and Mistral (Large and
Medium among them) models, and a few each of GLM-4.5/4.6, Kimi K2, gpt-oss (vLLM's reasoning field,
raw harmony), Claude, Gemini, Gemma 3 and DeepSeek-V3: Figure 10 answers with Markdown, labels,
tables (a column or a row per response among them), JSON (other decision keys, an object per
response), XML-style tags, fences, analysis first, a final "**Answer:**" or boxed line, labels in
another language or with an arrow, sentences, mild lead-ins ("I'd say ...", "I believe the answer
is ..."), per-response marks, the options or the prompt's label list restated before a choice, a
change of mind written out again, answers cut off after their decision, quoted injections; and hard
negatives (truncated traces and analyses, the format echoed back, hedges, conditionals,
contradictions, two decisions, the list of decisions restated, second thoughts, a first decision
stated and the final one only named, doubts about the decision, the project's verdict names, quotes
only, a boxed response number, tables whose marks are not one per response, a
qualified verdict on one response beside a clear one on the other) that must be
UNPARSEABLE.
data/verifier_answers.jsonl does the same for the verifier (63 answers, PASS/FAIL words, the format
line echoed as a label, tags, an arrow, a change of mind, and reasons that contradict the decision
among them).

Fields: ``label_position`` (where the label was shown), ``expected`` (the verdict), ``decision`` (the
Figure 10 decision read), ``reasoning`` (vLLM's separate reasoning field), ``trace_opened`` (the chat
template opened the trace), ``analysis_contains``/``reason_contains`` (a piece of the extracted
analysis), ``known_gap`` (a documented limit: the test expects the reader to miss it).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from toolcall.prompts import parse_verification
from toolcall.verdicts import parse_verdict, read_verification

DATA = Path(__file__).parent / "data"
JUDGE = [json.loads(line) for line in (DATA / "judge_answers.jsonl").read_text("utf-8").splitlines()]
VERIFIER = [json.loads(line) for line in (DATA / "verifier_answers.jsonl").read_text("utf-8").splitlines()]
STYLES = {"qwen3", "deepseek-r1", "llama3", "gpt-4o", "mistral"}
# Fewer answers each: families whose trace and answer tokens a server may leave in the text.
OTHER_STYLES = {"seed-oss", "cohere"}
# Judge answers only, a few each: more families real judges come from (GLM-4.5/4.6, Kimi K2, gpt-oss
# through vLLM and as raw harmony, Claude, Gemini, Gemma 3, DeepSeek-V3/V3.1 without thinking).
JUDGE_ONLY_STYLES = {"glm", "kimi", "gpt-oss", "claude", "gemini", "gemma", "deepseek-v3"}


def cases(corpus: list[dict[str, Any]]) -> list[Any]:
    return [
        pytest.param(
            entry,
            id=entry["id"],
            marks=[pytest.mark.xfail(strict=True, reason=entry["known_gap"])] if "known_gap" in entry else [],
        )
        for entry in corpus
    ]


def judged(entry: dict[str, Any], label_position: int | None = None) -> Any:
    return parse_verdict(
        entry["answer"],
        label_position or entry["label_position"],
        reasoning=entry.get("reasoning"),
        trace_opened=entry.get("trace_opened", False),
    )


def test_the_corpora_are_large_and_varied() -> None:
    assert len(JUDGE) >= 100 and len({e["id"] for e in JUDGE}) == len(JUDGE)
    styles = Counter(e["style"] for e in JUDGE)
    assert set(styles) == STYLES | OTHER_STYLES | JUDGE_ONLY_STYLES, styles
    assert min(styles[s] for s in STYLES) >= 15 and min(styles[s] for s in JUDGE_ONLY_STYLES) >= 3, styles
    verdicts = Counter(e["expected"] for e in JUDGE)
    assert set(verdicts) == {"PRED_WRONG", "LABEL_WRONG", "BOTH_CORRECT", "BOTH_WRONG", "UNPARSEABLE"}
    assert verdicts["UNPARSEABLE"] >= 20 and min(verdicts.values()) >= 10, verdicts
    assert {e["label_position"] for e in JUDGE} == {1, 2}
    assert (
        sum("reasoning" in e for e in JUDGE) >= 15 and sum(e.get("trace_opened", False) for e in JUDGE) >= 10
    )
    assert len(VERIFIER) >= 30 and len({e["id"] for e in VERIFIER}) == len(VERIFIER)
    assert {e["style"] for e in VERIFIER} == STYLES | OTHER_STYLES
    outcomes = Counter(e["expected"] for e in VERIFIER)
    assert outcomes["UNPARSEABLE"] >= 8 and min(outcomes.values()) >= 8, outcomes


@pytest.mark.parametrize("entry", cases(JUDGE))
def test_judge_answer(entry: dict[str, Any]) -> None:
    parsed = judged(entry)
    assert (parsed.verdict, parsed.decision) == (entry["expected"], entry.get("decision")), parsed.reason
    assert parsed.raw == entry["answer"]
    if entry["expected"] == "UNPARSEABLE":
        assert parsed.reason  # says why
    if "analysis_contains" in entry:
        assert entry["analysis_contains"] in parsed.error_analysis


@pytest.mark.parametrize(
    "entry", [e for e in JUDGE if e["expected"] != "UNPARSEABLE" and "known_gap" not in e]
)
def test_the_label_position_only_swaps_label_and_prediction(entry: dict[str, Any]) -> None:
    """Read with the label on the other side, the same answer blames the other response."""
    here, there = judged(entry).verdict, judged(entry, 3 - entry["label_position"]).verdict
    swap = {"LABEL_WRONG": "PRED_WRONG", "PRED_WRONG": "LABEL_WRONG"}
    assert there == swap.get(here, here)


@pytest.mark.parametrize("entry", cases(VERIFIER))
def test_verifier_answer(entry: dict[str, Any]) -> None:
    parsed = read_verification(
        entry["answer"], reasoning=entry.get("reasoning"), trace_opened=entry.get("trace_opened", False)
    )
    assert (parsed.decision or "UNPARSEABLE") == entry["expected"], parsed.problem
    assert parsed.passed == {"CORRECT": True, "INCORRECT": False}.get(entry["expected"])
    if entry["expected"] == "UNPARSEABLE":
        assert parsed.problem
    if "reason_contains" in entry:
        assert entry["reason_contains"] in parsed.reason
    # The stage's reader says the same.
    assert parse_verification(
        entry["answer"], reasoning=entry.get("reasoning"), trace_opened=entry.get("trace_opened", False)
    ) == (parsed.passed, parsed.reason)
