"""Real-looking EDDE generator answers, each with the candidate a careful reader takes from it.

data/generator_answers.jsonl holds hand-written answers to the Figures 13-14 prompt in the styles of
Qwen2.5/Qwen3 (plain, thinking inline, the reasoning field, a trace the template opened, Qwen3-Coder's
XML arguments), DeepSeek-V3/R1, Llama 3, GPT-4o/4.1, Claude, Mistral/Magistral, GLM, Kimi and gpt-oss: fences,
prefaces and notes, a sample written as one JSON object, Markdown headings, the prompt's placeholder
brackets, other formats' call and result forms, drafts in a trace, a sample in a JSON fence (message
lists, call lists, extra keys), labels in bold or heading form, turns under role headings or in a
blockquote, multi-turn INPUTs with tool turns, parallel calls (blocks, one JSON array, Python bullets),
ReAct/LangChain call keys, the first of numbered samples, commentary after the OUTPUT; and answers that
must give no candidate (a trace never closed, a budget cut anywhere in the sample, a refusal, two
unnumbered samples, a dialogue in the OUTPUT, a call written as YAML, code or prose, nothing at all).

Fields: ``messages`` ([role, content] pairs) and ``label`` (``calls`` as [name, arguments] pairs, or
``text``) of a candidate that reads; ``refused``: the codes of the verify stage's rule tier for one
that reads but must not pass it (every other must); ``error`` (a piece of the parse error) of one that
must not read; ``reasoning`` (the server's reasoning field), ``trace_opened``, ``truncated``: how the
answer came back.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from schemas.events import ExpansionCandidate, Scenario
from streams.expand import read_expansion
from streams.roles import Answer
from streams.verify import rule_tier
from toolcall.specs import ToolSpec
from toolcall.types import Action, ToolCall

CORPUS = [
    json.loads(line)
    for line in (Path(__file__).parent / "data" / "generator_answers.jsonl").read_text("utf-8").splitlines()
]
STYLES = {"qwen", "deepseek", "llama3", "gpt-4o", "gpt-4.1", "claude", "mistral", "glm", "kimi", "gpt-oss"}


def _tool(name: str, properties: dict[str, str], required: tuple[str, ...] | None = None) -> ToolSpec:
    schema = {"type": "object", "properties": {key: {"type": kind} for key, kind in properties.items()}}
    needed = list(properties) if required is None else list(required)
    return ToolSpec.from_openai({"name": name, "parameters": {**schema, "required": needed}})


TOOLS = [
    _tool("get_weather", {"city": "string", "day": "string"}, required=("city",)),  # today by default
    _tool("get_forecast", {"city": "string", "days": "integer"}),
    _tool("book_table", {"restaurant": "string", "people": "integer", "time": "string"}),
    ToolSpec.from_openai(
        {
            "name": "search_restaurants",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "filters": {
                        "type": "object",
                        "properties": {
                            "cuisine": {"type": "string", "enum": ["thai", "italian", "portuguese"]},
                            "max_price": {"type": "integer"},
                        },
                        "required": ["cuisine"],
                    },
                },
                "required": ["city", "filters"],
            },
        }
    ),
]


def test_the_corpus_is_varied() -> None:
    assert len(CORPUS) >= 25 and len({e["id"] for e in CORPUS}) == len(CORPUS)
    assert {e["style"] for e in CORPUS} == STYLES
    outcomes = Counter("error" in e for e in CORPUS)
    assert outcomes[True] >= 8 and outcomes[False] >= 15, outcomes


@pytest.mark.parametrize("entry", [pytest.param(e, id=e["id"]) for e in CORPUS])
def test_generator_answer(entry: dict[str, Any]) -> None:
    answer = Answer(
        text=entry["answer"],
        reasoning=entry.get("reasoning"),
        truncated=entry.get("truncated", False),
        max_tokens=8192 if entry.get("truncated") else None,
        trace_opened=entry.get("trace_opened", False),
    )
    parsed = read_expansion(answer, TOOLS)
    if "error" in entry:
        assert parsed.action is None and parsed.error is not None and entry["error"] in parsed.error, parsed
        return
    assert parsed.error is None, parsed.error
    assert [[m.role, m.content] for m in parsed.messages] == entry["messages"]
    label = entry["label"]
    expected = (
        Action(calls=[ToolCall(name=name, arguments=arguments) for name, arguments in label["calls"]])
        if "calls" in label
        else Action(text=label["text"])
    )
    assert parsed.action == expected
    candidate = ExpansionCandidate(
        candidate_id=entry["id"],
        seed_sample_id="seed",
        round=1,
        verdict_event_id="verdict",
        index=0,
        count=1,
        scenario=Scenario(focus="focus", parameters="parameters"),
        tools=TOOLS,
        messages=parsed.messages,
        label=parsed.action,
    )
    assert [v.code for v in rule_tier(candidate)] == entry.get("refused", [])
