"""When2Call's multiple-choice records (NVIDIA, ``when2call_test_mcq.jsonl`` and its ``llm_judge``
subset): ``question``, ``tools`` (each tool a JSON string), ``answers`` (one response per category:
``direct``, ``tool_call``, ``request_for_info``, ``cannot_answer``) and ``correct_answer`` naming the
right one. The right response is the label: the ``tool_call`` answer (a JSON call, or a list of them)
as calls, any other as its text. The other responses are the wrong choices, not kept.
"""

from __future__ import annotations

from typing import Any

from toolcall.formats.common import Conversion, RecordError, calls_from_json, tools_from
from toolcall.types import Action, Message, Sample

CATEGORIES = ("direct", "tool_call", "request_for_info", "cannot_answer")


def is_when2call(record: dict[str, Any]) -> bool:
    return "question" in record and "correct_answer" in record and "answers" in record


def from_when2call(record: dict[str, Any]) -> Conversion:
    notes: list[str] = []
    question, correct, answers = record.get("question"), record.get("correct_answer"), record.get("answers")
    if not isinstance(question, str) or not question.strip():
        raise RecordError("when2call 'question' must be a non-empty string")
    if correct not in CATEGORIES:
        raise RecordError(
            f"when2call 'correct_answer' must be one of {', '.join(CATEGORIES)}, got {str(correct)[:40]!r}",
            "when2call 'correct_answer' is not a category",
        )
    if (
        not isinstance(answers, dict)
        or not isinstance(answers.get(correct), str)
        or not answers[correct].strip()
    ):
        raise RecordError(
            f"when2call 'answers' has no {correct!r} response", "when2call answers lack the correct response"
        )
    answer = answers[correct].strip()
    tools = tools_from(record.get("tools"), notes)
    if correct == "tool_call":
        label = Action(calls=calls_from_json(answer, "when2call tool_call answer"))
    else:
        label = Action(text=answer)
    sample = Sample(tools=tools, messages=[Message(role="user", content=question.strip())], label=label)
    return Conversion("when2call", [sample], notes)
