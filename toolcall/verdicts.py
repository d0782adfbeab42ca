"""Judge text -> verdict: the strict grammar of the Figure 10 output format.

The judge must answer, as the first line after any ``<think>…</think>`` trace, exactly one of
``RESPONSE 1 INCORRECT``, ``RESPONSE 2 INCORRECT``, ``BOTH_CORRECT`` or ``BOTH_INCORRECT`` (square
brackets, Markdown emphasis, quotes, case and trailing punctuation are tolerated), followed by
``Error Analysis:`` and ``Correct Approach:``. Which response was the label is recorded per case, so
"response k incorrect" maps to LABEL_WRONG when k is the label's position and to PRED_WRONG
otherwise. Anything else — including the project's own verdict names, which a sample could try to
smuggle in — is UNPARSEABLE with the raw text kept. The parser never raises.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

Verdict = Literal["PRED_WRONG", "LABEL_WRONG", "BOTH_CORRECT", "BOTH_WRONG", "UNPARSEABLE"]
VERDICTS: tuple[str, ...] = ("PRED_WRONG", "LABEL_WRONG", "BOTH_CORRECT", "BOTH_WRONG")
# The grammar as a regex, for engines that can constrain decoding to it (vLLM structured outputs).
VERDICT_REGEX = (
    r"(RESPONSE [12] INCORRECT|BOTH_CORRECT|BOTH_INCORRECT)\n"
    r"Error Analysis: [^\n]{1,400}\nCorrect Approach: [^\n]{1,400}"
)

_DECORATION = re.compile(r"[\s\"'`*_#>\[\]().:!-]+")
_DECISION = re.compile(r"^(?:RESPONSE([12])INCORRECT|(BOTHCORRECT)|(BOTHINCORRECT))$")
_ANALYSIS = re.compile(
    r"error\s*analysis\s*[:：]\s*(.*?)(?=correct\s*approach\s*[:：]|\Z)", re.IGNORECASE | re.DOTALL
)
_APPROACH = re.compile(r"correct\s*approach\s*[:：]\s*(.*)", re.IGNORECASE | re.DOTALL)


class ParsedVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    verdict: Verdict
    decision: str | None = None  # the judge's own words, e.g. "RESPONSE 2 INCORRECT"
    error_analysis: str = ""
    correct_approach: str = ""
    raw: str = ""
    reason: str | None = None  # why it is UNPARSEABLE


def _decision_key(line: str) -> str:
    return _DECORATION.sub("", line).upper()


def parse_verdict(raw: str, label_position: Literal[1, 2] | int) -> ParsedVerdict:
    """Read a judge answer; ``label_position`` says whether the label was shown as response 1 or 2."""
    if not isinstance(raw, str):
        return ParsedVerdict(verdict="UNPARSEABLE", raw=repr(raw), reason="judge answer is not text")
    if label_position not in (1, 2):
        return ParsedVerdict(
            verdict="UNPARSEABLE", raw=raw, reason=f"invalid label position {label_position!r}"
        )
    answer = raw.strip()
    # A reasoning trace comes first (its opening tag may sit in the chat template, not the answer).
    # Tags after the decision are the judge's text: an analysis may quote a response's <think> block.
    if answer.startswith("<think>"):
        end = answer.find("</think>")
        if end < 0:  # an unclosed trace: the answer never came
            return ParsedVerdict(verdict="UNPARSEABLE", raw=raw, reason="reasoning trace never closed")
        answer = answer[end + len("</think>") :].strip()
    elif "</think>" in answer and _DECISION.match(_decision_key(_head(answer))) is None:
        answer = answer.split("</think>", 1)[1].strip()  # a trace whose opening tag was in the template
    lines = [line for line in answer.splitlines() if line.strip()]
    if not lines:
        return ParsedVerdict(verdict="UNPARSEABLE", raw=raw, reason="empty answer")
    first = lines[0]
    match = _DECISION.match(_decision_key(_head(answer)))
    if match is None:
        return ParsedVerdict(
            verdict="UNPARSEABLE", raw=raw, reason=f"first line is not a Figure 10 decision: {first[:120]!r}"
        )
    incorrect, both_correct, _both_incorrect = match.groups()
    if incorrect is not None:
        verdict: Verdict = "LABEL_WRONG" if int(incorrect) == label_position else "PRED_WRONG"
        decision = f"RESPONSE {incorrect} INCORRECT"
    elif both_correct is not None:
        verdict, decision = "BOTH_CORRECT", "BOTH_CORRECT"
    else:
        verdict, decision = "BOTH_WRONG", "BOTH_INCORRECT"
    analysis = _ANALYSIS.search(answer)
    approach = _APPROACH.search(answer)
    return ParsedVerdict(
        verdict=verdict,
        decision=decision,
        error_analysis=_clean(analysis.group(1)) if analysis else "",
        correct_approach=_clean(approach.group(1)) if approach else "",
        raw=raw,
    )


def _head(answer: str) -> str:
    """The decision's part of the first non-empty line (it may share the line with "Error Analysis:")."""
    first = next((line for line in answer.splitlines() if line.strip()), "")
    return re.split(r"error\s*analysis", first, maxsplit=1, flags=re.IGNORECASE)[0]


def _clean(text: str) -> str:
    return " ".join(text.split()).strip(" \"'*")
