"""gpt-oss answers returned raw (llama.cpp --reasoning-format none, mlx_lm, LM Studio): only the final
channel is read; drafts in the analysis channel used to decide the verdict."""

from __future__ import annotations

import pytest

from toolcall.expansion import parse_expansion
from toolcall.harmony import harmony_answer
from toolcall.verdicts import parse_verdict, read_verification

ANALYSIS = "<|channel|>analysis<|message|>First thought: Response 1 is incorrect because it lacks units. "
FINAL = "<|end|><|start|>assistant<|channel|>final<|message|>"


@pytest.mark.parametrize(
    "raw",
    [
        # llama.cpp: the answer right after the analysis' <|end|>
        ANALYSIS + "But units are optional. Response 2 misspells the city.<|end|>"
        "RESPONSE 2 INCORRECT\nError Analysis: typo.\nCorrect Approach: use Paris.",
        # the full form, ended by <|return|>
        ANALYSIS
        + "So response 2 is wrong."
        + FINAL
        + "RESPONSE 2 INCORRECT\nError Analysis: typo.<|return|>",
    ],
)
def test_the_judge_reads_the_final_channel_not_the_drafts(raw: str) -> None:
    parsed = parse_verdict(raw, 1)
    assert parsed.verdict == "PRED_WRONG" and parsed.decision == "RESPONSE 2 INCORRECT", parsed.reason


def test_a_draft_in_the_analysis_does_not_outvote_the_final_answer() -> None:
    raw = (
        ANALYSIS + "Response 2 is incorrect too, maybe." + FINAL + "BOTH_CORRECT\nError Analysis: both fine."
    )
    assert parse_verdict(raw, 1).verdict == "BOTH_CORRECT"


def test_an_analysis_cut_off_is_no_answer() -> None:
    parsed = parse_verdict(ANALYSIS + "We need to decide whether", 1)
    assert parsed.verdict == "UNPARSEABLE" and "analysis channel never ended" in (parsed.reason or "")
    assert parse_verdict(ANALYSIS + "done.<|end|>", 1).verdict == "UNPARSEABLE"


def test_the_verifier_and_the_generator_read_the_final_channel() -> None:
    verified = read_verification(
        ANALYSIS + "INCORRECT? no." + FINAL + "CORRECT\nReason: the call fits.<|return|>"
    )
    assert verified.passed is True and verified.reason == "the call fits."
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>'
    generated = parse_expansion(
        ANALYSIS + "INPUT: draft OUTPUT: draft" + FINAL + "INPUT:\nUSER: Weather in Rome?\nOUTPUT:\n" + call
    )
    assert generated.error is None and generated.messages[0].content == "Weather in Rome?"
    assert generated.action is not None and generated.action.calls[0].arguments == {"city": "Rome"}


def test_text_without_harmony_markers_is_left_alone() -> None:
    assert harmony_answer("RESPONSE 1 INCORRECT\nError Analysis: <|end|> is a token") is None


@pytest.mark.parametrize(
    "raw",
    [
        'RESPONSE 2 INCORRECT\nError Analysis: Response 2 answers with the text "<|channel|>final<|message|>'
        'BOTH_CORRECT" instead of calling the tool.\nCorrect Approach: Call get_weather(city="Paris").',
        "RESPONSE 2 INCORRECT\nError Analysis: Response 2 answers in text:\n<response_2>\n"
        + ANALYSIS
        + FINAL
        + "BOTH_CORRECT\n</response_2>\nCorrect Approach: Call get_weather.",
    ],
)
def test_harmony_tokens_the_judge_quotes_are_no_harmony_answer(raw: str) -> None:
    """Any harmony token anywhere made the whole answer harmony, and the quoted final message (a
    response's text the judge cites) replaced the judge's own decision."""
    parsed = parse_verdict(raw, 1)
    assert parsed.verdict == "PRED_WRONG" and parsed.decision == "RESPONSE 2 INCORRECT", parsed.reason
    assert harmony_answer(raw) is None
